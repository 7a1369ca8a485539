"""What a PostgreSQL error means for the caller: bad data, a server that is away, or a bug.

``DATA``: the rows are at fault (class 22 data exception, 23 integrity violation): isolate and
dead-letter them.  ``TRANSIENT``: the server is down, restarting, frozen or overloaded (connection
errors, timeouts, admin shutdown, serialization failures): retry with backoff.  ``FATAL``: anything
else (SQL that does not parse, a missing table, a Python error): stop loudly.
"""
from __future__ import annotations

import logging

import psycopg2

from pipeline.outage import POSTGRES, unavailable_server

logger = logging.getLogger(__name__)

DATA, TRANSIENT, FATAL = "data", "transient", "fatal"
# connection, transaction rollback, resources, lock not available, operator intervention, system error
_TRANSIENT_CLASSES = ("08", "40", "53", "55", "57", "58")


def classify(exc: BaseException) -> str:
    """DATA, TRANSIENT or FATAL for an exception raised by a database call."""
    if isinstance(exc, (psycopg2.DataError, psycopg2.IntegrityError)):
        return DATA
    code = getattr(exc, "pgcode", None) or ""
    if code[:2] in ("22", "23"):
        return DATA
    if unavailable_server(exc) == POSTGRES or code[:2] in _TRANSIENT_CLASSES:
        return TRANSIENT
    return FATAL


def first_line(exc: BaseException) -> str:
    """The database's message, one line."""
    text = (getattr(exc, "pgerror", None) or str(exc) or type(exc).__name__).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__
