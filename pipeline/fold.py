"""The batch fold: one source's trades of a batch folded into its state at once — pure logic.

Exactly what ``SourceState.apply`` does trade by trade (``tests/unit/pipeline/test_fold.py`` compares
them on arbitrary batches, orders, splits and sources), in three steps:

1. A lean pass in arrival order decides what only that order can decide: the source's and each
   symbol's event time, which trades are late, and when each symbol's windows are finalized (the
   watermark of each finalization).  It needs of a symbol only how far each window size is final,
   the end of its newest open window of the largest size and the smallest size's window of its last
   trade (most trades fall in it: one comparison).
2. Per symbol, its trades that are not late are folded into its candle windows, rule states and
   ticker with NumPy: sums accumulated in arrival order (``windows.running_sums``), extremes,
   first/last by event time; rules through ``WindowRule.fold_many`` (others trade by trade).
3. The finalizations of step 1 are replayed in order: each emits the windows it made final.

A window receives no trade once it is final (later trades for it are late), so folding every trade
of a window before emitting any finalization gives the same candles.  Rule sets with timed rules
(LULD) feed back into step 1 (what is due), so ``PartitionState.apply_batch`` folds their sources
trade by trade instead.  Candles and alerts come out keyed by the position of the trade that made
them, so that several sources' output can be merged in the order ``apply`` would have produced.
"""
from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import numpy as np

from pipeline.rulesets.window import WindowRule
from pipeline.trade_batch import TradeColumns
from pipeline.windows import running_sums

if TYPE_CHECKING:
    from pipeline.partition_state import SourceState, SymbolState

logger = logging.getLogger(__name__)
SCALAR_BELOW = 48  # a symbol with fewer trades in a batch is folded trade by trade (NumPy calls cost more)
_INF = math.inf
_NEG_INF = -math.inf


class SymbolRun:
    """One symbol within one batch fold: its trades not late, and what step 1 needs of it."""

    __slots__ = ("name", "st", "rows", "through0", "open_end", "cur_start", "cur_end")

    def __init__(self, name: str, st: "SymbolState", largest: int):
        self.name = name
        self.st = st
        self.rows: list[int] = []
        self.through0 = st.windows.closed_through[st.windows.sizes[0]]  # trades before it are late
        newest = st.windows.open[largest]
        self.open_end = max(newest) + largest if newest else _NEG_INF  # end of the newest window
        self.cur_start = self.cur_end = _NEG_INF  # the smallest window of its last trade not late


class Fold:
    """What a batch fold produced: candles and alerts keyed by (row, order), the late rows, each symbol's
    trades not late."""

    __slots__ = ("candles", "alerts", "late", "runs")

    def __init__(self):
        self.candles: list[tuple[tuple, object]] = []
        self.alerts: list[tuple[tuple, object]] = []
        self.late: list[int] = []
        self.runs: dict[str, SymbolRun] = {}


def fold_source(src: "SourceState", cols: TradeColumns, rows: list[int]) -> Fold:
    """Fold the trades at ``rows`` of ``cols`` (arrival order, all of ``src``'s source) into ``src``."""
    out = Fold()
    finals = _decide(src, cols, rows, out)
    for run in out.runs.values():
        if run.rows:
            _fold_symbol(src, run, cols, out)
    for key, run, moved in finals:
        windows = run.st.windows
        order = 0
        for size, through in moved:
            for candle in windows.pop_final(size, through):
                out.candles.append(((key, order), candle))
                order += 1
    _count(src, cols, out)
    return out


# --- step 1: the order-dependent pass ---------------------------------------------------------------
def _decide(src: "SourceState", cols: TradeColumns, rows: list[int], out: Fold) -> list:
    """Event times, lateness and finalizations, trade by trade: what ``apply`` decides before folding."""
    grace = src.partition.grace
    sizes = src.partition.sizes
    smallest, largest = sizes[0], sizes[-1]
    ts_all, symbol_all = cols.ts_list, cols.symbol
    symbols, runs, late = src.symbols, out.runs, out.late
    finals: list = []  # ((row, phase, n), run, [(size, through)...]) in the order apply finalizes
    src_time, min_close = src.time, src._min_next_close

    def finalize(run: SymbolRun, watermark: float, key: tuple) -> None:
        st = run.st
        moved = st.windows.advance(watermark)
        if moved:
            finals.append((key, run, moved))
        ct = st.windows.closed_through
        run.through0 = ct[smallest]
        st.next_close = (min(ct[s] + s for s in sizes) + grace) if run.open_end > ct[largest] else _INF

    for row in rows:
        ts = ts_all[row]
        name = symbol_all[row]
        run = runs.get(name)
        if run is None:
            st = symbols.get(name)
            if st is None:
                src.time = src_time  # a new symbol follows the source's clock as of now
                st = src._new_symbol(name, ts)
            run = runs[name] = SymbolRun(name, st, largest)
        st = run.st
        if ts > st.last_time:
            st.last_time = ts
        if ts > src_time:
            src_time = ts
            quiet = ts - grace
            if quiet >= min_close:  # quiet symbols follow the source one grace period behind
                n = 0
                for other_name, other in symbols.items():
                    if quiet >= other.next_close:
                        other_run = runs.get(other_name)
                        if other_run is None:
                            other_run = runs[other_name] = SymbolRun(other_name, other, largest)
                        finalize(other_run, quiet, (row, 0, n))
                        n += 1
                min_close = min((s.next_close for s in symbols.values()), default=_INF)
        if st.last_time >= st.next_close:
            finalize(run, st.last_time, (row, 1, 0))
        if ts < run.through0:
            late.append(row)
            continue
        run.rows.append(row)
        if not run.cur_start <= ts < run.cur_end:  # another window than the last trade's
            start = ts - ts % smallest
            run.cur_start, run.cur_end = start, start + smallest
            end = ts - ts % largest + largest
            if end > run.open_end:
                run.open_end = end
            if st.next_close == _INF:  # it had no open window: now it has
                ct = st.windows.closed_through
                st.next_close = min(ct[s] + s for s in sizes) + grace
                if st.next_close < min_close:
                    min_close = st.next_close
    src.time, src._min_next_close = src_time, min_close
    return finals


# --- step 2: per symbol, everything that does not decide order --------------------------------------
def _fold_symbol(src: "SourceState", run: SymbolRun, cols: TradeColumns, out: Fold) -> None:
    rows = run.rows
    if len(rows) < SCALAR_BELOW:
        _fold_trades(run, cols, out)
        return
    idx = np.array(rows, dtype=np.intp)
    ts, price, quantity = cols.ts[idx], cols.price[idx], cols.quantity[idx]
    st = run.st
    st.windows.add_many(ts, price, quantity, cols.buy[idx])
    st.ticker.add_many(ts, price, quantity)
    states = st.rules.states
    for order, rule in enumerate(st.ruleset.rules):
        state = states[rule.name]
        found = None
        if isinstance(rule, WindowRule):
            found = rule.fold_many(price, quantity, state, lambda j: cols.trade(rows[j]))
        if found is None:  # trade by trade
            found = []
            for j, row in enumerate(rows):
                trade = cols.trade(row)
                found += [(j, alert) for alert in rule.evaluate(trade, state)]
                rule.update(trade, state)
        for n, (j, alert) in enumerate(found):
            out.alerts.append(((rows[j], order, n), alert))


def _fold_trades(run: SymbolRun, cols: TradeColumns, out: Fold) -> None:
    """Step 2 trade by trade, with the per-trade methods themselves (few trades)."""
    st = run.st
    states = st.rules.states
    for row in run.rows:
        trade = cols.trade(row)
        for order, rule in enumerate(st.ruleset.rules):
            for n, alert in enumerate(rule.evaluate(trade, states[rule.name])):
                out.alerts.append(((row, order, n), alert))
        st.ruleset.update(trade, st.rules)
        st.windows.add(trade.ts, trade.price, trade.quantity, trade.side == "BUY")
        st.ticker.add(trade.ts, trade.price, trade.quantity)


def _count(src: "SourceState", cols: TradeColumns, out: Fold) -> None:
    """The source's running counters, summed in arrival order as ``apply`` adds them."""
    c = src.counters
    c["late"] += len(out.late)
    c["alerts"] += len(out.alerts)
    c["candles"] += len(out.candles)
    kept = sorted(row for run in out.runs.values() for row in run.rows)
    if kept:
        idx = np.array(kept, dtype=np.intp)
        quantity = cols.quantity[idx]
        lanes = np.empty((2, len(idx) + 1))
        lanes[:, 0] = (c["volume"], c["notional"])
        lanes[0, 1:], lanes[1, 1:] = quantity, cols.price[idx] * quantity
        c["volume"], c["notional"] = running_sums(lanes).tolist()
        c["trades"] += len(kept)
    src.dirty = True
