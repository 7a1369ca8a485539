"""Kafka adapters: client configuration, topic creation, lag, and a blocking consume helper.

Clients are created on demand by the workers; this module holds no global connection.
"""
from __future__ import annotations

import logging
from typing import Iterable

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.settings import Settings

logger = logging.getLogger(__name__)


def _log_errors(err) -> None:  # librdkafka error callback: transient broker issues, logged once each
    logger.warning("kafka: %s", err)


def producer_config(s: Settings, **extra) -> dict:
    return {
        "bootstrap.servers": s.kafka_bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "batch.num.messages": 10000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 500000,
        "partitioner": "murmur2_random",  # same partition for a key as the Java client
        "error_cb": _log_errors,
        **extra,
    }


def consumer_config(s: Settings, group_id: str, **extra) -> dict:
    return {
        "bootstrap.servers": s.kafka_bootstrap_servers,
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "fetch.max.bytes": 52428800,
        "max.partition.fetch.bytes": 10485760,
        "queued.min.messages": 200000,
        "session.timeout.ms": 15000,
        "max.poll.interval.ms": 300000,
        "error_cb": _log_errors,
        **extra,
    }


def admin(s: Settings) -> AdminClient:
    return AdminClient({"bootstrap.servers": s.kafka_bootstrap_servers, "error_cb": _log_errors})


def topic_specs(s: Settings) -> list[NewTopic]:
    return [
        NewTopic(s.topic_trades, num_partitions=s.trade_partitions, replication_factor=1),
        NewTopic(s.topic_aggregates, num_partitions=3, replication_factor=1),
        NewTopic(s.topic_alerts, num_partitions=3, replication_factor=1),
        NewTopic(s.topic_deadletter, num_partitions=1, replication_factor=1),
        NewTopic(s.topic_webhook_deadletter, num_partitions=1, replication_factor=1),
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
    import time

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
