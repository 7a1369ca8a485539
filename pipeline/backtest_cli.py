"""``stockit backtest``: a what-if backtest from the command line (progress bar, report, CSV), as JSON lines
(``--json-progress``), or as the worker process of a run the web app queued (``--run-id``)."""
from __future__ import annotations

import argparse
import logging
import sys
import threading
from pathlib import Path

import orjson

from pipeline.backtest import BacktestResult, SpecError, csv_text, make_spec, report, run_backtest
from pipeline.history import connect
from pipeline.settings import Settings

logger = logging.getLogger(__name__)


def add_parser(sub) -> None:
    bt = sub.add_parser("backtest", help="run candidate rules over stored trades and compare with the alerts "
                                         "that fired")
    bt.add_argument("--symbols", help="comma-separated symbols")
    bt.add_argument("--start", help="event-time start, ISO-8601 (UTC if no offset) or epoch seconds")
    bt.add_argument("--end", help="event-time end (exclusive)")
    bt.add_argument("--rules", help="candidate rules: a JSON/YAML file or inline JSON in the STOCKIT_RULES "
                                    "format (default: the running configuration)")
    bt.add_argument("--source", help="only trades and alerts of this source")
    bt.add_argument("--csv", metavar="FILE", help="write every alert of either side with its difference")
    bt.add_argument("--json-progress", action="store_true",
                    help="print JSON lines (progress, then the result) instead of a progress bar and report")
    # The web app's worker mode: the spec, progress and result live in backtest_runs.
    bt.add_argument("--run-id", type=int, help=argparse.SUPPRESS)
    bt.set_defaults(func=main)


def main(s: Settings, args) -> int:
    if not s.database_url:
        print("stockit backtest: set DATABASE_URL (or run `stockit up`)", file=sys.stderr)
        return 2
    if args.run_id is not None:
        return run_queued(s, args.run_id)
    try:
        spec = make_spec(s, symbols=args.symbols or "", start=args.start, end=args.end, source=args.source,
                         rules=_rules_text(args.rules))
    except SpecError as exc:
        print(f"stockit backtest: --{exc.field.replace('_', '-')}: {exc.message}", file=sys.stderr)
        return 2
    conn = connect(s.database_url, "stockit-backtest")
    try:
        if args.json_progress:
            def progress(done: int, total: int) -> None:
                print(orjson.dumps({"type": "progress", "done": done, "total": total}).decode(), flush=True)

            result = run_backtest(conn, s, spec, progress)
        else:
            result = _with_bar(conn, s, spec)
    except SpecError as exc:
        print(f"stockit backtest: --{exc.field.replace('_', '-')}: {exc.message}", file=sys.stderr)
        return 2
    finally:
        conn.close()
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            f.write(csv_text(result.rows))
    if args.json_progress:
        print(orjson.dumps({"type": "result", **result.summary()}).decode(), flush=True)
    else:
        print(report(result))
        if args.csv:
            print(f"\nwrote {len(result.rows)} alerts to {args.csv}")
    return 0


def _rules_text(value):
    """``--rules``: inline JSON, or a JSON/YAML file (read here: only the command line reads files)."""
    if value is None or value.lstrip().startswith(("{", "[")):
        return value
    path = Path(value).expanduser()
    try:
        return path.read_text()
    except OSError as exc:
        raise SpecError("rules", f"cannot read {path}: {exc.strerror or exc}") from None


def _with_bar(conn, s: Settings, spec) -> BacktestResult:
    """Run with a progress bar on stderr (made once the number of trades is known)."""
    from tqdm import tqdm

    bars: list = []

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit=" trades", unit_scale=True, file=sys.stderr,
                             dynamic_ncols=True, desc="backtest", mininterval=0.2))
        bars[0].update(done - bars[0].n)

    try:
        return run_backtest(conn, s, spec, progress)
    finally:
        for bar in bars:
            bar.close()


def run_queued(s: Settings, run_id: int) -> int:
    """The worker process of a queued run: wait for a slot, run, store the result (or the failure)."""
    import signal

    from pipeline.history.backtests import RunReporter

    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    reporter = RunReporter(s.database_url, run_id)
    try:
        spec = reporter.spec()
        reporter.take_slot(s.backtest_workers, stopping)
        reporter.started()
        conn = connect(s.database_url, "stockit-backtest")
        try:
            result = run_backtest(conn, s, spec, reporter.progress)
        finally:
            conn.close()
        reporter.finished(result)
        logger.info("backtest %d: %d trades in %.2fs", run_id, result.trades, result.seconds)
        return 0
    except SpecError as exc:
        reporter.failed(f"{exc.field}: {exc.message}")
        return 2
    except InterruptedError as exc:
        reporter.failed(str(exc))
        return 1
    except Exception as exc:  # noqa: BLE001 - recorded for the page, then raised loudly
        reporter.failed(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        reporter.close()
