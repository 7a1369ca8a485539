"""Pure rule-set throughput: ``run_rules`` over simulated trades already in memory (no I/O).

Measures the rule code a backtest spends its time in, for the seed's rules and for a set of all
the volatility-aware rules, over the same trades (10 symbols, injected jumps and whales).  Each
configuration runs ``--repeat`` times; the median is reported.

    python bench/rulesets.py                    # 1,000,000 trades, 5 runs each
    python bench/rulesets.py --trades 200000 --repeat 3
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.rulesets.backtest import run_rules  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.simulator import MarketSimulator  # noqa: E402

VOLATILITY = {"rulesets": {"volatility": {"price_deviation": {}, "return_zscore": {}, "luld_bands": {},
                                          "adaptive_whale": {}}},
              "assign": {"default": "volatility"}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trades", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    sim = MarketSimulator(Settings().symbol_list, seed=42, event_rate=0.002)
    trades = [sim.next_trade(1_700_000_000 + i * 0.02)[0] for i in range(args.trades)]
    results = {}
    for name, config in (("seed", None), ("volatility", VOLATILITY)):
        seconds, alerts = [], 0
        for _ in range(args.repeat):
            start = time.perf_counter()
            alerts = sum(1 for _ in run_rules(trades, config))
            seconds.append(time.perf_counter() - start)
        median = statistics.median(seconds)
        results[name] = {"trades": args.trades, "alerts": alerts, "median_seconds": round(median, 3),
                         "trades_per_second": round(args.trades / median)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
