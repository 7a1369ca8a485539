"""Backtests from the web app, off the request path: check the request, queue the run in PostgreSQL and
start its worker process (``stockit backtest --run-id N``), which waits for one of
``STOCKIT_BACKTEST_WORKERS`` slots, runs and stores progress and result.  A web request never runs rule
code: a backtest is CPU-bound for seconds to minutes and would block its worker's event loop.

At most ``STOCKIT_BACKTEST_QUEUE`` runs may be queued or running; more are refused (429) until one
finishes.  Running a backtest needs the operator role: it costs CPU on machines the pipeline shares.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from typing import Any, Mapping

from app.services import Services
from pipeline.backtest import make_spec
from pipeline.history.backtests import BacktestRuns

logger = logging.getLogger(__name__)
SPEC_FIELDS = ("symbols", "start", "end", "source", "rules")


class QueueFull(Exception):
    """Too many backtests are queued or running."""


def launch(services: Services, fields: Mapping[str, Any], requested_by: str) -> dict:
    """Queue a backtest of ``fields`` (SpecError names a bad field; QueueFull) and start its process."""
    s = services.settings
    spec = make_spec(s, **{k: fields.get(k) for k in SPEC_FIELDS})
    if services.history(lambda h: BacktestRuns(h).open_runs()) >= s.backtest_queue:
        raise QueueFull(f"{s.backtest_queue} backtests are queued or running already "
                        "(STOCKIT_BACKTEST_QUEUE); try again when one finishes")
    run = services.history(lambda h: BacktestRuns(h).create(spec, requested_by))
    try:
        start_worker(services, run["run_id"])
    except OSError as exc:
        why = f"could not start the process: {exc}"
        services.history(lambda h: BacktestRuns(h).fail(run["run_id"], why))
        raise
    logger.info("backtest %d queued by %s: %s", run["run_id"], requested_by, ", ".join(spec.symbols))
    return run


def start_worker(services: Services, run_id: int) -> subprocess.Popen:
    """Start the run's worker process and reap it when it exits (a thread waits for it)."""
    env = {**os.environ, **services.settings.to_env()}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "backtest", "--run-id", str(run_id)],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            start_new_session=True)
    threading.Thread(target=proc.wait, name=f"backtest-{run_id}", daemon=True).start()
    return proc


def runs(services: Services, limit: int = 20) -> list[dict]:
    return services.history(lambda h: BacktestRuns(h).recent(limit))


def run(services: Services, run_id: int) -> dict | None:
    return services.history(lambda h: BacktestRuns(h).get(run_id))


def alerts(services: Services, run_id: int, **filters) -> list[dict]:
    return services.history(lambda h: BacktestRuns(h).alerts(run_id, **filters))
