"""PostgreSQL history, split by role: ``writer`` (the processor's checkpoint), ``reader`` (the web
app's queries and acknowledgements) and ``alert_status`` (the alert engine's delivery status).

This module holds what the roles share: connecting, and a small thread-safe connection pool.
"""
from __future__ import annotations

from contextlib import contextmanager
from datetime import timezone
from typing import Iterator, Optional

import psycopg2
import psycopg2.extras
import psycopg2.pool

UTC = timezone.utc


def connect(url: str, application_name: str = "stockit", timeout: float = 10.0, **options):
    """One connection; ``application_name`` shows the role in ``pg_stat_activity``; ``options`` are libpq's."""
    return psycopg2.connect(url, connect_timeout=max(1, int(timeout)), application_name=application_name, **options)


def iso(value) -> Optional[str]:
    """A timestamptz from the database -> ISO-8601 UTC with a Z (None stays None)."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class Pool:
    """A thread-safe pool whose ``cursor()`` runs one transaction; a broken connection is dropped."""

    def __init__(self, url: str, maxconn: int, application_name: str, minconn: int = 1):
        self.url = url
        self.pool = psycopg2.pool.ThreadedConnectionPool(minconn, maxconn, url, connect_timeout=5,
                                                         application_name=application_name)

    def close(self) -> None:
        self.pool.closeall()

    @contextmanager
    def cursor(self) -> Iterator[psycopg2.extras.RealDictCursor]:
        conn = self.pool.getconn()
        try:
            with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                yield cur
        except psycopg2.OperationalError:
            self.pool.putconn(conn, close=True)
            conn = None
            raise
        finally:
            if conn is not None:
                self.pool.putconn(conn)
