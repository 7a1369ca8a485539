"""Waiting out an unavailable Redis or PostgreSQL: which errors are transient, capped backoff, one log line
per change of state.

A data error or a bug is not retried: only the errors that say "the server cannot be reached right now"
are (:func:`unavailable_server`).  :class:`Availability` remembers since when each server has been
unavailable, logs the change once each way and reports it to a callback (metrics, heartbeat).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterable, Optional, TypeVar

import psycopg2
import redis

logger = logging.getLogger(__name__)
T = TypeVar("T")
REDIS, POSTGRES = "redis", "postgres"
SERVERS = (REDIS, POSTGRES)
FIRST_DELAY = 0.1  # seconds before the first retry; doubled each time up to the cap


class Stopped(Exception):
    """The worker was asked to stop while it waited for a server."""


def unavailable_server(exc: BaseException) -> Optional[str]:
    """``"redis"`` or ``"postgres"`` when ``exc`` says that server cannot be reached; None otherwise."""
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return REDIS
    if isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)):
        return POSTGRES
    return None


def retry_delay(attempt: int, cap: float) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): exponential from FIRST_DELAY, capped."""
    return min(cap, FIRST_DELAY * 2 ** min(attempt, 30))


class Availability:
    """Since when each server has been unavailable; logs and reports each change of state once."""

    def __init__(self, on_change: Callable[[str, Optional[float]], None] = lambda server, since: None,
                 clock: Callable[[], float] = time.time):
        self.on_change = on_change
        self.clock = clock
        self.down_since: dict[str, float] = {}
        self._lock = threading.Lock()

    def failed(self, server: str, exc: BaseException) -> None:
        with self._lock:
            if server in self.down_since:
                return
            since = self.down_since[server] = self.clock()
        logger.warning("%s unavailable (%s: %s); waiting for it, retrying with backoff", server,
                       type(exc).__name__, str(exc).strip().splitlines()[0] if str(exc).strip() else "")
        self.on_change(server, since)

    def answered(self, servers: Iterable[str]) -> None:
        for server in servers:
            with self._lock:
                since = self.down_since.pop(server, None)
            if since is not None:
                logger.info("%s available again after %.1f s", server, self.clock() - since)
                self.on_change(server, None)

    def describe(self) -> dict[str, float]:
        """{server: unavailable since} of the servers that are down now."""
        with self._lock:
            return dict(self.down_since)


def call_until_available(fn: Callable[[], T], availability: Availability, stop: threading.Event, cap: float,
                         servers: Iterable[str] = SERVERS,
                         on_retry: Callable[[str], None] = lambda server: None) -> T:
    """``fn()``, retried with capped backoff while it fails because a server is unavailable.

    Any other exception propagates at once.  Raises :class:`Stopped` if ``stop`` is set while waiting.
    ``servers`` are those ``fn`` uses: a success marks them available again.
    """
    attempt = 0
    while True:
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - classified just below; others re-raised
            server = unavailable_server(exc)
            if server is None:
                raise
            availability.failed(server, exc)
            on_retry(server)
            if stop.wait(retry_delay(attempt, cap)):
                raise Stopped() from exc
            attempt += 1
            continue
        availability.answered(servers)
        return result
