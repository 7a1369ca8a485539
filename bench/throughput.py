"""Processor throughput and publication-to-Redis latency on the real servers.

Phase 1 (throughput): N simulated trades are published to a fresh raw-trades topic first; then one
processor process is started and timed until its checkpoint in PostgreSQL covers every record
(candles, rules, Redis and PostgreSQL done, offsets committed); its peak RSS until then is
printed too (bench/rss.py).  Phase 2 (latency): trades are
published live at a fixed rate, stamped at publication; a sampler reads each symbol's latest
trade time from Redis and records now - timestamp whenever it changes.

    python bench/throughput.py                      # local servers in a temp dir, 300k trades
    python bench/throughput.py --trades 1000000 --rate 20000 --profile

Servers: KAFKA_BOOTSTRAP_SERVERS / REDIS_URL / DATABASE_URL if set, else started here.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson  # noqa: E402
import psycopg2  # noqa: E402
import redis  # noqa: E402

from pipeline import kafka_io, speed_layer  # noqa: E402
from pipeline.migrations import migrate  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.simulator import MarketSimulator  # noqa: E402
from pipeline.stack.servers import free_port  # noqa: E402
from pipeline.stack.supervisor import start_servers  # noqa: E402

from rss import PeakRss  # noqa: E402  (bench/rss.py)


def publish(settings: Settings, n: int, rate: float = 0.0, stop: threading.Event | None = None,
            event_time: Callable[[int], float] | None = None) -> float:
    """Publish n simulated trades (rate 0 = as fast as possible), stamped ``event_time(i)`` for the i-th
    (default: the clock at publication); returns seconds taken."""
    producer = kafka_io.make_producer(settings, **{"linger.ms": 20})
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
            time.sleep(0.001)
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


def spawn_processor(settings: Settings, profile: bool) -> subprocess.Popen:
    env = {**os.environ, **settings.to_env(), "STOCKIT_PROCESSOR_METRICS_PORT": "0", "STOCKIT_LOG_LEVEL": "WARNING"}
    cmd = [sys.executable]
    if profile:
        cmd += ["-m", "cProfile", "-o", str(Path(tempfile.gettempdir()) / "stockit-processor.prof")]
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


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q / 100 * len(values)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trades", type=int, default=300_000, help="trades in the throughput phase")
    ap.add_argument("--rate", type=float, default=5000, help="trades/s in the latency phase")
    ap.add_argument("--latency-seconds", type=float, default=20, help="length of the latency phase")
    ap.add_argument("--profile", action="store_true", help="run the processor under cProfile and print the top")
    args = ap.parse_args()

    with bench_servers() as (settings, _):
        settings = fresh_topics(settings)
        redis.Redis.from_url(settings.redis_url).flushdb()

        print(f"publishing {args.trades:,} trades ...", file=sys.stderr)
        secs = publish(settings, args.trades)
        print(f"  published in {secs:.1f}s ({args.trades / secs:,.0f}/s)", file=sys.stderr)

        proc = spawn_processor(settings, args.profile)
        rss = PeakRss(proc.pid).start()
        t0 = time.monotonic()
        first = None
        while True:
            done = checkpointed(settings)
            if done and first is None:
                first = (time.monotonic(), done)
            if done >= args.trades:
                break
            if proc.poll() is not None:
                raise SystemExit(f"processor exited with {proc.returncode}")
            time.sleep(0.05)
        elapsed = time.monotonic() - t0
        rss.stop()
        # Steady-state rate: from the first checkpoint (start-up and group join excluded) to the last.
        steady = (args.trades - first[1]) / (time.monotonic() - first[0]) if first and first[1] < args.trades else 0

        # Phase 2: live latency at a fixed rate.
        client = redis.Redis.from_url(settings.redis_url)
        samples: list[float] = []
        stop = threading.Event()

        def sample():
            seen: dict[str, float] = {}
            while not stop.is_set():
                for sym, raw in client.hgetall(speed_layer.PRICES).items():
                    ts = orjson.loads(raw)["ts"]
                    if seen.get(sym) != ts:
                        if sym in seen:
                            samples.append(time.time() - ts)
                        seen[sym] = ts
                time.sleep(0.002)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        publish(settings, int(args.rate * args.latency_seconds), rate=args.rate)
        stop.set()
        sampler.join()
        proc.send_signal(2)
        proc.wait(60)

        print()
        print(f"throughput: {args.trades:,} trades in {elapsed:.2f}s = {args.trades / elapsed:,.0f} trades/s "
              f"(steady state after the first checkpoint: {steady:,.0f} trades/s)")
        print(f"processor peak RSS during the throughput phase: {rss.peak_mb:,.0f} MiB")
        if samples:
            print(f"latency publication -> Redis at {args.rate:,.0f} trades/s: p50 {percentile(samples, 50) * 1000:.1f} ms, "
                  f"p99 {percentile(samples, 99) * 1000:.1f} ms, mean {statistics.mean(samples) * 1000:.1f} ms "
                  f"({len(samples)} samples)")
        if args.profile:
            import pstats

            pstats.Stats(str(Path(tempfile.gettempdir()) / "stockit-processor.prof")).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
