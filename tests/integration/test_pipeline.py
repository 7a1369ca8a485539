"""End to end on real Kafka, Redis and PostgreSQL: known trades in -> exact candles, alerts, rows out."""
from __future__ import annotations

from collections import defaultdict

import orjson
import pytest
import redis

from pipeline.events import Candle, Trade, alert_id_for
from pipeline.processor import Processor
from pipeline.speed_layer import SpeedLayerReader

from tests.integration.helpers import consume_all, produce, produce_trades, sql, wait_until

pytestmark = pytest.mark.integration
BASE = 1709287200.0  # 2024-03-01T10:00:00Z: history, not live data


def known_trades() -> list[Trade]:
    """Two symbols, one trade a second each for 200 s; AAPL jumps 12 % at #30, MSFT has a whale at #40.

    A last trade of each symbol at +1000 s moves event time past the end of every window before it,
    so those windows close by event time (the last trades' own windows stay open)."""
    trades = []
    for i in range(200):
        ts = BASE + i
        a_price = 100.0 + (i % 5) * 0.1
        if i == 30:
            a_price = 112.5
        trades.append(Trade(f"A-{i}", "AAPL", a_price, 10.0 + i % 3, "BUY" if i % 2 else "SELL", "TEST", ts))
        m_qty = 500.0 if i == 40 else 20.0 + i % 4
        trades.append(Trade(f"M-{i}", "MSFT", 300.0 + (i % 7) * 0.05, m_qty, "SELL" if i % 3 else "BUY", "TEST",
                            ts + 0.5))
    trades.append(Trade("A-end", "AAPL", 100.0, 10.0, "BUY", "TEST", BASE + 1000))
    trades.append(Trade("M-end", "MSFT", 300.0, 20.0, "BUY", "TEST", BASE + 1000.5))
    return trades


def closed_windows(trades: list[Trade]) -> list[Trade]:
    """The trades whose windows the last two trades close."""
    return [t for t in trades if not t.trade_id.endswith("-end")]


def expected_candles(trades: list[Trade], sizes=(60, 300, 900)) -> dict[tuple, dict]:
    groups = defaultdict(list)
    for t in trades:
        for s in sizes:
            groups[(t.symbol, s, t.ts - t.ts % s)].append(t)
    out = {}
    for (sym, s, start), ts in groups.items():
        vol = sum(t.quantity for t in ts)
        out[(sym, s, start)] = dict(
            open=ts[0].price, close=ts[-1].price, high=max(t.price for t in ts), low=min(t.price for t in ts),
            volume=vol, trade_count=len(ts), vwap=sum(t.price * t.quantity for t in ts) / vol,
            buy_volume=sum(t.quantity for t in ts if t.side == "BUY"),
            sell_volume=sum(t.quantity for t in ts if t.side == "SELL"))
    return out


def db_candles(settings) -> dict[tuple, dict]:
    rows = sql(settings, "SELECT symbol, window_seconds, extract(epoch FROM window_start)::float8, open, close, high, "
                         "low, volume, trade_count, vwap, buy_volume, sell_volume FROM candles")
    return {(r[0], r[1], r[2]): dict(open=r[3], close=r[4], high=r[5], low=r[6], volume=r[7], trade_count=r[8],
                                     vwap=r[9], buy_volume=r[10], sell_volume=r[11]) for r in rows}


def assert_candles_equal(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for key, w in want.items():
        g = got[key]
        for field, value in w.items():
            assert g[field] == pytest.approx(value, rel=1e-9), (key, field)


def test_pipe001_known_trades_give_exact_candles_alerts_and_rows(fast, run_worker):
    trades = known_trades()
    produce_trades(fast, trades)
    worker = run_worker(Processor(fast).run, "processor")
    want = expected_candles(closed_windows(trades))
    wait_until(lambda: sql(fast, "SELECT count(*) FROM candles")[0][0] >= len(want), 60, "all candles in PostgreSQL")
    wait_until(lambda: sql(fast, "SELECT count(*) FROM trades")[0][0] == len(trades), 30, "all trades stored")
    worker.stop()

    assert_candles_equal(db_candles(fast), want)
    rows = sql(fast, "SELECT trade_id, price, quantity, side, extract(epoch FROM ts)::float8, late FROM trades")
    by_id = {t.trade_id: t for t in trades}
    assert len(rows) == len(trades)
    for trade_id, price, qty, side, ts, late in rows:
        t = by_id[trade_id]
        assert (price, qty, side, late) == (t.price, t.quantity, t.side, False)
        assert ts == pytest.approx(t.ts, abs=1e-6)

    alerts = sql(fast, "SELECT alert_id, alert_type, severity, symbol, trade_id FROM alerts ORDER BY alert_type")
    # The 12 % jump is one CIRCUIT_BREAKER (not also a PRICE_SPIKE); the trade after it is back near the
    # average and raises nothing. The whale is one VOLUME_SPIKE.
    assert sorted((a[1], a[2], a[3], a[4]) for a in alerts) == [
        ("CIRCUIT_BREAKER", "CRITICAL", "AAPL", "A-30"), ("VOLUME_SPIKE", "MEDIUM", "MSFT", "M-40")]
    assert {a[0] for a in alerts} == {alert_id_for("A-30", "CIRCUIT_BREAKER"), alert_id_for("M-40", "VOLUME_SPIKE")}

    published = consume_all(fast, fast.topic_aggregates, len(want))
    assert len(published) == len(want), "each finalized candle is published exactly once"
    assert_candles_equal({(c.symbol, c.window_seconds, c.window_start): dict(
        open=c.open, close=c.close, high=c.high, low=c.low, volume=c.volume, trade_count=c.trade_count, vwap=c.vwap,
        buy_volume=c.buy_volume, sell_volume=c.sell_volume)
        for c in (Candle.from_wire(orjson.loads(m.value())) for m in published)}, want)
    alert_msgs = consume_all(fast, fast.topic_alerts, 2)
    assert sorted(orjson.loads(m.value())["trade_id"] for m in alert_msgs) == ["A-30", "M-40"]

    reader = SpeedLayerReader(redis.Redis.from_url(fast.redis_url))
    prices = reader.prices()
    assert prices["AAPL"]["price"] == trades[-2].price and prices["MSFT"]["price"] == trades[-1].price
    assert [t["trade_id"] for t in reader.trades("AAPL", 3)] == ["A-end", "A-199", "A-198"]
    assert reader.open_candle("AAPL", 60)["trade_count"] == 1
    assert reader.summary()["trades"] == len(trades)
    assert {a["trade_id"] for a in reader.recent_alerts()} == {"A-30", "M-40"}


def test_pipe002_open_candle_readable_from_redis(fast, run_worker):
    import time

    now = time.time()
    trades = [Trade(f"O-{i}", "TSLA", 250.0 + i, 1.0, "BUY", "TEST", now - 1 + i * 0.01) for i in range(5)]
    produce_trades(fast, trades)
    worker = run_worker(Processor(fast).run, "processor")
    reader = SpeedLayerReader(redis.Redis.from_url(fast.redis_url))
    c = wait_until(lambda: reader.open_candle("TSLA", 900), 30, "open 15-minute candle in Redis")
    worker.stop()
    assert (c["open"], c["high"], c["low"], c["close"], c["trade_count"]) == (250.0, 254.0, 250.0, 254.0, 5)
    series = reader.series("TSLA")
    assert series and series[-1][1] == 254.0


BAD_RECORDS = [
    (b"{not json", "bad JSON"),
    (b'{"trade_id":"x1","symbol":"AAPL","quantity":1,"side":"BUY","timestamp":"2024-01-01T00:00:00Z"}', "price"),
    (b'{"trade_id":"x2","symbol":"AAPL","price":-3,"quantity":1,"side":"BUY","timestamp":"2024-01-01T00:00:00Z"}',
     "price"),
    (b'{"trade_id":"x3","symbol":"AAPL","price":NaN,"quantity":1,"side":"BUY","timestamp":"2024-01-01T00:00:00Z"}',
     "bad JSON"),
    (b'{"trade_id":"x4","symbol":"AAPL","price":1,"quantity":1,"side":"HOLD","timestamp":"2024-01-01T00:00:00Z"}',
     "side"),
    (b'{"trade_id":"x5","symbol":"AAPL","price":1,"quantity":1,"side":"BUY","timestamp":"2999-01-01T00:00:00Z"}',
     "future"),
    (b'{"trade_id":"x6","symbol":"AAPL","price":1,"quantity":1,"side":"BUY","timestamp":"1901-01-01T00:00:00Z"}',
     "before 1970"),
    (b'{"trade_id":"x7","symbol":"AAPL","price":1,"quantity":1,"side":"BUY","timestamp":"soon"}', "timestamp"),
    (b"", "bad JSON"),
]


def test_pipe003_invalid_records_are_dead_lettered_and_processing_goes_on(fast, run_worker):
    from prometheus_client import CollectorRegistry

    from pipeline.metrics import ProcessorMetrics

    good = [Trade(f"G-{i}", "AAPL", 100.0, 1.0, "BUY", "TEST", BASE + i) for i in range(10)]
    records = []
    for i, t in enumerate(good):
        records.append((b"AAPL", t.encode()))
        if i < len(BAD_RECORDS):
            records.append((b"AAPL", BAD_RECORDS[i][0]))
    produce(fast, records)
    metrics = ProcessorMetrics(CollectorRegistry())
    worker = run_worker(Processor(fast, metrics).run, "processor")
    wait_until(lambda: sql(fast, "SELECT count(*) FROM trades")[0][0] == len(good), 30, "valid trades stored")
    dead = consume_all(fast, fast.topic_deadletter, len(BAD_RECORDS))
    worker.stop()
    assert len(dead) == len(BAD_RECORDS)
    reasons = {orjson.loads(m.value())["value"]: orjson.loads(m.value())["reason"] for m in dead}
    for raw, fragment in BAD_RECORDS:
        assert fragment in reasons[raw.decode()], (raw, reasons[raw.decode()])
    counted = sum(s.value for m in metrics.registry.collect() if m.name == "processor_deadletter"
                  for s in m.samples if s.name.endswith("_total"))
    assert counted == len(BAD_RECORDS)
    assert SpeedLayerReader(redis.Redis.from_url(fast.redis_url)).summary()["invalid"] == len(BAD_RECORDS)


def test_pipe004_late_trade_is_stored_and_counted_not_folded_in(fast, run_worker):
    trades = [Trade(f"L-{i}", "AMZN", 150.0, 1.0, "BUY", "TEST", BASE + i * 10) for i in range(30)]  # 0..290 s
    late = Trade("L-late", "AMZN", 999.0, 5.0, "SELL", "TEST", BASE + 5)  # window [0, 60) closed at 62 s
    produce_trades(fast, trades + [late])
    worker = run_worker(Processor(fast).run, "processor")
    wait_until(lambda: sql(fast, "SELECT count(*) FROM trades")[0][0] == 31, 30, "all trades stored")
    wait_until(lambda: sql(fast, "SELECT count(*) FROM candles WHERE window_seconds = 60")[0][0] == 4, 30,
               "1-minute candles")
    worker.stop()
    assert sql(fast, "SELECT late FROM trades WHERE trade_id = 'L-late'") == [(True,)]
    first = sql(fast, "SELECT high, trade_count FROM candles WHERE window_seconds = 60 ORDER BY window_start LIMIT 1")
    assert first == [(150.0, 6)]
    assert SpeedLayerReader(redis.Redis.from_url(fast.redis_url)).summary()["late"] == 1
