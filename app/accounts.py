"""Users and API tokens in PostgreSQL (sql/004_auth.sql), for the CLI and the web app's sign-in."""
from __future__ import annotations

import logging
from typing import ContextManager, Optional, Protocol

import psycopg2
import psycopg2.errors

from app.access import (CredentialError, NewToken, check_password, check_role, check_username, hash_password,
                        mint_token)
from pipeline.history import iso

logger = logging.getLogger(__name__)
USER_COLUMNS = "user_id, username, role, session_epoch, created_at, last_login_at"
TOKEN_COLUMNS = "token_id, name, prefix, role, created_by, created_at, expires_at, last_used_at, revoked_at"
LAST_USED_EVERY = "60 seconds"  # last_used_at is written at most this often per token


class Cursors(Protocol):
    """Something whose ``cursor()`` runs one transaction with a dict cursor (``pipeline.history.Pool``)."""

    def cursor(self) -> ContextManager: ...


class AccountStore:
    """Users (viewer / operator / admin) and API tokens; passwords argon2id-hashed, tokens SHA-256-hashed."""

    def __init__(self, db: Cursors):
        self.db = db

    # --- users -------------------------------------------------------------------------------
    def add_user(self, username: str, password: str, role: str) -> dict:
        username, role = check_username(username), check_role(role)
        encoded = hash_password(password)
        try:
            with self.db.cursor() as cur:
                cur.execute(f"INSERT INTO users (username, password_hash, role) VALUES (%s, %s, %s) "
                            f"RETURNING {USER_COLUMNS}", (username, encoded, role))
                return _times(cur.fetchone())
        except psycopg2.errors.UniqueViolation:
            raise CredentialError(f"user {username!r} exists already") from None

    def first_admin(self, username: str, password: str) -> bool:
        """Create ``username`` as admin if there is no user at all; False when users exist already."""
        username = check_username(username)
        encoded = hash_password(password)
        with self.db.cursor() as cur:
            cur.execute("""INSERT INTO users (username, password_hash, role)
                           SELECT %s, %s, 'admin' WHERE NOT EXISTS (SELECT 1 FROM users)
                           ON CONFLICT (username) DO NOTHING""", (username, encoded))
            return cur.rowcount == 1

    def users(self) -> list[dict]:
        with self.db.cursor() as cur:
            cur.execute(f"SELECT {USER_COLUMNS} FROM users ORDER BY username")
            return [_times(r) for r in cur.fetchall()]

    def user_by_name(self, username: str) -> Optional[dict]:
        """The user with its password hash (for sign-in), or None."""
        with self.db.cursor() as cur:
            cur.execute(f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = %s",
                        ((username or "").strip().lower(),))
            row = cur.fetchone()
        return _times(row) if row else None

    def user_by_id(self, user_id: int) -> Optional[dict]:
        with self.db.cursor() as cur:
            cur.execute(f"SELECT {USER_COLUMNS} FROM users WHERE user_id = %s", (user_id,))
            row = cur.fetchone()
        return _times(row) if row else None

    def remove_user(self, username: str) -> bool:
        with self.db.cursor() as cur:
            cur.execute("DELETE FROM users WHERE username = %s", (check_username(username),))
            return cur.rowcount == 1

    def set_password(self, username: str, password: str) -> bool:
        """New password; every session of the user ends (the session epoch moves on)."""
        encoded = hash_password(check_password(password))
        with self.db.cursor() as cur:
            cur.execute("UPDATE users SET password_hash = %s, session_epoch = session_epoch + 1 "
                        "WHERE username = %s", (encoded, check_username(username)))
            return cur.rowcount == 1

    def record_login(self, user_id: int, rehashed: Optional[str] = None) -> None:
        with self.db.cursor() as cur:
            cur.execute("UPDATE users SET last_login_at = now(), password_hash = COALESCE(%s, password_hash) "
                        "WHERE user_id = %s", (rehashed, user_id))

    # --- tokens ------------------------------------------------------------------------------
    def create_token(self, name: str, role: str, created_by: Optional[str] = None,
                     expires_at: Optional[float] = None) -> tuple[dict, str]:
        """A new token: (its row, the token itself — shown once, never stored)."""
        name = (name or "").strip()
        if not 1 <= len(name) <= 64:
            raise CredentialError("a token name has 1 to 64 characters")
        role = check_role(role)
        token: NewToken = mint_token()
        with self.db.cursor() as cur:
            cur.execute(f"""INSERT INTO api_tokens (name, token_hash, prefix, role, created_by, expires_at)
                            VALUES (%s, %s, %s, %s, %s, to_timestamp(%s)) RETURNING {TOKEN_COLUMNS}""",
                        (name, token.digest, token.prefix, role, created_by, expires_at))
            return _times(cur.fetchone()), token.plain

    def tokens(self) -> list[dict]:
        with self.db.cursor() as cur:
            cur.execute(f"SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY token_id")
            return [_times(r) for r in cur.fetchall()]

    def revoke_token(self, token_id: int) -> bool:
        with self.db.cursor() as cur:
            cur.execute("UPDATE api_tokens SET revoked_at = now() WHERE token_id = %s AND revoked_at IS NULL",
                        (token_id,))
            return cur.rowcount == 1

    def active_token(self, digest: str) -> Optional[dict]:
        """The unrevoked, unexpired token with this SHA-256, ``expires_ts``; notes its use."""
        with self.db.cursor() as cur:
            cur.execute(f"""UPDATE api_tokens SET last_used_at = now()
                            WHERE token_hash = %s AND (last_used_at IS NULL
                                                       OR last_used_at < now() - interval '{LAST_USED_EVERY}')
                              AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())""",
                        (digest,))
            cur.execute(f"""SELECT {TOKEN_COLUMNS}, extract(epoch FROM expires_at)::float8 AS expires_ts
                            FROM api_tokens WHERE token_hash = %s AND revoked_at IS NULL
                              AND (expires_at IS NULL OR expires_at > now())""", (digest,))
            row = cur.fetchone()
        return _times(row) if row else None


def _times(row: dict) -> dict:
    out = dict(row)
    for key in ("created_at", "last_login_at", "expires_at", "last_used_at", "revoked_at"):
        if key in out:
            out[key] = iso(out[key])
    return out
