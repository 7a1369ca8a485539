"""PostgreSQL's ingest path alone: the processor's trade rows, flush by flush, on the real server.

Simulated trades are written in transactions of ``--flush-rows`` (the processor's flush size), each
way of storing them in turn, on an emptied ``trades`` table, ``--repeat`` times (medians):

* ``staged-text``   the way before: text COPY into a temporary staging table, then
                    ``INSERT ... SELECT to_timestamp(ts) ... ON CONFLICT DO NOTHING``
* ``staged-binary`` binary COPY into the staging table, then ``INSERT ... ON CONFLICT DO NOTHING``
                    (what the writer does after a key conflict)
* ``direct-binary`` binary COPY straight into ``trades`` under a savepoint (the writer's normal way;
                    the unique key still refuses a duplicate, which sends that flush the staged way)
* ``direct-async``  the same with ``SET LOCAL synchronous_commit = off`` — NOT used: a server crash
                    could lose a committed checkpoint whose outbox messages and offsets were
                    already published, breaking exactly-once; shown for the comparison only

Per way: rows/s (wall), the server's CPU µs per row (every process of the PostgreSQL server, found
by its port), the client's CPU µs per row (building the COPY data).

    python bench/ingest.py                          # 500k rows, flushes of 50k, 3 repeats
    python bench/ingest.py --rows 1000000 --flush-rows 20000,50000,100000

Servers: DATABASE_URL if set, else a local PostgreSQL started here.  ``trades`` is emptied: only run
it against a database of your own.
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.history.trade_copy import COPY_COLUMNS, binary_copy  # noqa: E402
from pipeline.history.writer import HistoryWriter  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.simulator import MarketSimulator  # noqa: E402
from pipeline.trade_batch import TradeRows  # noqa: E402

from throughput import ServerCpu, bench_servers  # noqa: E402

COLUMNS = ", ".join(COPY_COLUMNS)
TEXT_STAGE = """CREATE TEMP TABLE IF NOT EXISTS trades_stage_text (
    trade_id text, symbol text, price float8, quantity float8, side text, exchange text, trader_id text,
    sequence bigint, ts float8, late boolean, source text) ON COMMIT DELETE ROWS"""


def text_copy(rows) -> io.StringIO:
    """The text COPY data of the way before (repr of floats, escapes of text)."""
    def text(v):
        if v is None:
            return "\\N"
        return v.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")

    null = "\\N"
    return io.StringIO("".join(
        f"{text(t.trade_id)}\t{t.symbol}\t{t.price!r}\t{t.quantity!r}\t{t.side}\t{text(t.exchange)}\t"
        f"{text(t.trader_id)}\t{null if t.sequence is None else t.sequence}\t{t.ts!r}\t{'t' if late else 'f'}\t"
        f"{t.source}\n" for t, late in rows))


def write(writer: HistoryWriter, way: str, chunk) -> float:
    """One flush of ``chunk`` (trade, late) rows the given way; returns the client CPU seconds spent."""
    with writer.transaction() as cur:
        c0 = time.process_time()
        if way == "staged-text":
            data = text_copy(chunk)
        else:
            data = io.BytesIO(binary_copy(*TradeRows.of(chunk).columns()))
        client = time.process_time() - c0
        if way == "staged-text":
            writer._ensure_partitions(cur, TradeRows.of(chunk[:1]).columns()[0].ts)
            cur.execute(TEXT_STAGE)
            cur.copy_expert("COPY trades_stage_text FROM STDIN", data)
            cur.execute("""INSERT INTO trades (trade_id, symbol, price, quantity, side, exchange, trader_id,
                                               sequence, ts, late, source)
                           SELECT trade_id, symbol, price, quantity, side, exchange, trader_id, sequence,
                                  to_timestamp(ts), late, source FROM trades_stage_text ON CONFLICT DO NOTHING""")
        elif way == "staged-binary":
            writer._ensure_partitions(cur, TradeRows.of(chunk[:1]).columns()[0].ts)
            cur.copy_expert(f"COPY trades_stage ({COLUMNS}) FROM STDIN WITH (FORMAT binary)", data)
            cur.execute(f"INSERT INTO trades ({COLUMNS}) SELECT {COLUMNS} FROM trades_stage ON CONFLICT DO NOTHING")
        else:
            if way == "direct-async":
                cur.execute("SET LOCAL synchronous_commit = off")
            c0 = time.process_time()
            writer.insert_trades(cur, chunk)
            client = time.process_time() - c0
    return client


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--flush-rows", default="50000", help="rows per transaction (comma-separated list)")
    ap.add_argument("--ways", default="staged-text,staged-binary,direct-binary,direct-async")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sim = MarketSimulator(Settings().symbol_list, seed=42, event_rate=0.001)
    start = time.time() - 7200
    rows = [(sim.next_trade(start + i * 0.005)[0], False) for i in range(args.rows)]
    with bench_servers("stockit-ingest-") as (settings, _):
        writer = HistoryWriter(settings.database_url, 120.0, "stockit-bench-ingest")
        cpu = ServerCpu(settings)
        results: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
        for flush in [int(x) for x in args.flush_rows.split(",")]:
            for _ in range(args.repeat):
                for way in args.ways.split(","):
                    with writer.transaction() as cur:
                        cur.execute("TRUNCATE trades")
                    cpu.start()
                    t0, client = time.perf_counter(), 0.0
                    for i in range(0, len(rows), flush):
                        client += write(writer, way, rows[i:i + flush])
                    seconds = time.perf_counter() - t0
                    cpu.stop()
                    results.setdefault((way, flush), []).append(
                        (len(rows) / seconds, cpu.spent.get("postgres", 0.0) / len(rows) * 1e6,
                         client / len(rows) * 1e6))
        writer.close()
    print(f"{args.rows:,} trade rows, medians of {args.repeat}:")
    print(f"  {'way':14} {'flush':>7} {'rows/s':>10} {'server µs/row':>14} {'server-bound rows/s':>20} "
          f"{'client µs/row':>14}")
    for (way, flush), runs in results.items():
        rate, server, client = (statistics.median(x) for x in zip(*runs))
        print(f"  {way:14} {flush:>7,} {rate:>10,.0f} {server:>14.2f} {1e6 / server if server else 0:>20,.0f} "
              f"{client:>14.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
