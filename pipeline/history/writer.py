"""The processor's side of PostgreSQL: the SQL of checkpoints, claims and the outbox.

:class:`HistoryWriter` holds one connection and the statements; the protocol that combines them
(one fenced transaction per checkpoint) lives in ``pipeline.checkpoint``.  Trades go in by bulk
COPY through a staging table, ``ON CONFLICT DO NOTHING`` on the trade id.  Every call is bounded
in time: a server that does not answer within ``timeout`` seconds (frozen, unreachable) has its
socket shut down, so the call fails with an ``OperationalError`` instead of hanging.
"""
from __future__ import annotations

import io
import logging
import os
import socket
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator, Optional, Sequence

import msgspec
import numpy as np
import orjson
import psycopg2
import psycopg2.errors
import psycopg2.extras

from pipeline.events import Alert, Candle, Trade
from pipeline.history import connect
from pipeline.history.trade_copy import COPY_COLUMNS, binary_copy
from pipeline.trade_batch import TradeRows

logger = logging.getLogger(__name__)
UTC = timezone.utc

STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS trades_stage (
    price float8, quantity float8, ts timestamptz, late boolean, sequence bigint, trade_id text, symbol text,
    side text, exchange text, trader_id text, source text
) ON COMMIT DELETE ROWS
"""
_COLUMNS = ", ".join(COPY_COLUMNS)
COPY_CHUNK = 1 << 20  # bytes handed to the server per write


CANDLE_INSERT = """INSERT INTO candles (symbol, window_seconds, window_start, window_end, open, high, low,
                                        close, volume, vwap, trade_count, buy_volume, sell_volume, source)
                   VALUES %s ON CONFLICT DO NOTHING"""
CANDLE_ROW = "(%s, %s, to_timestamp(%s), to_timestamp(%s), %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
ALERT_INSERT = """INSERT INTO alerts (alert_id, alert_type, severity, symbol, price, reference, deviation,
                                      trade_id, ts, message, side, quantity, source)
                  VALUES %s ON CONFLICT DO NOTHING"""
ALERT_ROW = "(%s, %s, %s, %s, %s, %s, %s, %s, to_timestamp(%s), %s, %s, %s, %s)"


class Claim(msgspec.Struct, frozen=True):
    """A partition taken over: the owner's new epoch and the checkpoint as of the takeover."""

    partition: int
    epoch: int
    next_offset: Optional[int]  # None: no checkpoint yet
    state: Optional[bytes]
    sources: dict[str, bytes] = {}  # trade source -> its state (migration 006)


def _month(ts: float) -> tuple[float, float]:
    d = datetime.fromtimestamp(ts, UTC)
    start = datetime(d.year, d.month, 1, tzinfo=UTC)
    end = datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=UTC)
    return start.timestamp(), end.timestamp()


class HistoryWriter:
    """The processor's side of PostgreSQL: one connection (opened on first use), bounded calls."""

    def __init__(self, url: str, timeout: float = 15.0, application_name: str = "stockit-processor"):
        self.url = url
        self.timeout = timeout
        self.application_name = application_name
        self._conn = None
        self._months: list[tuple[float, float]] = []  # month ranges known to have a partition
        self._conflicted = False  # the last direct COPY of trades met a row already stored

    # --- connection --------------------------------------------------------------------------
    @property
    def conn(self):
        if self._conn is None or self._conn.closed:
            ms = int(self.timeout * 1000)
            # keepalives: a vanished peer; statement_timeout: a stuck statement; idle-in-transaction: our
            # own process frozen mid-transaction must not hold checkpoint locks against the next owner.
            limits = f"-c statement_timeout={ms} -c idle_in_transaction_session_timeout={2 * ms}"
            self._conn = connect(self.url, self.application_name, timeout=self.timeout, keepalives=1,
                                 keepalives_idle=5, keepalives_interval=2, keepalives_count=3, options=limits)
            with self._conn, self._conn.cursor() as cur:
                cur.execute(STAGE_DDL)
        return self._conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[psycopg2.extensions.cursor]:
        """One transaction, committed on success, rolled back (connection dropped if broken) on error; a
        server that does not answer within ``timeout`` has the socket shut down under the blocked call."""
        conn = self.conn
        timer = threading.Timer(self.timeout, _shutdown_socket, (conn,))
        timer.daemon = True
        timer.start()
        try:
            with conn.cursor() as cur:
                yield cur
            conn.commit()
        except BaseException:
            try:
                conn.rollback()
            except psycopg2.Error:
                self.close()
            if conn.closed:
                self._conn = None
            raise
        finally:
            timer.cancel()

    # --- rows ----------------------------------------------------------------------------------
    def insert_trades(self, cur, trades: "Sequence[tuple[Trade, bool]] | TradeRows",
                      again: bool = False) -> None:
        """Store (trade, late) rows; a trade id already stored at the same time is skipped.

        Binary COPY straight into ``trades`` under a savepoint; when a row is already there (a trade
        published twice, a replay repeated) that COPY fails on the key and the rows go through the
        staging table with ``ON CONFLICT DO NOTHING`` instead, as they also do the flush after such a
        conflict and when ``again`` (more trades follow in this transaction: rows being isolated)."""
        cols, late = TradeRows.of(trades).columns()
        if not len(cols):
            return
        data = binary_copy(cols, late)
        self._ensure_partitions(cur, cols.ts)
        if not again and not self._conflicted:
            cur.execute("SAVEPOINT trades_direct")
            try:
                cur.copy_expert(f"COPY trades ({_COLUMNS}) FROM STDIN WITH (FORMAT binary)", io.BytesIO(data),
                                size=COPY_CHUNK)
                cur.execute("RELEASE SAVEPOINT trades_direct")
                return
            except psycopg2.errors.UniqueViolation:
                cur.execute("ROLLBACK TO SAVEPOINT trades_direct")
                self._conflicted = True
        else:
            self._conflicted = False  # the next flush tries the direct way again
        cur.copy_expert(f"COPY trades_stage ({_COLUMNS}) FROM STDIN WITH (FORMAT binary)", io.BytesIO(data),
                        size=COPY_CHUNK)
        cur.execute(f"INSERT INTO trades ({_COLUMNS}) SELECT {_COLUMNS} FROM trades_stage "
                    "ON CONFLICT DO NOTHING")
        if again:  # more trades follow in this transaction (the stage empties itself only on commit)
            cur.execute("DELETE FROM trades_stage")

    def _ensure_partitions(self, cur, ts: np.ndarray) -> None:
        """Create the monthly partitions of ``trades`` these event times need (once per month and process)."""
        low, high = float(ts.min()), float(ts.max())
        if any(lo <= low and high < hi for lo, hi in self._months):
            return
        months = {_month(float(day) * 86400.0) for day in np.unique(ts // 86400.0)}
        missing = sorted(m for m in months if m not in self._months)
        if missing:
            cur.execute("SELECT stockit_ensure_trade_partitions(%s::timestamptz[])",
                        ([datetime.fromtimestamp(lo, UTC) for lo, _ in missing],))
            self._months += missing
            self._months.sort(key=lambda r: -r[0])  # newest month first: the common case

    @staticmethod
    def insert_candles(cur, candles: Sequence[Candle]) -> None:
        rows = [(c.symbol, c.window_seconds, c.window_start, c.window_end, c.open, c.high, c.low, c.close,
                 c.volume, c.vwap, c.trade_count, c.buy_volume, c.sell_volume, c.source) for c in candles]
        psycopg2.extras.execute_values(cur, CANDLE_INSERT, rows, template=CANDLE_ROW, page_size=1000)

    @staticmethod
    def insert_alerts(cur, alerts: Sequence[Alert]) -> None:
        rows = [(a.alert_id, a.alert_type, a.severity, a.symbol, a.price, a.reference, a.deviation,
                 a.trade_id, a.ts, a.message, a.side, a.quantity, a.source) for a in alerts]
        psycopg2.extras.execute_values(cur, ALERT_INSERT, rows, template=ALERT_ROW, page_size=1000)

    @staticmethod
    def insert_dead_letters(cur, values: Sequence[bytes]) -> None:
        """Dead-letter messages (the JSON the dead-letter topic gets) as ``dead_letters`` rows."""
        def text(v, limit: int) -> Optional[str]:  # PostgreSQL text holds no NUL (a bad record's value may)
            return None if v is None else str(v)[:limit].replace("\x00", "\ufffd")

        rows = []
        for value in values:
            d = orjson.loads(value)
            rows.append((text(d.get("kind") or "unknown", 64), text(d.get("reason", ""), 2000),
                         text(d.get("topic") or "", 256), d.get("partition"), d.get("offset"),
                         text(d.get("key"), 64), text(d.get("source"), 64), text(d.get("value") or "", 2000)))
        if rows:
            psycopg2.extras.execute_values(cur, """INSERT INTO dead_letters (kind, reason, topic, partition,
                                                   "offset", symbol, source, value) VALUES %s""", rows)

    # --- checkpoints: claim and fenced save ------------------------------------------------------
    def claim(self, group_id: str, topic: str, partitions: Sequence[int]) -> dict[int, Claim]:
        """Take the partitions over: bump each one's epoch (creating its row if absent) and read its
        checkpoint with its sources' states, in one transaction (the bump waits for a checkpoint in
        flight, whose rows the reads then see)."""
        with self.transaction() as cur:
            psycopg2.extras.execute_values(cur, """
                INSERT INTO processor_checkpoints AS c (group_id, topic, partition, epoch) VALUES %s
                ON CONFLICT (group_id, topic, partition) DO UPDATE SET epoch = c.epoch + 1, updated_at = now()
                RETURNING partition, epoch, next_offset, state""",
                                           [(group_id, topic, p, 1) for p in sorted(partitions)])
            rows = cur.fetchall()
            cur.execute("SELECT partition, source, state FROM processor_source_checkpoints "
                        "WHERE group_id = %s AND topic = %s AND partition = ANY(%s)",
                        (group_id, topic, list(partitions)))
            sources: dict[int, dict[str, bytes]] = {}
            for p, name, state in cur.fetchall():
                sources.setdefault(p, {})[name] = bytes(state)
            return {p: Claim(p, e, o, None if s is None else bytes(s), sources.get(p, {}))
                    for p, e, o, s in rows}

    @staticmethod
    def lock_epochs(cur, group_id: str, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        """Current epochs, row-locked until the transaction ends (a claim waits for our commit)."""
        cur.execute("SELECT partition, epoch FROM processor_checkpoints WHERE group_id = %s AND topic = %s "
                    "AND partition = ANY(%s) ORDER BY partition FOR UPDATE",
                    (group_id, topic, list(partitions)))
        return dict(cur.fetchall())

    @staticmethod
    def save_checkpoint(cur, group_id: str, topic: str, partition: int, epoch: int, next_offset: int,
                        state: bytes) -> bool:
        """Save one checkpoint if ``epoch`` still owns the partition and the offset does not go back."""
        cur.execute("""UPDATE processor_checkpoints SET next_offset = %s, state = %s, updated_at = now()
                       WHERE group_id = %s AND topic = %s AND partition = %s AND epoch = %s
                         AND (next_offset IS NULL OR next_offset <= %s)""",
                    (next_offset, psycopg2.Binary(state), group_id, topic, partition, epoch, next_offset))
        return cur.rowcount == 1

    @staticmethod
    def save_source_checkpoints(cur, group_id: str, topic: str, partition: int,
                                states: dict[str, bytes]) -> None:
        """Save the states of a partition's trade sources; only inside the transaction that saved the
        partition's checkpoint, whose row lock and epoch check fence these rows too."""
        psycopg2.extras.execute_values(cur, """
            INSERT INTO processor_source_checkpoints (group_id, topic, partition, source, state) VALUES %s
            ON CONFLICT (group_id, topic, partition, source) DO UPDATE SET state = EXCLUDED.state,
                                                                           updated_at = now()""",
                                       [(group_id, topic, partition, name, psycopg2.Binary(state))
                                        for name, state in states.items()])

    # --- outbox ----------------------------------------------------------------------------------
    @staticmethod
    def insert_outbox(cur, group_id: Optional[str], topic: Optional[str],
                      messages: Sequence[tuple[Optional[int], str, Optional[bytes], bytes]]) -> None:
        """(source partition, topic, key, value) messages, published by the partition's owner."""
        psycopg2.extras.execute_values(
            cur, "INSERT INTO outbox (group_id, source_topic, source_partition, topic, key, value) VALUES %s",
            [(group_id, topic, p, t, k, v) for p, t, k, v in messages], page_size=1000)

    def pending_outbox(self, group_id: str, topic: str, partition: int, after: int, limit: int = 5000
                       ) -> list[tuple[int, str, Optional[bytes], bytes]]:
        """Outbox rows of one input partition with id > ``after``, oldest first."""
        with self.transaction() as cur:
            cur.execute("SELECT id, topic, key, value FROM outbox WHERE group_id = %s AND source_topic = %s "
                        "AND source_partition = %s AND id > %s ORDER BY id LIMIT %s",
                        (group_id, topic, partition, after, limit))
            return [(i, t, None if k is None else bytes(k), bytes(v)) for i, t, k, v in cur.fetchall()]

    def delete_outbox(self, group_id: str, topic: str, partition: int, through: int, epoch: int) -> int:
        """Delete the partition's rows up to ``through`` (published), if ``epoch`` still owns it."""
        with self.transaction() as cur:
            cur.execute("""DELETE FROM outbox WHERE group_id = %s AND source_topic = %s
                             AND source_partition = %s AND id <= %s
                             AND EXISTS (SELECT 1 FROM processor_checkpoints WHERE group_id = %s
                                         AND topic = %s AND partition = %s AND epoch = %s)""",
                        (group_id, topic, partition, through, group_id, topic, partition, epoch))
            return cur.rowcount

    def epoch(self, group_id: str, topic: str, partition: int) -> Optional[int]:
        with self.transaction() as cur:
            cur.execute("SELECT epoch FROM processor_checkpoints WHERE group_id = %s AND topic = %s "
                        "AND partition = %s", (group_id, topic, partition))
            row = cur.fetchone()
            return None if row is None else row[0]

    def unowned_outbox(self, limit: int = 10000) -> list[tuple[int, str, Optional[bytes], bytes]]:
        """Rows written before migration 003 (no source partition)."""
        with self.transaction() as cur:
            cur.execute("SELECT id, topic, key, value FROM outbox WHERE source_partition IS NULL ORDER BY id "
                        "LIMIT %s", (limit,))
            return [(i, t, None if k is None else bytes(k), bytes(v)) for i, t, k, v in cur.fetchall()]

    def delete_outbox_ids(self, ids: Sequence[int]) -> None:
        if ids:
            with self.transaction() as cur:
                cur.execute("DELETE FROM outbox WHERE id = ANY(%s)", (list(ids),))

    # --- unfenced bulk write (tests and tools seed history with it) ------------------------------
    def flush(self, *, trades: Sequence[tuple[Trade, bool]], candles: Sequence[Candle],
              alerts: Sequence[Alert], outbox: Sequence[tuple[str, Optional[bytes], bytes]] = (),
              checkpoints: Sequence[tuple[str, str, int, int, bytes]] = ()) -> None:
        """Write rows in one transaction, without fencing: for seeding history, not for the processor."""
        with self.transaction() as cur:
            if trades:
                self.insert_trades(cur, trades)
            if candles:
                self.insert_candles(cur, candles)
            if alerts:
                self.insert_alerts(cur, alerts)
            if outbox:
                self.insert_outbox(cur, None, None, [(None, t, k, v) for t, k, v in outbox])
            for g, t, p, o, st in checkpoints:
                cur.execute("""INSERT INTO processor_checkpoints (group_id, topic, partition, next_offset,
                                                                   state)
                               VALUES (%s, %s, %s, %s, %s) ON CONFLICT (group_id, topic, partition) DO UPDATE
                               SET next_offset = EXCLUDED.next_offset, state = EXCLUDED.state,
                                   updated_at = now()""",
                            (g, t, p, o, psycopg2.Binary(st)))


def _shutdown_socket(conn) -> None:
    """Abort a call blocked on a server that does not answer: the blocked read returns at once."""
    try:
        sock = socket.socket(fileno=os.dup(conn.fileno()))
    except (OSError, psycopg2.Error):
        return
    logger.warning("database call exceeded its time limit; dropping the connection")
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()
