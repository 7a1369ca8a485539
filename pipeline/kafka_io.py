"""Kafka adapters — the only module that imports confluent_kafka.

Client configuration and topics; :class:`Publisher` (produce that waits for room instead of raising
BufferError, delivery callbacks); :class:`TransactionalPublisher` (one Kafka transaction = a list
of messages plus a progress marker); :class:`BatchConsumer` (batch consume without partition-EOF
noise, commit, pause/resume/seek, rebalance hooks in plain partition numbers); :class:`EndOffsets`
(uncached, non-blocking end-offset probe); :func:`read_last_value` (newest committed value of a key
in one partition).  Clients are created on demand; this module holds no global connection.
"""
from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import Future
from typing import Callable, Iterable, Optional, Sequence

from confluent_kafka import (OFFSET_BEGINNING, OFFSET_INVALID, Consumer, IsolationLevel, KafkaError,
                             KafkaException, Message, Producer, TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from pipeline.settings import Settings

logger = logging.getLogger(__name__)
__all__ = ["Message", "KafkaException", "Publisher", "TransactionalPublisher", "BatchConsumer", "EndOffsets"]
PAUSED = "paused"  # an on_assign answer: assign the partition but do not fetch it yet
REBOOTSTRAP_MS = 5000  # no broker reachable this long: start over from bootstrap.servers
OutboxMessage = tuple  # (topic, key or None, value)


def _log_errors(err) -> None:  # librdkafka error callback: transient broker issues, logged once each
    logger.warning("kafka: %s", err)


FETCH_QUEUE_BACKOFF_MS = 20


def client_config(s: Settings) -> dict:
    """What every client shares.  A broker that stalls (a long GC pause, a frozen VM) can be fenced by
    its controller meanwhile and leave the metadata for a moment; librdkafka then forgets it and, with
    its bootstrap brokers already retired, has no broker left to ask until it re-bootstraps — after 5
    minutes by default, during which a consumer never rejoins its group.  Re-bootstrap after 5 s."""
    return {
        "bootstrap.servers": s.kafka_bootstrap_servers,
        "metadata.recovery.strategy": "rebootstrap",
        "metadata.recovery.rebootstrap.trigger.ms": REBOOTSTRAP_MS,
        "error_cb": _log_errors,
    }


def producer_config(s: Settings, **extra) -> dict:
    return {
        **client_config(s),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "batch.num.messages": 10000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 500000,
        "partitioner": "murmur2_random",  # same partition for a key as the Java client
        **extra,
    }


def consumer_config(s: Settings, group_id: str, **extra) -> dict:
    # Prefetch bounded by bytes, not by a count of records per partition: memory does not grow with the
    # backlog (librdkafka may overshoot the queue by one fetch).  Once the queue is full librdkafka waits
    # fetch.queue.backoff.ms before it asks again; at its default (1 s) a processor empties an 8-16 MiB
    # queue well before that and then starves (~45 % of its time, bench/throughput.py): ask again soon.
    queue_kb = max(1024, s.consumer_queue_kbytes)
    fetch = max(1 << 20, queue_kb * 1024 // 4)
    return {
        **client_config(s),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "fetch.max.bytes": fetch,
        "max.partition.fetch.bytes": max(1 << 20, fetch // 4),
        "queued.max.messages.kbytes": queue_kb,
        "fetch.queue.backoff.ms": FETCH_QUEUE_BACKOFF_MS,
        "session.timeout.ms": 15000,
        "max.poll.interval.ms": 300000,
        **extra,
    }


def admin(s: Settings) -> AdminClient:
    return AdminClient(client_config(s))


def topic_specs(s: Settings) -> list[NewTopic]:
    return [
        NewTopic(s.topic_trades, num_partitions=s.trade_partitions, replication_factor=1),
        NewTopic(s.topic_aggregates, num_partitions=3, replication_factor=1),
        NewTopic(s.topic_alerts, num_partitions=3, replication_factor=1),
        NewTopic(s.topic_deadletter, num_partitions=1, replication_factor=1),
        NewTopic(s.topic_webhook_deadletter, num_partitions=1, replication_factor=1),
        # Marker of input partition p lives in partition p: one writer per partition, so a reader
        # that fenced that writer sees every committed marker (nothing waits behind another's txn).
        NewTopic(s.topic_outbox_progress, num_partitions=s.trade_partitions, replication_factor=1,
                 config={"cleanup.policy": "compact", "segment.ms": "600000",
                         "min.cleanable.dirty.ratio": "0.1"}),
    ]


def ensure_topics(s: Settings, timeout: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    client = admin(s)
    existing = set(client.list_topics(timeout=timeout).topics)
    wanted = [t for t in topic_specs(s) if t.topic not in existing]
    created = []
    if wanted:
        for name, fut in client.create_topics(wanted, operation_timeout=timeout).items():
            try:
                fut.result()
                created.append(name)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
    # Wait until the metadata shows every partition with a leader.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        md = client.list_topics(timeout=timeout).topics
        if all(t.topic in md and len(md[t.topic].partitions) == t.num_partitions and
               all(p.leader >= 0 for p in md[t.topic].partitions.values()) for t in topic_specs(s)):
            break
        time.sleep(0.1)
    return created


def consumer_lag(consumer: Consumer, partitions: Iterable[TopicPartition]) -> dict[int, int]:
    """Records between the consumer's position and the end of each assigned partition."""
    out = {}
    for tp in consumer.position(list(partitions)):
        try:
            _, high = consumer.get_watermark_offsets(tp, timeout=1.0, cached=True)
        except KafkaException:
            continue
        if tp.offset >= 0 and high >= 0:
            out[tp.partition] = max(0, high - tp.offset)
    return out


def make_producer(s: Settings, **extra) -> Producer:
    return Producer(producer_config(s, **extra))


def _produce(producer: Producer, topic: str, value: Optional[bytes], key: Optional[bytes] = None,
             on_delivery: Optional[Callable] = None, partition: Optional[int] = None) -> None:
    """produce(), waiting for room in the local queue instead of raising BufferError."""
    kwargs = {} if partition is None else {"partition": partition}
    if on_delivery is not None:
        kwargs["on_delivery"] = on_delivery
    while True:
        try:
            producer.produce(topic, value, key, **kwargs)
            return
        except BufferError:
            producer.poll(0.05)


class Publisher:
    """A plain (idempotent) producer. ``on_delivery(error_text_or_None, message)`` reports each message."""

    def __init__(self, settings: Settings, **extra):
        self.producer = make_producer(settings, **extra)

    def produce(self, topic: str, value: Optional[bytes], key: Optional[bytes] = None,
                on_delivery: Optional[Callable[[Optional[str], Message], None]] = None) -> None:
        def report(err, msg) -> None:
            on_delivery(None if err is None else str(err), msg)

        _produce(self.producer, topic, value, key, None if on_delivery is None else report)

    def poll(self, timeout: float = 0.0) -> int:
        return self.producer.poll(timeout)

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for delivery reports; returns how many messages are still not acknowledged."""
        return self.producer.flush(timeout)


class TransactionFailed(RuntimeError):
    """A transaction's outcome is not known to be committed: recreate the publisher and re-read the marker."""


class TransactionalPublisher:
    """A transactional producer: ``start()`` fences any older instance with the same id (aborting its open
    transaction); ``send(messages, marker)`` commits the messages and the marker atomically."""

    def __init__(self, settings: Settings, transactional_id: str, timeout: float = 30.0):
        self.timeout = timeout
        self.producer = make_producer(settings, **{"transactional.id": transactional_id,
                                                   "transaction.timeout.ms": int(timeout * 2000),
                                                   "linger.ms": 2})

    def start(self) -> None:
        try:
            self.producer.init_transactions(self.timeout)
        except KafkaException as exc:
            raise TransactionFailed(f"init_transactions: {exc}") from exc

    def send(self, messages: Sequence[OutboxMessage], marker: tuple[str, int, bytes, bytes]) -> None:
        """One transaction: ``messages`` (topic, key, value), then ``marker`` (topic, partition, key,
        value)."""
        try:
            self.producer.begin_transaction()
            for topic, key, value in messages:
                _produce(self.producer, topic, value, key)
            m_topic, m_partition, m_key, m_value = marker
            _produce(self.producer, m_topic, m_value, m_key, partition=m_partition)
            self.producer.commit_transaction(self.timeout)
        except (KafkaException, BufferError) as exc:
            raise TransactionFailed(str(exc)) from exc

    def close(self) -> None:
        try:
            self.producer.purge()
            self.producer.flush(0)
        except KafkaException:  # noqa: PERF203 - a broken producer is dropped anyway
            pass


def _tps(topic: str, partitions: Iterable[int]) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for p in partitions]


class BatchConsumer:
    """A group consumer of one topic speaking partition numbers.

    ``on_assign(partitions) -> {partition: offset | None | PAUSED}`` chooses where each newly assigned
    partition starts (None: the committed offset, else the earliest; PAUSED: assigned, not fetched until
    ``seek``/``resume``).  ``on_revoke``/``on_lost`` get the partition numbers.
    """

    def __init__(self, settings: Settings, group_id: str, topic: str,
                 on_assign: Optional[Callable[[list[int]], dict]] = None,
                 on_revoke: Optional[Callable[[list[int]], None]] = None,
                 on_lost: Optional[Callable[[list[int]], None]] = None, **extra):
        self.topic = topic
        self.consumer = Consumer(consumer_config(settings, group_id, **extra))
        self._on_assign, self._on_revoke, self._on_lost = on_assign, on_revoke, on_lost
        self._logged: set = set()
        self.consumer.subscribe([topic], on_assign=self._assigned, on_revoke=self._revoked,
                                on_lost=self._lost)

    def _assigned(self, consumer: Consumer, tps: list[TopicPartition]) -> None:
        starts = self._on_assign([tp.partition for tp in tps]) if self._on_assign else {}
        paused = []
        for tp in tps:
            start = starts.get(tp.partition)
            if start == PAUSED:
                paused.append(tp)
            tp.offset = start if isinstance(start, int) and start >= 0 else OFFSET_INVALID
        consumer.assign(tps)
        if paused:
            consumer.pause(paused)

    def _revoked(self, consumer: Consumer, tps: list[TopicPartition]) -> None:
        if self._on_revoke:
            self._on_revoke([tp.partition for tp in tps])

    def _lost(self, consumer: Consumer, tps: list[TopicPartition]) -> None:
        if self._on_lost:
            self._on_lost([tp.partition for tp in tps])

    def consume_batch(self, max_records: int, timeout: float) -> list[Message]:
        """Block up to ``timeout`` for the first record, then take what is already fetched (up to
        ``max_records``).  Partition-EOF events are dropped; real errors are logged once per kind."""
        msgs = self.consumer.consume(1, timeout)
        if msgs and max_records > 1:
            msgs += self.consumer.consume(max_records - 1, 0)
        if any(m.error() is not None for m in msgs):
            msgs = [m for m in msgs if m.error() is None or self._report(m.error())]
        return msgs

    def _report(self, err: KafkaError) -> bool:
        if err.code() != KafkaError._PARTITION_EOF and err.code() not in self._logged:
            self._logged.add(err.code())
            logger.warning("consume error (logged once per kind): %s", err)
        return False

    def commit(self, offsets: Optional[dict[int, int]] = None, wait: bool = False) -> None:
        """Commit ``{partition: next offset}`` (None: the offsets stored as records were consumed, with
        ``enable.auto.offset.store``); asynchronous unless ``wait``.  A failure is logged, not raised."""
        if offsets is not None and not offsets:
            return
        try:
            if offsets is None:
                self.consumer.commit(asynchronous=not wait)
            else:
                self.consumer.commit(offsets=[TopicPartition(self.topic, p, o) for p, o in offsets.items()],
                                     asynchronous=not wait)
        except KafkaException as exc:
            logger.warning("offset commit to Kafka failed: %s", exc)

    def lag(self) -> dict[int, int]:
        """Records between the position and the (cached) end of each assigned partition."""
        assigned = self.consumer.assignment()
        return consumer_lag(self.consumer, assigned) if assigned else {}

    def pause(self, partitions: Iterable[int]) -> None:
        self._safely(self.consumer.pause, _tps(self.topic, partitions))

    def resume(self, partitions: Iterable[int]) -> None:
        self._safely(self.consumer.resume, _tps(self.topic, partitions))

    def seek(self, partition: int, offset: Optional[int]) -> None:
        """Start ``partition`` at ``offset`` (None: the beginning) and resume it."""
        tp = TopicPartition(self.topic, partition, OFFSET_BEGINNING if offset is None else offset)
        self._safely(self.consumer.seek, tp)
        self.resume([partition])

    def assignment(self) -> list[int]:
        return [tp.partition for tp in self.consumer.assignment()]

    def _safely(self, call, arg) -> None:
        try:
            call(arg)
        except KafkaException as exc:  # e.g. a partition no longer assigned
            logger.warning("kafka %s(%s) failed: %s", call.__name__, arg, exc)

    def close(self) -> None:
        self.consumer.close()


class EndOffsets:
    """Uncached end offsets (read_committed) of a topic's partitions, asked of the broker without blocking:
    ``ask(partitions, now)`` starts a request, ``answer()`` returns ``(asked_at, {partition: end or None})``
    once every partition answered or failed (None: not confirmed), else None."""

    def __init__(self, settings: Settings, topic: str, timeout: float = 2.0):
        self.client = admin(settings)
        self.topic = topic
        self.timeout = timeout
        self._pending: Optional[tuple[float, dict[TopicPartition, Future]]] = None

    @property
    def asking(self) -> bool:
        return self._pending is not None

    def ask(self, partitions: Iterable[int], now: float) -> None:
        request = {tp: OffsetSpec.latest() for tp in _tps(self.topic, partitions)}
        if request and self._pending is None:
            futures = self.client.list_offsets(request, isolation_level=IsolationLevel.READ_COMMITTED,
                                               request_timeout=self.timeout)
            self._pending = (now, futures)

    def answer(self) -> Optional[tuple[float, dict[int, Optional[int]]]]:
        if self._pending is None or not all(f.done() for f in self._pending[1].values()):
            return None
        asked_at, futures = self._pending
        self._pending = None
        out: dict[int, Optional[int]] = {}
        for tp, fut in futures.items():
            try:
                out[tp.partition] = fut.result().offset
            except KafkaException:
                out[tp.partition] = None
        return asked_at, out


def read_last_value(settings: Settings, topic: str, partition: int, key: bytes, timeout: float = 30.0,
                    tail: int = 64) -> Optional[bytes]:
    """The newest committed value of ``key`` in ``topic[partition]`` (read_committed), or None.

    Reads the last ``tail`` offsets first, the whole partition only when the key is not among them.
    Raises TimeoutError when the broker does not let the read finish within ``timeout``."""
    c = Consumer({**client_config(settings), "group.id": f"marker-{uuid.uuid4().hex}",
                  "enable.auto.commit": False, "isolation.level": "read_committed", "enable.partition.eof": True})
    deadline = time.monotonic() + timeout
    try:
        low, high = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout, cached=False)
        start = max(low, high - tail)
        while True:
            found = None
            if high > low:
                c.assign([TopicPartition(topic, partition, start)])
                while True:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"reading {topic}[{partition}] did not finish in {timeout:.0f}s")
                    msg = c.poll(0.5)
                    if msg is None:
                        continue
                    if msg.error() is not None:
                        if msg.error().code() == KafkaError._PARTITION_EOF:
                            break
                        raise KafkaException(msg.error())
                    if msg.key() == key:
                        found = msg.value()
            if found is not None or start <= low:
                return found
            start = low
    finally:
        c.close()
