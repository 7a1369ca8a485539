"""Backtest runs in PostgreSQL (``backtest_runs``, ``backtest_alerts``, migration 007): the web app queues and
reads them (:class:`BacktestRuns`), the worker process reports on one (:class:`RunReporter`).

A run's worker process takes one of ``STOCKIT_BACKTEST_WORKERS`` slots — a session advisory lock, so a
process that dies frees its slot with its connection — and beats a heartbeat (``updated_at``) every few
seconds from a thread; a queued or running run whose heartbeat is older than ``STALE_SECONDS`` is
reported failed ("the backtest process stopped") when next read.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Optional

import msgspec
import psycopg2.extras

from pipeline.backtest import BacktestResult, BacktestSpec
from pipeline.events import iso as iso_ts
from pipeline.history import connect, iso

logger = logging.getLogger(__name__)
SLOT_LOCK = 0x5B7E        # first key of the advisory locks that are the worker slots
HEARTBEAT_SECONDS = 3.0
STALE_SECONDS = 30.0
PROGRESS_SECONDS = 0.5    # progress is written at most this often
RUN_COLUMNS = ("run_id, requested_by, spec, status, total_trades, done_trades, summary, error, created_at, "
               "started_at, finished_at, updated_at")
_REAP = f"""UPDATE backtest_runs SET status = 'failed', finished_at = now(),
                   error = 'the backtest process stopped without finishing'
             WHERE status IN ('queued', 'running')
               AND updated_at < now() - make_interval(secs => {STALE_SECONDS})"""


class BacktestRuns:
    """The web app's side: queue a run, read runs and their alerts (``db`` is a ``pipeline.history.Pool``)."""

    def __init__(self, db):
        self.db = db

    def create(self, spec: BacktestSpec, requested_by: str) -> dict:
        with self.db.cursor() as cur:
            cur.execute(f"INSERT INTO backtest_runs (requested_by, spec) VALUES (%s, %s) "
                        f"RETURNING {RUN_COLUMNS}",
                        (requested_by, psycopg2.extras.Json(msgspec.to_builtins(spec))))
            return _run(cur.fetchone())

    def open_runs(self) -> int:
        """Runs queued or running (after reaping the stale ones)."""
        with self.db.cursor() as cur:
            cur.execute(_REAP)
            cur.execute("SELECT count(*) AS n FROM backtest_runs WHERE status IN ('queued', 'running')")
            return cur.fetchone()["n"]

    def fail(self, run_id: int, error: str) -> None:
        with self.db.cursor() as cur:
            cur.execute("UPDATE backtest_runs SET status = 'failed', error = %s, finished_at = now() "
                        "WHERE run_id = %s AND status IN ('queued', 'running')", (error, run_id))

    def get(self, run_id: int) -> Optional[dict]:
        with self.db.cursor() as cur:
            cur.execute(_REAP)
            cur.execute(f"SELECT {RUN_COLUMNS} FROM backtest_runs WHERE run_id = %s", (run_id,))
            row = cur.fetchone()
        return _run(row) if row else None

    def recent(self, limit: int = 20) -> list[dict]:
        with self.db.cursor() as cur:
            cur.execute(_REAP)
            cur.execute(f"SELECT {RUN_COLUMNS} FROM backtest_runs ORDER BY run_id DESC LIMIT %s", (limit,))
            return [_run(r) for r in cur.fetchall()]

    def alerts(self, run_id: int, symbol: Optional[str] = None, difference: Optional[str] = None,
               limit: int = 100_000) -> list[dict]:
        """The run's alerts by time: ``difference`` both / only_actual / only_candidate narrows them."""
        flags = {"both": (True, True), "only_actual": (True, False), "only_candidate": (False, True)}
        in_actual, in_candidate = flags.get(difference, (None, None))
        with self.db.cursor() as cur:
            cur.execute("""SELECT alert_id, alert_type, severity, symbol, price, reference, deviation,
                                  trade_id, ts AS timestamp, message, side, quantity, source, in_actual,
                                  in_candidate
                             FROM backtest_alerts
                            WHERE run_id = %s AND (%s::text IS NULL OR symbol = %s)
                              AND (%s::boolean IS NULL OR (in_actual = %s AND in_candidate = %s))
                            ORDER BY ts, symbol, alert_type, alert_id LIMIT %s""",
                        (run_id, symbol, symbol, in_actual, in_actual, in_candidate, limit))
            rows = cur.fetchall()
        for r in rows:
            r["timestamp"] = iso(r["timestamp"])
        return rows


def _run(row: dict) -> dict:
    r = dict(row)
    for key in ("created_at", "started_at", "finished_at", "updated_at"):
        r[key] = iso(r[key])
    spec = r["spec"]
    spec["start_iso"], spec["end_iso"] = iso_ts(spec["start"]), iso_ts(spec["end"])
    total, done = r["total_trades"], r["done_trades"]
    r["progress"] = 1.0 if r["status"] == "done" else (min(1.0, done / total) if total else 0.0)
    return r


class RunReporter:
    """The worker process's side of one run: its slot, heartbeat, progress, result or failure."""

    def __init__(self, url: str, run_id: int):
        self.run_id = run_id
        self.conn = connect(url, "stockit-backtest")
        self.conn.autocommit = True
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self._progress_at = 0.0
        self._beat = threading.Thread(target=self._heartbeat, name="backtest-heartbeat", daemon=True)

    def _sql(self, query: str, args=()) -> list:
        with self.lock, self.conn.cursor() as cur:
            cur.execute(query, args)
            return cur.fetchall() if cur.description else []

    def spec(self) -> BacktestSpec:
        rows = self._sql("SELECT spec FROM backtest_runs WHERE run_id = %s", (self.run_id,))
        if not rows:
            raise LookupError(f"no backtest run {self.run_id}")
        return msgspec.convert(rows[0][0], BacktestSpec)

    def _heartbeat(self) -> None:
        while not self.stop.wait(HEARTBEAT_SECONDS):
            try:
                self._sql("UPDATE backtest_runs SET updated_at = now() WHERE run_id = %s", (self.run_id,))
            except psycopg2.Error as exc:
                logger.warning("backtest %d heartbeat failed: %s", self.run_id, exc)

    def take_slot(self, slots: int, stopping: threading.Event) -> int:
        """Wait for one of ``slots`` worker slots (the run stays queued meanwhile); returns the slot."""
        self._beat.start()
        while True:
            for slot in range(max(1, slots)):
                if self._sql("SELECT pg_try_advisory_lock(%s, %s)", (SLOT_LOCK, slot))[0][0]:
                    return slot
            if stopping.wait(0.5):
                raise InterruptedError("stopped while waiting for a backtest slot")

    def started(self) -> None:
        self._sql("UPDATE backtest_runs SET status = 'running', started_at = now(), updated_at = now() "
                  "WHERE run_id = %s", (self.run_id,))

    def progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done and done < total and now - self._progress_at < PROGRESS_SECONDS:
            return
        self._progress_at = now
        self._sql("UPDATE backtest_runs SET total_trades = %s, done_trades = %s, updated_at = now() "
                  "WHERE run_id = %s", (total, done, self.run_id))

    def finished(self, result: BacktestResult) -> None:
        rows = [(self.run_id, a.alert_id, in_actual, in_candidate, a.alert_type, a.severity, a.symbol,
                 a.price, a.reference, a.deviation, a.trade_id, a.ts, a.message, a.side, a.quantity, a.source)
                for a, in_actual, in_candidate in result.rows]
        with self.lock:
            self.conn.autocommit = False
            try:
                # One transaction: the rows and the verdict together.
                with self.conn, self.conn.cursor() as cur:
                    psycopg2.extras.execute_values(cur, """
                        INSERT INTO backtest_alerts (run_id, alert_id, in_actual, in_candidate, alert_type,
                               severity, symbol, price, reference, deviation, trade_id, ts, message, side,
                               quantity, source)
                        VALUES %s ON CONFLICT DO NOTHING""", rows,
                        template="(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, to_timestamp(%s), %s, %s, %s, "
                                 "%s)",
                        page_size=1000)
                    cur.execute("""UPDATE backtest_runs SET status = 'done', summary = %s, total_trades = %s,
                                          done_trades = %s, finished_at = now(), updated_at = now()
                                    WHERE run_id = %s""",
                                (psycopg2.extras.Json(result.summary()), result.trades, result.trades,
                                 self.run_id))
            finally:
                self.conn.autocommit = True

    def failed(self, error: str) -> None:
        self._sql("UPDATE backtest_runs SET status = 'failed', error = %s, finished_at = now(), "
                  "updated_at = now() WHERE run_id = %s", (error[:2000], self.run_id))

    def close(self) -> None:
        self.stop.set()
        self.conn.close()
