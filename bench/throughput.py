"""Processor throughput, CPU per trade, memory and publication-to-Redis latency on the real servers.

Phase 1 (throughput): N simulated trades are published to a fresh raw-trades topic first; then
``--processors`` processor processes (one group) are started and timed until the checkpoints in
PostgreSQL cover every record (candles, rules, Redis and PostgreSQL done, offsets committed).  It
prints the trades/s, the peak RSS of each processor (bench/rss.py), the CPU seconds per trade of the
processors and of each server (PostgreSQL, Kafka, Redis: the processes listening on their ports, with
their children), and with several processors each one's share.  ``--runs`` repeats the phase on the
same topic (fresh group each run, history tables emptied) and prints medians.
Phase 2 (latency): with the last run's processors still running, trades are published live at each
rate of ``--rates``, stamped at publication; a sampler reads each symbol's latest trade time from
Redis and records now - timestamp whenever it changes.

    python bench/throughput.py                                  # local servers, 300k trades
    python bench/throughput.py --trades 1000000 --runs 3
    python bench/throughput.py --trades 5000000 --rates 5000,50000
    python bench/throughput.py --trades 1000000 --processors 2 --compare-candles   # scale-out
    python bench/throughput.py --trades 300000 --profile pyspy   # where the processor's time goes

Servers: KAFKA_BOOTSTRAP_SERVERS / REDIS_URL / DATABASE_URL if set, else started here.  The history
tables are emptied before each run only in a database started here, or with --empty-history.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson  # noqa: E402
import psutil  # noqa: E402
import psycopg2  # noqa: E402
import redis  # noqa: E402

from pipeline import kafka_io, speed_layer  # noqa: E402
from pipeline.events import iso  # noqa: E402
from pipeline.migrations import migrate  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.simulator import MarketSimulator  # noqa: E402
from pipeline.stack.servers import free_port  # noqa: E402
from pipeline.stack.supervisor import start_servers  # noqa: E402

from rss import PeakRss  # noqa: E402  (bench/rss.py)

PROFILE = Path(tempfile.gettempdir()) / "stockit-processor"


def publish(settings: Settings, n: int, rate: float = 0.0, stop: threading.Event | None = None,
            event_time: Callable[[int], float] | None = None) -> float:
    """Publish n simulated trades (rate 0 = as fast as possible), stamped ``event_time(i)`` for the i-th
    (default: the clock at publication); returns seconds taken."""
    producer = kafka_io.make_producer(settings, **{"linger.ms": 20 if rate <= 0 else 1})
    sim = MarketSimulator(settings.symbol_list, seed=42, event_rate=0.001)
    start = time.time()
    sent = 0
    while sent < n and not (stop and stop.is_set()):
        due = n if rate <= 0 else min(n, int((time.time() - start) * rate) + 1)
        while sent < due:
            trade, _ = sim.next_trade(event_time(sent) if event_time else time.time())
            try:
                producer.produce(settings.topic_trades, trade.encode(), trade.symbol.encode())
                sent += 1
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
        if rate > 0:
            time.sleep(0.0005)
    producer.flush(60)
    return time.time() - start


def publish_live(settings: Settings, n: int, rate: float, linger_ms: float) -> float:
    """Publish n trades at ``rate``/s, each stamped with the clock when it is handed to the producer: the
    trades are made beforehand, only the time is written at publication (so a fast rate is kept)."""
    producer = kafka_io.make_producer(settings, **{"linger.ms": linger_ms})
    sim = MarketSimulator(settings.symbol_list, seed=43, event_rate=0.001)
    marker = "2000-01-01T00:00:00.000000Z"
    made = [sim.next_trade(946684800.0)[0] for _ in range(min(n, 50_000))]
    templates = [(t.encode().split(marker.encode()), t.symbol.encode()) for t in made]
    start = time.time()
    sent = 0
    while sent < n:
        due = min(n, int((time.time() - start) * rate) + 1)
        while sent < due:
            (head, tail), key = templates[sent % len(templates)]
            try:
                producer.produce(settings.topic_trades, head + iso(time.time()).encode() + tail, key)
                sent += 1
            except BufferError:
                producer.poll(0.001)
        producer.poll(0)
        time.sleep(0.0002)
    producer.flush(60)
    return time.time() - start


def checkpointed(settings: Settings) -> int:
    conn = psycopg2.connect(settings.database_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT coalesce(sum(next_offset), 0) FROM processor_checkpoints WHERE group_id = %s",
                        (settings.processor_group,))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def spawn_processor(settings: Settings, profile: bool | str = False, metrics_port: int = 0,
                    tag: str = "", code: Optional[Path] = None) -> subprocess.Popen:
    """``profile``: True or 'cprofile' runs it under cProfile (PROFILE + tag + .prof); ``code``: the checkout
    whose processor runs (default: this one)."""
    env = {**os.environ, **settings.to_env(), "STOCKIT_PROCESSOR_METRICS_PORT": str(metrics_port),
           "STOCKIT_LOG_LEVEL": "WARNING"}
    if code is not None:
        env["PYTHONPATH"] = str(code)
        return subprocess.Popen([sys.executable, "-m", "pipeline.cli", "processor"], env=env, cwd=code)
    cmd = [sys.executable]
    if profile in (True, "cprofile"):
        cmd += ["-m", "cProfile", "-o", f"{PROFILE}{tag}.prof"]
        cmd += [str(Path(__file__).resolve().parent.parent / "pipeline" / "cli.py"), "processor"]
    else:
        cmd += ["-m", "pipeline.cli", "processor"]
    return subprocess.Popen(cmd, env=env)


@contextmanager
def bench_servers(prefix: str = "stockit-bench-") -> Iterator[tuple[Settings, list]]:
    """Settings naming the servers of the environment, or local ones started in a temp home (stopped
    and removed afterwards; STOCKIT_BENCH_KEEP=1 keeps it), migrated; yields (settings, servers started)."""
    home = tempfile.mkdtemp(prefix=prefix)
    base = Settings.from_env(home=home, kafka_port=free_port(), redis_port=free_port(),
                             postgres_port=free_port())
    settings, servers = start_servers(base, out=lambda m: print(m, file=sys.stderr))
    try:
        migrate(settings.database_url)
        yield settings, servers
    finally:
        for s in reversed(servers):
            s.stop()
        if not os.environ.get("STOCKIT_BENCH_KEEP"):
            shutil.rmtree(home, ignore_errors=True)


def fresh_topics(settings: Settings) -> Settings:
    """Settings with new topics (created) and a new processor group, all named bench-*-<tag>."""
    tag = uuid.uuid4().hex[:6]
    settings = settings.replace(topic_trades=f"bench-trades-{tag}", topic_aggregates=f"bench-agg-{tag}",
                                topic_alerts=f"bench-alerts-{tag}", topic_deadletter=f"bench-dlq-{tag}",
                                processor_group=f"bench-{tag}")
    kafka_io.ensure_topics(settings)
    return settings


def empty_history(settings: Settings) -> None:
    """Empty the tables the processor fills (only on a database the benchmark may empty)."""
    with psycopg2.connect(settings.database_url) as conn, conn.cursor() as cur:
        cur.execute("TRUNCATE trades, candles, alerts, outbox")
    conn.close()


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q / 100 * len(values)))]


# --- CPU accounting ---------------------------------------------------------------------------------
def listening_pid(port: int) -> Optional[int]:
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return conn.pid
    return None


def thread_cpu(pid: int) -> Counter:
    """CPU seconds of each thread of a process by thread name (librdkafka's threads are named rdk:...)."""
    out: Counter = Counter()
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = name.split("/")[0] if name.startswith("rdk:broker") else name
        out[name] += (int(fields[11]) + int(fields[12])) / tick
    return out


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its living children."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


class ServerCpu:
    """CPU seconds the servers (found by their listening ports) spend between ``start`` and ``stop``."""

    def __init__(self, settings: Settings):
        ports = {"kafka": int(settings.kafka_bootstrap_servers.split(",")[0].rsplit(":", 1)[1]),
                 "postgres": urlsplit(settings.database_url).port or 5432,
                 "redis": urlsplit(settings.redis_url).port or 6379}
        self.pids = {name: listening_pid(port) for name, port in ports.items()}
        self.begin: dict[str, float] = {}
        self.spent: dict[str, float] = {}

    def start(self) -> None:
        self.begin = {n: tree_cpu(p) for n, p in self.pids.items() if p}

    def stop(self) -> None:
        self.spent = {n: tree_cpu(self.pids[n]) - t for n, t in self.begin.items()}


# --- one throughput run -------------------------------------------------------------------------------
@dataclass
class Run:
    trades: int
    seconds: float
    steady: float                       # trades/s from the first checkpoint on
    peak_mb: list[float]                # per processor
    cpu: dict[str, float]               # seconds: processors, postgres, kafka, redis
    shares: list[int] = field(default_factory=list)  # trades each processor folded
    procs: list = field(default_factory=list)
    steady_cpu_us: float = 0.0          # processors' CPU per trade from the first checkpoint on
    threads: Counter = field(default_factory=Counter)  # CPU seconds per thread name of the first processor

    @property
    def rate(self) -> float:
        return self.trades / self.seconds

    def cpu_us(self, what: str) -> float:
        return self.cpu.get(what, 0.0) / self.trades * 1e6


def processed_by(port: int) -> int:
    """Trades a processor folded, from its metrics."""
    import urllib.request

    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return -1
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
                   if line.startswith("processor_trades_total{")))


def run_processors(settings: Settings, trades: int, count: int, profile: str, timeout: float,
                   code: Optional[Path] = None) -> Run:
    ports = [free_port() for _ in range(count)]
    procs = [spawn_processor(settings, profile, port, f"-{i}", code) for i, port in enumerate(ports)]
    spy = None
    if profile == "pyspy":
        spy = subprocess.Popen(["py-spy", "record", "--pid", str(procs[0].pid), "--rate", "250", "--format", "raw",
                                "--output", f"{PROFILE}.pyspy.txt", "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rss = [PeakRss(p.pid).start() for p in procs]
    servers = ServerCpu(settings)
    servers.start()
    t0 = time.monotonic()
    first = None
    while True:
        done = checkpointed(settings)
        if done and first is None:
            first = (time.monotonic(), done, sum(tree_cpu(p.pid) for p in procs))
        if done >= trades:
            break
        for p in procs:
            if p.poll() is not None:
                raise SystemExit(f"processor exited with {p.returncode}")
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"the processors did not checkpoint {trades:,} trades in {timeout:.0f}s")
        time.sleep(0.05)
    elapsed = time.monotonic() - t0
    servers.stop()
    cpu = dict(servers.spent, processors=sum(tree_cpu(p.pid) for p in procs))
    threads = thread_cpu(procs[0].pid)
    for r in rss:
        r.stop()
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
    steady = (trades - first[1]) / (time.monotonic() - first[0]) if first and first[1] < trades else 0.0
    steady_cpu = (cpu["processors"] - first[2]) / (trades - first[1]) * 1e6 if first and first[1] < trades else 0.0
    return Run(trades, elapsed, steady, [r.peak_mb for r in rss], cpu,
               [processed_by(port) for port in ports] if count > 1 else [trades], procs, steady_cpu, threads)


def stop_processors(procs: list) -> None:
    for p in procs:
        p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def print_pyspy(path: Path, top: int = 30) -> None:
    """Self and inclusive sample shares per function of a py-spy raw (collapsed stacks) profile."""
    own, inclusive, total = Counter(), Counter(), 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  if " (" in f else f for f in stack.split(";")]
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    print(f"\npy-spy: {total} samples of the processor (all threads)")
    print(f"  {'self %':>7} {'incl %':>7}  function")
    for name, n in own.most_common(top):
        print(f"  {100 * n / total:7.1f} {100 * inclusive[name] / total:7.1f}  {name}")


def latency(settings: Settings, rate: float, seconds: float, linger_ms: float) -> list[float]:
    client = redis.Redis.from_url(settings.redis_url)
    samples: list[float] = []
    stop = threading.Event()

    def sample():
        seen: dict[bytes, float] = {}
        while not stop.is_set():
            now = time.time()
            for sym, raw in client.hgetall(speed_layer.PRICES).items():
                ts = orjson.loads(raw)["ts"]
                if seen.get(sym) != ts:
                    if sym in seen:
                        samples.append(now - ts)
                    seen[sym] = ts
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    publish_live(settings, int(rate * seconds), rate, linger_ms)
    time.sleep(0.5)
    stop.set()
    sampler.join()
    return samples


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trades", type=int, default=300_000, help="trades in the throughput phase")
    ap.add_argument("--runs", type=int, default=1, help="throughput runs over the same trades (medians)")
    ap.add_argument("--processors", type=int, default=1, help="processor processes in one group")
    ap.add_argument("--rates", default="5000,50000", help="trades/s of the latency phases ('' for none)")
    ap.add_argument("--latency-linger-ms", type=float, default=2.0,
                    help="linger.ms of the latency phases' producer (0 sends a request per trade, which on a "
                         "co-located broker queues inside the producer at 50k trades/s)")
    ap.add_argument("--latency-seconds", type=float, default=15, help="length of each latency phase")
    ap.add_argument("--event-span", type=float, default=0.0,
                    help="seconds of event time the trades are spread over, ending now (0: stamped at publication)")
    ap.add_argument("--profile", default="", choices=("", "cprofile", "pyspy"),
                    help="profile the (first) processor: cProfile (slows it) or py-spy (sampling)")
    ap.add_argument("--compare-candles", action="store_true",
                    help="also run one processor alone and check that its candles equal the group's")
    ap.add_argument("--empty-history", action="store_true", help="empty the history tables between runs "
                                                                 "even in a database not started here")
    ap.add_argument("--baseline", type=Path, help="a checkout of another version (e.g. `git worktree add` or "
                                                  "`git archive`): its processor runs alternate with this one's, "
                                                  "A B A B, and the ratio of each pair is printed")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds one run may take")
    args = ap.parse_args()

    with bench_servers() as (settings, started):
        may_empty = args.empty_history or any(s.name == "postgres" for s in started)
        settings = fresh_topics(settings)
        redis.Redis.from_url(settings.redis_url).flushdb()
        load = os.getloadavg()
        print(f"publishing {args.trades:,} trades (load average {load[0]:.1f}) ...", file=sys.stderr)
        first_ts = time.time() - args.event_span
        spread = (lambda i: first_ts + i * args.event_span / args.trades) if args.event_span > 0 else None
        secs = publish(settings, args.trades, event_time=spread)
        print(f"  published in {secs:.1f}s ({args.trades / secs:,.0f}/s)", file=sys.stderr)

        runs: list[Run] = []
        baseline: list[Run] = []
        candles: dict[int, list] = {}
        plan = [(args.processors, None)] * args.runs
        if args.baseline:
            plan = [step for _ in range(args.runs) for step in ((args.processors, None),
                                                                 (args.processors, args.baseline))]
        if args.compare_candles and args.processors != 1:
            plan.append((1, None))
        latency_procs: list = []
        for i, (count, code) in enumerate(plan):
            if may_empty:
                empty_history(settings)
            settings = settings.replace(processor_group=f"bench-{uuid.uuid4().hex[:6]}")
            stop_processors(latency_procs)
            run = run_processors(settings, args.trades, count, args.profile if i == 0 else "", args.timeout, code)
            latency_procs = run.procs
            if code is None:
                candles[count] = closed_candles(settings, args.event_span)
                runs.append(run)
            else:
                baseline.append(run)
            report_run(i + 1, count, run, "baseline" if code else "this version")
        main_runs = runs[:args.runs]

        results = []
        for rate in [float(r) for r in args.rates.split(",") if r.strip()]:
            before = sum(tree_cpu(p.pid) for p in latency_procs)
            samples = latency(settings, rate, args.latency_seconds, args.latency_linger_ms)
            busy = (sum(tree_cpu(p.pid) for p in latency_procs) - before) / args.latency_seconds
            results.append((rate, samples, busy))
        stop_processors(latency_procs)

        print()
        rates = [r.rate for r in main_runs]
        print(f"throughput, {args.processors} processor(s), {args.trades:,} trades, {len(main_runs)} run(s): "
              f"median {statistics.median(rates):,.0f} trades/s (runs: {', '.join(f'{r:,.0f}' for r in rates)}); "
              f"steady state after the first checkpoint: median {statistics.median(r.steady for r in main_runs):,.0f}")
        print(f"processor peak RSS: median {statistics.median(max(r.peak_mb) for r in main_runs):,.0f} MiB "
              f"(largest process of each run)")
        print("CPU per trade (median, µs): " + ", ".join(
            f"{what} {statistics.median(r.cpu_us(what) for r in main_runs):.2f}"
            for what in ("processors", "postgres", "kafka", "redis"))
              + f"; processors after the first checkpoint (start-up excluded) "
                f"{statistics.median(r.steady_cpu_us for r in main_runs):.2f} = a processor-bound "
                f"{1e6 / max(1e-9, statistics.median(r.steady_cpu_us for r in main_runs)) * args.processors:,.0f} trades/s")
        if baseline:
            print(f"baseline {args.baseline}: median {statistics.median(r.rate for r in baseline):,.0f} trades/s, "
                  f"processor CPU after start-up {statistics.median(r.steady_cpu_us for r in baseline):.2f} µs/trade, "
                  f"peak RSS {statistics.median(max(r.peak_mb) for r in baseline):,.0f} MiB; this/baseline per pair: "
                  f"speed x{statistics.median(a.rate / b.rate for a, b in zip(main_runs, baseline)):.2f}, processor "
                  f"CPU per trade x{statistics.median(a.steady_cpu_us / b.steady_cpu_us for a, b in zip(main_runs, baseline) if b.steady_cpu_us):.2f}")
        if args.processors > 1:
            shares = [s / sum(r.shares) * 100 for r in main_runs for s in r.shares if sum(r.shares) > 0]
            print(f"per-process share of trades (%): {', '.join(f'{s:.0f}' for s in shares)}")
        if 1 in candles and args.processors in candles and args.processors != 1:
            same = candles[1] == candles[args.processors]
            print(f"candles closed by event time: {len(candles[1])} with one processor, "
                  f"{len(candles[args.processors])} with {args.processors}: {'identical' if same else 'DIFFERENT'}")
        for rate, samples, busy in results:
            if samples:
                print(f"latency publication (producer linger.ms {args.latency_linger_ms:g}) -> Redis at {rate:,.0f} "
                      f"trades/s: p50 {percentile(samples, 50) * 1000:.1f} ms, p99 {percentile(samples, 99) * 1000:.1f} ms, mean {statistics.mean(samples) * 1000:.1f} ms "
                      f"({len(samples)} samples); processor busy {busy * 100:.0f} % of a core")
        threads = main_runs[0].threads
        print("processor CPU by thread (first run, µs/trade): " + ", ".join(
            f"{name} {seconds / args.trades * 1e6 * args.processors:.2f}" for name, seconds in threads.most_common(8)))
        print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
        if args.profile == "cprofile":
            import pstats

            pstats.Stats(f"{PROFILE}-0.prof").sort_stats("tottime").print_stats(25)
        elif args.profile == "pyspy":
            print_pyspy(Path(f"{PROFILE}.pyspy.txt"))
    return 0


def report_run(i: int, count: int, run: Run, what: str) -> None:
    print(f"run {i}, {what} ({count} processor(s)): {run.rate:,.0f} trades/s ({run.seconds:.1f}s; steady {run.steady:,.0f}/s), "
          f"peak RSS {', '.join(f'{m:,.0f}' for m in run.peak_mb)} MiB, CPU µs/trade: "
          + ", ".join(f"{k} {run.cpu_us(k):.2f}" for k in ("processors", "postgres", "kafka", "redis"))
          + f" (processors after start-up {run.steady_cpu_us:.2f})"
          + (f", shares {run.shares}" if count > 1 else ""), file=sys.stderr, flush=True)


def closed_candles(settings: Settings, span: float) -> list:
    """The candles stored, but those the idle wall clock may still be closing (the newest 15 minutes)."""
    with psycopg2.connect(settings.database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT max(ts) FROM trades")
        newest = cur.fetchone()[0]
        if newest is None:
            return []
        cur.execute("SELECT source, symbol, window_seconds, window_start, open, high, low, close, volume, vwap, "
                    "trade_count, buy_volume, sell_volume FROM candles WHERE window_end <= %s - interval '1000 s' "
                    "ORDER BY 1, 2, 3, 4", (newest,))
        rows = cur.fetchall()
    conn.close()
    return rows


if __name__ == "__main__":
    sys.exit(main())
