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
from typing import Optional

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
