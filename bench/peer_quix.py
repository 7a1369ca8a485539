"""Peer benchmark: Stock-IT's processor against a Quix Streams app on the same pre-published trades.

N simulated trades (seeded, as ``bench/throughput.py`` publishes them) go to a fresh raw-trades
topic once.  Then the contenders run interleaved, A B A B ..., each run a fresh process with a
fresh consumer group, timed from its start until it has consumed and processed all N records:

* ours (A): ``python -m pipeline.cli processor`` — validation, 1m/5m/15m candles, anomaly rules,
  ticker, Redis, PostgreSQL (trades, candles, alerts, outbox) and the exactly-once checkpoint.
  Done when its checkpoint in PostgreSQL covers every offset (as ``bench/throughput.py``).  The
  history tables are emptied before each of its runs when the benchmark started PostgreSQL itself,
  so that every run inserts the trades rather than meeting the previous run's rows.
* Quix (B): ``bench/quix_app.py`` on Quix Streams QUIX_VERSION in its own virtual environment
  (built on first use; Quix pins an older confluent-kafka than the project).  The same three
  tumbling windows by event time with the same grace period, finalized candles produced to an
  output topic; Quix's own state (RocksDB + changelog topics), a fresh state directory per run,
  offsets committed at the processor's cadence (``STOCKIT_FLUSH_INTERVAL`` s or
  ``STOCKIT_FLUSH_ROWS`` records).  It does NOT validate/dead-letter, run rules, keep a ticker,
  write Redis or PostgreSQL.  Done when its group's committed offsets cover every record.

Peak RSS is each contender's process tree high-water mark (``bench/rss.py``).  Per round the
script prints trades/s, peak RSS and ours/Quix ratios, then medians; finally it checks that the
candles both finalized agree.

    python bench/peer_quix.py                         # local servers in a temp dir, 300k trades, 3 rounds
    python bench/peer_quix.py --trades 1000000 --rounds 5

Servers: KAFKA_BOOTSTRAP_SERVERS / REDIS_URL / DATABASE_URL if set, else started here.
The Quix environment lives in STOCKIT_QUIX_VENV, else $XDG_CACHE_HOME/stockit-bench/quix-venv-VERSION.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg2  # noqa: E402
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from pipeline.events import parse_iso  # noqa: E402
from pipeline.settings import Settings  # noqa: E402

from rss import PeakRss  # noqa: E402  (bench/rss.py)
from throughput import (bench_servers, checkpointed, empty_history, fresh_topics, publish,  # noqa: E402
                        spawn_processor)

QUIX_VERSION = "3.28.1"
QUIX_APP = Path(__file__).resolve().parent / "quix_app.py"
COORDINATOR_NOT_READY = (KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                         KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError._WAIT_COORD, KafkaError._TIMED_OUT,
                         KafkaError._TRANSPORT)
CANDLE_FIELDS = ("open", "high", "low", "close", "volume", "vwap", "trade_count", "buy_volume", "sell_volume")


@dataclass
class Run:
    seconds: float
    peak_mb: float

    def rate(self, trades: int) -> float:
        return trades / self.seconds


# --- the Quix environment -------------------------------------------------------------------

def default_venv() -> Path:
    if os.environ.get("STOCKIT_QUIX_VENV"):
        return Path(os.environ["STOCKIT_QUIX_VENV"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "stockit-bench" / f"quix-venv-{QUIX_VERSION}"


def installed_quix(python: Path) -> str:
    """Version of quixstreams importable by ``python``, or '' if none."""
    if not python.exists():
        return ""
    out = subprocess.run([str(python), "-c", "import quixstreams; print(quixstreams.__version__)"],
                         capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else ""


def quix_python(venv: Path) -> Path:
    """The interpreter of a virtual environment holding quixstreams QUIX_VERSION, built if missing.

    Built in a temporary sibling directory and renamed into place, so an interrupted build never
    leaves a half-made environment behind under the final name."""
    python = venv / "bin" / "python"
    found = installed_quix(python)
    if found == QUIX_VERSION:
        return python
    if found or venv.exists():
        raise SystemExit(f"{venv} holds quixstreams {found or '(none)'}, not {QUIX_VERSION}: remove it or "
                         "point STOCKIT_QUIX_VENV elsewhere")
    venv.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=venv.name + ".building-", dir=venv.parent))
    print(f"building the Quix environment in {venv} (quixstreams=={QUIX_VERSION}) ...", file=sys.stderr)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(building)], check=True)
        subprocess.run([str(building / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", f"quixstreams=={QUIX_VERSION}"], check=True)
        building.rename(venv)  # a venv's scripts name their own path: check it still imports below
    finally:
        shutil.rmtree(building, ignore_errors=True)
    if installed_quix(python) != QUIX_VERSION:
        raise SystemExit(f"quixstreams {QUIX_VERSION} does not import from {venv} after the build")
    return python


# --- running one contender ------------------------------------------------------------------

def timed_run(proc: subprocess.Popen, processed: Callable[[], int], trades: int, what: str,
              timeout: float) -> Run:
    """Wait until ``processed()`` reaches ``trades``; stop ``proc``; its time from start and peak RSS."""
    t0 = time.monotonic()
    rss = PeakRss(proc.pid).start()
    try:
        while processed() < trades:
            if proc.poll() is not None:
                raise SystemExit(f"{what} exited with code {proc.returncode} before processing every trade")
            if time.monotonic() - t0 > timeout:
                raise SystemExit(f"{what} did not process {trades:,} trades in {timeout:.0f}s")
            time.sleep(0.05)
        seconds = time.monotonic() - t0
    finally:
        rss.stop()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return Run(seconds, rss.peak_mb)


def run_ours(settings: Settings, trades: int, group: str, timeout: float) -> Run:
    settings = settings.replace(processor_group=group)
    proc = spawn_processor(settings, profile=False)
    return timed_run(proc, lambda: checkpointed(settings), trades, "the processor", timeout)


class CommittedOffsets:
    """Callable: sum of a group's committed offsets over a topic's partitions (records consumed from 0).

    One client for the whole run, so that measuring costs the contender little CPU.  An error the
    broker calls retriable (e.g. a new group's coordinator still loading) counts as nothing
    committed yet; the caller's timeout bounds how long that may last."""

    def __init__(self, settings: Settings, group: str, topic: str):
        self.partitions = [TopicPartition(topic, p) for p in range(settings.trade_partitions)]
        self.consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": group,
                                  "enable.auto.commit": False})

    def __call__(self) -> int:
        try:
            return sum(max(tp.offset, 0) for tp in self.consumer.committed(self.partitions, timeout=10))
        except KafkaException as exc:
            err = exc.args[0]
            if err.retriable() or err.code() in COORDINATOR_NOT_READY:
                return 0
            raise

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until the group coordinator answers.  On a new broker the first group lookup creates
        Kafka's offsets topic, seconds of one-time work that no contender's first run should pay."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.consumer.committed(self.partitions, timeout=10)
                return
            except KafkaException as exc:
                if time.monotonic() > deadline:
                    raise SystemExit(f"Kafka's group coordinator did not answer in {timeout:.0f}s: {exc}")
                time.sleep(0.2)

    def close(self) -> None:
        self.consumer.close()


def create_topic(settings: Settings, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result()


def run_quix(settings: Settings, trades: int, python: Path, group: str, output: str, state_dir: Path,
             guarantee: str, timeout: float) -> Run:
    cmd = [str(python), str(QUIX_APP), "--broker", settings.kafka_bootstrap_servers,
           "--input", settings.topic_trades, "--output", output, "--group", group,
           "--state-dir", str(state_dir), "--windows", settings.window_sizes,
           "--grace", str(settings.grace_seconds), "--commit-interval", str(settings.flush_interval),
           "--commit-every", str(settings.flush_rows), "--guarantee", guarantee]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing of the project's environment
    processed = CommittedOffsets(settings, group, settings.topic_trades)
    try:
        return timed_run(subprocess.Popen(cmd, env=env), processed, trades, "the Quix app", timeout)
    finally:
        processed.close()


# --- do both compute the same candles? ------------------------------------------------------

def quix_candles(settings: Settings, topic: str) -> dict[tuple, dict]:
    """Every candle on the Quix output topic, by (symbol, window seconds, window start)."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": f"{topic}-reader",
                         "enable.auto.commit": False})
    out = {}
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        consumer.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end > 0])
        left = sum(ends.values())
        while left > 0:
            msg = consumer.poll(10)
            if msg is None:
                raise SystemExit(f"could not read the {left} remaining candles of {topic}")
            if msg.error():
                continue
            c = json.loads(msg.value())
            out[(c["symbol"], c["window_seconds"], parse_iso(c["window_start"]))] = c
            left -= 1
    finally:
        consumer.close()
    return out


def our_candles(settings: Settings) -> dict[tuple, dict]:
    columns = ", ".join(CANDLE_FIELDS)
    with psycopg2.connect(settings.database_url) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT symbol, window_seconds, extract(epoch FROM window_start)::float8, {columns} "
                    "FROM candles WHERE symbol = ANY(%s)", (settings.symbol_list,))
        rows = cur.fetchall()
    conn.close()
    return {(r[0], r[1], r[2]): dict(zip(CANDLE_FIELDS, r[3:])) for r in rows}


def compare_candles(ours: dict[tuple, dict], quix: dict[tuple, dict]) -> tuple[int, list[str]]:
    """(candles both finalized, descriptions of those that differ)."""
    both = ours.keys() & quix.keys()
    differ = []
    for key in sorted(both):
        bad = [f for f in CANDLE_FIELDS if not math.isclose(ours[key][f], quix[key][f], rel_tol=1e-9)]
        if bad:
            differ.append(f"{key}: " + ", ".join(f"{f} ours {ours[key][f]!r} Quix {quix[key][f]!r}"
                                                 for f in bad))
    return len(both), differ


# --- the benchmark --------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trades", type=int, default=300_000, help="trades published once, read by every run")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of A (ours) then B (Quix)")
    ap.add_argument("--event-span", type=float, default=3600.0,
                    help="seconds of event time the trades are spread evenly over, ending now, so that "
                         "windows close (0: stamped at publication, as bench/throughput.py)")
    ap.add_argument("--quix-venv", type=Path, default=default_venv(), help="Quix's virtual environment")
    ap.add_argument("--quix-guarantee", default="at-least-once", choices=("at-least-once", "exactly-once"),
                    help="Quix's processing guarantee (its default: at-least-once)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds one run may take")
    ap.add_argument("--empty-history", action="store_true", help="empty the history tables before each of "
                                                                 "our runs even in a database not started here")
    args = ap.parse_args()
    if args.rounds < 1 or args.trades < 1:
        ap.error("--trades and --rounds must be positive")

    python = quix_python(args.quix_venv)
    with bench_servers("stockit-peer-") as (settings, started):
        own_database = args.empty_history or any(s.name == "postgres" for s in started)
        settings = fresh_topics(settings)
        tag = uuid.uuid4().hex[:6]
        state_root = Path(tempfile.mkdtemp(prefix="stockit-peer-quix-state-"))

        print(f"publishing {args.trades:,} trades to {settings.topic_trades} ...", file=sys.stderr)
        first_ts, step = time.time() - args.event_span, args.event_span / args.trades
        spread = (lambda i: first_ts + i * step) if step > 0 else None
        secs = publish(settings, args.trades, event_time=spread)
        print(f"  published in {secs:.1f}s ({args.trades / secs:,.0f}/s)", file=sys.stderr)
        if not own_database:
            print("  DATABASE_URL is external: the history tables are not emptied between runs, so runs "
                  "after the first meet the trades already there (ON CONFLICT)", file=sys.stderr)

        warm_up = CommittedOffsets(settings, f"bench-{tag}-warm-up", settings.topic_trades)
        warm_up.wait_ready()
        warm_up.close()

        rounds: list[tuple[Run, Run]] = []
        output = ""
        try:
            for r in range(1, args.rounds + 1):
                if own_database:
                    empty_history(settings)
                ours = run_ours(settings, args.trades, f"bench-{tag}-ours-{r}", args.timeout)
                output = f"bench-quix-candles-{tag}-{r}"
                create_topic(settings, output, partitions=3)  # as many as our candle topic has
                quix = run_quix(settings, args.trades, python, f"bench-{tag}-quix-{r}", output,
                                state_root / str(r), args.quix_guarantee, args.timeout)
                rounds.append((ours, quix))
                print(f"round {r}: ours {ours.rate(args.trades):,.0f} trades/s, {ours.peak_mb:,.0f} MiB | "
                      f"Quix {quix.rate(args.trades):,.0f} trades/s, {quix.peak_mb:,.0f} MiB | "
                      f"ours/Quix: speed x{ours.rate(args.trades) / quix.rate(args.trades):.2f}, "
                      f"memory x{ours.peak_mb / quix.peak_mb:.2f}", flush=True)
        finally:
            shutil.rmtree(state_root, ignore_errors=True)

        def median(values) -> float:
            return statistics.median(list(values))

        n = args.trades
        print()
        print(f"{n:,} trades, {len(rounds)} rounds interleaved (ours, Quix {QUIX_VERSION} "
              f"{args.quix_guarantee}); medians:")
        print(f"  ours: {median(o.rate(n) for o, _ in rounds):,.0f} trades/s, "
              f"peak RSS {median(o.peak_mb for o, _ in rounds):,.0f} MiB")
        print(f"  Quix: {median(q.rate(n) for _, q in rounds):,.0f} trades/s, "
              f"peak RSS {median(q.peak_mb for _, q in rounds):,.0f} MiB")
        print(f"  ours/Quix per round: speed x{median(o.rate(n) / q.rate(n) for o, q in rounds):.2f}, "
              f"memory x{median(o.peak_mb / q.peak_mb for o, q in rounds):.2f}")

        ours_c, quix_c = our_candles(settings), quix_candles(settings, output)
        both, differ = compare_candles(ours_c, quix_c)
        print(f"candles finalized: ours {len(ours_c)}, Quix {len(quix_c)} (last round); {both} finalized by "
              f"both, {len(differ)} differ")
        for line in differ[:10]:
            print("  " + line)
        return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
