"""Alert webhooks by the Standard Webhooks specification: signing, verification, redaction, retry policy.

Each request carries three headers (https://www.standardwebhooks.com):

* ``webhook-id``: the alert id — the same on every try, so a receiver can drop a repeat;
* ``webhook-timestamp``: Unix seconds when this try was made;
* ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` under the secret.

The secret is ``whsec_`` + base64 of 24 to 64 random bytes (:func:`new_secret`).  Receivers call
:func:`verify`, which also refuses a timestamp outside a tolerance (5 minutes by default), so a
captured request cannot be replayed later.  URLs often carry credentials (Slack, Discord), so
nothing is stored, logged or dead-lettered beyond :func:`redact_url`'s ``scheme://host``.
Pure functions; the HTTP and the queues live in ``webhook_delivery``.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import random
import re
import secrets
import time
from datetime import datetime, timezone
from typing import Mapping, Optional
from urllib.parse import urlsplit

from standardwebhooks import Webhook, WebhookVerificationError

logger = logging.getLogger(__name__)

ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER = "webhook-id", "webhook-timestamp", "webhook-signature"
SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 24, 64
DEFAULT_TOLERANCE = 300.0  # seconds a signed request stays acceptable to a receiver
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]*")

__all__ = ["WebhookVerificationError", "new_secret", "secret_key", "sign", "signed_headers", "verify",
           "redact_url", "redact_text", "endpoint_key", "check_url", "backoff_delay", "retryable"]


def new_secret(nbytes: int = 32) -> str:
    """A fresh signing secret in the ``whsec_<base64>`` form."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode()


def secret_key(secret: str) -> bytes:
    """The key bytes of a ``whsec_<base64>`` secret; ValueError saying what is wrong otherwise."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX!r} followed by base64 "
                         "(make one with `stockit webhook-secret`)")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the webhook secret after 'whsec_' is not valid base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(f"the webhook secret holds {len(key)} bytes; the specification asks for "
                         f"{MIN_SECRET_BYTES} to {MAX_SECRET_BYTES}")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64>``: the signature of ``body`` sent as message ``msg_id`` at ``timestamp``."""
    when = datetime.fromtimestamp(timestamp, timezone.utc)
    return Webhook(secret_key(secret)).sign(msg_id, when, body.decode("utf-8"))


def signed_headers(secret: str, msg_id: str, body: bytes, now: Optional[float] = None) -> dict[str, str]:
    """The three Standard Webhooks headers of one try."""
    timestamp = int(time.time() if now is None else now)
    return {ID_HEADER: msg_id, TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(secret, msg_id, timestamp, body)}


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: Optional[float] = None,
           tolerance: float = DEFAULT_TOLERANCE) -> None:
    """Check a received webhook; raises WebhookVerificationError unless it is authentic and fresh.

    ``headers`` may use any letter case; ``body`` is the raw request body (bytes, before any JSON
    parsing).  Refused: a missing header, a timestamp more than ``tolerance`` seconds from ``now``
    (either way), a body or id that is not what was signed, a wrong secret.  Several
    space-separated signatures (a secret being rotated) pass if one of them matches.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, signatures = (lower.get(h) for h in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER))
    if not (msg_id and stamp and signatures):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not whole Unix seconds") from None
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        raise WebhookVerificationError(f"webhook-timestamp is {now - timestamp:+.0f} s from now; the "
                                       f"tolerance is {tolerance:g} s")
    try:
        expected = sign(secret, msg_id, timestamp, body).encode()
    except (UnicodeDecodeError, OverflowError, OSError, ValueError):
        raise WebhookVerificationError("the body or timestamp cannot have been signed") from None
    for candidate in signatures.split():
        if hmac.compare_digest(candidate.encode("utf-8", "replace"), expected):
            return
    raise WebhookVerificationError("no matching signature")


def redact_url(url: str) -> str:
    """``scheme://host[:port]`` of a URL: what may be stored, logged or dead-lettered."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    if not parts.scheme or not host:
        return "<invalid URL>"
    if ":" in host:  # IPv6
        host = f"[{host}]"
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port else "")


def redact_text(text: str) -> str:
    """``text`` with every URL in it cut to ``scheme://host`` (for error messages of libraries)."""
    return _URL.sub(lambda m: redact_url(m.group()), text)


def endpoint_key(url: str) -> str:
    """A stable name of an endpoint for storage: a hash, so the URL itself is never stored."""
    return hashlib.sha256(url.strip().encode()).hexdigest()[:32]


def check_url(url: str) -> None:
    """ValueError (naming only ``scheme://host``) unless ``url`` is an absolute http(s) URL."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"webhook URL {redact_url(url)} is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"webhook URL {redact_url(url)} must be an absolute http:// or https:// URL")


def backoff_delay(attempt: int, base: float, rng: random.Random, cap: float = 30.0) -> float:
    """Delay before try ``attempt + 1``: base * 2^(attempt-1) plus up to 100 % jitter, capped."""
    return min(cap, base * 2 ** max(0, attempt - 1) * (1 + rng.random()))


def retryable(status: Optional[int]) -> bool:
    """Network errors and deadlines (None), 429 and 5xx are worth another try; 3xx and other 4xx are not."""
    return status is None or status == 429 or status >= 500
