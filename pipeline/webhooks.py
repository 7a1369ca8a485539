"""Alert webhooks: HMAC-SHA256 signed JSON POSTs with exponential backoff and jitter.

``sign`` and ``backoff_delays`` are pure; ``WebhookSender.deliver`` does the HTTP and returns a
:class:`Delivery` saying what happened, after the last try at the latest.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import random
import time
from dataclasses import dataclass
from typing import Callable, Optional

import requests

logger = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Stockit-Signature"
TIMESTAMP_HEADER = "X-Stockit-Timestamp"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, timestamp + "." + body)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def backoff_delays(attempts: int, base: float, rng: random.Random, cap: float = 30.0) -> list[float]:
    """Delays before tries 2..attempts: base * 2^i plus up to 100 % jitter, capped."""
    return [min(cap, base * 2 ** i * (1 + rng.random())) for i in range(max(0, attempts - 1))]


def retryable(status: Optional[int]) -> bool:
    """Network errors, 429 and 5xx are worth another try; other 4xx are not."""
    return status is None or status == 429 or status >= 500


@dataclass
class Delivery:
    url: str
    ok: bool
    attempts: int
    status: Optional[int] = None
    error: Optional[str] = None


class WebhookSender:
    def __init__(self, secret: str, attempts: int = 4, backoff: float = 0.5, timeout: float = 5.0,
                 sleep: Callable[[float], None] = time.sleep, rng: Optional[random.Random] = None,
                 observe: Optional[Callable[[float], None]] = None):
        self.secret = secret
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.timeout = timeout
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.observe = observe
        self.session = requests.Session()

    def deliver(self, url: str, body: bytes, alert_id: str, on_retry: Optional[Callable[[], None]] = None) -> Delivery:
        delays = backoff_delays(self.attempts, self.backoff, self.rng)
        status = error = None
        for attempt in range(1, self.attempts + 1):
            ts = str(int(time.time()))
            headers = {"Content-Type": "application/json", "X-Stockit-Alert-Id": alert_id, TIMESTAMP_HEADER: ts,
                       "User-Agent": "stockit-alert-engine"}
            if self.secret:
                headers[SIGNATURE_HEADER] = sign(self.secret, ts, body)
            t0 = time.perf_counter()
            try:
                resp = self.session.post(url, data=body, headers=headers, timeout=self.timeout)
                status, error = resp.status_code, None if resp.ok else f"HTTP {resp.status_code}"
            except requests.RequestException as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"[:300]
            if self.observe:
                self.observe(time.perf_counter() - t0)
            if error is None:
                return Delivery(url, True, attempt, status)
            if attempt == self.attempts or not retryable(status):
                break
            if on_retry:
                on_retry()
            self.sleep(delays[attempt - 1])
        logger.warning("webhook %s for alert %s failed after %d tries: %s", url, alert_id, attempt, error)
        return Delivery(url, False, attempt, status, error)
