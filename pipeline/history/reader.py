"""The web app's side of PostgreSQL: history queries and acknowledgements, as JSON-able dicts.

Candles are always of one source (a replay's and the live feed's candles of a symbol would otherwise
interleave); trades and alerts are of every source unless one is asked for, and carry theirs.
"""
from __future__ import annotations

from typing import Optional, Sequence

from pipeline.events import DEFAULT_SOURCE
from pipeline.history import Pool, iso

# Distinct values of a leading index column without reading every row (a loose index scan): the sources of
# candles (their key) and of alerts (alerts_source_ts_idx).
_DISTINCT_SOURCES = " UNION ".join(f"""(
WITH RECURSIVE s AS (
    (SELECT source FROM {table} ORDER BY source LIMIT 1)
    UNION ALL
    SELECT (SELECT t.source FROM {table} t WHERE t.source > s.source ORDER BY t.source LIMIT 1) FROM s
     WHERE s.source IS NOT NULL)
SELECT source FROM s WHERE source IS NOT NULL)""" for table in ("candles", "alerts"))
_DISTINCT_SYMBOLS = """
WITH RECURSIVE s AS (
    (SELECT symbol FROM candles WHERE source = %(source)s ORDER BY symbol LIMIT 1)
    UNION ALL
    SELECT (SELECT c.symbol FROM candles c WHERE c.source = %(source)s AND c.symbol > s.symbol
             ORDER BY c.symbol LIMIT 1) FROM s
     WHERE s.symbol IS NOT NULL)
SELECT symbol FROM s WHERE symbol IS NOT NULL"""


class HistoryReader(Pool):
    """Queries over PostgreSQL through a small thread-safe pool. Returns JSON-able dicts."""

    def __init__(self, url: str, maxconn: int = 8):
        super().__init__(url, maxconn, "stockit-web")

    def candles(self, symbol: str, window_seconds: int, limit: int = 120, start: Optional[float] = None,
                end: Optional[float] = None, source: str = DEFAULT_SOURCE) -> list[dict]:
        """Finalized candles of one source, oldest first (the newest ``limit`` in range)."""
        with self.cursor() as cur:
            cur.execute("""
                SELECT * FROM (
                    SELECT symbol, window_seconds, window_start, window_end, open, high, low, close, volume, vwap,
                           trade_count, buy_volume, sell_volume, source
                    FROM candles WHERE source = %s AND symbol = %s AND window_seconds = %s
                      AND (%s::float8 IS NULL OR window_start >= to_timestamp(%s))
                      AND (%s::float8 IS NULL OR window_start < to_timestamp(%s))
                    ORDER BY window_start DESC LIMIT %s) c ORDER BY window_start""",
                        (source, symbol, window_seconds, start, start, end, end, limit))
            rows = cur.fetchall()
        for r in rows:
            r["window_start"], r["window_end"] = iso(r["window_start"]), iso(r["window_end"])
        return rows

    def trades(self, symbol: Optional[str] = None, start: Optional[float] = None, end: Optional[float] = None,
               limit: int = 100, source: Optional[str] = None) -> list[dict]:
        """Trades newest first (by event time, then by id: one order however many share a time), of every
        source unless ``source``."""
        with self.cursor() as cur:
            cur.execute("""
                SELECT trade_id, symbol, price, quantity, side, exchange, trader_id, sequence,
                       ts AS timestamp, late, source
                FROM trades
                WHERE (%s::text IS NULL OR symbol = %s)
                  AND (%s::text IS NULL OR source = %s)
                  AND (%s::float8 IS NULL OR ts >= to_timestamp(%s))
                  AND (%s::float8 IS NULL OR ts < to_timestamp(%s))
                ORDER BY ts DESC, trade_id COLLATE "C" DESC LIMIT %s""",
                        (symbol, symbol, source, source, start, start, end, end, limit))
            rows = cur.fetchall()
        for r in rows:
            r["timestamp"] = iso(r["timestamp"])
        return rows

    ALERT_COLUMNS = ("alert_id, alert_type, severity, symbol, price, reference, deviation, trade_id, ts, message, "
                     "side, quantity, status, delivery_status, delivery_attempts, delivered_at, last_error, "
                     "acknowledged, acknowledged_at, acknowledged_by, source, snooze_id, "
                     "(SELECT count(*) FROM alert_notes n WHERE n.alert_id = alerts.alert_id)::int AS notes")

    def alerts(self, *, unacked_only: bool = False, severities: Sequence[str] = (), types: Sequence[str] = (),
               symbol: Optional[str] = None, limit: int = 100, since: Optional[float] = None,
               source: Optional[str] = None) -> list[dict]:
        """Alerts newest first, filtered (of every source unless ``source``)."""
        with self.cursor() as cur:
            cur.execute(f"""
                SELECT {self.ALERT_COLUMNS} FROM alerts
                WHERE (NOT %s OR NOT acknowledged)
                  AND (cardinality(%s::text[]) = 0 OR severity = ANY(%s::text[]))
                  AND (cardinality(%s::text[]) = 0 OR alert_type = ANY(%s::text[]))
                  AND (%s::text IS NULL OR symbol = %s)
                  AND (%s::text IS NULL OR source = %s)
                  AND (%s::float8 IS NULL OR ts >= to_timestamp(%s))
                ORDER BY ts DESC, alert_id LIMIT %s""",
                        (unacked_only, list(severities), list(severities), list(types), list(types), symbol, symbol,
                         source, source, since, since, limit))
            rows = cur.fetchall()
        return [_alert_row(r) for r in rows]

    def alert(self, alert_id: str) -> Optional[dict]:
        with self.cursor() as cur:
            cur.execute(f"SELECT {self.ALERT_COLUMNS} FROM alerts WHERE alert_id = %s", (alert_id,))
            row = cur.fetchone()
        return _alert_row(row) if row else None

    def acknowledge(self, alert_id: str, by: str = "analyst") -> Optional[dict]:
        """Mark acknowledged (idempotent: the first acknowledgement's time and author stay, and only it is
        written to the audit trail)."""
        with self.cursor() as cur:
            cur.execute("""WITH acked AS (
                               UPDATE alerts SET acknowledged = true, acknowledged_at = now(),
                                      acknowledged_by = %s
                                WHERE alert_id = %s AND NOT acknowledged RETURNING alert_id)
                           INSERT INTO alert_audit (actor, action, alert_id)
                           SELECT %s, 'ack', alert_id FROM acked""",
                        (by, alert_id, by))
        return self.alert(alert_id)

    def sources(self) -> list[str]:
        """The sources that have stored candles or alerts, sorted."""
        with self.cursor() as cur:
            cur.execute(_DISTINCT_SOURCES)
            return sorted(r["source"] for r in cur.fetchall())

    def symbols(self, source: str) -> list[str]:
        """The symbols with stored candles of ``source``, sorted."""
        with self.cursor() as cur:
            cur.execute(_DISTINCT_SYMBOLS, {"source": source})
            return [r["symbol"] for r in cur.fetchall()]

    def counts(self) -> dict[str, int]:
        with self.cursor() as cur:
            cur.execute("SELECT (SELECT count(*) FROM alerts) AS alerts, "
                        "(SELECT count(*) FROM alerts WHERE NOT acknowledged) AS unacked, "
                        "(SELECT count(*) FROM candles) AS candles")
            return dict(cur.fetchone())

    def ping(self) -> bool:
        with self.cursor() as cur:
            cur.execute("SELECT 1")
            return cur.fetchone() is not None


def _alert_row(r: dict) -> dict:
    r = dict(r)
    r["timestamp"] = iso(r.pop("ts"))
    r["delivered_at"] = iso(r["delivered_at"])
    r["acknowledged_at"] = iso(r["acknowledged_at"])
    return r
