"""Adaptive whales: VOLUME_SPIKE by the symbol's own size distribution, not a fixed multiple.

Trade sizes are roughly log-normal, so a size is scored on the log scale against the mean and the
standard deviation of the log sizes of the symbol's last ``rolling_window`` trades:

    z = (ln q - mean(ln q_i)) / std(ln q_i)

A trade with ``z`` above ``threshold_sigmas`` that is also at least ``min_multiple`` times the
typical (geometric mean) size raises VOLUME_SPIKE — the floor keeps a symbol whose sizes barely
vary from calling a slightly larger trade a whale.  The alert's ``reference`` is the typical size
and its ``deviation`` the multiple of it, like the seed's rule, so whale cards read the same; the
z-score is in the message.  Scale-free in quantity: lots of 100 or single shares give the same
alerts (up to rounding).
"""
from __future__ import annotations

import logging
import math
from typing import Optional

import numpy as np

from pipeline.alert_types import VOLUME_SPIKE
from pipeline.events import Alert, Trade
from pipeline.rulesets.base import RuleParams, alert_on
from pipeline.rulesets.window import RollingWindow, WindowRule, WindowSteps

logger = logging.getLogger(__name__)


class AdaptiveWhaleParams(RuleParams):
    rolling_window: int = 500      # trades in the size distribution
    min_history: int = 50          # trades seen before the rule fires
    threshold_sigmas: float = 4.0  # log-size z-score above which a trade is a whale
    min_multiple: float = 2.0      # ... and at least this multiple of the typical size

    def __post_init__(self):
        if not 2 <= self.min_history <= self.rolling_window:
            raise ValueError(f"need 2 <= min_history ({self.min_history}) <= rolling_window "
                             f"({self.rolling_window})")
        if self.threshold_sigmas <= 0:
            raise ValueError(f"threshold_sigmas ({self.threshold_sigmas}) must be > 0")
        if self.min_multiple < 1:
            raise ValueError(f"min_multiple ({self.min_multiple}) must be >= 1")


class AdaptiveWhaleRule(WindowRule):
    name = "adaptive_whale"
    alert_types = (VOLUME_SPIKE,)
    Params = AdaptiveWhaleParams

    def value_of(self, trade: Trade) -> float:
        return math.log(trade.quantity)

    def values_of(self, price: np.ndarray, quantity: np.ndarray) -> np.ndarray:
        return np.fromiter(map(math.log, quantity.tolist()), float, len(quantity))  # math.log, as value_of

    def candidates(self, steps: WindowSteps, price: np.ndarray, quantity: np.ndarray) -> np.ndarray:
        # A whale is at least min_multiple times the typical size; NumPy's exp may differ from math.exp in
        # the last place, so the margin keeps every trade ``check`` could flag.
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            typical = np.exp(steps.totals / steps.counts)
            return quantity >= typical * (self.params.min_multiple * (1 - 1e-9))

    def check(self, trade: Trade, window: RollingWindow) -> Optional[Alert]:
        p = self.params
        mean = window.mean
        typical = math.exp(mean)
        multiple = trade.quantity / typical
        if multiple < p.min_multiple:
            return None
        sd = math.sqrt(window.variance)
        z = (math.log(trade.quantity) - mean) / sd if sd > 0.0 else math.inf
        if z <= p.threshold_sigmas:
            return None
        return alert_on(trade, VOLUME_SPIKE, typical, multiple,
                        f"{trade.symbol} {trade.side} {trade.quantity:g} is {multiple:.1f}x its typical "
                        f"size {typical:.4g} ({z:.1f}σ on the log scale, threshold {p.threshold_sigmas:g}σ)")
