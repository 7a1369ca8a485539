"""The Kafka adapter on a real broker: delivery reports, batch consume without EOF events, commits, lag,
transactional markers and the newest committed value of a key."""
from __future__ import annotations

import time

import pytest

from pipeline import kafka_io
from tests.integration.helpers import wait_until

pytestmark = pytest.mark.integration


def test_kio001_publish_report_consume_commit_and_lag(topics):
    s = topics
    reports = []
    publisher = kafka_io.Publisher(s)
    for i in range(5):
        publisher.produce(s.topic_alerts, f"v{i}".encode(), b"AAPL", on_delivery=lambda err, msg: reports.append(err))
    assert publisher.flush(30) == 0
    assert reports == [None] * 5
    consumer = kafka_io.BatchConsumer(s, f"kio-{time.monotonic_ns()}", s.topic_alerts,
                                      **{"enable.partition.eof": True, "enable.auto.offset.store": True})
    got = []
    try:
        wait_until(lambda: got.extend(consumer.consume_batch(100, 0.5)) or len(got) >= 5, 30, "five records")
        got.extend(consumer.consume_batch(100, 1.0))  # only EOF events are left: none may come through
        assert sorted(m.value() for m in got) == [f"v{i}".encode() for i in range(5)]
        consumer.commit(wait=True)
        assert wait_until(lambda: consumer.lag() and all(v == 0 for v in consumer.lag().values()), 30,
                          "lag 0 after the commit")
    finally:
        consumer.close()


def test_kio002_the_newest_committed_marker_wins_and_an_aborted_one_is_invisible(topics):
    s = topics
    tx = kafka_io.TransactionalPublisher(s, f"kio-{time.monotonic_ns()}")
    tx.start()
    for n in (1, 2):
        tx.send([(s.topic_alerts, b"k", f"m{n}".encode())], (s.topic_outbox_progress, 1, b"mine", f"{n}".encode()))
    tx.send([], (s.topic_outbox_progress, 1, b"other", b"9"))
    tx.producer.begin_transaction()
    tx.producer.produce(s.topic_outbox_progress, b"3", b"mine", partition=1)
    tx.producer.flush(10)
    tx.producer.abort_transaction(10)
    assert kafka_io.read_last_value(s, s.topic_outbox_progress, 1, b"mine") == b"2"
    assert kafka_io.read_last_value(s, s.topic_outbox_progress, 1, b"mine", tail=1) == b"2"  # whole partition
    assert kafka_io.read_last_value(s, s.topic_outbox_progress, 1, b"other") == b"9"
    assert kafka_io.read_last_value(s, s.topic_outbox_progress, 1, b"nobody") is None
    assert kafka_io.read_last_value(s, s.topic_outbox_progress, 2, b"mine") is None  # an empty partition
    tx.close()
