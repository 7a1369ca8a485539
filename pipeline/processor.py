"""The stream processor worker: raw-trades -> candles, alerts, Redis and PostgreSQL, exactly once.

Wiring only.  Per batch: decode and validate every record at once (``trade_batch.decode_batch``,
exactly ``Trade.decode`` per record; invalid ones are dead-lettered with their reason), fold each
partition's valid trades into its state at once (``PartitionState.apply_batch``: an event-time
clock per source of trades, the rule sets of ``rulesets.config.rulebook_from_settings``), let the
wall clock move on the sources that are truly idle (``idleness``), show the live source's trades in
Redis (``live_view``; replays are not shown).  The partitions owned, their fenced checkpoints and
offset commits are ``assignment`` + ``checkpoint``; delivery of candles, alerts and dead letters to
Kafka is ``outbox``.  A crash at any point loses no trade, duplicates none, and recomputes the same
candles.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

import numpy as np
import orjson

from pipeline import kafka_io, speed_layer
from pipeline.assignment import Assignment
from pipeline.checkpoint import PartitionSlot
from pipeline.events import Alert, Candle, Trade, iso
from pipeline.latency import LatencyWindow
from pipeline.live_view import LiveView
from pipeline.metrics import ProcessorMetrics
from pipeline.outage import Availability
from pipeline.outbox import OutboxDrain, publish_unowned
from pipeline.rulesets.book import RuleBook
from pipeline.rulesets.config import rulebook_from_settings
from pipeline.settings import Settings
from pipeline.speed_layer import TRADES_KEPT
from pipeline.trade_batch import decode_batch

logger = logging.getLogger(__name__)
# Seconds a latency summary in the heartbeat is reused (sorting the samples at every batch took half of
# the processor's time at 5k trades/s).
LATENCY_SUMMARY_EVERY = 1.0


def deadletter_record(msg: kafka_io.Message, reason: str, kind: str = "") -> tuple[Optional[bytes], bytes]:
    """The dead-letter message (key, value) of a record that is not a valid trade (``kind``: its label)."""
    raw = msg.value() or b""
    return msg.key(), orjson.dumps({
        "reason": reason, "kind": kind, "topic": msg.topic(), "partition": msg.partition(),
        "offset": msg.offset(),
        "key": msg.key().decode("utf-8", "replace") if msg.key() else None,
        "value": raw[:65536].decode("utf-8", "replace"), "failed_at": iso(time.time())})


def rulebook(s: Settings) -> RuleBook:
    """The processor's rule book; a bad configuration raises RulesConfigError naming the key."""
    return rulebook_from_settings(s)


class Batch:
    """What one consumed batch did, for Redis (the live source's trades) and the metrics."""

    __slots__ = ("records", "valid", "late", "per_symbol", "last_by_symbol", "tape", "touched", "candles",
                 "alerts", "late_by_key")

    def __init__(self, records: int):
        self.records = records
        self.valid = self.late = 0
        self.per_symbol: dict[str, int] = {}
        self.late_by_key: dict[tuple[str, str], int] = {}  # (source, symbol) -> late trades
        self.last_by_symbol: dict[str, tuple[Trade, PartitionSlot]] = {}
        self.tape: dict[str, list[Trade]] = {}
        self.touched: set[PartitionSlot] = set()
        self.candles: list[Candle] = []
        self.alerts: list[Alert] = []


class Processor:
    """One processor process. ``run(stop)`` until ``stop`` is set; ``step()`` runs one batch."""

    def __init__(self, settings: Settings, metrics: Optional[ProcessorMetrics] = None,
                 clock: Callable[[], float] = time.time):
        self.s = settings
        self.metrics = metrics or ProcessorMetrics()
        self.clock = clock
        self.live_source = settings.live_source
        self.availability = Availability()
        self.drain = OutboxDrain(settings, self.metrics)
        self.partitions = Assignment(settings, rulebook(settings), self.metrics, self.availability,
                                     self.drain, clock)
        self.live: Optional[LiveView] = None
        self.consumer: Optional[kafka_io.BatchConsumer] = None
        self.processed = 0
        # Recent latencies per stage, shown in the heartbeat (the data-quality page reads them from Redis).
        self.latency = {stage: LatencyWindow(refresh=LATENCY_SUMMARY_EVERY)
                        for stage in ("event_to_processor", "processor_to_redis")}

    # --- lifecycle -------------------------------------------------------------------------------
    def open(self) -> None:
        s = self.s
        self.live = LiveView(speed_layer.connect(s.redis_url), self.metrics, self.live_source)
        try:
            publish_unowned(s, self.drain.store)
        except Exception as exc:  # noqa: BLE001 - best effort: retried at the next start
            logger.warning("outbox rows of an older processor not published yet: %s", exc)
        self.drain.start()
        p = self.partitions
        self.consumer = p.consumer = kafka_io.BatchConsumer(s, s.processor_group, s.topic_trades,
                                                            on_assign=p.on_assign, on_revoke=p.on_revoke,
                                                            on_lost=p.on_lost)

    def close(self) -> None:
        """Checkpoint what is buffered, deliver the outbox, leave the group."""
        try:
            self.partitions.close()
            self.drain.close()
        finally:
            if self.consumer is not None:
                self.consumer.close()  # revokes: the partitions are only forgotten now
                self.consumer = None

    def run(self, stop: threading.Event) -> None:
        self.open()
        logger.info("processor consuming %s as group %s", self.s.topic_trades, self.s.processor_group)
        try:
            while not stop.is_set():
                self.step()
        except Exception as exc:
            logger.critical("processor stopping on an unexpected error, %s: %s (the checkpoint makes a "
                            "restart safe)", type(exc).__name__, exc, exc_info=True)
            raise
        finally:
            self.close()
            logger.info("processor stopped after %d trades", self.processed)

    # --- one batch -------------------------------------------------------------------------------
    def step(self, timeout: float = 0.2) -> int:
        msgs = self.consumer.consume_batch(self.s.batch_size, timeout)
        started = time.perf_counter()
        batch = self._fold(msgs, self.clock())
        self.partitions.advance_idle(batch.touched)
        for slot in self.partitions.slots.values():
            st = slot.state
            if st.candles or st.alerts:
                candles, alerts = st.drain()
                slot.candles += candles
                slot.alerts += alerts
                slot.dirty = True
                batch.candles += candles
                batch.alerts += alerts
        self.live.update(slots=self.partitions.slots, last_by_symbol=batch.last_by_symbol, tape=batch.tape,
                         candles=batch.candles, alerts=batch.alerts, touched=batch.touched,
                         heartbeat=self._heartbeat())
        if batch.last_by_symbol and self.live.failing_since is None:
            self.latency["processor_to_redis"].add(time.perf_counter() - started, time.monotonic())
        self._observe(batch, started)
        self.partitions.buffered += batch.valid
        self.partitions.poll(idle=not msgs)
        return len(msgs)

    def _fold(self, msgs: list, now: float) -> Batch:
        """Decode the batch at once and fold each partition's trades at once (the hot path)."""
        b = Batch(len(msgs))
        if not msgs:
            return b
        slots = self.partitions.slots
        partition_of = [m.partition() for m in msgs]
        for p, last in dict(zip(partition_of, [m.offset() for m in msgs])).items():
            slot = slots.get(p)
            if slot is not None:
                slot.next_offset = last + 1
                slot.dirty = True
                b.touched.add(slot)
        if not b.touched:
            return b
        if len(b.touched) < len(set(partition_of)):  # records of partitions not ours (any more, or not yet)
            msgs = [m for m, p in zip(msgs, partition_of) if p in slots]
            partition_of = [m.partition() for m in msgs]
        cols, positions, invalid = decode_batch([m.value() for m in msgs], now, self.s.max_future_seconds,
                                                max_bytes=self.s.max_record_bytes)
        for pos, exc in invalid:
            slot = slots[partition_of[pos]]
            slot.state.count_invalid()
            slot.deadletters.append(deadletter_record(msgs[pos], exc.reason, exc.kind))
            self.metrics.deadletter.labels(exc.kind).inc()
        b.valid = len(cols)
        if not b.valid:
            return b
        row_partition = np.array(partition_of)[positions] if invalid else np.array(partition_of)
        owners = np.unique(row_partition)
        live, symbol_of = self.live_source, cols.symbol
        shown: dict[str, list[int]] = {}
        for p in owners.tolist():
            rows = list(range(len(cols))) if len(owners) == 1 else np.flatnonzero(row_partition == p).tolist()
            slot = slots[p]
            done = slot.state.apply_batch(cols, rows)
            slot.rows.add(cols, rows, done.late)
            b.late += len(done.late)
            for r in done.late:
                sym = symbol_of[r]
                b.per_symbol[sym] = b.per_symbol.get(sym, 0) + 1
                key = (cols.source[r], sym)
                b.late_by_key[key] = b.late_by_key.get(key, 0) + 1
            for (source, sym), kept in done.kept.items():
                b.per_symbol[sym] = b.per_symbol.get(sym, 0) + len(kept)
                if source == live:
                    shown.setdefault(sym, []).append((kept, slot))
        for sym, parts in shown.items():  # the live source's newest trades of each symbol, in arrival order
            _, slot = max((kept[-1], slot) for kept, slot in parts)
            newest = sorted(r for kept, _ in parts for r in kept[-TRADES_KEPT:])[-TRADES_KEPT:]
            b.tape[sym] = [cols.trade(r) for r in newest]
            b.last_by_symbol[sym] = (b.tape[sym][-1], slot)
        return b

    def _heartbeat(self) -> dict:
        mono = time.monotonic()
        return {"ts": self.clock(), "processed": self.processed, "partitions": sorted(self.partitions.slots),
                "database_unavailable_since": self.partitions.database_down_since,
                "latency": {stage: w.summary(mono) for stage, w in self.latency.items()}}

    def _observe(self, b: Batch, started: float) -> None:
        m = self.metrics
        if b.records:
            m.batch_size.observe(b.records)
            m.batch_duration.observe(time.perf_counter() - started)
        if b.late:
            m.late.inc(b.late)
        for sym, count in b.per_symbol.items():
            m.trades.labels(sym).inc(count)
        self.processed += b.valid
        now, mono = self.clock(), time.monotonic()
        for sym, (trade, _) in b.last_by_symbol.items():
            m.price.labels(sym).set(trade.price)
            lag = now - trade.ts
            if 0 <= lag < 3600:  # live trades only: a replay of history is not late by years
                m.ingest_latency.observe(lag)
                self.latency["event_to_processor"].add(lag, mono)
        for (source, sym), count in b.late_by_key.items():
            m.late_by_source.labels(source, sym).inc(count)
        for c in b.candles:
            m.candles.labels(str(c.window_seconds)).inc()
        for a in b.alerts:
            m.alerts.labels(a.alert_type, a.severity).inc()
        since = self.partitions.database_down_since
        m.db_available.set(0 if since else 1)
        m.db_unavailable_since.set(since or 0)


def run(settings: Settings, stop: threading.Event) -> None:
    """Entry point of ``stockit processor``: metrics server + processing loop."""
    from pipeline.metrics import serve

    metrics = ProcessorMetrics()
    serve(metrics.registry, settings.metrics_host, settings.processor_metrics_port)
    Processor(settings, metrics).run(stop)
