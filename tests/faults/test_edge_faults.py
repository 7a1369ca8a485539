"""Faults at the edge: hostile records produced raw to ``raw-trades`` between valid trades."""
from __future__ import annotations

import time

import orjson
import pytest

from pipeline.events import Trade, iso
from tests.faults.readback import stored_trades
from tests.faults.feed import BASE, MARKER_DELAY
from tests.integration.helpers import wait_until

pytestmark = pytest.mark.faults


def wire(trade_id: str, **fields) -> dict:
    return {"trade_id": trade_id, "symbol": "AAPL", "price": 150.0, "quantity": 10.0, "side": "BUY",
            "exchange": "TEST", "timestamp": iso(BASE + 300.5), **fields}


def hostile_records(now: float) -> list[tuple[str, bytes | None]]:
    """(case, raw value): each must be dead-lettered with a reason, none may stop the processor."""
    nested = b'{"trade_id":"bad-nested","symbol":"AAPL","price":150,"quantity":1,"side":"BUY",' \
             b'"timestamp":"2024-03-01T10:05:00Z","extra":' + b"[" * 1000 + b"]" * 1000 + b"}"
    return [
        ("JSON nested 1,000 deep", nested),
        ("NUL in trader_id", orjson.dumps(wire("bad-nul", trader_id="T\u0000X"))),
        ("sequence 2^64+5", orjson.dumps(wire("bad-sequence"))[:-1] + b',"sequence":18446744073709551621}'),
        ("invalid UTF-8 in a string", orjson.dumps(wire("bad-utf8"))[:-1] + b',"trader_id":"T\xff\xfeX"}'),
        ("tombstone (null value)", None),
        ("record over 64 KB", orjson.dumps(wire("bad-large", note="x" * 70_000))),
        ("2 MB trader_id", orjson.dumps(wire("bad-trader", trader_id="A" * 2_000_000))),
        ("quantity 1e308", orjson.dumps(wire("bad-quantity", quantity=1e308))),
        ("timestamp now + 23 h", orjson.dumps(wire("bad-future", timestamp=iso(now + 23 * 3600)))),
    ]


def test_flt001_every_hostile_record_is_dead_lettered_and_the_partition_goes_on(scenario):
    s = scenario
    before = [Trade(f"v-{i}", "AAPL", 150.0 + i % 7, 10.0 + i % 3, "BUY" if i % 2 else "SELL", "TEST",
                    BASE + i * 10.0, trader_id=f"T{i:03d}", sequence=i) for i in range(30)]
    after = [Trade(f"v-{i}", "AAPL", 150.0 + i % 5, 12.0, "SELL", "TEST", BASE + i * 10.0, sequence=i)
             for i in range(30, 60)]
    for t in before:
        s.publisher.send_trade(t)
    for case, value in hostile_records(time.time()):
        s.publisher.send(b"AAPL", value, case=case)
    for t in after:
        s.publisher.send_trade(t)
    horizon = after[-1].ts + MARKER_DELAY
    s.publisher.send_trade(Trade("v-end", "AAPL", 150.0, 1.0, "BUY", "END", horizon))
    s.publisher.flush()
    assert len({r.partition for r in s.publisher.records()}) == 1, "every record on one partition"

    processor = s.workers.processor()
    report = s.verify("flt001 hostile records between valid trades", s.expected(horizon), settle_timeout=60)
    # Still consuming: a trade sent now is processed too.
    s.publisher.send_trade(Trade("v-last", "AAPL", 151.0, 1.0, "BUY", "TEST", horizon + 1))
    s.publisher.flush()
    wait_until(lambda: not processor.alive() or stored_trades(s.settings) == 62, 60,
               "the trade sent after the check")
    assert processor.alive(), processor.log_tail()
    assert report.ok, report.summary()
    assert report.kinds["dead letters (topic)"].checked == 9
    assert report.kinds["candles (PostgreSQL)"].checked >= 10


def test_flt002_a_trade_stamped_23h_ahead_makes_no_later_trade_late(scenario):
    s = scenario
    processor = s.workers.processor()
    trades = []

    def live(n: int, tag: str) -> None:
        for i in range(n):
            trades.append(s.publisher.send_trade(Trade(f"rt-{tag}-{i}", "AAPL", 180.0 + i % 4, 5.0, "BUY",
                                                       "TEST", time.time())))
            time.sleep(0.05)  # a live feed: event time follows the clock
        s.publisher.flush()

    live(30, "before")
    wait_until(lambda: stored_trades(s.settings) >= 30, 60, "the live trades before")
    future = Trade("rt-future", "AAPL", 180.0, 5.0, "BUY", "TEST", time.time() + 23 * 3600)
    future = orjson.dumps(future.to_wire())
    s.publisher.send(b"AAPL", future, case="timestamp now + 23 h")
    live(40, "after")
    report = s.verify("flt002 a trade stamped now + 23 h", s.expected(float("-inf")), settle_timeout=60,
                      candles=False)
    assert processor.alive(), processor.log_tail()
    assert report.ok, report.summary()
    assert report.kinds["trades (PostgreSQL)"].checked == 70
