"""Reading the servers back: PostgreSQL rows and counts, Kafka topics end to end, offsets."""
from __future__ import annotations

import logging
import time
import uuid

import psycopg2
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from pipeline import kafka_io
from pipeline.settings import Settings

logger = logging.getLogger(__name__)


def query(settings: Settings, sql: str, args=(), timeout: float = 10.0) -> list[tuple]:
    conn = psycopg2.connect(settings.database_url, connect_timeout=max(1, int(timeout)),
                            options=f"-c statement_timeout={int(timeout * 1000)}")
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def stored_trades(settings: Settings) -> int:
    return query(settings, "SELECT count(*) FROM trades")[0][0]


def checkpoints(settings: Settings) -> dict[int, int]:
    """Partition -> next offset of this run's checkpoints (a row claimed, never checkpointed: 0)."""
    return {p: o or 0 for p, o in query(settings, "SELECT partition, next_offset FROM processor_checkpoints "
                                                  "WHERE group_id = %s AND topic = %s",
                                        (settings.processor_group, settings.topic_trades))}


def outbox_rows(settings: Settings) -> int:
    return query(settings, "SELECT count(*) FROM outbox")[0][0]


class TopicEnds:
    """Asks for the end offsets of one topic again and again over one connection."""

    def __init__(self, settings: Settings, topic: str):
        self.topic = topic
        self.consumer = Consumer(kafka_io.consumer_config(settings, f"faults-ends-{uuid.uuid4().hex[:8]}"))
        self.partitions = list(self.consumer.list_topics(topic, timeout=30).topics[topic].partitions)

    def total(self) -> int:
        """Messages (and transaction markers) written to the topic so far."""
        return sum(self.consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)[1]
                   for p in self.partitions)

    def close(self) -> None:
        self.consumer.close()


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """Partition -> high watermark of ``topic``."""
    c = Consumer(kafka_io.consumer_config(settings, f"faults-ends-{uuid.uuid4().hex[:8]}"))
    try:
        parts = c.list_topics(topic, timeout=30).topics[topic].partitions
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in parts}
    finally:
        c.close()


def committed_offsets(settings: Settings, group: str, topic: str) -> dict[int, int]:
    """Partition -> offset committed to Kafka by ``group`` (without joining it)."""
    c = Consumer(kafka_io.consumer_config(settings, group))
    try:
        parts = c.list_topics(topic, timeout=30).topics[topic].partitions
        done = c.committed([TopicPartition(topic, p) for p in parts], timeout=30)
        return {tp.partition: tp.offset for tp in done}
    finally:
        c.close()


def read_topic(settings: Settings, topic: str, timeout: float = 90.0) -> list[tuple[int, int, bytes, bytes]]:
    """Every committed message of ``topic`` from the beginning: (partition, offset, key, value)."""
    c = Consumer(kafka_io.consumer_config(settings, f"faults-reader-{uuid.uuid4().hex[:8]}",
                                          **{"enable.partition.eof": True}))
    out = []
    try:
        parts = c.list_topics(topic, timeout=30).topics[topic].partitions
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(at_end) < len(parts):
            assert time.monotonic() < deadline, f"could not read {topic} to its end within {timeout:.0f}s"
            for m in c.consume(10000, 0.5):
                err = m.error()
                if err is None:
                    out.append((m.partition(), m.offset(), m.key(), m.value()))
                    at_end.discard(m.partition())
                elif err.code() == KafkaError._PARTITION_EOF:
                    at_end.add(m.partition())
                else:
                    raise AssertionError(f"reading {topic}: {err}")
    finally:
        c.close()
    return out
