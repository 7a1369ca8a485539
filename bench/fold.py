"""The processor's own path alone, without servers: decode records and fold them into partition states.

No Kafka, Redis or PostgreSQL: simulated trades are encoded once, then each run folds them into 6
partitions' states with the processor's rule book (``processor.rulebook``: the seed rules, or
``--rules`` as ``STOCKIT_RULES``), draining candles and alerts every batch as the processor does, in
two ways, alternately in each run:

* ``per-trade``  ``Trade.decode`` and ``PartitionState.apply`` of each record (the reference path);
* ``batch``      what the processor does: ``decode_batch`` of a consumed batch, ``apply_batch`` per
                 partition, the rows buffered (``TradeRows``) and, per flush of ``--flush-rows``
                 trades, their binary COPY data built (``binary_copy``) — everything but the I/O.

Time is the process's CPU time, so a machine shared with other work disturbs it less than wall
time; the median of ``--runs`` runs and the ratio per run are reported, and both ways must give the
same candles and alerts.

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
from pipeline.history.trade_copy import binary_copy  # noqa: E402
from pipeline.partition_state import PartitionState  # noqa: E402
from pipeline.processor import rulebook  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.simulator import MarketSimulator  # noqa: E402
from pipeline.trade_batch import TradeRows, decode_batch  # noqa: E402

PARTITIONS = 6
BATCH = 5000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trades", type=int, default=300_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rules", default="", help="a STOCKIT_RULES value (default: the seed's rules)")
    ap.add_argument("--flush-rows", type=int, default=50_000, help="trades per checkpoint (COPY data built)")
    args = ap.parse_args()
    settings = Settings.from_env({}, rules_config=args.rules)
    sim = MarketSimulator(settings.symbol_list, seed=42, event_rate=0.002)
    start = 1_700_000_000.0
    records = []
    for i in range(args.trades):
        trade, _ = sim.next_trade(start + i * 0.002)
        records.append((zlib.crc32(trade.symbol.encode()) % PARTITIONS, trade.encode()))
    now = start + args.trades * 0.002

    def fresh() -> list[PartitionState]:
        return [PartitionState(settings.window_list, settings.grace_seconds, rulebook(settings))
                for _ in range(PARTITIONS)]

    def drain(states, counts) -> None:
        for st in states:
            c, a = st.drain()
            counts[0] += len(c)
            counts[1] += len(a)

    def per_trade() -> list[int]:
        states, counts = fresh(), [0, 0]
        for offset in range(0, len(records), BATCH):
            for partition, raw in records[offset:offset + BATCH]:
                states[partition].apply(Trade.decode(raw, now))
            drain(states, counts)
        return counts

    def batch() -> list[int]:
        states, counts = fresh(), [0, 0]
        rows, copy_bytes = [TradeRows() for _ in range(PARTITIONS)], 0
        for offset in range(0, len(records), BATCH):
            chunk = records[offset:offset + BATCH]
            cols, positions, invalid = decode_batch([raw for _, raw in chunk], now)
            assert not invalid and len(positions) == len(chunk)
            by_partition: dict[int, list[int]] = {}
            for r, (partition, _) in enumerate(chunk):
                by_partition.setdefault(partition, []).append(r)
            for partition, taken in by_partition.items():
                done = states[partition].apply_batch(cols, taken)
                rows[partition].add(cols, taken, done.late)
            drain(states, counts)
            if sum(len(r) for r in rows) >= args.flush_rows:
                buffered, late = TradeRows.concat(rows).columns()
                copy_bytes += len(binary_copy(buffered, late))
                rows = [TradeRows() for _ in range(PARTITIONS)]
        return counts

    results: dict[str, list[float]] = {"per-trade": [], "batch": []}
    outcome: dict[str, list[int]] = {}
    for _ in range(args.runs):
        for name, way in (("per-trade", per_trade), ("batch", batch)):
            t0 = time.process_time()
            outcome[name] = way()
            results[name].append(args.trades / (time.process_time() - t0))
    ratios = [b / p for p, b in zip(results["per-trade"], results["batch"])]
    for name, rates in results.items():
        candles, alerts = outcome[name]
        print(f"{name:>9}: {args.trades:,} trades, median {statistics.median(rates):,.0f} trades/s of CPU time "
              f"({1e6 / statistics.median(rates):.2f} µs/trade; runs: "
              f"{', '.join(f'{r:,.0f}' for r in rates)}); {candles:,} candles, {alerts:,} alerts")
    print(f"batch / per-trade: median {statistics.median(ratios):.2f}x (per run: "
          f"{', '.join(f'{r:.2f}' for r in ratios)}); same candles and alerts: "
          f"{'yes' if outcome['batch'] == outcome['per-trade'] else 'NO'}")


if __name__ == "__main__":
    main()
