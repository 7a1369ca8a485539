"""Who may do what, with no I/O: roles, password hashing (argon2id), API tokens, origins, redirects."""
from __future__ import annotations

import functools
import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

logger = logging.getLogger(__name__)

# viewer: read everything; operator: also acknowledge, snooze and annotate alerts, and start backtests;
# admin: also manage users and tokens.  Each role may do all that the roles before it may.
VIEWER, OPERATOR, ADMIN = "viewer", "operator", "admin"
ROLES = (VIEWER, OPERATOR, ADMIN)
TOKEN_PREFIX = "stk_"
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
_HASHER = PasswordHasher()  # argon2id with argon2-cffi's recommended (RFC 9106 low-memory) parameters


class CredentialError(ValueError):
    """A user name, password, role or token that cannot be accepted; the message says why."""


@dataclass(frozen=True)
class Principal:
    """Whoever a request acts for: a signed-in user or an API token (``name`` is ``token:<name>``)."""

    name: str
    role: str
    kind: str  # "session" | "token" | "metrics"

    def may(self, needed: str) -> bool:
        return allows(self.role, needed)


def allows(role: Optional[str], needed: str) -> bool:
    """Whether ``role`` includes the rights of ``needed``."""
    if role not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(needed)


def check_role(role: str) -> str:
    role = (role or "").strip().lower()
    if role not in ROLES:
        raise CredentialError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    return role


def check_username(name: str) -> str:
    clean = (name or "").strip().lower()
    if not _USERNAME.match(clean):
        raise CredentialError("a user name is 1 to 64 characters: lower-case letters, digits and . _ @ -, "
                              "starting with a letter or digit")
    return clean


def check_password(password: str) -> str:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise CredentialError(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def hash_password(password: str) -> str:
    return _HASHER.hash(check_password(password))


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so both failures take as long."""
    return _HASHER.hash(secrets.token_urlsafe(16))


def verify_password(password_hash: Optional[str], password: str) -> bool:
    """True when ``password`` matches; a missing user (``None``) costs as much time as a wrong password."""
    try:
        return _HASHER.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _HASHER.check_needs_rehash(password_hash)


def generate_password() -> str:
    """A random password for a first admin: 20 URL-safe characters (about 120 bits)."""
    return secrets.token_urlsafe(15)


@dataclass(frozen=True)
class NewToken:
    """A freshly minted API token: ``plain`` is shown once, only ``digest`` is stored."""

    plain: str
    digest: str
    prefix: str


def mint_token() -> NewToken:
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return NewToken(plain, token_digest(plain), plain[:len(TOKEN_PREFIX) + 6])


def token_digest(plain: str) -> str:
    """SHA-256 of a token: tokens are 256 random bits, so a fast hash is enough (no guessing to slow)."""
    return hashlib.sha256(plain.encode()).hexdigest()


def bearer_token(header: Optional[str]) -> Optional[str]:
    """The token of an ``Authorization: Bearer <token>`` header, or None when there is no such header."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


# --- cross-site requests -------------------------------------------------------------------------
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Sec-Fetch-Site of a request from a page of ours, or typed by the user.
SAME_SITE_FETCHES = frozenset({"same-origin", "none"})


def normalise_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def origin_list(raw: str) -> frozenset[str]:
    """``STOCKIT_ALLOWED_ORIGINS``: comma-separated ``scheme://host[:port]``."""
    return frozenset(normalise_origin(o) for o in raw.split(",") if o.strip())


def cross_site_refusal(method: str, headers: Mapping[str, str], own_origin: str,
                       allowed: Iterable[str] = ()) -> Optional[str]:
    """Why a state-changing request or a WebSocket upgrade comes from another site, or None when it does not.

    Browsers send ``Origin`` on every WebSocket handshake and cross-origin POST, and ``Sec-Fetch-Site``
    on every request; a client that sends neither is not a browser, so no cookie of ours rides along
    without its owner's intent.
    """
    websocket = headers.get("Upgrade", "").lower() == "websocket"
    if method.upper() not in UNSAFE_METHODS and not websocket:
        return None
    origin = headers.get("Origin")
    if origin is not None:
        if normalise_origin(origin) in {normalise_origin(own_origin), *allowed}:
            return None
        return f"requests from origin {origin!r} are not allowed (STOCKIT_ALLOWED_ORIGINS)"
    site = headers.get("Sec-Fetch-Site")
    if site is not None and site.lower() not in SAME_SITE_FETCHES:
        return f"cross-site request refused (Sec-Fetch-Site: {site})"
    return None


def safe_next(target: Optional[str], default: str = "/") -> str:
    """Where to go after signing in: a path of this site only (no scheme, host, ``//`` or backslash)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    if any(ord(c) < 32 or ord(c) == 127 for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.path in ("/login", "/logout"):
        return default
    return target
