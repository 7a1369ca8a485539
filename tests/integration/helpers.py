"""Helpers for the integration tests: run workers in threads, produce, consume, wait."""
from __future__ import annotations

import threading
import time
from typing import Callable, Iterable, Optional

import psycopg2
import pytest
from confluent_kafka import Consumer, Producer

from pipeline import kafka_io
from pipeline.events import Trade
from pipeline.settings import Settings


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.1):
    """Poll ``predicate`` until it returns a truthy value; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def produce(settings: Settings, records: Iterable[tuple[Optional[bytes], bytes]], topic: Optional[str] = None) -> int:
    p = Producer(kafka_io.producer_config(settings))
    n = 0
    for key, value in records:
        while True:
            try:
                p.produce(topic or settings.topic_trades, value, key)
                break
            except BufferError:
                p.poll(0.05)
        n += 1
    assert p.flush(30) == 0
    return n


def produce_trades(settings: Settings, trades: Iterable[Trade]) -> int:
    return produce(settings, ((t.symbol.encode(), t.encode()) for t in trades))


def consume_all(settings: Settings, topic: str, expected: int, timeout: float = 30.0) -> list:
    """Read ``topic`` from the beginning until ``expected`` messages or the timeout."""
    c = Consumer(kafka_io.consumer_config(settings, f"reader-{time.monotonic_ns()}"))
    c.subscribe([topic])
    out = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for m in c.consume(1000, 0.5):
                if m.error() is None:
                    out.append(m)
        # Anything beyond the expected count would be a duplicate: give it a moment to show up.
        extra_deadline = time.monotonic() + 1.0
        while time.monotonic() < extra_deadline:
            out.extend(m for m in c.consume(1000, 0.2) if m.error() is None)
    finally:
        c.close()
    return out


def empty_stores(settings: Settings) -> None:
    """Empty Redis and the history tables (what a new system starts with)."""
    import redis

    redis.Redis.from_url(settings.redis_url).flushdb()
    conn = psycopg2.connect(settings.database_url)
    with conn, conn.cursor() as cur:
        cur.execute("TRUNCATE trades, candles, alerts, outbox, processor_checkpoints, "
                    "processor_source_checkpoints, webhook_deliveries")
        cur.execute("TRUNCATE alert_snoozes, alert_notes, alert_audit, backtest_runs, backtest_alerts, "
                    "dead_letters")
    conn.close()


def sql(settings: Settings, query: str, args=()):
    conn = psycopg2.connect(settings.database_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(query, args)
            return cur.fetchall()
    finally:
        conn.close()


class WorkerThread:
    """A worker's ``run(stop)`` in a daemon thread; ``stop()`` ends it and re-raises its error."""

    def __init__(self, target: Callable[[threading.Event], None], name: str):
        self.stop_event = threading.Event()
        self.error: Optional[BaseException] = None

        def body():
            try:
                target(self.stop_event)
            except BaseException as exc:  # noqa: BLE001 - reported by stop()
                self.error = exc

        self.thread = threading.Thread(target=body, name=name, daemon=True)
        self.thread.start()

    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self, timeout: float = 60.0) -> None:
        self.stop_event.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "worker did not stop"
        if self.error is not None:
            raise self.error
