"""A rolling window of a symbol's last N values with their sum and sum of squares — a typed state —
and the base of the rules that judge a trade against such a window.

Sums are kept incrementally and recomputed exactly (``math.fsum``) every N additions, so
floating-point drift from adding and subtracting cannot accumulate over a long stream.  They are
also recomputed when removing a value cancels nearly all of the sum (the value was over 2^20 times
what remains) and when the sum falls below the value just added — which only rounding garbage can
cause — so a crafted run cannot drive a sum of positive values to zero or below.  Each decision
depends only on the window's contents and sums, so a restored state continues identically.
The values are kept oldest first; the window is small (hundreds), so dropping the oldest is cheap.
"""
from __future__ import annotations

import logging
import math
from typing import Callable, Optional

import numpy as np

from pipeline.events import Alert, Trade
from pipeline.rulesets.base import Rule, RuleState

logger = logging.getLogger(__name__)
CANCELLATION = 2.0 ** 20  # removed value / remaining sum above which the remainder is recomputed


class RollingWindow(RuleState, tag="window"):
    """The last ``size`` values. ``since_exact`` counts additions since the sums were recomputed."""

    size: int
    values: list[float] = []
    total: float = 0.0
    total_sq: float = 0.0
    since_exact: int = 0

    def __len__(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return self.total / len(self.values)

    @property
    def variance(self) -> float:
        """Population variance of the values (0 when they are all equal)."""
        n = len(self.values)
        mean = self.total / n
        return max(self.total_sq / n - mean * mean, 0.0)

    def add(self, value: float) -> None:
        values = self.values
        cancelled = False
        if len(values) >= self.size:
            old = values[0]
            del values[0]
            self.total -= old
            self.total_sq -= old * old
            cancelled = abs(old) > abs(self.total) * CANCELLATION
        values.append(value)
        self.total += value
        self.total_sq += value * value
        self.since_exact += 1
        periodic = self.since_exact >= self.size
        if periodic or cancelled or (value > 0 and self.total < value):
            self.total = math.fsum(values)
            self.total_sq = math.fsum(v * v for v in values)
        if periodic:
            self.since_exact = 0

    def add_many(self, new: np.ndarray) -> "WindowSteps":
        """``add`` of each value in order, at once; the sums before each step are in the result.

        The sums chain through one ``np.cumsum`` per stretch between periodic recomputes (subtracting the
        value dropped and adding the new one are two roundings, as in ``add``); the recomputes themselves
        are ``math.fsum`` of the window, as in ``add``.  From the first other recompute (cancellation, a
        sum below its value) on, the remaining values go through ``add`` one by one."""
        first = len(self.values)
        seq = np.concatenate((np.asarray(self.values, dtype=float), new))
        totals, squares = np.empty(len(new)), np.empty(len(new))
        done = self._chain(seq, first, totals, squares)
        for j in range(done, len(new)):
            totals[j], squares[j] = self.total, self.total_sq
            self.add(float(new[j]))
        return WindowSteps(self, seq, first, totals, squares)

    def _window_after(self, seq: np.ndarray, first: int, step: int) -> list[float]:
        end = first + step + 1
        return seq[max(0, end - self.size):end].tolist()

    def _exact(self, values: list[float]) -> tuple[float, float]:
        return math.fsum(values), math.fsum(v * v for v in values)

    def _chain(self, seq: np.ndarray, first: int, totals: np.ndarray, squares: np.ndarray) -> int:
        """Vectorised ``add`` of ``seq[first:]`` up to the first recompute that is not periodic (which it
        applies); returns how many values are done."""
        size, k, done_before = self.size, len(seq) - first, self.since_exact
        if k == 0:
            return 0
        periodic = np.arange(size - done_before - 1, k, size)  # steps whose addition recomputes exactly
        bounds = np.concatenate(([0], periodic + 1))
        starts = [(self.total, self.total_sq)] + [self._exact(self._window_after(seq, first, int(p)))
                                                  for p in periodic]
        step = np.arange(k)
        lane = np.searchsorted(bounds, step, side="right") - 1
        col = 2 * (step - bounds[lane])
        width = int(col.max()) + 3
        drop_at = first + step - size
        drops = drop_at >= 0
        old = np.where(drops, seq[np.maximum(drop_at, 0)], 0.0)
        value = seq[first:]
        t = np.full((len(starts), width), -0.0)  # -0.0 adds nothing to any sum
        q = np.full((len(starts), width), -0.0)
        t[:, 0], q[:, 0] = zip(*starts)
        t[lane, col + 1] = np.where(drops, -old, -0.0)
        q[lane, col + 1] = np.where(drops, -(old * old), -0.0)
        t[lane, col + 2], q[lane, col + 2] = value, value * value
        tc, qc = np.cumsum(t, axis=1), np.cumsum(q, axis=1)
        totals[:], squares[:] = tc[lane, col], qc[lane, col]
        after_drop, after_add = tc[lane, col + 1], tc[lane, col + 2]
        cancelled = drops & (np.abs(old) > np.abs(after_drop) * CANCELLATION)
        other = cancelled | ((value > 0) & (after_add < value))
        other[periodic] = False  # recomputed anyway
        hit = np.flatnonzero(other)
        last = int(hit[0]) if hit.size else k - 1
        if hit.size or (periodic.size and periodic[-1] == last):
            self.total, self.total_sq = self._exact(self._window_after(seq, first, last))
        else:
            end = (lane[last], col[last] + 2)
            self.total, self.total_sq = float(tc[end]), float(qc[end])
        self.since_exact = (done_before + last + 1) % size
        self.values = self._window_after(seq, first, last)
        return last + 1


class WindowSteps:
    """The states of a :class:`RollingWindow` before each value of ``add_many``: sums, count, contents."""

    def __init__(self, window: RollingWindow, seq: np.ndarray, first: int, totals: np.ndarray,
                 squares: np.ndarray):
        self.window, self.seq, self.first = window, seq, first
        self.totals, self.squares = totals, squares
        self.counts = np.minimum(first + np.arange(len(totals)), window.size)

    def before(self, step: int) -> RollingWindow:
        """The window as ``add`` left it just before value ``step`` (to judge the trade at that step)."""
        w = self.window
        end = self.first + step
        return RollingWindow(params=w.params, size=w.size, values=self.seq[max(0, end - w.size):end].tolist(),
                             total=float(self.totals[step]), total_sq=float(self.squares[step]))


class WindowRule(Rule):
    """A rule over a rolling window of one value per trade. Its Params have ``rolling_window`` and
    ``min_history``; subclasses say which value (``value_of``) and what raises an alert (``check``)."""

    State = RollingWindow

    def new_state(self) -> RollingWindow:
        return RollingWindow(params=self.digest, size=self.params.rolling_window)

    def value_of(self, trade: Trade) -> float:
        raise NotImplementedError

    def check(self, trade: Trade, window: RollingWindow) -> Optional[Alert]:
        raise NotImplementedError

    def evaluate(self, trade: Trade, state: RollingWindow) -> list[Alert]:
        if len(state.values) < self.params.min_history:
            return []
        alert = self.check(trade, state)
        return [alert] if alert else []

    def update(self, trade: Trade, state: RollingWindow) -> None:
        state.add(self.value_of(trade))

    def step(self, trade: Trade, state: RollingWindow) -> list[Alert]:
        alert = self.check(trade, state) if len(state.values) >= self.params.min_history else None
        state.add(self.value_of(trade))
        return [alert] if alert else []

    # --- many trades at once (the processor's batch fold) ------------------------------------------
    def values_of(self, price: np.ndarray, quantity: np.ndarray) -> np.ndarray:
        """``value_of`` of each trade, exactly (None: this rule only folds trade by trade)."""
        return None

    def candidates(self, steps: WindowSteps, price: np.ndarray, quantity: np.ndarray) -> np.ndarray:
        """True at least where ``check`` may raise an alert (given a full enough window); each is then
        checked exactly."""
        return np.ones(len(price), bool)

    def fold_many(self, price: np.ndarray, quantity: np.ndarray, state: RollingWindow,
                  trade_at: Callable[[int], Trade]) -> Optional[list[tuple[int, Alert]]]:
        """``evaluate`` then ``update`` for each trade in order, at once: (index, alert) of what is raised;
        None when this rule has no ``values_of`` (the caller folds trade by trade)."""
        values = self.values_of(price, quantity)
        if values is None:
            return None
        steps = state.add_many(values)
        ready = steps.counts >= self.params.min_history
        if not ready.any():
            return []
        found = []
        for j in np.flatnonzero(ready & self.candidates(steps, price, quantity)).tolist():
            alert = self.check(trade_at(j), steps.before(j))
            if alert:
                found.append((j, alert))
        return found
