"""What the web app talks to — the Redis speed layer and the PostgreSQL history — behind one object.

Both stores may be down when the app starts or at any moment after: nothing here connects at
construction, the history pool is (re)built on demand at most every few seconds, and failures
surface as :class:`Unavailable`, which the API turns into a 503 and the pages into a banner.
"""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, TypeVar

import psycopg2
import psycopg2.pool
import redis

from app.status import PipelineStatus, assess
from pipeline.history.reader import HistoryReader
from pipeline.settings import Settings
from pipeline.speed_layer import SpeedLayerReader

logger = logging.getLogger(__name__)
T = TypeVar("T")
DB_RETRY_SECONDS = 3.0
DB_POOL = 12
REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.BusyLoadingError)
DB_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError, psycopg2.pool.PoolError)


class Unavailable(RuntimeError):
    """A backing store cannot be reached; ``service`` is "redis" or "database"."""

    def __init__(self, service: str, detail: str = ""):
        super().__init__(f"{service} unavailable" + (f": {detail}" if detail else ""))
        self.service = service


class Services:
    """Settings, the speed-layer reader and the history, shared by API, streams and pages."""

    def __init__(self, settings: Settings):
        self.settings = settings
        url = settings.redis_url or f"redis://127.0.0.1:{settings.redis_port}/0"  # unset: the local stack's
        self.redis = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=2,
                                          health_check_interval=30)
        self.reader = SpeedLayerReader(self.redis)
        self._history: Optional[HistoryReader] = None
        self._history_lock = threading.Lock()
        self._history_failed_at = 0.0
        self._db_slots = threading.BoundedSemaphore(DB_POOL)
        self._status: Optional[PipelineStatus] = None
        self._status_at = 0.0
        self._status_lock = threading.Lock()

    # --- Redis ---------------------------------------------------------------------------------
    def speed(self, fn: Callable[[SpeedLayerReader], T]) -> T:
        """Run ``fn(reader)``; a Redis outage raises Unavailable("redis")."""
        try:
            return fn(self.reader)
        except REDIS_ERRORS as exc:
            raise Unavailable("redis", str(exc)) from exc

    # --- PostgreSQL ----------------------------------------------------------------------------
    def _get_history(self) -> HistoryReader:
        if self._history is not None:
            return self._history
        with self._history_lock:
            if self._history is None:
                if not self.settings.database_url:
                    raise Unavailable("database", "DATABASE_URL is not set")
                if time.monotonic() - self._history_failed_at < DB_RETRY_SECONDS:
                    raise Unavailable("database", "connection failed moments ago")
                try:
                    self._history = HistoryReader(self.settings.database_url, maxconn=DB_POOL)
                except DB_ERRORS as exc:
                    self._history_failed_at = time.monotonic()
                    raise Unavailable("database", str(exc).strip()) from exc
            return self._history

    @contextmanager
    def _slot(self) -> Iterator[None]:
        if not self._db_slots.acquire(timeout=10):
            raise Unavailable("database", "all connections busy")
        try:
            yield
        finally:
            self._db_slots.release()

    def history(self, fn: Callable[[HistoryReader], T]) -> T:
        """Run ``fn(history)`` holding one pooled connection slot; outages raise Unavailable("database")."""
        with self._slot():
            h = self._get_history()
            try:
                return fn(h)
            except DB_ERRORS as exc:
                raise Unavailable("database", str(exc).strip()) from exc

    def close(self) -> None:
        if self._history is not None:
            self._history.close()
        self.redis.close()

    # --- status --------------------------------------------------------------------------------
    def status(self, max_age: float = 1.0) -> PipelineStatus:
        """The pipeline verdict, recomputed at most once per ``max_age`` seconds."""
        now = time.time()
        with self._status_lock:
            if self._status is not None and now - self._status_at < max_age:
                return self._status
        redis_ok, beat, newest = True, None, None
        try:
            beat = self.reader.heartbeat("processor")
            prices = self.reader.prices()
            newest = max((t.get("ts", 0.0) for t in prices.values()), default=None)
        except REDIS_ERRORS:
            redis_ok = False
        try:
            db_ok = self.history(lambda h: h.ping())
        except Unavailable:
            db_ok = False
        status = assess(now=now, redis_ok=redis_ok, database_ok=db_ok, processor_heartbeat=beat,
                        newest_trade_ts=newest, stale_after=self.settings.stale_after_seconds)
        with self._status_lock:
            self._status, self._status_at = status, now
        return status

    def symbols(self) -> list[str]:
        """Configured symbols in their order, then any others the pipeline has seen."""
        configured = self.settings.symbol_list
        try:
            seen = self.reader.symbols()
        except REDIS_ERRORS:
            seen = []
        return configured + sorted(set(seen) - set(configured))


def current() -> Services:
    """The services of the app handling this request."""
    from flask import current_app

    return current_app.extensions["stockit"]
