"""The alert lifecycle in PostgreSQL (migration 007): snoozes, notes, and the audit trail of who did what.

Every change a person makes is written with its audit row in the same transaction.  ``db`` is a
``pipeline.history.Pool`` (the web app's reader, the alert engine's status store).
"""
from __future__ import annotations

import logging
from typing import Optional

from pipeline.history import iso
from pipeline.snooze import Snooze, SnoozeRequest

logger = logging.getLogger(__name__)
SNOOZE_COLUMNS = ("snooze_id, alert_type, symbol, source, starts_at, ends_at, created_by, comment, "
                  "created_at, deleted_at, deleted_by")
SNOOZED_COUNT = "(SELECT count(*) FROM alerts a WHERE a.snooze_id = s.snooze_id)::int AS snoozed"
_STATE_SQL = {
    "active": "deleted_at IS NULL AND starts_at <= now() AND ends_at > now()",
    "pending": "deleted_at IS NULL AND starts_at > now()",
    "ended": "(deleted_at IS NOT NULL OR ends_at <= now())",
    "all": "true",
}


class AlertLifecycle:
    def __init__(self, db):
        self.db = db

    # --- snoozes -----------------------------------------------------------------------------------
    def active_snoozes(self) -> list[Snooze]:
        """Snoozes not deleted and not over yet (pending ones too: the engine checks their start)."""
        with self.db.cursor() as cur:
            cur.execute("""SELECT snooze_id, alert_type, symbol, source,
                                  extract(epoch FROM starts_at)::float8 AS s,
                                  extract(epoch FROM ends_at)::float8 AS e
                             FROM alert_snoozes WHERE deleted_at IS NULL AND ends_at > now()""")
            return [Snooze(r["snooze_id"], r["alert_type"], r["symbol"], r["source"], r["s"], r["e"])
                    for r in cur.fetchall()]

    def snoozes(self, state: str = "active", limit: int = 100) -> list[dict]:
        with self.db.cursor() as cur:
            cur.execute(f"""SELECT {SNOOZE_COLUMNS}, {_state_case()} AS state, {SNOOZED_COUNT}
                              FROM alert_snoozes s WHERE {_STATE_SQL[state]}
                             ORDER BY snooze_id DESC LIMIT %s""", (limit,))
            return [_snooze(r) for r in cur.fetchall()]

    def snooze(self, snooze_id: int) -> Optional[dict]:
        with self.db.cursor() as cur:
            cur.execute(f"""SELECT {SNOOZE_COLUMNS}, {_state_case()} AS state, {SNOOZED_COUNT}
                              FROM alert_snoozes s WHERE snooze_id = %s""", (snooze_id,))
            row = cur.fetchone()
        return _snooze(row) if row else None

    def create_snooze(self, req: SnoozeRequest, by: str) -> dict:
        with self.db.cursor() as cur:
            cur.execute("""INSERT INTO alert_snoozes (alert_type, symbol, source, starts_at, ends_at,
                                                      created_by, comment)
                           VALUES (%s, %s, %s, to_timestamp(%s), to_timestamp(%s), %s, %s)
                           RETURNING snooze_id""",
                        (req.alert_type, req.symbol, req.source, req.starts_at, req.ends_at, by, req.comment))
            snooze_id = cur.fetchone()["snooze_id"]
            cur.execute("INSERT INTO alert_audit (actor, action, snooze_id, detail) "
                        "VALUES (%s, 'snooze_create', %s, %s)", (by, snooze_id, describe(req)))
        return self.snooze(snooze_id)

    def delete_snooze(self, snooze_id: int, by: str) -> tuple[Optional[dict], bool]:
        """(the snooze, whether this call ended it): an ended snooze stays as it was."""
        with self.db.cursor() as cur:
            cur.execute("""UPDATE alert_snoozes SET deleted_at = now(), deleted_by = %s
                            WHERE snooze_id = %s AND deleted_at IS NULL AND ends_at > now()""",
                        (by, snooze_id))
            ended = cur.rowcount == 1
            if ended:
                cur.execute("INSERT INTO alert_audit (actor, action, snooze_id, detail) "
                            "VALUES (%s, 'snooze_delete', %s, 'ended early')", (by, snooze_id))
        return self.snooze(snooze_id), ended

    # --- notes ---------------------------------------------------------------------------------------
    def add_note(self, alert_id: str, body: str, by: str) -> Optional[dict]:
        """The note written on the alert, or None when there is no such alert."""
        with self.db.cursor() as cur:
            cur.execute("""INSERT INTO alert_notes (alert_id, author, body)
                           SELECT alert_id, %s, %s FROM alerts WHERE alert_id = %s
                           RETURNING note_id, alert_id, author, body, created_at""", (by, body, alert_id))
            row = cur.fetchone()
            if row is None:
                return None
            cur.execute("INSERT INTO alert_audit (actor, action, alert_id, detail) "
                        "VALUES (%s, 'note', %s, %s)", (by, alert_id, body[:200]))
        return _times(row, "created_at")

    def notes(self, alert_id: str) -> list[dict]:
        with self.db.cursor() as cur:
            cur.execute("SELECT note_id, alert_id, author, body, created_at FROM alert_notes "
                        "WHERE alert_id = %s ORDER BY created_at, note_id", (alert_id,))
            return [_times(r, "created_at") for r in cur.fetchall()]

    # --- the audit trail --------------------------------------------------------------------------
    def audit(self, alert_id: Optional[str] = None, snooze_id: Optional[int] = None, limit: int = 100,
              actor: Optional[str] = None) -> list[dict]:
        """Who did what and when, newest first (snooze expiries by "system")."""
        with self.db.cursor() as cur:
            cur.execute("""SELECT event_id, at, actor, action, alert_id, snooze_id, detail
                             FROM alert_audit_trail
                            WHERE (%s::text IS NULL OR alert_id = %s
                                   OR snooze_id = (SELECT snooze_id FROM alerts WHERE alert_id = %s))
                              AND (%s::bigint IS NULL OR snooze_id = %s)
                              AND (%s::text IS NULL OR actor = %s)
                            ORDER BY at DESC, event_id DESC NULLS LAST LIMIT %s""",
                        (alert_id, alert_id, alert_id, snooze_id, snooze_id, actor, actor, limit))
            return [_times(r, "at") for r in cur.fetchall()]


def describe(req: SnoozeRequest) -> str:
    """'VOLUME_SPIKE on BTC-USD until 2026-...: <comment>' — the audit line of a new snooze."""
    from pipeline.events import iso as iso_ts

    what = " ".join(filter(None, (req.alert_type or "any alert", f"on {req.symbol}" if req.symbol else "",
                                  f"from {req.source}" if req.source else "")))
    return f"{what} until {iso_ts(req.ends_at)}: {req.comment}"[:1000]


def _state_case() -> str:
    return ("CASE WHEN deleted_at IS NOT NULL THEN 'deleted' WHEN ends_at <= now() THEN 'expired' "
            "WHEN starts_at > now() THEN 'pending' ELSE 'active' END")


def _times(row: dict, *keys: str) -> dict:
    r = dict(row)
    for k in keys:
        r[k] = iso(r[k])
    return r


def _snooze(row: dict) -> dict:
    return _times(row, "starts_at", "ends_at", "created_at", "deleted_at")
