"""Outbox delivery: each owned partition's outbox rows reach Kafka exactly once, on their own thread.

The mechanism of Kafka Connect's exactly-once sources (KIP-618): per input partition one
transactional producer (``transactional.id`` from group/topic/partition, so a new owner's
``init_transactions`` fences the old one and aborts its open transaction).  Each transaction
carries the partition's next outbox rows *and* a marker — the highest outbox id published — to the
progress topic; rows up to the marker are deleted only after the commit.  On taking a partition
over, and after any transaction whose outcome is in doubt, the drain recreates the producer, reads
the newest committed marker, deletes the rows up to it and publishes the rest.  A crash between
the broker's commit and the delete therefore republishes nothing.  Drained after every checkpoint
and at least once a second.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Optional

import msgspec

from pipeline import kafka_io
from pipeline.history.errors import TRANSIENT, classify
from pipeline.history.writer import HistoryWriter
from pipeline.metrics import ProcessorMetrics
from pipeline.settings import Settings

logger = logging.getLogger(__name__)
BATCH = 5000  # outbox rows per transaction


class Marker(msgspec.Struct, frozen=True):
    """Progress of one input partition's outbox: every row with id <= ``outbox_id`` is on its topic."""

    group: str
    topic: str
    partition: int
    outbox_id: int
    epoch: int


def marker_key(group: str, topic: str, partition: int) -> bytes:
    return f"{group}/{topic}/{partition}".encode()


def transactional_id(group: str, topic: str, partition: int) -> str:
    return f"stockit-outbox/{group}/{topic}/{partition}"


@dataclass(eq=False)
class _PartitionDrain:
    partition: int
    epoch: int
    publisher: Optional[kafka_io.TransactionalPublisher] = None
    published: int = 0      # highest outbox id known to be on Kafka
    failures: int = 0
    retry_at: float = 0.0

    def reset(self) -> None:
        if self.publisher is not None:
            self.publisher.close()
            self.publisher = None


class OutboxDrain:
    """Publishes the outbox of the partitions handed to it with ``own``; ``failure`` holds a fatal error."""

    def __init__(self, settings: Settings, metrics: ProcessorMetrics, store: Optional[HistoryWriter] = None):
        self.s = settings
        self.metrics = metrics
        self.store = store or HistoryWriter(settings.database_url, settings.db_timeout, "stockit-outbox")
        self.failure: Optional[BaseException] = None
        self._owned: dict[int, int] = {}
        self._cond = threading.Condition()
        self._woken = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)

    # --- called by the processing thread ---------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def own(self, partition: int, epoch: int) -> None:
        with self._cond:
            self._owned[partition] = epoch
            self._woken = True
            self._cond.notify()

    def release(self, partition: int) -> None:
        with self._cond:
            self._owned.pop(partition, None)

    def wake(self) -> None:
        with self._cond:
            self._woken = True
            self._cond.notify()

    def close(self, timeout: float = 30.0) -> None:
        """Publish what is committed (one last pass), then stop."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.store.close()

    # --- the drain thread ----------------------------------------------------------------------
    def _run(self) -> None:
        drains: dict[int, _PartitionDrain] = {}
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._woken or self._stopping, timeout=1.0)
                    self._woken = False
                    owned, stopping = dict(self._owned), self._stopping
                for p, d in list(drains.items()):
                    if owned.get(p) != d.epoch:
                        d.reset()
                        del drains[p]
                for p, epoch in owned.items():
                    d = drains.setdefault(p, _PartitionDrain(p, epoch))
                    self._drain_safely(d)
                if stopping:
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to the processing thread, which stops
            logger.critical("outbox delivery failed: %s", exc, exc_info=True)
            self.failure = exc
        finally:
            for d in drains.values():
                d.reset()

    def _drain_safely(self, d: _PartitionDrain) -> None:
        if time.monotonic() < d.retry_at:
            return
        try:
            self._drain(d)
            if d.failures:
                logger.info("outbox of partition %d is being delivered again", d.partition)
            d.failures = 0
        except (kafka_io.TransactionFailed, kafka_io.KafkaException, TimeoutError) as exc:
            self._doubt(d, exc)
        except Exception as exc:  # noqa: BLE001 - database errors: transient ones are retried
            if classify(exc) != TRANSIENT:
                raise
            self._doubt(d, exc)

    def _doubt(self, d: _PartitionDrain, exc: BaseException) -> None:
        """The last transaction's outcome is unknown: start over from the committed marker."""
        if not d.failures:
            logger.warning("outbox of partition %d: %s; recovering from the committed marker", d.partition,
                           exc)
        d.failures += 1
        d.retry_at = time.monotonic() + min(10.0, 0.5 * 2 ** min(d.failures - 1, 5))
        d.reset()

    def _drain(self, d: _PartitionDrain) -> None:
        s, p = self.s, d.partition
        group, topic = s.processor_group, s.topic_trades
        if d.publisher is None:
            if self.store.epoch(group, topic, p) != d.epoch:
                return  # no longer ours: the processing thread learns it from its next checkpoint
            publisher = kafka_io.TransactionalPublisher(s, transactional_id(group, topic, p))
            try:
                publisher.start()  # fences the previous owner's producer
                raw = kafka_io.read_last_value(s, s.topic_outbox_progress, p, marker_key(group, topic, p))
            except BaseException:
                publisher.close()
                raise
            d.publisher = publisher
            d.published = msgspec.json.decode(raw, type=Marker).outbox_id if raw else 0
            self.store.delete_outbox(group, topic, p, d.published, d.epoch)
        while True:
            rows = self.store.pending_outbox(group, topic, p, d.published, BATCH)
            if not rows:
                return
            last = rows[-1][0]
            marker = Marker(group=group, topic=topic, partition=p, outbox_id=last, epoch=d.epoch)
            progress = (s.topic_outbox_progress, p, marker_key(group, topic, p), msgspec.json.encode(marker))
            d.publisher.send([(t, k, v) for _, t, k, v in rows], progress)
            d.published = last
            self.metrics.outbox_published.inc(len(rows))
            self.store.delete_outbox(group, topic, p, last, d.epoch)
            if len(rows) < BATCH:
                return


def publish_unowned(settings: Settings, store: HistoryWriter) -> int:
    """Rows left by a processor older than migration 003 (no source partition): published at least once."""
    rows = store.unowned_outbox()
    if rows:
        logger.info("publishing %d outbox messages left by an older processor", len(rows))
        publisher = kafka_io.Publisher(settings)
        for _, topic, key, value in rows:
            publisher.produce(topic, value, key)
        if publisher.flush(30):
            raise kafka_io.KafkaException("outbox messages of the previous run were not acknowledged")
        store.delete_outbox_ids([i for i, *_ in rows])
    return len(rows)
