"""The what-if backtest program: stored trades from PostgreSQL, streamed in event-time order through the
pure rule code (``pipeline.rulesets.backtest.run_rules``), compared with the alerts that actually fired.

Trades are read through a server-side (named) cursor, ``FETCH_ROWS`` at a time, so a backtest of years
of history never holds more than one fetch in memory.  Late trades are left out: live, a late trade is
stored but never reaches the rules.  ``stockit backtest`` (``pipeline.cli``) and the /backtest page's
worker process (``pipeline.history.backtests``) both call :func:`run_backtest`.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import queue
import threading
import time
from dataclasses import dataclass
from itertools import starmap
from typing import Any, Callable, Iterator, Mapping, Optional

import msgspec

from pipeline.events import SYMBOL_PATTERN, Alert, Trade, iso, parse_iso
from pipeline.rulesets.backtest import AlertComparison, compare_alerts, run_rules, side_by_side
from pipeline.rulesets.book import RuleBook
from pipeline.rulesets.config import RulesConfigError, rulebook_from_settings
from pipeline.settings import Settings

logger = logging.getLogger(__name__)
FETCH_ROWS = 20_000      # trades per round trip of the server-side cursor
MAX_SYMBOLS = 50
SOURCE_MAX = 64
CSV_FIELDS = ("difference", "alert_id", "timestamp", "alert_type", "severity", "symbol", "source", "price",
              "reference", "deviation", "side", "quantity", "trade_id", "in_actual", "in_candidate",
              "message")
ProgressFn = Callable[[int, int], None]


class SpecError(ValueError):
    """A backtest request that cannot run; ``field`` names the part that is wrong."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class BacktestSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What to backtest: symbols, an event-time range [start, end), a source (None: all), the candidate
    rules document (None: the configuration the pipeline runs)."""

    symbols: list[str]
    start: float
    end: float
    source: Optional[str] = None
    rules: Any = None


# --- the request, checked field by field ------------------------------------------------------------
def parse_time(value: Any, field: str) -> float:
    """ISO-8601 (naive = UTC) or epoch seconds -> epoch seconds; SpecError naming ``field`` otherwise."""
    if isinstance(value, bool) or value is None or value == "":
        raise SpecError(field, "required: an ISO-8601 time or epoch seconds")
    if isinstance(value, (int, float)):
        ts = float(value)
    else:
        text = str(value).strip()
        try:
            ts = float(text)
        except ValueError:
            try:
                ts = parse_iso(text)
            except (ValueError, OverflowError):
                raise SpecError(field, f"{value!r} is neither ISO-8601 nor epoch seconds") from None
    if not math.isfinite(ts) or not 0 <= ts < 32503680000:
        raise SpecError(field, f"{value!r} is out of range (1970 to 3000)")
    return ts


def parse_symbols(value: Any) -> list[str]:
    import re

    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise SpecError("symbols", "a list of symbols (or one comma-separated string)")
    out = []
    for item in items:
        sym = str(item).strip().upper() if isinstance(item, str) else None
        if not sym:
            continue
        if not re.match(SYMBOL_PATTERN, sym):
            raise SpecError("symbols", f"{item!r} is not a symbol (letters, digits and . _ / -)")
        if sym not in out:
            out.append(sym)
    if not out:
        raise SpecError("symbols", "name at least one symbol")
    if len(out) > MAX_SYMBOLS:
        raise SpecError("symbols", f"at most {MAX_SYMBOLS} symbols per backtest, got {len(out)}")
    return out


def parse_rules_text(text: Optional[str]) -> Any:
    """A rules document from JSON or YAML text (None or blank: None = the running configuration).  Never a
    file path: a web request must not make the server read its files (the CLI reads ``--rules FILE``)."""
    if text is None or not str(text).strip():
        return None
    body = str(text).strip()
    if body.startswith(("{", "[")):
        try:
            return json.loads(body)
        except json.JSONDecodeError as exc:
            raise RulesConfigError(f"rules: not JSON: {exc}") from None
    import yaml

    try:
        doc = yaml.safe_load(body)
    except yaml.YAMLError as exc:
        raise RulesConfigError(f"rules: not JSON nor YAML: {exc}") from None
    if not isinstance(doc, (dict, type(None))):
        raise RulesConfigError("rules: must be an object with keys rulesets and assign (JSON or YAML)")
    return doc


def make_spec(settings: Settings, *, symbols: Any, start: Any, end: Any, source: Any = None,
              rules: Any = None) -> BacktestSpec:
    """A checked spec (the rules parsed and built once, so a bad key is refused now, by name)."""
    spec = BacktestSpec(symbols=parse_symbols(symbols), start=parse_time(start, "start"),
                        end=parse_time(end, "end"), source=_source(source), rules=_rules(rules))
    if spec.end <= spec.start:
        raise SpecError("end", "must be later than start")
    candidate_rulebook(settings, spec)
    return spec


def _source(value: Any) -> Optional[str]:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value.strip()) > SOURCE_MAX or not value.strip().isprintable():
        raise SpecError("source", f"a source name of 1 to {SOURCE_MAX} printable characters")
    return value.strip()


def _rules(value: Any) -> Any:
    try:
        doc = parse_rules_text(value) if isinstance(value, str) or value is None else value
    except RulesConfigError as exc:
        raise SpecError("rules", str(exc).removeprefix("rules: ")) from None
    if doc is not None and not isinstance(doc, Mapping):
        raise SpecError("rules", "must be an object with keys rulesets and assign")
    return doc


def candidate_rulebook(settings: Settings, spec: BacktestSpec) -> RuleBook:
    """The rule book the candidate would run: the spec's rules document on top of the seed thresholds and
    overrides of ``settings`` (or exactly the running configuration when the spec has none)."""
    try:
        return rulebook_from_settings(settings, spec.rules, "rules")
    except RulesConfigError as exc:
        raise SpecError("rules", str(exc).removeprefix("rules: ")) from None


# --- reading PostgreSQL -----------------------------------------------------------------------------
TRADE_COLUMNS = ("trade_id, symbol, price, quantity, side, exchange, extract(epoch FROM ts)::float8, "
                 "trader_id, sequence, source")  # Trade's field order
ALERT_COLUMNS = ("alert_id, alert_type, severity, symbol, price, reference, deviation, trade_id, "
                 "extract(epoch FROM ts)::float8, message, side, quantity, source")  # Alert's field order


def _where(spec: BacktestSpec, trades: bool) -> tuple[str, dict]:
    where = "symbol = ANY(%(symbols)s) AND ts >= to_timestamp(%(start)s) AND ts < to_timestamp(%(end)s)"
    if trades:
        where += " AND NOT late"
    if spec.source is not None:
        where += " AND source = %(source)s"
    return where, {"symbols": spec.symbols, "start": spec.start, "end": spec.end, "source": spec.source}


def count_trades(conn, spec: BacktestSpec) -> int:
    where, args = _where(spec, True)
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM trades WHERE {where}", args)
        return cur.fetchone()[0]


def stored_trades(conn, spec: BacktestSpec, progress: Optional[ProgressFn] = None,
                  total: int = 0) -> Iterator[Trade]:
    """The spec's trades in event-time order (ties by trade id) through a server-side cursor; ``progress``
    is told (trades read, total) after each fetch.  Runs inside the connection's open transaction.

    A reader thread fetches the next ``FETCH_ROWS`` while the caller works through the current ones
    (the server sorts and sends while the rules run); at most two fetches wait in memory."""
    where, args = _where(spec, True)
    with conn.cursor() as cur:
        cur.execute("SET LOCAL work_mem = '128MB'")  # the sort by time stays in memory
    cur = conn.cursor(name="stockit_backtest")
    cur.itersize = FETCH_ROWS
    batches: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def read() -> None:
        try:
            cur.execute(f"SELECT {TRADE_COLUMNS} FROM trades WHERE {where} "
                        "ORDER BY ts, trade_id COLLATE \"C\"", args)
            while not stop.is_set():
                rows = cur.fetchmany(FETCH_ROWS)
                _put(batches, rows, stop)
                if not rows:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            _put(batches, exc, stop)

    reader = threading.Thread(target=read, name="backtest-reader", daemon=True)
    reader.start()
    done = 0
    try:
        while True:
            rows = batches.get()
            if isinstance(rows, BaseException):
                raise rows
            if not rows:
                break
            yield from starmap(Trade, rows)
            done += len(rows)
            if progress is not None:
                progress(done, total)
    finally:
        stop.set()
        reader.join()
        cur.close()


def _put(batches: queue.Queue, item, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            batches.put(item, timeout=0.2)
            return
        except queue.Full:
            continue


def actual_alerts(conn, spec: BacktestSpec) -> list[Alert]:
    """The alerts that fired for the spec's symbols, range and source (whatever their routing status)."""
    where, args = _where(spec, False)
    with conn.cursor() as cur:
        cur.execute(f"SELECT {ALERT_COLUMNS} FROM alerts WHERE {where} ORDER BY ts, alert_id", args)
        return list(starmap(Alert, cur.fetchall()))


# --- the run ------------------------------------------------------------------------------------------
@dataclass
class BacktestResult:
    spec: BacktestSpec
    trades: int
    seconds: float
    comparison: AlertComparison
    rows: list  # (alert, in_actual, in_candidate), by time

    def summary(self) -> dict:
        """The JSON-able outcome: counts by type and symbol, totals, difference sizes, timing."""
        c = self.comparison
        return {"trades": self.trades, "seconds": round(self.seconds, 3),
                "actual": sum(r.actual for r in c.counts), "candidate": sum(r.candidate for r in c.counts),
                "matched": c.matched, "only_in_actual": len(c.only_in_actual),
                "only_in_candidate": len(c.only_in_candidate),
                "counts": [msgspec.structs.asdict(r) for r in c.counts]}


def run_backtest(conn, settings: Settings, spec: BacktestSpec, progress: Optional[ProgressFn] = None
                 ) -> BacktestResult:
    """Run ``spec`` on ``conn`` (a psycopg2 connection; one read transaction, rolled back at the end)."""
    book = candidate_rulebook(settings, spec)
    started = time.perf_counter()
    try:
        total = count_trades(conn, spec)
        if progress is not None:
            progress(0, total)
        actual = actual_alerts(conn, spec)
        counted = [0]

        def told(done: int, _total: int) -> None:
            counted[0] = done
            if progress is not None:
                progress(done, total)

        trades = stored_trades(conn, spec, told, total)
        candidate = list(run_rules(trades, book, grace=settings.grace_seconds))
    finally:
        conn.rollback()
    return BacktestResult(spec, counted[0], time.perf_counter() - started, compare_alerts(actual, candidate),
                          side_by_side(actual, candidate))


# --- views of a result --------------------------------------------------------------------------------
DIFFERENCES = ("both", "only_actual", "only_candidate")  # where an alert stands: on both sides, or one


def difference(in_actual: bool, in_candidate: bool) -> str:
    return "both" if in_actual and in_candidate else "only_actual" if in_actual else "only_candidate"


def csv_text(rows) -> str:
    """CSV of (alert, in_actual, in_candidate) rows — or of stored rows (dicts with those keys)."""
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in rows:
        if isinstance(row, tuple):
            alert, in_actual, in_candidate = row
            d = alert.to_wire()
        else:
            d, in_actual, in_candidate = dict(row), row["in_actual"], row["in_candidate"]
        d.update(in_actual=in_actual, in_candidate=in_candidate,
                 difference=difference(in_actual, in_candidate))
        w.writerow(d)
    return out.getvalue()


def report(result: BacktestResult) -> str:
    """The plain-text report ``stockit backtest`` prints."""
    s, spec = result.summary(), result.spec
    lines = [f"backtest of {', '.join(spec.symbols)} from {iso(spec.start)} to {iso(spec.end)}"
             + (f" (source {spec.source})" if spec.source else ""),
             f"{s['trades']:,} trades in {s['seconds']:.2f}s; alerts: {s['actual']} fired, {s['candidate']} "
             f"with the candidate rules, {s['matched']} in both", "",
             f"{'type':<16} {'symbol':<10} {'fired':>7} {'candidate':>9} {'both':>6}"]
    for r in result.comparison.counts:
        lines.append(f"{r.alert_type:<16} {r.symbol:<10} {r.actual:>7} {r.candidate:>9} {r.both:>6}")
    for title, alerts in (("only in actual (fired, the candidate would not raise them)",
                           result.comparison.only_in_actual),
                          ("only in candidate (the candidate would raise them, they did not fire)",
                           result.comparison.only_in_candidate)):
        lines += ["", f"{title}: {len(alerts)}"]
        lines += [f"  {iso(a.ts)}  {a.alert_type:<16} {a.symbol:<10} {a.price:>12.6g}  {a.message}"
                  for a in alerts[:20]]
        if len(alerts) > 20:
            lines.append(f"  ... {len(alerts) - 20} more (--csv FILE writes them all)")
    return "\n".join(lines)
