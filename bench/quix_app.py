"""Peer contender: a Quix Streams app computing Stock-IT's OHLCV + VWAP candles, for bench/peer_quix.py.

Runs in Quix's own virtual environment (Quix pins an older confluent-kafka than the project), so it
imports nothing from ``pipeline``: only the standard library and ``quixstreams``.  Per symbol (the
message key) it folds each raw trade (JSON as ``pipeline.events.Trade.encode`` writes it) into one
tumbling window per size, by event time (the trade's ISO-8601 ``timestamp``), with the same grace
period, and writes every finalized window to the output topic as a candle in Stock-IT's wire form.
Open = price of the earliest event time, close = of the latest (ties: arrival order), VWAP clamped
to [low, high] — as ``pipeline.windows.CandleAccumulator`` does.

It does NOT validate records or dead-letter them, run anomaly rules, keep a ticker, write Redis or
PostgreSQL: its state and recovery are Quix's own (RocksDB + changelog topics, offsets committed to
Kafka every ``--commit-interval`` s or ``--commit-every`` records).
"""
from __future__ import annotations

import argparse
import logging
from datetime import datetime, timezone

from quixstreams import Application
from quixstreams.dataframe.windows.aggregations import BaseAggregator

logger = logging.getLogger(__name__)
UTC = timezone.utc
# Slots of the window state (a list, stored by Quix): the fields of CandleAccumulator.
OPEN, OPEN_TS, HIGH, LOW, CLOSE, CLOSE_TS, VOLUME, PV, COUNT, BUY, SELL = range(11)


def event_time_ms(value, headers, timestamp, timestamp_type) -> int:
    """Quix timestamp extractor: the trade's ISO-8601 event time in epoch milliseconds."""
    return int(datetime.fromisoformat(value["timestamp"]).timestamp() * 1000)


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class Ohlcv(BaseAggregator):
    """All of a candle in one state value: one state read and write per trade and window."""

    @property
    def state_suffix(self) -> str:
        return "ohlcv"

    def initialize(self):
        return None

    def agg(self, old, trade: dict, timestamp: int):
        price = trade["price"]
        qty = trade["quantity"]
        buy = trade["side"] == "BUY"
        if old is None:
            return [price, timestamp, price, price, price, timestamp, qty, price * qty, 1,
                    qty if buy else 0.0, 0.0 if buy else qty]
        if price > old[HIGH]:
            old[HIGH] = price
        elif price < old[LOW]:
            old[LOW] = price
        if timestamp < old[OPEN_TS]:
            old[OPEN_TS], old[OPEN] = timestamp, price
        if timestamp >= old[CLOSE_TS]:
            old[CLOSE_TS], old[CLOSE] = timestamp, price
        old[VOLUME] += qty
        old[PV] += price * qty
        old[COUNT] += 1
        old[BUY if buy else SELL] += qty
        return old

    def result(self, value):
        return value


def candle_maker(size: int):
    """Window result -> Stock-IT candle wire dict (as ``pipeline.events.Candle.to_wire``)."""

    def to_candle(window: dict, key: bytes, timestamp: int, headers) -> dict:
        s = window["candle"]
        vwap = min(max(s[PV] / s[VOLUME], s[LOW]), s[HIGH])
        return {"symbol": key.decode(), "window_seconds": size, "window_start": iso_ms(window["start"]),
                "window_end": iso_ms(window["end"]), "open": s[OPEN], "high": s[HIGH], "low": s[LOW],
                "close": s[CLOSE], "volume": s[VOLUME], "vwap": vwap, "trade_count": s[COUNT],
                "buy_volume": s[BUY], "sell_volume": s[SELL]}

    return to_candle


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", required=True, help="Kafka bootstrap servers")
    ap.add_argument("--input", required=True, help="raw-trades topic")
    ap.add_argument("--output", required=True, help="topic of finalized candles")
    ap.add_argument("--group", required=True, help="consumer group (Quix application id)")
    ap.add_argument("--state-dir", required=True, help="directory of Quix's RocksDB state")
    ap.add_argument("--windows", default="60,300,900", help="window sizes in seconds")
    ap.add_argument("--grace", type=float, default=2.0, help="grace period in seconds")
    ap.add_argument("--commit-interval", type=float, default=5.0, help="seconds between checkpoints")
    ap.add_argument("--commit-every", type=int, default=0, help="records that force a checkpoint (0 = off)")
    ap.add_argument("--guarantee", default="at-least-once", choices=("at-least-once", "exactly-once"))
    args = ap.parse_args()

    app = Application(broker_address=args.broker, consumer_group=args.group, auto_offset_reset="earliest",
                      state_dir=args.state_dir, commit_interval=args.commit_interval,
                      commit_every=args.commit_every, processing_guarantee=args.guarantee, loglevel="WARNING")
    trades = app.topic(args.input, value_deserializer="json", timestamp_extractor=event_time_ms)
    candles = app.topic(args.output, value_serializer="json")
    late = [0]

    def on_late(value, key, timestamp_ms, late_by_ms, start, end, name, topic, partition, offset) -> bool:
        late[0] += 1
        return False  # counted, not logged per trade

    sdf = app.dataframe(trades)
    grace_ms = int(args.grace * 1000)
    for size in sorted(int(w) for w in args.windows.split(",")):
        (sdf.tumbling_window(duration_ms=size * 1000, grace_ms=grace_ms, name=f"candles-{size}",
                             on_late=on_late)
         .agg(candle=Ohlcv()).final()
         .apply(candle_maker(size), metadata=True)
         .to_topic(candles))
    app.run()
    logger.warning("quix app stopped; %d late trades not folded in", late[0])


if __name__ == "__main__":
    main()
