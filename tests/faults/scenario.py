"""One fault test's world: settings, servers to break, workers, the input and the checker, and the steps
the processor tests share (start processors on a paced feed, let them catch up, finish and check)."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, Optional

import psycopg2
import redis

from pipeline import kafka_io
from pipeline.settings import Settings
from tests.faults.checker import STUCK_AFTER, CheckpointLog, Report, ReportFile, check, settle
from tests.faults.feed import Publisher, TradeFeed
from tests.faults.injection import ServerFaults
from tests.faults.readback import read_topic, stored_trades
from tests.faults.reference import Expected, as_on_topic, uninterrupted
from tests.faults.workers import WorkerProcess, WorkerProcesses
from tests.integration.helpers import wait_until

logger = logging.getLogger(__name__)


def hold(seconds: float, watch: Optional[Callable[[], None]] = None) -> None:
    """The fault's duration: keep it for ``seconds``, calling ``watch`` about twice a second."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        if watch is not None:
            watch()
        time.sleep(max(0.0, min(0.5, until - time.monotonic())))


def wait_healthy(settings: Settings, timeout: float = 90.0) -> None:
    """Kafka answers metadata, Redis pings, PostgreSQL runs a query."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            kafka_io.admin(settings).list_topics(timeout=5)
            redis.Redis.from_url(settings.redis_url, socket_timeout=5).ping()
            conn = psycopg2.connect(settings.database_url, connect_timeout=5)
            conn.close()
            return
        except Exception as exc:  # noqa: BLE001 - not healthy yet
            if time.monotonic() > deadline:
                raise AssertionError(f"servers not healthy {timeout:.0f}s after the fault: {exc}") from exc
            time.sleep(0.2)


class Scenario:
    """One fault test's world: its settings, servers, workers, input and checker."""

    def __init__(self, settings: Settings, stack: dict, log_dir: Path, report_file: ReportFile):
        self.settings = settings
        self.faults = ServerFaults(stack)
        self.workers = WorkerProcesses(settings, log_dir)
        self.publisher = Publisher(settings)
        self.report_file = report_file
        self.checkpoint_log = CheckpointLog(settings)
        self.checkpoint_log.install()
        self.started = time.monotonic()
        self.figures: dict[str, object] = {}

    def feed(self, seed: int, rate: float = 200.0, **kw) -> TradeFeed:
        return TradeFeed(self.publisher, seed, rate, **kw)

    def expected(self, horizon: float) -> Expected:
        """What an uninterrupted run makes of everything sent so far (see ``reference``)."""
        records, missing = as_on_topic(self.publisher.records(),
                                       read_topic(self.settings, self.settings.topic_trades))
        return uninterrupted(records, self.settings, horizon, missing)

    def verify(self, fault: str, expected: Expected, settle_timeout: float = 120.0,
               candles: bool = True) -> Report:
        """Wait for the system to settle, read everything back, print and record the report."""
        settled_in = settle(self.settings, expected, settle_timeout,
                            running=lambda: any(w.alive() for w in self.workers.started))
        report = check(fault, self.settings, expected, settled_in=settled_in, started=self.started,
                       log=self.checkpoint_log, candles=candles)
        return self.record(report)

    def record(self, report: Report) -> Report:
        """Print the report and add it to build/faults-report.json."""
        report.figures.update(self.figures)
        print(report.summary())
        self.report_file.append(report)
        return report

    def close(self, failed: bool) -> None:
        if failed:
            print(self.workers.logs())
        self.workers.stop_all()
        self.faults.heal()
        self.publisher.close()
        wait_healthy(self.settings)
        self.checkpoint_log.remove()

    # --- the steps of a processor test ---------------------------------------------------------
    def start(self, seed: int, rate: float = 200.0,
              processors: int = 1) -> tuple[TradeFeed, list[WorkerProcess]]:
        """Processors and a paced feed, once the processors store trades."""
        workers = [self.workers.processor() for _ in range(processors)]
        feed = self.feed(seed=seed, rate=rate).start()
        wait_until(lambda: stored_trades(self.settings) >= 500, 120, "the processor storing trades")
        return feed, workers

    def catch_up(self, feed: TradeFeed, timeout: float = 180.0) -> bool:
        """Let the feed run on until everything it sent so far is stored (False after ``timeout`` or
        ``STUCK_AFTER`` seconds without progress: the checker then says what is missing)."""
        target = feed.count
        started = moved = time.monotonic()
        last = -1
        while time.monotonic() - started < timeout and time.monotonic() - moved < STUCK_AFTER:
            try:
                stored = stored_trades(self.settings)
            except psycopg2.Error:
                stored = last
            if stored >= target:
                return True
            if stored != last:
                last, moved = stored, time.monotonic()
            time.sleep(0.2)
        return False

    def finish(self, feed: TradeFeed, fault: str, **kw) -> Report:
        """Stop the feed, close every window with markers, check."""
        feed.stop()
        feed.close_windows()
        return self.verify(fault, self.expected(feed.horizon), **kw)
