"""Webhook deliveries off the consuming loop: a few worker threads per endpoint URL take that endpoint's due
deliveries from PostgreSQL and POST them, one at a time each, under a total deadline.

A slow or hanging endpoint therefore holds only its own workers, for at most the deadline per try,
and never the alert engine's consuming loop nor another endpoint.  Memory is bounded: the queue is
the ``webhook_deliveries`` table, a worker holds one delivery.  A try is claimed in PostgreSQL before
the request goes out (at most once per alert and endpoint, see ``history.alert_status``); a failed
try is retried with exponential backoff and jitter, the last one is dead-lettered.  Redirects are
not followed: a 3xx is a failure, so neither the body nor the signature goes anywhere else.
"""
from __future__ import annotations

import http.client
import logging
import random
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional
from urllib.parse import urlsplit

import orjson

from pipeline.history.alert_status import AlertStatusStore, Claim
from pipeline.metrics import AlertEngineMetrics
from pipeline.outage import POSTGRES, Availability, Stopped, call_until_available
from pipeline.settings import Settings
from pipeline.webhooks import backoff_delay, endpoint_key, redact_text, redact_url, retryable, signed_headers

logger = logging.getLogger(__name__)
MAX_RESPONSE_BYTES = 65536  # of an answer's body read before the connection is closed
POLL_SECONDS = 1.0  # an idle worker looks for due deliveries at least this often
USER_AGENT = "stockit-alert-engine"
ABANDONED = "outcome unknown: the alert engine stopped during the request; not sent again"


@dataclass(frozen=True)
class Response:
    """What one try gave: an HTTP status (None if there was no complete answer) and an error if it failed."""

    status: Optional[int]
    error: Optional[str]
    seconds: float

    @property
    def ok(self) -> bool:
        return self.error is None


def post(url: str, body: bytes, headers: dict[str, str], deadline: float) -> Response:
    """One POST that ends within ``deadline`` seconds, connect to last byte, whatever the server does.

    A watchdog shuts the socket down at the deadline, which ends any blocked read or write (a socket
    timeout alone restarts with every byte a slow server trickles).  Errors never contain the URL.
    """
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=deadline,
                                           context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=deadline)
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        sock = conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    watchdog = threading.Timer(deadline, expire)
    watchdog.daemon = True
    started = time.monotonic()
    watchdog.start()
    try:
        conn.request("POST", target, body=body,
                     headers={**headers, "User-Agent": USER_AGENT, "Content-Type": "application/json"})
        answer = conn.getresponse()
        answer.read(MAX_RESPONSE_BYTES)
        status = answer.status
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if expired.is_set() or isinstance(exc, TimeoutError):  # a socket timeout is the deadline too
            error = f"no complete answer within the {deadline:g} s deadline"
        else:
            error = redact_text(f"{type(exc).__name__}: {exc}")[:200]
        return Response(None, error, time.monotonic() - started)
    finally:
        watchdog.cancel()
        conn.close()
    seconds = time.monotonic() - started
    if 200 <= status < 300:
        return Response(status, None, seconds)
    if 300 <= status < 400:
        return Response(status, f"HTTP {status}: redirects are not followed", seconds)
    return Response(status, f"HTTP {status}", seconds)


@dataclass
class Endpoint:
    """A configured webhook URL, its storage key and what may be shown of it."""

    url: str = field(repr=False)  # may hold credentials: never shown
    key: str = ""
    origin: str = ""
    wake: threading.Event = field(default_factory=threading.Event, repr=False)

    @classmethod
    def of(cls, url: str) -> "Endpoint":
        return cls(url.strip(), endpoint_key(url), redact_url(url), threading.Event())


class Deliveries:
    """The delivery workers of every endpoint; ``notify`` wakes those with new work."""

    def __init__(self, settings: Settings, store: AlertStatusStore, metrics: AlertEngineMetrics,
                 availability: Availability, deadletter: Callable[[bytes, bytes], bool]):
        self.s = settings
        self.store = store
        self.metrics = metrics
        self.availability = availability
        self.deadletter = deadletter
        self.endpoints = [Endpoint.of(u) for u in settings.webhook_url_list]
        self.by_key = {e.key: e for e in self.endpoints}
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self.crashed: Optional[BaseException] = None  # a worker's unexpected error: the engine stops on it
        self.stale_after = 2 * settings.webhook_timeout + 30.0  # a live worker finishes a try well before

    def start(self) -> None:
        for e in self.endpoints:
            for i in range(max(1, self.s.webhook_workers)):
                t = threading.Thread(target=self._work, args=(e,), name=f"webhook-{e.origin}-{i}",
                                     daemon=True)
                t.start()
                self.threads.append(t)

    def notify(self, keys) -> None:
        for key in keys:
            endpoint = self.by_key.get(key)
            if endpoint is not None:
                endpoint.wake.set()

    def stop(self) -> None:
        """Stop taking deliveries; a try under way ends within its deadline. Pending ones stay queued."""
        self.stop_event.set()
        for e in self.endpoints:
            e.wake.set()
        for t in self.threads:
            t.join(self.s.webhook_timeout + 10)

    # --- one worker --------------------------------------------------------------------------
    def _db(self, fn):
        m = self.metrics
        return call_until_available(fn, self.availability, self.stop_event, self.s.outage_retry_max,
                                    (POSTGRES,),
                                    on_retry=lambda server: m.dependency_retries.labels(server).inc())

    def _work(self, e: Endpoint) -> None:
        rng = random.Random()
        reaped_at = 0.0
        try:
            while not self.stop_event.is_set():
                if time.monotonic() - reaped_at >= self.stale_after / 2:
                    reaped_at = time.monotonic()
                    stale = self._db(lambda: self.store.abandon_stale(e.key, self.stale_after, ABANDONED))
                    for claim in stale:
                        self._dead(claim, e, None, claim.last_error or "")
                e.wake.clear()
                claim = self._db(lambda: self.store.claim(e.key))
                if claim is None:
                    wait = self._db(lambda: self.store.seconds_to_next(e.key))
                    e.wake.wait(POLL_SECONDS if wait is None else min(POLL_SECONDS, wait))
                    continue
                self._try(e, claim, rng)
        except Stopped:
            return
        except Exception as exc:  # noqa: BLE001 - a bug: handed to the engine, which stops loudly
            logger.exception("webhook worker for %s stopped by an unexpected error", e.origin)
            self.crashed = exc
            self.stop_event.set()

    def _try(self, e: Endpoint, claim: Claim, rng: random.Random) -> None:
        s, m = self.s, self.metrics
        headers = signed_headers(s.webhook_secret, claim.alert_id, claim.body)
        r = post(e.url, claim.body, headers, s.webhook_timeout)
        m.webhook_duration.observe(r.seconds)
        if r.ok:
            self._db(lambda: self.store.delivered(claim, r.status))
            m.webhooks.labels("delivered").inc()
            return
        if retryable(r.status) and claim.attempt < s.webhook_attempts:
            delay = backoff_delay(claim.attempt, s.webhook_backoff, rng)
            self._db(lambda: self.store.retry_later(claim, delay, r.status, r.error))
            m.webhooks.labels("retried").inc()
            e.wake.set()  # another due delivery may be waiting behind this one
            return
        self._dead(claim, e, r.status, r.error)
        self._db(lambda: self.store.failed(claim, r.status, r.error))

    def _dead(self, claim: Claim, e: Endpoint, status: Optional[int], error: str) -> None:
        """Dead-letter a delivery that will not be tried again (before its row says failed)."""
        self.metrics.webhooks.labels("failed").inc()
        logger.warning("webhook to %s for alert %s failed after %d tries: %s", e.origin, claim.alert_id,
                       claim.attempt, error)
        record = {"alert": orjson.loads(claim.body), "endpoint": e.origin, "attempts": claim.attempt,
                  "status": status, "error": error, "failed_at": time.time()}
        if not self.deadletter(claim.alert_id.encode(), orjson.dumps(record)):
            logger.error("dead-letter record of alert %s to %s not acknowledged; the alerts table keeps the "
                         "failure", claim.alert_id, e.origin)
