"""Admission control: at most N ordinary requests of a process run at once; streams are exempt.

Under gevent a request runs until it waits for Redis or PostgreSQL, and then another runs.  With dozens
in flight, each holds a Redis connection and the event loop juggles all their sockets; a semaphore taken
in ``before_request`` lets a few run and parks the rest.  Measured (bench/web_load.py, saturation, two
web processes, the shared 2-core machine): 1,366 and 1,627 req/s with it, 1,177 and 976 without.
"""
from __future__ import annotations

import threading

from flask import Flask, g, request

STREAM_PREFIXES = ("/ws/", "/api/v1/stream/")
DEFAULT_CONCURRENCY = 6
WAIT_SECONDS = 5.0  # after this a request runs anyway: a stuck slot must never stall the whole app


def init_app(server: Flask, concurrency: int = DEFAULT_CONCURRENCY) -> None:
    slots = threading.BoundedSemaphore(concurrency)

    @server.before_request
    def _admit() -> None:
        if not request.path.startswith(STREAM_PREFIXES):
            g.stockit_admitted = slots.acquire(timeout=WAIT_SECONDS)

    @server.teardown_request
    def _leave(_exc) -> None:
        if g.pop("stockit_admitted", False):
            slots.release()
