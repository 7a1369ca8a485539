"""The processor's per-trade hot path alone: decode each record and fold it into its partition's state.

No Kafka, Redis or PostgreSQL: simulated trades are encoded once, then each run decodes them
(``Trade.decode``) and folds them (``PartitionState.apply``) into 6 partitions' states with the
processor's rule book (``processor.rulebook``: the seed rules, or ``--rules`` as ``STOCKIT_RULES``),
draining candles and alerts every batch as the processor does.  Time is the process's CPU time, so
a machine shared with other work disturbs it less than wall time; the median of ``--runs`` runs is
reported.  The same script runs against older code (it uses only interfaces that did not change).

    python bench/fold.py                       # 300,000 trades, 5 runs
    python bench/fold.py --trades 1000000 --rules '{"assign": {"default": "v"}, "rulesets": {"v": ...}}'
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.events import Trade  # noqa: E402
from pipeline.partition_state import PartitionState  # noqa: E402
from pipeline.processor import rulebook  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.simulator import MarketSimulator  # noqa: E402

PARTITIONS = 6
BATCH = 5000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trades", type=int, default=300_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rules", default="", help="a STOCKIT_RULES value (default: the seed's rules)")
    args = ap.parse_args()
    settings = Settings.from_env({}, rules_config=args.rules)
    sim = MarketSimulator(settings.symbol_list, seed=42, event_rate=0.002)
    start = 1_700_000_000.0
    records = []
    for i in range(args.trades):
        trade, _ = sim.next_trade(start + i * 0.002)
        records.append((zlib.crc32(trade.symbol.encode()) % PARTITIONS, trade.encode()))
    now = start + args.trades * 0.002
    rates, counts = [], None
    for _ in range(args.runs):
        states = [PartitionState(settings.window_list, settings.grace_seconds, rulebook(settings))
                  for _ in range(PARTITIONS)]
        candles = alerts = 0
        t0 = time.process_time()
        for offset in range(0, len(records), BATCH):
            for partition, raw in records[offset:offset + BATCH]:
                states[partition].apply(Trade.decode(raw, now))
            for st in states:
                c, a = st.drain()
                candles += len(c)
                alerts += len(a)
        rates.append(args.trades / (time.process_time() - t0))
        counts = (candles, alerts)
    print(f"fold: {args.trades:,} trades, median {statistics.median(rates):,.0f} trades/s of CPU time "
          f"(runs: {', '.join(f'{r:,.0f}' for r in rates)}); {counts[0]:,} candles, {counts[1]:,} alerts")


if __name__ == "__main__":
    main()
