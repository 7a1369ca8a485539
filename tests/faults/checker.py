"""The fault suite's checker, after Jepsen's queue checker: record what was sent, read everything back,
report what was lost, duplicated or changed.

What is read back, after the run has settled (every partition's checkpoint at its end offset and the
outbox drained, or a timeout):

* PostgreSQL: every trade row (with its late flag), candle and alert, the rows left in the outbox,
  the final checkpoints, and the log of every checkpoint write (``CheckpointLog``: a trigger records
  each committed insert/update of ``processor_checkpoints``, in the order the row lock serialised
  them, so a write that moves a partition's checkpoint backwards cannot slip between two samples);
* Kafka, read_committed from the beginning to the end of every partition: every message on the
  candles topic (``trade-aggregates``), the alerts topic (``trade-alerts``) and the dead-letter topic.

Each is compared with ``reference.Expected``, what an uninterrupted run makes of the same records:
per trade id, per candle key (symbol, window, start) and per alert id a record is *lost* (expected,
absent), *duplicated* (present more than once: copies beyond the first), *changed* (present with other
values: prices, volumes, counts, times, a trade's late flag) or *unexpected* (present, not expected:
e.g. a bad record stored as a trade or a valid trade dead-lettered).  Every bad record must be on the
dead-letter topic once, with a reason, identified by its partition and offset.
"""
from __future__ import annotations

import json
import logging
import math
import subprocess
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import orjson
import psycopg2

from pipeline.events import Alert, Candle, iso
from pipeline.settings import Settings
from tests.faults.readback import checkpoints, outbox_rows, query, read_topic
from tests.faults.reference import Expected

logger = logging.getLogger(__name__)

CANDLE_FIELDS = ("open", "high", "low", "close", "volume", "vwap", "trade_count", "buy_volume", "sell_volume")
ALERT_FIELDS = ("alert_type", "severity", "symbol", "price", "reference", "deviation", "trade_id", "message",
                "side", "quantity")
EXAMPLES_KEPT = 8
STUCK_AFTER = 45.0  # seconds without progress after which waiting for a result is given up


def same_number(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def same_time(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6  # PostgreSQL and the wire keep microseconds


# --- the report --------------------------------------------------------------------------------
@dataclass
class Tally:
    """Lost / duplicated / changed / unexpected records of one kind, read from one place."""

    checked: int = 0
    lost: int = 0
    duplicated: int = 0
    changed: int = 0
    unexpected: int = 0
    examples: list[str] = field(default_factory=list)

    def note(self, kind: str, what: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.examples) < EXAMPLES_KEPT:
            self.examples.append(f"{kind}: {what}")


@dataclass
class Report:
    """The checker's verdict on one fault test (printed, and appended to build/faults-report.json)."""

    fault: str
    records: int = 0                 # input records acknowledged by the broker
    lost: int = 0
    duplicated: int = 0
    changed: int = 0
    unexpected: int = 0
    late: int = 0                    # trades stored late although the uninterrupted run had them on time
    checkpoint_writes: int = 0
    checkpoint_regressions: int = 0  # writes that moved a partition's checkpoint backwards
    partitions_behind: int = 0       # partitions whose final checkpoint is not their end offset
    outbox_left: int = 0
    settled_in: Optional[float] = None  # seconds from the end of the input to a settled system (None: never)
    duration: float = 0.0            # seconds the whole test took
    kinds: dict[str, Tally] = field(default_factory=dict)
    figures: dict[str, object] = field(default_factory=dict)  # what the scenario measured besides

    def add(self, kind: str, tally: Tally) -> None:
        self.kinds[kind] = tally
        self.lost += tally.lost
        self.duplicated += tally.duplicated
        self.changed += tally.changed
        self.unexpected += tally.unexpected

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.changed or self.unexpected or self.late
                    or self.checkpoint_regressions or self.partitions_behind or self.outbox_left)

    def summary(self) -> str:
        head = (f"[{self.fault}] records={self.records} lost={self.lost} duplicated={self.duplicated} "
                f"changed={self.changed} unexpected={self.unexpected}")
        if self.checkpoint_writes or self.partitions_behind or self.settled_in is not None:
            head += (f" late={self.late} checkpoint writes={self.checkpoint_writes} "
                     f"regressions={self.checkpoint_regressions} partitions behind={self.partitions_behind} "
                     f"outbox left={self.outbox_left} settled in="
                     f"{'never' if self.settled_in is None else f'{self.settled_in:.1f}s'}")
        lines = [f"{head} duration={self.duration:.1f}s"]
        for kind, t in self.kinds.items():
            lines.append(f"  {kind:<34} checked={t.checked:<7} lost={t.lost} duplicated={t.duplicated} "
                         f"changed={t.changed} unexpected={t.unexpected}")
            lines += [f"      {e}" for e in t.examples]
        if self.figures:
            lines.append(f"  figures: {self.figures}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        d = asdict(self)
        d["kinds"] = {k: {f: v for f, v in asdict(t).items() if f != "examples"}
                      for k, t in self.kinds.items()}
        d["ok"] = self.ok
        return d


class ReportFile:
    """build/faults-report.json: the session's results, one entry per fault test."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def reset(self, root: Path) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        git = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--all", "--long"],
                             capture_output=True, text=True)
        self._write({"suite": "tests/faults", "started": iso(time.time()), "revision": git.stdout.strip(),
                     "results": []})

    def append(self, report: Report) -> None:
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            doc = {"suite": "tests/faults", "results": []}
        doc["results"] = [r for r in doc["results"] if r["fault"] != report.fault] + [report.to_json()]
        self._write(doc)

    def _write(self, doc: dict) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1, default=str))
        tmp.replace(self.path)


# --- reading back ------------------------------------------------------------------------------
class CheckpointLog:
    """Every committed write of a checkpoint row, logged by a trigger the test installs and removes."""

    TABLE = "faults_checkpoint_log"
    INSTALL = f"""
        CREATE TABLE IF NOT EXISTS {TABLE} (
            id bigserial PRIMARY KEY, group_id text, topic text, partition integer, next_offset bigint,
            at timestamptz NOT NULL DEFAULT clock_timestamp());
        CREATE OR REPLACE FUNCTION {TABLE}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO {TABLE} (group_id, topic, partition, next_offset)
            VALUES (NEW.group_id, NEW.topic, NEW.partition, NEW.next_offset);
            RETURN NEW;
        END $$;
        DROP TRIGGER IF EXISTS {TABLE} ON processor_checkpoints;
        CREATE TRIGGER {TABLE} AFTER INSERT OR UPDATE ON processor_checkpoints
            FOR EACH ROW EXECUTE FUNCTION {TABLE}();
        TRUNCATE {TABLE};"""
    REMOVE = f"DROP TRIGGER IF EXISTS {TABLE} ON processor_checkpoints; DROP TABLE IF EXISTS {TABLE};"
    REMOVE_FUNCTION = f"DROP FUNCTION IF EXISTS {TABLE}();"

    def __init__(self, settings: Settings):
        self.settings = settings

    def install(self) -> None:
        query(self.settings, self.INSTALL)

    def remove(self) -> None:
        query(self.settings, self.REMOVE + self.REMOVE_FUNCTION, timeout=30)

    def writes(self) -> list[tuple[int, int]]:
        """(partition, next offset) of every write for this run's group and topic, in serialisation order."""
        return query(self.settings, f"SELECT partition, next_offset FROM {self.TABLE} "
                                    "WHERE group_id = %s AND topic = %s ORDER BY id",
                     (self.settings.processor_group, self.settings.topic_trades), timeout=60)


def regressions(writes: Iterable[tuple[int, int]]) -> list[str]:
    """Writes that set a partition's checkpoint below one already written."""
    high: dict[int, int] = {}
    out = []
    for partition, offset in writes:
        if offset is None:  # a row claimed by a new owner before its first checkpoint
            continue
        if offset < high.get(partition, -1):
            out.append(f"partition {partition}: {high[partition]} -> {offset}")
        high[partition] = max(offset, high.get(partition, -1))
    return out


def settle(settings: Settings, expected: Expected, timeout: float,
           running: Callable[[], bool] = lambda: True, stuck_after: float = STUCK_AFTER) -> Optional[float]:
    """Wait until every partition's checkpoint is at its end offset and the outbox is empty; returns how
    long that took, or None after ``timeout``, once no worker runs, or when nothing has moved for
    ``stuck_after`` seconds (the report then shows what is missing)."""
    started = moved = time.monotonic()
    last = None
    while time.monotonic() - started < timeout and time.monotonic() - moved < stuck_after and running():
        try:
            cps, outbox = checkpoints(settings), outbox_rows(settings)
        except psycopg2.Error:
            cps, outbox = last, None
        if outbox is not None:
            if all(cps.get(p, 0) >= end for p, end in expected.end_offsets.items()) and not outbox:
                return time.monotonic() - started
            if (cps, outbox) != last:
                last, moved = (cps, outbox), time.monotonic()
        time.sleep(0.2)
    return None


# --- comparing ---------------------------------------------------------------------------------
def _tally_by_key(expected: dict, observed: dict[object, list], differs, name) -> Tally:
    """``observed`` maps each key to every copy read back."""
    t = Tally(checked=len(expected))
    for key, want in expected.items():
        copies = observed.get(key, [])
        if not copies:
            t.note("lost", name(key))
            continue
        for _ in copies[1:]:
            t.note("duplicated", name(key))
        bad = [d for d in (differs(want, c) for c in copies) if d]
        if bad:
            t.note("changed", f"{name(key)} {bad[0]}")
    for key in observed.keys() - expected.keys():
        t.note("unexpected", name(key))
    return t


def _trade_differs(want, row) -> str:
    trade, late = want
    _, symbol, price, quantity, side, ts, is_late = row
    for label, a, b in (("symbol", trade.symbol, symbol), ("price", trade.price, price),
                        ("quantity", trade.quantity, quantity), ("side", trade.side, side)):
        if not same_number(a, b):
            return f"{label} {a!r} -> {b!r}"
    if not same_time(trade.ts, ts):
        return f"ts {trade.ts!r} -> {ts!r}"
    if late != is_late:
        return f"late {late} -> {is_late}"
    return ""


def _candle_differs(want: Candle, got: dict) -> str:
    for f in CANDLE_FIELDS:
        if not same_number(getattr(want, f), got[f]):
            return f"{f} {getattr(want, f)!r} -> {got[f]!r}"
    return ""


def _alert_differs(want: Alert, got: dict) -> str:
    for f in ALERT_FIELDS:
        if not same_number(getattr(want, f), got[f]):
            return f"{f} {getattr(want, f)!r} -> {got[f]!r}"
    if not same_time(want.ts, got["ts"]):
        return f"ts {want.ts!r} -> {got['ts']!r}"
    return ""


def _candle_name(key) -> str:
    return f"candle {key[0]} {key[1]}s {iso(key[2])}"


def _read_trades(settings: Settings) -> dict[str, list]:
    rows = query(settings, "SELECT trade_id, symbol, price, quantity, side, extract(epoch FROM ts)::float8, "
                           "late FROM trades", timeout=120)
    out = defaultdict(list)
    for r in rows:
        out[r[0]].append(r)
    return out


def _read_candles(settings: Settings, expected: Expected) -> dict[tuple, list]:
    rows = query(settings, "SELECT symbol, window_seconds, extract(epoch FROM window_start)::float8, open, "
                           "high, low, close, volume, vwap, trade_count, buy_volume, sell_volume "
                           "FROM candles", timeout=120)
    out = defaultdict(list)
    for r in rows:
        key = (r[0], r[1], r[2])
        if expected.compared(key):
            out[key].append(dict(zip(CANDLE_FIELDS, r[3:])))
    return out


def _read_alerts(settings: Settings) -> dict[str, list]:
    rows = query(settings, f"SELECT alert_id, {', '.join(ALERT_FIELDS)}, extract(epoch FROM ts)::float8 "
                           "FROM alerts", timeout=120)
    out = defaultdict(list)
    for r in rows:
        out[r[0]].append({**dict(zip(ALERT_FIELDS, r[1:-1])), "ts": r[-1]})
    return out


def _topic_candles(messages, expected: Expected) -> dict[tuple, list]:
    out = defaultdict(list)
    for _, _, _, value in messages:
        c = Candle.from_wire(orjson.loads(value))
        if expected.compared(c.key()):
            out[c.key()].append({f: getattr(c, f) for f in CANDLE_FIELDS})
    return out


def _topic_alerts(messages) -> dict[str, list]:
    out = defaultdict(list)
    for _, _, _, value in messages:
        a = Alert.decode(value)
        out[a.alert_id].append({**{f: getattr(a, f) for f in ALERT_FIELDS}, "ts": a.ts})
    return out


def _deadletter_key(settings: Settings, record: dict, expected: Expected) -> tuple[int, int]:
    """(partition, offset) of the input record a dead letter stands for: from its offset, or (a row the
    database refused) from the trade id in its value."""
    assert record.get("topic", settings.topic_trades) == settings.topic_trades
    partition = int(record["partition"])
    if record.get("offset") is not None:
        return partition, int(record["offset"])
    return expected.deadletter_ids[(partition, orjson.loads(record["value"])["trade_id"])]


def _deadletters(settings: Settings, messages, expected: Expected) -> Tally:
    t = Tally(checked=len(expected.deadletters))
    seen: dict[tuple[int, int], list[dict]] = defaultdict(list)
    for _, offset, _, value in messages:
        try:
            record = orjson.loads(value)
            key = _deadletter_key(settings, record, expected)
        except (ValueError, KeyError, TypeError, AssertionError):
            t.note("unexpected", f"dead letter @{offset} for no record sent: {value[:200]!r}")
            continue
        seen[key].append(record)
    for key, case in expected.deadletters.items():
        copies = seen.get(key, [])
        if not copies:
            t.note("lost", f"{case} (partition {key[0]} offset {key[1]})")
            continue
        for _ in copies[1:]:
            t.note("duplicated", case)
        if not all(str(c.get("reason") or "").strip() for c in copies):
            t.note("changed", f"{case}: no reason given")
    for key in seen.keys() - expected.deadletters.keys():
        t.note("unexpected", f"valid record partition {key[0]} offset {key[1]} dead-lettered: "
                             f"{seen[key][0].get('reason')}")
    return t


def check(fault: str, settings: Settings, expected: Expected, *, settled_in: Optional[float],
          started: float, log: Optional[CheckpointLog] = None, candles: bool = True) -> Report:
    """Read everything back and compare it with ``expected``; ``started`` is the test's monotonic start."""
    report = Report(fault, records=len(expected.trades) + len(expected.deadletters), settled_in=settled_in)
    if expected.not_on_topic:  # the broker acknowledged them, the input topic does not hold them
        lost_input = Tally(checked=expected.acknowledged)
        for what in expected.not_on_topic:
            lost_input.note("lost", what)
        report.add("input (raw-trades topic)", lost_input)
    trades = _read_trades(settings)
    report.add("trades (PostgreSQL)", _tally_by_key(expected.trades, trades, _trade_differs,
                                                    lambda k: f"trade {k}"))
    report.late = sum(1 for tid, (_, late) in expected.trades.items()
                      if not late and any(r[6] for r in trades.get(tid, [])))
    if candles:
        report.add("candles (PostgreSQL)", _tally_by_key(expected.candles, _read_candles(settings, expected),
                                                         _candle_differs, _candle_name))
        report.add("candles (trade-aggregates topic)", _tally_by_key(
            expected.candles, _topic_candles(read_topic(settings, settings.topic_aggregates), expected),
            _candle_differs, _candle_name))
    report.add("alerts (PostgreSQL)", _tally_by_key(expected.alerts, _read_alerts(settings), _alert_differs,
                                                    lambda k: f"alert {k}"))
    report.add("alerts (trade-alerts topic)", _tally_by_key(
        expected.alerts, _topic_alerts(read_topic(settings, settings.topic_alerts)), _alert_differs,
        lambda k: f"alert {k}"))
    report.add("dead letters (topic)", _deadletters(settings, read_topic(settings, settings.topic_deadletter),
                                                    expected))
    final = checkpoints(settings)
    report.partitions_behind = sum(1 for p, end in expected.end_offsets.items() if final.get(p, 0) != end)
    if report.partitions_behind:
        report.figures["checkpoints"] = {p: (final.get(p), end) for p, end in expected.end_offsets.items()}
    report.outbox_left = outbox_rows(settings)
    if log is not None:
        writes = log.writes()
        report.checkpoint_writes = len(writes)
        backwards = regressions(writes)
        report.checkpoint_regressions = len(backwards)
        if backwards:
            report.figures["regressions"] = backwards[:EXAMPLES_KEPT]
    report.duration = time.monotonic() - started
    return report


def check_webhooks(fault: str, settings: Settings, sent: dict[str, Alert], bodies: dict[str, list[dict]],
                   started: float, statuses: bool = True) -> Report:
    """Webhook deliveries per alert id against the alerts sent: each exactly once, unchanged, and (with
    ``statuses``) each alert's row in PostgreSQL marked routed and delivered."""
    report = Report(fault, records=len(sent))
    deliveries = Tally(checked=len(sent))
    for alert_id, alert in sent.items():
        copies = bodies.get(alert_id, [])
        if not copies:
            deliveries.note("lost", f"alert {alert_id} ({alert.symbol}) never delivered")
            continue
        for _ in copies[1:]:
            deliveries.note("duplicated", f"alert {alert_id} ({alert.symbol})")
        wrong = [f for f in ("alert_type", "symbol", "trade_id", "price") if any(
            not same_number(c.get(f), getattr(alert, f)) for c in copies)]
        if wrong:
            deliveries.note("changed", f"alert {alert_id}: {wrong}")
    for alert_id in bodies.keys() - sent.keys():
        deliveries.note("unexpected", f"alert {alert_id}")
    report.add("webhook deliveries", deliveries)
    if not statuses:
        report.duration = time.monotonic() - started
        return report
    status = Tally(checked=len(sent))
    rows = {r[0]: r[1:] for r in query(settings, "SELECT alert_id, status, delivery_status FROM alerts "
                                                 "WHERE alert_id = ANY(%s)", (list(sent),))}
    for alert_id in sent:
        row = rows.get(alert_id)
        if row is None or row[0] == "new":
            status.note("lost", f"alert {alert_id} never handled ({row})")
        elif row != ("routed", "delivered"):
            status.note("changed", f"alert {alert_id} is {row}")
    report.add("alert status (PostgreSQL)", status)
    report.duration = time.monotonic() - started
    return report
