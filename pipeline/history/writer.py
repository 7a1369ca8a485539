"""The processor's side of PostgreSQL: one checkpoint, one transaction.

``HistoryWriter.flush`` writes one checkpoint in one transaction: trades (bulk COPY through a
staging table, ``ON CONFLICT DO NOTHING`` on the trade id), finalized candles, alerts, outbox
messages and the per-partition offsets + state.  Either all of it is durable or none of it is,
so a crash at any point leaves PostgreSQL at the previous checkpoint.
"""
from __future__ import annotations

import io
import logging
from datetime import datetime, timezone
from typing import Iterable, Optional, Sequence

import psycopg2
import psycopg2.extras

from pipeline.events import Alert, Candle, Trade
from pipeline.history import connect

logger = logging.getLogger(__name__)
UTC = timezone.utc

STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS trades_stage (
    trade_id text, symbol text, price float8, quantity float8, side text, exchange text,
    trader_id text, sequence bigint, ts float8, late boolean
) ON COMMIT DELETE ROWS
"""
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


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
        self.conn = connect(url, "stockit-processor")
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
