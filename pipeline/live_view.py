"""What the processor shows in the Redis speed layer, batch by batch, surviving Redis outages.

The speed layer shows the live source (``STOCKIT_SOURCE``) only: a replay of history, beside it on
the same partitions, never moves a ticker, the tape, a price series, an open candle, the recent
alerts or the live channels.  Per batch: the tickers and open candles of the live symbols traded,
their newest trades, price-series points (at most one a second), finalized candles and alerts of
the live source, the touched partitions' counters (totals over every source) and the heartbeat
(also when idle, at least once a second, with the database's availability).  While Redis fails,
writes are skipped and retried once a second; the first write that succeeds
re-writes the whole current picture — every symbol's ticker, open candles and newest trades, every
partition's counters — so the speed layer is current again at once, not only for symbols traded
since.  Redis is a view: nothing here is durable or exactly-once.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from typing import Iterable, Optional

import redis

from pipeline.checkpoint import PartitionSlot
from pipeline.events import DEFAULT_SOURCE, Alert, Candle, Trade
from pipeline.metrics import ProcessorMetrics
from pipeline.speed_layer import TRADES_KEPT, SpeedLayerWriter, summary_fields, trades_key

logger = logging.getLogger(__name__)
SERIES_STEP = 1.0  # seconds of event time between price-series points
RETRY_EVERY = 1.0  # seconds between tries while Redis fails
HEARTBEAT_EVERY = 1.0


class LiveView:
    def __init__(self, client: redis.Redis, metrics: ProcessorMetrics, source: str = DEFAULT_SOURCE):
        self.client = client
        self.source = source  # the live source: the one shown
        self.writer = SpeedLayerWriter(client)
        self.metrics = metrics
        self.recent: dict[str, deque] = {}  # symbol -> newest trades, oldest first
        self.series_last: dict[str, float] = {}
        self.failing_since: Optional[float] = None
        self._retry_at = 0.0
        self._beat_at = 0.0

    def update(self, *, slots: dict[int, PartitionSlot],
               last_by_symbol: dict[str, tuple[Trade, PartitionSlot]], tape: dict[str, list[Trade]],
               candles: list[Candle], alerts: list[Alert], touched: Iterable[PartitionSlot],
               heartbeat: dict) -> None:
        for sym, trades in tape.items():
            kept = self.recent.get(sym)
            if kept is None:
                kept = self.recent[sym] = deque(maxlen=TRADES_KEPT)
            kept.extend(trades[-TRADES_KEPT:])
        mono = time.monotonic()
        if self.failing_since is not None and mono < self._retry_at:
            return
        full = self.failing_since is not None
        live = self.source
        candles = [c for c in candles if c.source == live]
        alerts = [a for a in alerts if a.source == live]
        if not (last_by_symbol or candles or alerts or full) and mono - self._beat_at < HEARTBEAT_EVERY:
            return
        self._beat_at = mono
        if full:  # the whole current picture
            symbols = {sym: ss for slot in slots.values() if live in slot.state.sources
                       for sym, ss in slot.state.sources[live].symbols.items()}
            trades = {sym: list(self.recent[sym]) for sym in symbols if sym in self.recent}
            touched = slots.values()
        else:
            symbols = {sym: slot.state.sources[live].symbols[sym]
                       for sym, (_, slot) in last_by_symbol.items()}
            trades = tape
        tickers, open_candles = {}, {}
        for sym, ss in symbols.items():
            tickers[sym] = ss.ticker.snapshot(sym)
            for c in ss.windows.current():
                open_candles[(sym, c.window_seconds)] = c.encode()
        series = {}
        for sym, (trade, _) in last_by_symbol.items():
            if trade.ts - self.series_last.get(sym, float("-inf")) >= SERIES_STEP:
                self.series_last[sym] = trade.ts
                series[sym] = [[trade.ts, trade.price]]
        summary = {}
        for slot in touched:
            summary.update(summary_fields(slot.partition, slot.state.counters))
        try:
            t0 = time.perf_counter()
            if full and trades:
                self.client.delete(*(trades_key(sym) for sym in trades))
            self.writer.write_batch(
                tickers=tickers,
                trades={sym: [t.encode() for t in ts[-TRADES_KEPT:]] for sym, ts in trades.items()},
                series=series, open_candles=open_candles, alerts=[a.encode() for a in alerts],
                candles=[c.encode() for c in candles], summary=summary, heartbeat=heartbeat)
            self.metrics.redis_duration.observe(time.perf_counter() - t0)
        except redis.RedisError as exc:
            if self.failing_since is None:
                logger.error("Redis write failed (speed layer stale until it recovers): %s", exc)
                self.failing_since = time.time()
            self._retry_at = mono + RETRY_EVERY
            return
        if full:
            logger.info("Redis is reachable again; the speed layer was re-written (%d symbols)", len(tickers))
            self.failing_since = None
        after = time.time()
        for trade, _ in last_by_symbol.values():
            lag = after - trade.ts
            if 0 <= lag < 3600:
                self.metrics.e2e_latency.observe(lag)
