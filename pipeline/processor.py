"""The stream processor worker: raw-trades -> candles, alerts, Redis and PostgreSQL, exactly once.

Wiring only.  Per batch: decode and validate each record (``Trade.decode``; invalid ones are
dead-lettered with their reason), fold valid trades into their partition's state
(``partition_state``: an event-time clock per source of trades, the rule sets of
``rulesets.config.rulebook_from_settings``), let the wall clock move on the sources that are truly
idle (``idleness``), show the live source's trades in Redis (``live_view``; replays are not shown).  The partitions owned, their fenced
checkpoints and offset commits are ``assignment`` + ``checkpoint``; delivery of candles, alerts
and dead letters to Kafka is ``outbox``.  A crash at any point loses no trade, duplicates none,
and recomputes the same candles.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

import orjson

from pipeline import kafka_io, speed_layer
from pipeline.assignment import Assignment
from pipeline.checkpoint import PartitionSlot
from pipeline.events import Alert, Candle, InvalidRecord, Trade, iso
from pipeline.live_view import LiveView
from pipeline.metrics import ProcessorMetrics
from pipeline.outage import Availability
from pipeline.outbox import OutboxDrain, publish_unowned
from pipeline.rulesets.book import RuleBook
from pipeline.rulesets.config import rulebook_from_settings
from pipeline.settings import Settings
from pipeline.speed_layer import TRADES_KEPT

logger = logging.getLogger(__name__)


def deadletter_record(msg: kafka_io.Message, reason: str) -> tuple[Optional[bytes], bytes]:
    """The dead-letter message (key, value) of a record that is not a valid trade."""
    raw = msg.value() or b""
    return msg.key(), orjson.dumps({
        "reason": reason, "topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset(),
        "key": msg.key().decode("utf-8", "replace") if msg.key() else None,
        "value": raw[:65536].decode("utf-8", "replace"), "failed_at": iso(time.time())})


def rulebook(s: Settings) -> RuleBook:
    """The processor's rule book; a bad configuration raises RulesConfigError naming the key."""
    return rulebook_from_settings(s)


class Batch:
    """What one consumed batch did, for Redis (the live source's trades) and the metrics."""

    __slots__ = ("records", "valid", "late", "per_symbol", "last_by_symbol", "tape", "touched", "candles",
                 "alerts")

    def __init__(self, records: int):
        self.records = records
        self.valid = self.late = 0
        self.per_symbol: dict[str, int] = {}
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
        self._observe(batch, started)
        self.partitions.buffered += batch.valid
        self.partitions.poll(idle=not msgs)
        return len(msgs)

    def _fold(self, msgs: list, now: float) -> Batch:
        """Decode each record and fold it into its partition's state (the per-trade hot path)."""
        b = Batch(len(msgs))
        slots = self.partitions.slots
        max_future, max_bytes, live = self.s.max_future_seconds, self.s.max_record_bytes, self.live_source
        per_symbol, last_by_symbol, tape, touched = b.per_symbol, b.last_by_symbol, b.tape, b.touched
        for msg in msgs:
            slot = slots.get(msg.partition())
            if slot is None:  # not ours (any more, or not claimed yet)
                continue
            slot.next_offset = msg.offset() + 1
            slot.dirty = True
            touched.add(slot)
            try:
                trade = Trade.decode(msg.value(), now, max_future, max_bytes=max_bytes)
            except InvalidRecord as exc:
                slot.state.count_invalid()
                slot.deadletters.append(deadletter_record(msg, exc.reason))
                self.metrics.deadletter.labels(exc.kind).inc()
                continue
            fresh = slot.state.apply(trade)
            slot.rows.append((trade, not fresh))
            sym = trade.symbol
            per_symbol[sym] = per_symbol.get(sym, 0) + 1
            if not fresh:
                b.late += 1
                continue
            if trade.source != live:
                continue
            last_by_symbol[sym] = (trade, slot)
            lst = tape.get(sym)
            if lst is None:
                tape[sym] = [trade]
            else:
                lst.append(trade)
                if len(lst) > 2 * TRADES_KEPT:
                    del lst[:-TRADES_KEPT]
        b.valid = sum(per_symbol.values())
        return b

    def _heartbeat(self) -> dict:
        return {"ts": self.clock(), "processed": self.processed, "partitions": sorted(self.partitions.slots),
                "database_unavailable_since": self.partitions.database_down_since}

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
        for sym, (trade, _) in b.last_by_symbol.items():
            m.price.labels(sym).set(trade.price)
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
