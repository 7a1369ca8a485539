"""What-if backtest over stored trades: seed N simulated trades into PostgreSQL (COPY), then time
``stockit backtest`` — the real command line, a process of its own, streaming the trades from a
server-side cursor through the rule code — and report the median of the runs.

The seeded alerts are the seed rules' own alerts over the same trades (what "fired"), so each run also
compares a real alert history.  Two candidate configurations are timed: the running configuration
(the seed's three rules) and a heavy one with every volatility-aware rule.

    python bench/backtest.py                       # 1,000,000 trades, 3 runs of each configuration
    python bench/backtest.py --trades 200000 --repeat 5
    python bench/backtest.py --reuse               # the trades are already seeded (DATABASE_URL)

Server: DATABASE_URL if set, else a PostgreSQL started here in a temporary directory.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg2  # noqa: E402
import psycopg2.extras  # noqa: E402

from pipeline.events import iso  # noqa: E402
from pipeline.migrations import migrate  # noqa: E402
from pipeline.rulesets.backtest import run_rules  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.simulator import MarketSimulator  # noqa: E402

T0 = 1_700_000_000.0
STEP = 0.02  # seconds of event time between trades (50 a second, like the default producer)
HEAVY = {"rulesets": {"volatility": {"price_deviation": {}, "return_zscore": {}, "luld_bands": {},
                                     "adaptive_whale": {}}},
         "assign": {"default": "volatility"}}


def seed(url: str, n: int) -> tuple[float, int]:
    """COPY ``n`` simulated trades (and the seed rules' alerts over them); returns (seconds, alerts)."""
    started = time.perf_counter()
    sim = MarketSimulator(Settings().symbol_list, seed=42, event_rate=0.002)
    trades = [sim.next_trade(T0 + i * STEP)[0] for i in range(n)]
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute("TRUNCATE trades, alerts")
        cur.execute("SELECT stockit_ensure_trade_partitions(ARRAY(SELECT generate_series("
                    "date_trunc('month', to_timestamp(%s)), to_timestamp(%s), interval '1 month')))",
                    (trades[0].ts, trades[-1].ts))
        buf = io.StringIO("".join(
            f"{t.trade_id}\t{t.symbol}\t{t.price!r}\t{t.quantity!r}\t{t.side}\t{t.exchange}\t{t.trader_id}\t"
            f"{t.sequence}\t{iso(t.ts)}\tf\n" for t in trades))
        cur.copy_expert("COPY trades (trade_id, symbol, price, quantity, side, exchange, trader_id, "
                        "sequence, ts, late) FROM STDIN", buf)
        alerts = list(run_rules(trades))
        psycopg2.extras.execute_values(cur, """
            INSERT INTO alerts (alert_id, alert_type, severity, symbol, price, reference, deviation,
                                trade_id, ts, message, side, quantity) VALUES %s""",
            [(a.alert_id, a.alert_type, a.severity, a.symbol, a.price, a.reference, a.deviation, a.trade_id,
              a.ts, a.message, a.side, a.quantity) for a in alerts],
            template="(%s, %s, %s, %s, %s, %s, %s, %s, to_timestamp(%s), %s, %s, %s)", page_size=2000)
        cur.execute("ANALYZE trades")
    conn.close()
    return time.perf_counter() - started, len(alerts)


def time_cli(url: str, n: int, rules: dict | None) -> tuple[float, dict]:
    """Wall time of one ``stockit backtest`` process over every seeded trade, and its result line."""
    cmd = [sys.executable, "-m", "pipeline.cli", "backtest", "--symbols", ",".join(Settings().symbol_list),
           "--start", iso(T0), "--end", iso(T0 + n * STEP + 1), "--json-progress"]
    if rules is not None:
        cmd += ["--rules", json.dumps(rules)]
    env = dict(os.environ, DATABASE_URL=url, PYTHONPATH=str(ROOT), STOCKIT_LOG_LEVEL="WARNING")
    started = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    seconds = time.perf_counter() - started
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    progress = [x for x in lines if x["type"] == "progress"]
    result = lines[-1]
    assert result["type"] == "result" and result["trades"] == n, result
    assert progress and progress[-1]["done"] == n, "no progress reported"
    return seconds, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trades", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--reuse", action="store_true",
                    help="do not seed: the trades are in DATABASE_URL already")
    args = ap.parse_args()
    home, server = None, None
    url = os.environ.get("DATABASE_URL")
    if not url:
        from pipeline.stack.servers import PostgresServer, free_port

        home = Path(tempfile.mkdtemp(prefix="stockit-bench-backtest-"))
        server = PostgresServer(home, free_port()).start()
        url = server.url
    try:
        migrate(url)
        report: dict = {"trades": args.trades}
        if not args.reuse:
            seconds, alerts = seed(url, args.trades)
            report["seed"] = {"seconds": round(seconds, 1), "fired_alerts": alerts}
        for name, rules in (("running_config", None), ("heavy_volatility_rules", HEAVY)):
            runs, result = [], {}
            for _ in range(args.repeat):
                seconds, result = time_cli(url, args.trades, rules)
                runs.append(seconds)
            report[name] = {"median_seconds": round(statistics.median(runs), 2),
                            "runs": [round(r, 2) for r in runs],
                            "inside_the_process_seconds": result["seconds"],
                            "trades_per_second": round(args.trades / statistics.median(runs)),
                            "alerts": {k: result[k] for k in ("actual", "candidate", "matched")}}
        print(json.dumps(report, indent=2))
    finally:
        if server is not None:
            server.stop()
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
