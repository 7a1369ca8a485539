"""PostgreSQL history: the processor's transactional flush and the queries the web app runs.

``HistoryWriter.flush`` writes one checkpoint in one transaction: trades (bulk COPY through a
staging table, ``ON CONFLICT DO NOTHING`` on the trade id), finalized candles, alerts, outbox
messages and the per-partition offsets + state.  Either all of it is durable or none of it is,
so a crash at any point leaves PostgreSQL at the previous checkpoint.
"""
from __future__ import annotations

import io
import logging
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterable, Iterator, Optional, Sequence

import psycopg2
import psycopg2.extras
import psycopg2.pool

from pipeline.events import Alert, Candle, Trade

logger = logging.getLogger(__name__)
UTC = timezone.utc

STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS trades_stage (
    trade_id text, symbol text, price float8, quantity float8, side text, exchange text,
    trader_id text, sequence bigint, ts float8, late boolean
) ON COMMIT DELETE ROWS
"""
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def connect(url: str):
    conn = psycopg2.connect(url, connect_timeout=10, application_name="stockit")
    return conn


def _text(value: Optional[str]) -> str:
    if value is None:
        return "\\N"
    return value.translate(_ESCAPES) if ("\\" in value or "\t" in value or "\n" in value or "\r" in value) else value


def trades_copy_buffer(rows: Iterable[tuple[Trade, bool]]) -> io.StringIO:
    """COPY text of (trade, late) rows for the staging table."""
    lines = []
    append = lines.append
    null = "\\N"
    for t, late in rows:
        seq = null if t.sequence is None else t.sequence
        append(f"{_text(t.trade_id)}\t{t.symbol}\t{t.price!r}\t{t.quantity!r}\t{t.side}\t{_text(t.exchange)}\t"
               f"{_text(t.trader_id)}\t{seq}\t{t.ts!r}\t{'t' if late else 'f'}\n")
    return io.StringIO("".join(lines))


def _month(ts: float) -> tuple[float, float]:
    d = datetime.fromtimestamp(ts, UTC)
    start = datetime(d.year, d.month, 1, tzinfo=UTC)
    end = datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=UTC)
    return start.timestamp(), end.timestamp()


class HistoryWriter:
    """The processor's side of PostgreSQL. One connection, one transaction per flush."""

    def __init__(self, url: str):
        self.url = url
        self.conn = connect(url)
        self._months: list[tuple[float, float]] = []  # month ranges known to have a partition
        with self.conn, self.conn.cursor() as cur:
            cur.execute(STAGE_DDL)

    def close(self) -> None:
        self.conn.close()

    def _needs_partitions(self, trades: Sequence[tuple[Trade, bool]]) -> bool:
        months = self._months
        for t, _ in trades:
            ts = t.ts
            for lo, hi in months:
                if lo <= ts < hi:
                    break
            else:
                return True
        return False

    def flush(self, *, trades: Sequence[tuple[Trade, bool]], candles: Sequence[Candle], alerts: Sequence[Alert],
              outbox: Sequence[tuple[str, Optional[bytes], bytes]], checkpoints: Sequence[tuple[str, str, int, int, bytes]]
              ) -> list[int]:
        """Write everything in one transaction; returns the outbox ids to publish then delete."""
        conn = self.conn
        try:
            with conn.cursor() as cur:
                if trades:
                    cur.copy_expert("COPY trades_stage FROM STDIN", trades_copy_buffer(trades))
                    if self._needs_partitions(trades):
                        cur.execute("""SELECT stockit_ensure_trade_partitions(ARRAY(
                                           SELECT DISTINCT date_trunc('month', to_timestamp(ts) AT TIME ZONE 'UTC')
                                                  AT TIME ZONE 'UTC' FROM trades_stage))""")
                        cur.execute("SELECT DISTINCT extract(epoch FROM date_trunc('month', to_timestamp(ts) "
                                    "AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')::float8 FROM trades_stage")
                        for (start,) in cur.fetchall():
                            rng = _month(start + 1)
                            if rng not in self._months:
                                self._months.append(rng)
                        self._months.sort(key=lambda r: -r[0])  # newest month first: the common case
                    cur.execute("""INSERT INTO trades (trade_id, symbol, price, quantity, side, exchange, trader_id,
                                                       sequence, ts, late)
                                   SELECT trade_id, symbol, price, quantity, side, exchange, trader_id, sequence,
                                          to_timestamp(ts), late FROM trades_stage
                                   ON CONFLICT DO NOTHING""")
                if candles:
                    psycopg2.extras.execute_values(cur, """
                        INSERT INTO candles (symbol, window_seconds, window_start, window_end, open, high, low, close,
                                             volume, vwap, trade_count, buy_volume, sell_volume)
                        VALUES %s ON CONFLICT DO NOTHING""",
                        [(c.symbol, c.window_seconds, c.window_start, c.window_end, c.open, c.high, c.low, c.close,
                          c.volume, c.vwap, c.trade_count, c.buy_volume, c.sell_volume) for c in candles],
                        template="(%s, %s, to_timestamp(%s), to_timestamp(%s), %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        page_size=1000)
                if alerts:
                    psycopg2.extras.execute_values(cur, """
                        INSERT INTO alerts (alert_id, alert_type, severity, symbol, price, reference, deviation,
                                            trade_id, ts, message, side, quantity)
                        VALUES %s ON CONFLICT DO NOTHING""",
                        [(a.alert_id, a.alert_type, a.severity, a.symbol, a.price, a.reference, a.deviation,
                          a.trade_id, a.ts, a.message, a.side, a.quantity) for a in alerts],
                        template="(%s, %s, %s, %s, %s, %s, %s, %s, to_timestamp(%s), %s, %s, %s)", page_size=1000)
                ids: list[int] = []
                if outbox:
                    ids = [r[0] for r in psycopg2.extras.execute_values(
                        cur, "INSERT INTO outbox (topic, key, value) VALUES %s RETURNING id",
                        [(t, k, v) for t, k, v in outbox], fetch=True, page_size=1000)]
                if checkpoints:
                    psycopg2.extras.execute_values(cur, """
                        INSERT INTO processor_checkpoints (group_id, topic, partition, next_offset, state)
                        VALUES %s ON CONFLICT (group_id, topic, partition) DO UPDATE
                        SET next_offset = EXCLUDED.next_offset, state = EXCLUDED.state, updated_at = now()""",
                        [(g, t, p, o, psycopg2.Binary(s)) for g, t, p, o, s in checkpoints])
            conn.commit()
            return ids
        except Exception:
            conn.rollback()
            raise

    def load_checkpoints(self, group_id: str, topic: str, partitions: Iterable[int]) -> dict[int, tuple[int, bytes]]:
        with self.conn, self.conn.cursor() as cur:
            cur.execute("SELECT partition, next_offset, state FROM processor_checkpoints "
                        "WHERE group_id = %s AND topic = %s AND partition = ANY(%s)",
                        (group_id, topic, list(partitions)))
            return {p: (o, bytes(s)) for p, o, s in cur.fetchall()}

    def pending_outbox(self, limit: int = 10000) -> list[tuple[int, str, Optional[bytes], bytes]]:
        with self.conn, self.conn.cursor() as cur:
            cur.execute("SELECT id, topic, key, value FROM outbox ORDER BY id LIMIT %s", (limit,))
            return [(i, t, bytes(k) if k is not None else None, bytes(v)) for i, t, k, v in cur.fetchall()]

    def delete_outbox(self, ids: Sequence[int]) -> None:
        if ids:
            with self.conn, self.conn.cursor() as cur:
                cur.execute("DELETE FROM outbox WHERE id = ANY(%s)", (list(ids),))


# ------------------------------------------------------------------------------------------------
# Read side (web app, API, alert engine)
# ------------------------------------------------------------------------------------------------

def _iso(value) -> Optional[str]:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class History:
    """Queries over PostgreSQL through a small thread-safe pool. Returns JSON-able dicts."""

    def __init__(self, url: str, maxconn: int = 8):
        self.url = url
        self.pool = psycopg2.pool.ThreadedConnectionPool(1, maxconn, url, connect_timeout=5,
                                                         application_name="stockit-web")

    def close(self) -> None:
        self.pool.closeall()

    @contextmanager
    def cursor(self) -> Iterator[psycopg2.extras.RealDictCursor]:
        conn = self.pool.getconn()
        try:
            with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                yield cur
        except psycopg2.OperationalError:
            self.pool.putconn(conn, close=True)
            conn = None
            raise
        finally:
            if conn is not None:
                self.pool.putconn(conn)

    def candles(self, symbol: str, window_seconds: int, limit: int = 120, start: Optional[float] = None,
                end: Optional[float] = None) -> list[dict]:
        """Finalized candles, oldest first (the newest ``limit`` in range)."""
        with self.cursor() as cur:
            cur.execute("""
                SELECT * FROM (
                    SELECT symbol, window_seconds, window_start, window_end, open, high, low, close, volume, vwap,
                           trade_count, buy_volume, sell_volume
                    FROM candles WHERE symbol = %s AND window_seconds = %s
                      AND (%s::float8 IS NULL OR window_start >= to_timestamp(%s))
                      AND (%s::float8 IS NULL OR window_start < to_timestamp(%s))
                    ORDER BY window_start DESC LIMIT %s) c ORDER BY window_start""",
                        (symbol, window_seconds, start, start, end, end, limit))
            rows = cur.fetchall()
        for r in rows:
            r["window_start"], r["window_end"] = _iso(r["window_start"]), _iso(r["window_end"])
        return rows

    def trades(self, symbol: Optional[str] = None, start: Optional[float] = None, end: Optional[float] = None,
               limit: int = 100) -> list[dict]:
        """Trades newest first."""
        with self.cursor() as cur:
            cur.execute("""
                SELECT trade_id, symbol, price, quantity, side, exchange, trader_id, sequence, ts AS timestamp, late
                FROM trades
                WHERE (%s::text IS NULL OR symbol = %s)
                  AND (%s::float8 IS NULL OR ts >= to_timestamp(%s))
                  AND (%s::float8 IS NULL OR ts < to_timestamp(%s))
                ORDER BY ts DESC LIMIT %s""", (symbol, symbol, start, start, end, end, limit))
            rows = cur.fetchall()
        for r in rows:
            r["timestamp"] = _iso(r["timestamp"])
        return rows

    ALERT_COLUMNS = ("alert_id, alert_type, severity, symbol, price, reference, deviation, trade_id, ts, message, "
                     "side, quantity, status, delivery_status, delivery_attempts, delivered_at, last_error, "
                     "acknowledged, acknowledged_at, acknowledged_by")

    def alerts(self, *, unacked_only: bool = False, severities: Sequence[str] = (), types: Sequence[str] = (),
               symbol: Optional[str] = None, limit: int = 100, since: Optional[float] = None) -> list[dict]:
        """Alerts newest first, filtered."""
        with self.cursor() as cur:
            cur.execute(f"""
                SELECT {self.ALERT_COLUMNS} FROM alerts
                WHERE (NOT %s OR NOT acknowledged)
                  AND (cardinality(%s::text[]) = 0 OR severity = ANY(%s::text[]))
                  AND (cardinality(%s::text[]) = 0 OR alert_type = ANY(%s::text[]))
                  AND (%s::text IS NULL OR symbol = %s)
                  AND (%s::float8 IS NULL OR ts >= to_timestamp(%s))
                ORDER BY ts DESC, alert_id LIMIT %s""",
                        (unacked_only, list(severities), list(severities), list(types), list(types), symbol, symbol,
                         since, since, limit))
            rows = cur.fetchall()
        return [_alert_row(r) for r in rows]

    def alert(self, alert_id: str) -> Optional[dict]:
        with self.cursor() as cur:
            cur.execute(f"SELECT {self.ALERT_COLUMNS} FROM alerts WHERE alert_id = %s", (alert_id,))
            row = cur.fetchone()
        return _alert_row(row) if row else None

    def acknowledge(self, alert_id: str, by: str = "analyst") -> Optional[dict]:
        """Mark acknowledged (idempotent: the first acknowledgement's time and author stay)."""
        with self.cursor() as cur:
            cur.execute("""UPDATE alerts SET acknowledged = true,
                                  acknowledged_at = COALESCE(acknowledged_at, now()),
                                  acknowledged_by = COALESCE(acknowledged_by, %s)
                           WHERE alert_id = %s""", (by, alert_id))
            if cur.rowcount == 0:
                return None
        return self.alert(alert_id)

    def set_alert_status(self, alert_id: str, status: str, delivery_status: Optional[str] = None,
                         attempts: int = 0, error: Optional[str] = None) -> None:
        with self.cursor() as cur:
            cur.execute("""UPDATE alerts SET status = %s, delivery_status = COALESCE(%s, delivery_status),
                                  delivery_attempts = delivery_attempts + %s, last_error = %s,
                                  delivered_at = CASE WHEN %s = 'delivered' THEN now() ELSE delivered_at END
                           WHERE alert_id = %s""", (status, delivery_status, attempts, error, delivery_status,
                                                     alert_id))

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
    r["timestamp"] = _iso(r.pop("ts"))
    r["delivered_at"] = _iso(r["delivered_at"])
    r["acknowledged_at"] = _iso(r["acknowledged_at"])
    return r
