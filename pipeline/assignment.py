"""The partitions this processor owns: claims, checkpoint scheduling, offset commits, backpressure.

Runs on the processing thread, around the consumer.  On assignment each partition is *claimed*
(its epoch bumped and its checkpoint read in one transaction, on the claim thread); a partition
whose claim has not succeeded yet — PostgreSQL away — stays assigned but paused and is claimed
again with backoff.  Checkpoints run on the flush thread, one at a time, overlapping processing;
when one is durable, its offsets are committed to Kafka at once (lag reads 0 when caught up), and
partitions it was refused are dropped: another processor owns them now.  While a checkpoint cannot
complete, consumption pauses once ``flush_rows`` trades are buffered (memory stays bounded).
The owned partitions are probed for their end offsets so the wall clock moves a source's event time
on only while the processor has truly caught up and that source has nothing to read
(``pipeline.idleness``).
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, TimeoutError as FutureTimeout, wait as futures_wait
from typing import Callable, Iterable, Optional

from pipeline import kafka_io
from pipeline.checkpoint import MAX_BACKOFF, CheckpointWriter, FlushResult, PartitionSlot
from pipeline.history.errors import TRANSIENT, classify
from pipeline.history.writer import Claim, HistoryWriter
from pipeline.idleness import CatchUp
from pipeline.metrics import ProcessorMetrics
from pipeline.outage import POSTGRES, Availability, retry_delay
from pipeline.outbox import OutboxDrain
from pipeline.partition_state import PartitionState
from pipeline.rulesets.book import RuleBook
from pipeline.settings import Settings

logger = logging.getLogger(__name__)
PROBE_INTERVAL = 0.5   # seconds between end-offset probes
PROBE_MAX_GAP = 3.0    # a longer gap between probe answers breaks a partition's idle run
IDLE_FLUSH_AFTER = 0.5  # input stopped: checkpoint at most this long after the previous one


def _records(source) -> int:
    """How many records of a source (valid trades, late or not) its state has taken."""
    return source.counters["trades"] + source.counters["late"]


class Assignment:
    """Owned partitions (``slots``) and the protocol that keeps their checkpoints."""

    def __init__(self, settings: Settings, rules: RuleBook, metrics: ProcessorMetrics,
                 availability: Availability, drain: OutboxDrain, clock: Callable[[], float] = time.time):
        self.s = settings
        self.rules = rules
        self.metrics = metrics
        self.availability = availability
        self.drain = drain
        self.clock = clock
        self.slots: dict[int, PartitionSlot] = {}
        self.consumer: Optional[kafka_io.BatchConsumer] = None
        self.buffered = 0  # trades buffered since the last checkpoint was handed over
        self.stop = threading.Event()
        self._writer = CheckpointWriter(settings, availability, self.stop)
        self._claims = HistoryWriter(settings.database_url, settings.db_timeout, "stockit-processor-claim")
        self._flusher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flush")
        self._claimer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="claim")
        self._inflight: Optional[Future] = None
        self._claiming: Optional[Future] = None
        self._waiting: set[int] = set()     # assigned, not yet claimed
        self._claim_failures = 0
        self._claim_retry_at = 0.0
        self._paused = False
        self._last_flush = time.monotonic()
        self._probe = kafka_io.EndOffsets(settings, settings.topic_trades)
        self._last_probe = 0.0

    @property
    def database_down_since(self) -> Optional[float]:
        return self.availability.describe().get(POSTGRES)

    # --- rebalance hooks (called inside consume) ------------------------------------------------
    def on_assign(self, partitions: list[int]) -> dict:
        self._waiting |= set(partitions)
        fut = self._claimer.submit(self._claim, partitions)
        try:
            claims = fut.result(timeout=min(5.0, self.s.db_timeout))
        except FutureTimeout:
            self._claiming = fut
            return {p: kafka_io.PAUSED for p in partitions}
        except Exception as exc:  # noqa: BLE001 - transient: claimed again later; else fatal
            self._claim_failed(exc)
            return {p: kafka_io.PAUSED for p in partitions}
        claims = self._install(claims)
        logger.info("assigned partitions %s (epochs %s)", sorted(partitions),
                    {p: c.epoch for p, c in sorted(claims.items())})
        return {p: claims[p].next_offset for p in partitions}

    def on_revoke(self, partitions: list[int]) -> None:
        if not self.stop.is_set():  # after close() everything is checkpointed already
            self.checkpoint(wait=True)
        self._forget(partitions, "revoked")

    def on_lost(self, partitions: list[int]) -> None:
        logger.warning("partitions %s lost; discarding their uncheckpointed work", sorted(partitions))
        self._forget(partitions, "lost")

    def _forget(self, partitions: Iterable[int], why: str) -> None:
        for p in partitions:
            self._waiting.discard(p)
            if self.slots.pop(p, None) is not None:
                self.drain.release(p)
                try:
                    self.metrics.lag.remove(str(p))
                except KeyError:
                    pass
        logger.debug("partitions %s %s", sorted(partitions), why)

    # --- claims ------------------------------------------------------------------------------------
    def _claim(self, partitions: list[int]) -> dict[int, tuple[Claim, PartitionState]]:
        """On the claim thread: bump the epochs, read the checkpoints, rebuild the states."""
        claims = self._claims.claim(self.s.processor_group, self.s.topic_trades, partitions)
        sizes, grace = self.s.window_list, self.s.grace_seconds
        return {p: (c, PartitionState.from_bytes(c.state, c.sources, sizes, grace, self.rules)
                    if c.state is not None else PartitionState(sizes, grace, self.rules))
                for p, c in claims.items()}

    def _install(self, claims: dict[int, tuple[Claim, PartitionState]]) -> dict[int, Claim]:
        for p, (claim, state) in claims.items():
            if p not in self._waiting:
                continue  # revoked while the claim ran
            self._waiting.discard(p)
            catch_up = CatchUp(PROBE_MAX_GAP)
            now = self.clock()
            for name, src in state.sources.items():  # every record of theirs lies before the checkpoint
                catch_up.consumed(name, _records(src), claim.next_offset, now)
            self.slots[p] = PartitionSlot(p, claim.epoch, state, claim.next_offset, catch_up)
            self.drain.own(p, claim.epoch)
        self.availability.answered([POSTGRES])
        self._claim_failures = 0
        return {p: c for p, (c, _) in claims.items()}

    def _claim_failed(self, exc: BaseException) -> None:
        if classify(exc) != TRANSIENT:
            raise exc
        self.availability.failed(POSTGRES, exc)
        self._claim_retry_at = time.monotonic() + retry_delay(self._claim_failures, MAX_BACKOFF)
        self._claim_failures += 1

    def _poll_claims(self) -> None:
        fut = self._claiming
        if fut is None:
            if self._waiting and time.monotonic() >= self._claim_retry_at:
                self._claiming = self._claimer.submit(self._claim, sorted(self._waiting))
            return
        if not fut.done():
            return
        self._claiming = None
        try:
            claims = fut.result()
        except Exception as exc:  # noqa: BLE001
            self._claim_failed(exc)
            return
        installed = [p for p in claims if p in self._waiting]
        self._install(claims)
        for p in installed:
            self.consumer.seek(p, self.slots[p].next_offset)
        if self._paused:
            self.consumer.pause(installed)
        logger.info("claimed partitions %s after the database came back", installed)

    # --- checkpoints ---------------------------------------------------------------------------------
    def poll(self, idle: bool) -> None:
        """Once per batch: finish what completed, start a checkpoint when due, apply backpressure."""
        if self.drain.failure is not None:
            raise RuntimeError("outbox delivery failed") from self.drain.failure
        self._complete()
        self._poll_claims()
        down = self.database_down_since is not None
        if self.buffered >= self.s.flush_rows and self._inflight is not None and not down:
            self._complete(wait=True)  # backpressure: the next checkpoint waits for the one in flight
        since = time.monotonic() - self._last_flush
        due = (since >= self.s.flush_interval or self.buffered >= self.s.flush_rows
               or (idle and since >= IDLE_FLUSH_AFTER))
        if due and self._inflight is None:
            self.checkpoint()
        # The database is away: stop reading (memory stays bounded) until checkpoints complete again.
        pause = self.database_down_since is not None or (
            self._inflight is not None and self.buffered >= 2 * self.s.flush_rows)
        if pause != self._paused and self.slots:
            (self.consumer.pause if pause else self.consumer.resume)(list(self.slots))
            logger.info("consumption %s", "paused until checkpoints complete" if pause else "resumed")
        self._paused = pause

    def checkpoint(self, wait: bool = False) -> None:
        """Hand every dirty slot's work to the flush thread (after the one in flight, if any)."""
        self._last_flush = time.monotonic()
        works = [slot.take() for slot in self.slots.values() if slot.dirty]
        if works:
            if self._inflight is not None:
                self._complete(wait=True)
            self.buffered = 0
            self._inflight = self._flusher.submit(self._writer.write, works)
        if wait:
            self._complete(wait=True)

    def _complete(self, wait: bool = False) -> None:
        """Apply the checkpoint in flight if it is done; ``wait`` for it while the database answers."""
        fut = self._inflight
        if fut is None:
            return
        if wait:
            deadline = time.monotonic() + self.s.db_timeout * 2
            while not fut.done() and self.database_down_since is None and time.monotonic() < deadline:
                futures_wait([fut], timeout=0.2)
        if not fut.done():
            if wait:
                logger.warning("a checkpoint is still waiting for the database; fencing keeps it safe")
            return
        self._inflight = None
        self._applied(fut.result())

    def _applied(self, result: FlushResult) -> None:
        commit = {}
        for p, (epoch, offset) in result.saved.items():
            slot = self.slots.get(p)
            if slot is not None and slot.epoch == epoch:
                commit[p] = offset
        if self.consumer is not None:
            self.consumer.commit(commit)
        for p, epoch in result.refused.items():
            slot = self.slots.get(p)
            if slot is not None and slot.epoch == epoch:
                logger.warning("partition %d now belongs to another processor (epoch %d superseded): "
                               "dropping its state and buffered work", p, epoch)
                self._forget([p], "fenced")
                self.consumer.pause([p])
        m = self.metrics
        m.flush_rows.labels("trades").inc(result.rows)
        m.flush_rows.labels("candles").inc(result.candles)
        m.flush_rows.labels("alerts").inc(result.alerts)
        if result.rejected:
            m.deadletter.labels("database_rejected").inc(result.rejected)
        m.committed.inc()
        self.drain.wake()

    # --- idleness ---------------------------------------------------------------------------------
    def advance_idle(self, touched: Iterable[PartitionSlot]) -> None:
        """Probe end offsets of the owned partitions; let the wall clock move on the sources that are idle
        while the processor is truly caught up with them."""
        now = self.clock()
        for slot in touched:
            for name, src in slot.state.sources.items():
                slot.catch_up.consumed(name, _records(src), slot.next_offset, now)
        answer = self._probe.answer()
        if answer is not None:
            asked_at, ends = answer
            for p, end in ends.items():
                slot = self.slots.get(p)
                if slot is None:
                    continue
                slot.catch_up.answer(asked_at, end)
                if end is not None and slot.next_offset is not None:
                    self.metrics.lag.labels(str(p)).set(max(0, end - slot.next_offset))
        mono = time.monotonic()
        if self.slots and not self._probe.asking and mono - self._last_probe >= PROBE_INTERVAL:
            self._last_probe = mono
            self._probe.ask(list(self.slots), self.clock())
        for slot in self.slots.values():
            catch_up = slot.catch_up
            catch_up.read_to(slot.next_offset)
            for name, src in slot.state.sources.items():
                idle = catch_up.idle_seconds(name)
                if idle > 0:
                    src.tick(idle)

    # --- shutdown ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Checkpoint what is buffered (bounded wait) and stop the threads."""
        try:
            self.checkpoint(wait=True)
        finally:
            self.stop.set()
            self._flusher.shutdown(wait=True)
            self._claimer.shutdown(wait=True)
            if self._inflight is not None and self._inflight.done() and self._inflight.exception() is None:
                self._applied(self._inflight.result())
            self._claims.close()
            self._writer.writer.close()

