"""The stream processor worker: raw-trades -> candles, alerts, Redis and PostgreSQL.

Wiring only; the logic lives in ``partition_state``.  Per batch: decode and validate each record
(invalid ones are dead-lettered with their reason), fold valid trades into their partition's
state, and write the batch's effects to the Redis speed layer in one pipelined round trip.  Every
``flush_interval`` seconds (or ``flush_rows`` trades) a checkpoint writes, in ONE PostgreSQL
transaction, the buffered trades, finalized candles, alerts, outgoing Kafka messages (outbox) and
each partition's next offset plus state.  Only then are the outbox messages published and the
Kafka offsets committed.  On (re)assignment the processor resumes from the PostgreSQL checkpoint,
so a crash at any point loses no trade, duplicates none, and recomputes the same candles.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Optional

import msgspec
import orjson
import redis
from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, TopicPartition

from pipeline import kafka_io
from pipeline.events import Alert, Candle, InvalidRecord, Trade, iso
from pipeline.history.writer import HistoryWriter
from pipeline.metrics import ProcessorMetrics
from pipeline.partition_state import PartitionState
from pipeline.rules import RuleBook, RuleConfig
from pipeline.settings import Settings
from pipeline.speed_layer import TRADES_KEPT, SpeedLayerWriter, summary_fields
from pipeline import speed_layer

logger = logging.getLogger(__name__)
_encode = msgspec.json.Encoder().encode
SERIES_STEP = 1.0  # seconds of event time between price-series points


def deadletter_kind(reason: str) -> str:
    if reason.startswith("bad JSON"):
        return "bad_json"
    if "timestamp" in reason:
        return "bad_timestamp"
    return "invalid_field"


@dataclass
class FlushBatch:
    """Everything one checkpoint makes durable, handed from the processing loop to the flusher."""

    rows: list
    candles: list
    alerts: list
    outbox: list
    checkpoints: list


def rulebook(s: Settings) -> RuleBook:
    return RuleBook(RuleConfig(s.spike_pct, s.breaker_pct, s.volume_multiple, s.rolling_window, s.min_history),
                    s.rule_override_map)


class Processor:
    """One processor process. ``run(stop)`` until ``stop`` is set; ``step()`` runs one batch."""

    def __init__(self, settings: Settings, metrics: Optional[ProcessorMetrics] = None,
                 clock: Callable[[], float] = time.time):
        self.s = settings
        self.metrics = metrics or ProcessorMetrics()
        self.clock = clock
        self.rules = rulebook(settings)
        self.sizes = settings.window_list
        self.states: dict[int, PartitionState] = {}
        self.next_offsets: dict[int, int] = {}
        self.last_arrival: dict[int, float] = {}
        self.dirty: set[int] = set()
        self.rows: list[tuple[Trade, bool]] = []
        self.candles: list[Candle] = []
        self.alerts: list[Alert] = []
        self.outbox: list[tuple[str, Optional[bytes], bytes]] = []
        self.last_flush = time.monotonic()
        self.series_last: dict[str, float] = {}
        self.last_lag = 0.0
        self.writer: Optional[HistoryWriter] = None
        self.redis: Optional[SpeedLayerWriter] = None
        self.consumer: Optional[Consumer] = None
        self.producer = None
        self._redis_failing = False
        self.processed = 0
        # One flush in flight at a time, overlapping the next batches' processing.
        self._flusher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flush")
        self._inflight: Optional[Future] = None

    # --- lifecycle -------------------------------------------------------------------------------
    def open(self) -> None:
        s = self.s
        self.writer = HistoryWriter(s.database_url)
        self.redis = SpeedLayerWriter(speed_layer.connect(s.redis_url))
        self.producer = kafka_io.make_producer(s)
        self._publish_pending_outbox()
        self.consumer = Consumer(kafka_io.consumer_config(s, s.processor_group))
        self.consumer.subscribe([s.topic_trades], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_lost)

    def close(self) -> None:
        """Checkpoint what is buffered and leave the group."""
        if self.consumer is not None:
            try:
                self.checkpoint(wait=True)
            finally:
                self.consumer.close()
                self.consumer = None
        self._flusher.shutdown(wait=True)
        if self.producer is not None:
            self.producer.flush(10)
        if self.writer is not None:
            self.writer.close()

    def run(self, stop: threading.Event) -> None:
        self.open()
        logger.info("processor consuming %s as group %s", self.s.topic_trades, self.s.processor_group)
        try:
            while not stop.is_set():
                self.step()
        finally:
            self.close()
            logger.info("processor stopped after %d trades", self.processed)

    # --- rebalance -------------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._wait_flush()
        saved = self.writer.load_checkpoints(self.s.processor_group, self.s.topic_trades,
                                             [tp.partition for tp in partitions])
        now = time.monotonic()
        for tp in partitions:
            p = tp.partition
            if p in saved:
                offset, blob = saved[p]
                self.states[p] = PartitionState.from_bytes(blob, self.sizes, self.s.grace_seconds, self.rules)
                tp.offset = offset
                self.next_offsets[p] = offset
            else:
                self.states[p] = PartitionState(self.sizes, self.s.grace_seconds, self.rules)
                tp.offset = OFFSET_INVALID  # committed offset, else earliest
            self.last_arrival[p] = now
        logger.info("assigned partitions %s (from checkpoint: %s)", [tp.partition for tp in partitions],
                    sorted(saved))
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.checkpoint(wait=True)
        self._forget(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Another member may own them now: drop buffered work instead of writing stale state.
        self._wait_flush()
        logger.warning("partitions lost: %s; discarding uncheckpointed work", [tp.partition for tp in partitions])
        self._reset_buffers()
        self._forget(partitions)

    def _forget(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            for d in (self.states, self.next_offsets, self.last_arrival):
                d.pop(tp.partition, None)
            self.dirty.discard(tp.partition)

    def _reset_buffers(self) -> None:
        self.rows, self.candles, self.alerts, self.outbox = [], [], [], []
        self.dirty.clear()

    # --- one batch -------------------------------------------------------------------------------
    def step(self, timeout: float = 0.2) -> int:
        # Block for the first record only, then take whatever else is already fetched: big batches
        # under load, no added latency when the stream is thin.
        msgs = self.consumer.consume(1, timeout)
        if msgs:
            msgs += self.consumer.consume(self.s.batch_size - 1, 0)
        started = time.perf_counter()
        now = self.clock()
        states = self.states
        rows = self.rows
        last_by_symbol: dict[str, tuple[Trade, PartitionState]] = {}
        tape: dict[str, list[Trade]] = {}
        touched: set[int] = set()
        max_future = self.s.max_future_seconds
        invalid = valid = 0
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    logger.warning("consume error: %s", err)
                continue
            p = msg.partition()
            st = states.get(p)
            if st is None:  # not ours any more (revoked inside consume)
                continue
            self.next_offsets[p] = msg.offset() + 1
            touched.add(p)
            try:
                trade = Trade.decode(msg.value(), now, max_future)
            except InvalidRecord as exc:
                invalid += 1
                st.counters["invalid"] += 1
                self._deadletter(msg, exc.reason)
                continue
            fresh = st.apply(trade)
            rows.append((trade, not fresh))
            valid += 1
            if fresh:
                last_by_symbol[trade.symbol] = (trade, st)
                lst = tape.get(trade.symbol)
                if lst is None:
                    tape[trade.symbol] = [trade]
                else:
                    lst.append(trade)
                    if len(lst) > 2 * TRADES_KEPT:
                        del lst[:-TRADES_KEPT]
        self.dirty |= touched
        mono = time.monotonic()
        for p in touched:
            self.last_arrival[p] = mono
        for p, st in states.items():  # a lull: let the wall clock close windows
            if p not in touched:
                st.tick(mono - self.last_arrival[p])
        new_candles, new_alerts = [], []
        for st in states.values():
            if st.candles or st.alerts:
                c, a = st.drain()
                new_candles += c
                new_alerts += a
        self._stage(new_candles, new_alerts)
        n = len(msgs)
        if n or new_candles:
            self._write_speed_layer(last_by_symbol, tape, new_candles, new_alerts, touched, now)
        self._observe(n, valid, last_by_symbol, new_candles, new_alerts, started)
        if (mono - self.last_flush >= self.s.flush_interval) or len(rows) >= self.s.flush_rows:
            self.checkpoint()
        return n

    def _deadletter(self, msg, reason: str) -> None:
        raw = msg.value() or b""
        record = {
            "reason": reason, "topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset(),
            "key": msg.key().decode("utf-8", "replace") if msg.key() else None,
            "value": raw[:65536].decode("utf-8", "replace"), "failed_at": iso(time.time()),
        }
        self.outbox.append((self.s.topic_deadletter, msg.key(), orjson.dumps(record)))
        self.metrics.deadletter.labels(deadletter_kind(reason)).inc()

    def _stage(self, candles: list[Candle], alerts: list[Alert]) -> None:
        s = self.s
        for c in candles:
            self.candles.append(c)
            self.outbox.append((s.topic_aggregates, c.symbol.encode(), c.encode()))
        for a in alerts:
            self.alerts.append(a)
            self.outbox.append((s.topic_alerts, a.symbol.encode(), a.encode()))

    def _write_speed_layer(self, last_by_symbol: dict[str, tuple[Trade, PartitionState]], tape: dict[str, list[Trade]],
                           candles: list[Candle], alerts: list[Alert], touched: set[int], now: float) -> None:
        tickers, open_candles, series = {}, {}, {}
        for sym, (trade, st) in last_by_symbol.items():
            ss = st.symbols[sym]
            tickers[sym] = ss.ticker.snapshot(sym)
            for c in ss.windows.current():
                open_candles[(sym, c.window_seconds)] = c.encode()
            if trade.ts - self.series_last.get(sym, float("-inf")) >= SERIES_STEP:
                self.series_last[sym] = trade.ts
                series[sym] = [[trade.ts, trade.price]]
        summary = {}
        for p in touched:
            summary.update(summary_fields(p, self.states[p].counters))
        try:
            t0 = time.perf_counter()
            self.redis.write_batch(
                tickers=tickers, trades={s: [t.encode() for t in ts[-TRADES_KEPT:]] for s, ts in tape.items()},
                series=series, open_candles=open_candles, alerts=[a.encode() for a in alerts],
                candles=[c.encode() for c in candles], summary=summary,
                heartbeat={"ts": now, "processed": self.processed, "partitions": sorted(self.states)})
            self.metrics.redis_duration.observe(time.perf_counter() - t0)
            if self._redis_failing:
                logger.info("Redis is reachable again")
                self._redis_failing = False
        except redis.RedisError as exc:
            if not self._redis_failing:
                logger.error("Redis write failed (speed layer stale until it recovers): %s", exc)
                self._redis_failing = True
            return
        after = time.time()
        for trade, _ in last_by_symbol.values():
            lag = after - trade.ts
            if 0 <= lag < 3600:
                self.metrics.e2e_latency.observe(lag)

    def _observe(self, n: int, valid: int, last_by_symbol: dict[str, tuple[Trade, PartitionState]], candles: list[Candle],
                 alerts: list[Alert], started: float) -> None:
        m = self.metrics
        if n:
            m.batch_size.observe(n)
            m.batch_duration.observe(time.perf_counter() - started)
        valid_by_symbol: dict[str, int] = {}
        late = 0
        for trade, is_late in self.rows[len(self.rows) - valid:] if valid else ():  # this batch's rows
            valid_by_symbol[trade.symbol] = valid_by_symbol.get(trade.symbol, 0) + 1
            late += is_late
        if late:
            m.late.inc(late)
        for sym, count in valid_by_symbol.items():
            m.trades.labels(sym).inc(count)
        self.processed += valid
        for sym, (trade, _) in last_by_symbol.items():
            m.price.labels(sym).set(trade.price)
        for c in candles:
            m.candles.labels(str(c.window_seconds)).inc()
        for a in alerts:
            m.alerts.labels(a.alert_type, a.severity).inc()
        mono = time.monotonic()
        if mono - self.last_lag > 5 and self.states:
            self.last_lag = mono
            tps = [TopicPartition(self.s.topic_trades, p) for p in self.states]
            for p, lag in kafka_io.consumer_lag(self.consumer, tps).items():
                m.lag.labels(str(p)).set(lag)

    # --- checkpoint ------------------------------------------------------------------------------
    def checkpoint(self, wait: bool = False) -> None:
        """Hand everything consumed so far to the flusher: one PostgreSQL transaction, then the outbox
        is published and the offsets committed.  ``wait`` blocks until it is durable."""
        self.last_flush = time.monotonic()
        if self.dirty or self.outbox:
            s = self.s
            batch = FlushBatch(self.rows, self.candles, self.alerts, self.outbox, [
                (s.processor_group, s.topic_trades, p, self.next_offsets[p], self.states[p].to_bytes())
                for p in sorted(self.dirty) if p in self.next_offsets])
            self._reset_buffers()
            self._wait_flush()
            self._inflight = self._flusher.submit(self._flush, batch)
        if wait:
            self._wait_flush()

    def _wait_flush(self) -> None:
        """Wait for the flush in flight; then tell Kafka the offsets it made durable."""
        fut, self._inflight = self._inflight, None
        if fut is None:
            return
        offsets = fut.result()
        if self.consumer is not None and offsets:
            try:
                self.consumer.commit(offsets=offsets, asynchronous=True)
            except Exception as exc:  # noqa: BLE001 - Kafka's copy is informational (lag); PostgreSQL rules
                logger.warning("offset commit to Kafka failed: %s", exc)

    def _flush(self, b: FlushBatch) -> list[TopicPartition]:
        """Runs on the flusher thread. Retries until the database takes it."""
        t0 = time.perf_counter()
        attempt = 0
        while True:
            try:
                ids = self.writer.flush(trades=b.rows, candles=b.candles, alerts=b.alerts, outbox=b.outbox,
                                        checkpoints=b.checkpoints)
                break
            except Exception as exc:  # noqa: BLE001 - database down: keep everything and retry
                attempt += 1
                logger.error("database flush failed (try %d), retrying: %s", attempt, exc)
                time.sleep(min(30.0, 0.5 * 2 ** min(attempt, 6)))
                self._reconnect_db()
        m = self.metrics
        m.flush_duration.observe(time.perf_counter() - t0)
        m.flush_rows.labels("trades").inc(len(b.rows))
        m.flush_rows.labels("candles").inc(len(b.candles))
        m.flush_rows.labels("alerts").inc(len(b.alerts))
        self._publish(list(zip(ids, b.outbox)))
        m.committed.inc()
        return [TopicPartition(self.s.topic_trades, p, o) for _, _, p, o, _ in b.checkpoints]

    def _reconnect_db(self) -> None:
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001
            pass
        try:
            self.writer = HistoryWriter(self.s.database_url)
        except Exception as exc:  # noqa: BLE001
            logger.error("database reconnect failed: %s", exc)

    def _publish(self, items: list[tuple[int, tuple[str, Optional[bytes], bytes]]]) -> None:
        if not items:
            return
        for _, (topic, key, value) in items:
            self._produce(topic, key, value)
        remaining = self.producer.flush(30)
        if remaining:
            logger.error("%d outbox messages not acknowledged; they stay in the outbox", remaining)
            return
        self.writer.delete_outbox([i for i, _ in items])

    def _produce(self, topic: str, key: Optional[bytes], value: bytes) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key)
                return
            except BufferError:
                self.producer.poll(0.1)

    def _publish_pending_outbox(self) -> None:
        """Messages committed by a previous run that crashed before publishing them."""
        pending = self.writer.pending_outbox()
        if pending:
            logger.info("publishing %d outbox messages left by the previous run", len(pending))
            self._publish([(i, (t, k, v)) for i, t, k, v in pending])


def run(settings: Settings, stop: threading.Event) -> None:
    """Entry point of ``stockit processor``: metrics server + processing loop."""
    from pipeline.metrics import serve

    metrics = ProcessorMetrics()
    serve(metrics.registry, settings.metrics_host, settings.processor_metrics_port)
    Processor(settings, metrics).run(stop)
