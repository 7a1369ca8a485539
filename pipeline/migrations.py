"""Versioned, idempotent schema migrations from ``sql/NNN_name.sql`` (``stockit db migrate``).

Each file runs once, in its own transaction, under an advisory lock so concurrent workers cannot
race; its checksum is recorded, and a file changed after it was applied is reported, not re-run.
"""
from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import psycopg2

logger = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
_LOCK_ID = 0x570C4171
_NAME = re.compile(r"^(\d{3})_[\w-]+\.sql$")


def migration_files(sql_dir: Path = SQL_DIR) -> list[tuple[int, Path]]:
    files = []
    for path in sorted(sql_dir.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise ValueError(f"migration file {path.name} does not match NNN_name.sql")
        files.append((int(m.group(1)), path))
    return files


def migrate(database_url: str, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations; returns the names applied now."""
    applied_now = []
    conn = psycopg2.connect(database_url, connect_timeout=10, application_name="stockit-migrate")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
            cur.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
                               version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                               applied_at timestamptz NOT NULL DEFAULT now())""")
            cur.execute("SELECT version, checksum FROM schema_migrations")
            done = dict(cur.fetchall())
        for version, path in migration_files(sql_dir):
            text = path.read_text()
            checksum = hashlib.sha256(text.encode()).hexdigest()
            if version in done:
                if done[version] != checksum:
                    logger.warning("migration %s changed after it was applied; not re-run", path.name)
                continue
            conn.autocommit = False
            with conn.cursor() as cur:
                cur.execute(text)
                cur.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                            (version, path.name, checksum))
            conn.commit()
            conn.autocommit = True
            applied_now.append(path.name)
            logger.info("applied migration %s", path.name)
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    finally:
        conn.close()
    return applied_now


def apply_retention(database_url: str, days: int) -> int:
    """Run the retention job; returns the number of trade partitions dropped."""
    conn = psycopg2.connect(database_url, connect_timeout=10)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT stockit_apply_retention(%s)", (days,))
            dropped = cur.fetchone()[0]
            cur.execute("SELECT stockit_apply_analysis_retention(%s)", (days,))  # dead letters, backtests
            return dropped
    finally:
        conn.close()
