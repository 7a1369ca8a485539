"""Tumbling OHLCV/VWAP windows by event time, aligned to the epoch — pure logic, no I/O.

A :class:`CandleAccumulator` folds trades into one window.  :class:`SymbolWindows` keeps the open
windows of one symbol for every window size and finalizes those whose end plus the grace period
the watermark has passed.  Which watermark to use is the caller's decision (see
``partition_state``); this module only answers "given this time, what is now final".
"""
from __future__ import annotations

from typing import Iterable, Optional

import msgspec
import numpy as np

from pipeline.events import DEFAULT_SOURCE, Candle


def window_start(ts: float, size: int) -> float:
    """Start of the epoch-aligned window of ``size`` seconds holding ``ts``."""
    return ts - (ts % size)


def check_sizes(sizes: Iterable[int]) -> tuple[int, ...]:
    """Sorted window sizes; each must divide the next (nested windows), which ``is_late`` relies on:
    otherwise a larger window can be final while the trade's smallest one is not, and be re-opened."""
    sizes = tuple(sorted(sizes))
    if not sizes or sizes[0] <= 0 or any(b % a for a, b in zip(sizes, sizes[1:])):
        raise ValueError(f"window sizes {list(sizes)} must be positive and each divide the next "
                         "(e.g. 60,300,900)")
    return sizes


class CandleSnapshot(msgspec.Struct, frozen=True):
    """Checkpoint form of one open window (see :class:`CandleAccumulator`)."""

    start: float
    open: float
    open_ts: float
    high: float
    low: float
    close: float
    close_ts: float
    volume: float
    pv: float
    count: int
    buy_volume: float
    sell_volume: float


class WindowsSnapshot(msgspec.Struct, frozen=True):
    """Checkpoint form of :class:`SymbolWindows`: per window size, how far it is final and its open windows."""

    closed_through: dict[int, float]
    open: dict[int, list[CandleSnapshot]]


class CandleAccumulator:
    """Running OHLCV and VWAP of one window. Trades may arrive out of order within it."""

    __slots__ = ("symbol", "source", "size", "start", "open", "open_ts", "high", "low", "close", "close_ts",
                 "volume", "pv", "count", "buy_volume", "sell_volume")

    def __init__(self, symbol: str, size: int, start: float, source: str = DEFAULT_SOURCE):
        self.symbol = symbol
        self.source = source
        self.size = size
        self.start = start
        self.open = self.high = self.low = self.close = 0.0
        self.open_ts = float("inf")
        self.close_ts = float("-inf")
        self.volume = self.pv = self.buy_volume = self.sell_volume = 0.0
        self.count = 0

    def add(self, ts: float, price: float, quantity: float, is_buy: bool) -> None:
        if self.count == 0:
            self.high = self.low = price
        elif price > self.high:
            self.high = price
        elif price < self.low:
            self.low = price
        # open = earliest event time, close = latest; ties keep arrival order.
        if ts < self.open_ts:
            self.open_ts, self.open = ts, price
        if ts >= self.close_ts:
            self.close_ts, self.close = ts, price
        self.volume += quantity
        self.pv += price * quantity
        if is_buy:
            self.buy_volume += quantity
        else:
            self.sell_volume += quantity
        self.count += 1

    def merge(self, ts: np.ndarray, price: np.ndarray, sums: np.ndarray) -> None:
        """Fold many trades in at once, exactly as ``add`` one by one in this (arrival) order: ``sums`` are
        the window's volume, pv, buy and sell volume after them (``running_sums`` from its own)."""
        hi, lo = float(price.max()), float(price.min())
        if self.count == 0:
            self.high, self.low = hi, lo
        else:
            self.high, self.low = max(self.high, hi), min(self.low, lo)
        first = int(ts.argmin())  # open: the earliest time, the first to arrive among equals
        if ts[first] < self.open_ts:
            self.open_ts, self.open = float(ts[first]), float(price[first])
        last = len(ts) - 1 - int(ts[::-1].argmax())  # close: the latest time, the last to arrive among equals
        if ts[last] >= self.close_ts:
            self.close_ts, self.close = float(ts[last]), float(price[last])
        self.volume, self.pv, self.buy_volume, self.sell_volume = sums.tolist()
        self.count += len(ts)

    @property
    def vwap(self) -> float:
        v = self.pv / self.volume
        # Rounding in Σp·q/Σq may step a hair outside [low, high]; VWAP never can.
        return min(max(v, self.low), self.high)

    def to_candle(self) -> Candle:
        return Candle(symbol=self.symbol, window_seconds=self.size, window_start=self.start,
                      window_end=self.start + self.size, open=self.open, high=self.high, low=self.low,
                      close=self.close, volume=self.volume, vwap=self.vwap, trade_count=self.count,
                      buy_volume=self.buy_volume, sell_volume=self.sell_volume, source=self.source)

    def to_state(self) -> CandleSnapshot:
        return CandleSnapshot(start=self.start, open=self.open, open_ts=self.open_ts, high=self.high, low=self.low,
                              close=self.close, close_ts=self.close_ts, volume=self.volume, pv=self.pv,
                              count=self.count, buy_volume=self.buy_volume, sell_volume=self.sell_volume)

    @classmethod
    def from_state(cls, symbol: str, size: int, s: CandleSnapshot, source: str = DEFAULT_SOURCE
                   ) -> "CandleAccumulator":
        acc = cls(symbol, size, s.start, source)
        acc.open, acc.open_ts, acc.high, acc.low = s.open, s.open_ts, s.high, s.low
        acc.close, acc.close_ts, acc.volume, acc.pv, acc.count = s.close, s.close_ts, s.volume, s.pv, s.count
        acc.buy_volume, acc.sell_volume = s.buy_volume, s.sell_volume
        return acc


class SymbolWindows:
    """Open windows of one symbol (of one source) for each size, and how far each size is finalized."""

    __slots__ = ("symbol", "source", "sizes", "grace", "open", "closed_through")

    def __init__(self, symbol: str, sizes: Iterable[int], grace: float, source: str = DEFAULT_SOURCE):
        self.symbol = symbol
        self.source = source
        self.sizes = check_sizes(sizes)
        self.grace = grace
        self.open: dict[int, dict[float, CandleAccumulator]] = {s: {} for s in self.sizes}
        # Every window of that size ending at or before this time is final.
        self.closed_through: dict[int, float] = {s: float("-inf") for s in self.sizes}

    def is_late(self, ts: float) -> bool:
        """True when the trade's smallest window is already final: it must not be folded in."""
        size = self.sizes[0]
        return window_start(ts, size) + size <= self.closed_through[size]

    def add(self, ts: float, price: float, quantity: float, is_buy: bool) -> None:
        for size in self.sizes:
            start = ts - (ts % size)
            windows = self.open[size]
            acc = windows.get(start)
            if acc is None:
                acc = windows[start] = CandleAccumulator(self.symbol, size, start, self.source)
            acc.add(ts, price, quantity, is_buy)

    def add_many(self, ts: np.ndarray, price: np.ndarray, quantity: np.ndarray, is_buy: np.ndarray) -> None:
        """``add`` of each trade in this (arrival) order, at once: sums accumulate in the same order."""
        groups: list[tuple[CandleAccumulator, Optional[np.ndarray]]] = []
        for size in self.sizes:
            starts = ts - ts % size
            windows = self.open[size]
            if starts[0] == starts[-1] and (starts == starts[0]).all():
                picks = [(float(starts[0]), None)]
            else:  # in order of first arrival, as ``add`` creates them
                values, first = np.unique(starts, return_index=True)
                picks = [(float(values[j]), starts == values[j]) for j in np.argsort(first, kind="stable")]
            for start, pick in picks:
                acc = windows.get(start)
                if acc is None:
                    acc = windows[start] = CandleAccumulator(self.symbol, size, start, self.source)
                groups.append((acc, pick))
        notional = price * quantity
        buys = np.where(is_buy, quantity, 0.0)
        sells = np.where(is_buy, 0.0, quantity)
        lanes = np.zeros((4 * len(groups), len(ts) + 1))
        for g, (acc, pick) in enumerate(groups):
            lane = lanes[4 * g:4 * g + 4]
            lane[:, 0] = (acc.volume, acc.pv, acc.buy_volume, acc.sell_volume)
            if pick is None:
                lane[0, 1:], lane[1, 1:], lane[2, 1:], lane[3, 1:] = quantity, notional, buys, sells
            else:
                k = int(pick.sum()) + 1
                lane[0, 1:k], lane[1, 1:k], lane[2, 1:k], lane[3, 1:k] = \
                    quantity[pick], notional[pick], buys[pick], sells[pick]
        sums = running_sums(lanes)
        for g, (acc, pick) in enumerate(groups):
            if pick is None:
                acc.merge(ts, price, sums[4 * g:4 * g + 4])
            else:
                acc.merge(ts[pick], price[pick], sums[4 * g:4 * g + 4])

    def advance(self, watermark: float) -> list[tuple[int, float]]:
        """Move how far each size is final to what ``watermark`` makes final; (size, through) of each
        size that moved."""
        horizon = watermark - self.grace
        moved = []
        for size in self.sizes:
            # Every window of this size that ends by the horizon is final, even an empty one.
            through = horizon - (horizon % size)
            if through > self.closed_through[size]:
                self.closed_through[size] = through
                moved.append((size, through))
        return moved

    def pop_final(self, size: int, through: float) -> list[Candle]:
        """The open windows of ``size`` ending by ``through``, oldest first, as candles (no longer open)."""
        windows = self.open[size]
        return [windows.pop(start).to_candle() for start in sorted(windows) if start + size <= through]

    def finalize(self, watermark: float) -> list[Candle]:
        """Close every window whose end + grace <= watermark, oldest first."""
        out: list[Candle] = []
        for size, through in self.advance(watermark):
            out += self.pop_final(size, through)
        return out

    def current(self) -> list[Candle]:
        """The newest open window of each size (what Redis shows as the live candle)."""
        out = []
        for size in self.sizes:
            windows = self.open[size]
            if windows:
                out.append(windows[max(windows)].to_candle())
        return out

    def to_state(self) -> WindowsSnapshot:
        return WindowsSnapshot(closed_through=dict(self.closed_through),
                               open={s: [acc.to_state() for acc in self.open[s].values()] for s in self.sizes})

    @classmethod
    def from_state(cls, symbol: str, sizes: Iterable[int], grace: float, state: WindowsSnapshot,
                   source: str = DEFAULT_SOURCE) -> "SymbolWindows":
        w = cls(symbol, sizes, grace, source)
        if set(state.closed_through) != set(w.sizes):
            raise ValueError(f"snapshot of {symbol} has window sizes {sorted(state.closed_through)}, "
                             f"configuration has {list(w.sizes)}")
        for size in w.sizes:
            w.closed_through[size] = state.closed_through[size]
            w.open[size] = {a.start: CandleAccumulator.from_state(symbol, size, a, source)
                            for a in state.open.get(size, ())}
        return w


def running_sums(lanes: np.ndarray) -> np.ndarray:
    """Per row, its first value plus each next one added in order, one rounding per addition — what
    ``total += x`` in a loop gives (``np.cumsum`` accumulates sequentially; ``np.sum`` does not).  Zeros
    padding a row leave it unchanged (its sums are never -0.0)."""
    return np.cumsum(lanes, axis=1)[:, -1]
