"""The seed's rules: price deviation from the rolling average (PRICE_SPIKE, or CIRCUIT_BREAKER beyond
the breaker threshold — one alert, not both) and VOLUME_SPIKE at a multiple of the rolling average
quantity.  Defaults are the original design's: 5 %, 10 %, 3x over the last 100 trades, no alert
before 20 trades.  The built-in ``seed`` rule set is these two rules (``config.seed_ruleset``).
"""
from __future__ import annotations

import logging
from typing import Optional

import numpy as np

from pipeline.alert_types import CIRCUIT_BREAKER, PRICE_SPIKE, VOLUME_SPIKE
from pipeline.events import Alert, Trade
from pipeline.rulesets.base import RuleParams, alert_on
from pipeline.rulesets.window import RollingWindow, WindowRule, WindowSteps

logger = logging.getLogger(__name__)


def price_deviation_alert(trade: Trade, ref_price: float, spike_pct: float,
                          breaker_pct: float) -> Optional[Alert]:
    """CIRCUIT_BREAKER beyond ``breaker_pct`` from ``ref_price``, else PRICE_SPIKE beyond ``spike_pct``.
    A reference that is not positive is no reference: no alert (never a division by it)."""
    if not ref_price > 0:
        return None
    dev_pct = (trade.price - ref_price) / ref_price * 100.0
    size = abs(dev_pct)
    if size > breaker_pct:
        return alert_on(trade, CIRCUIT_BREAKER, ref_price, dev_pct,
                        f"{trade.symbol} moved {dev_pct:+.2f}% from its rolling average "
                        f"{ref_price:.4f} (breaker threshold {breaker_pct:g}%)")
    if size > spike_pct:
        return alert_on(trade, PRICE_SPIKE, ref_price, dev_pct,
                        f"{trade.symbol} price {trade.price:.4f} is {dev_pct:+.2f}% from its rolling "
                        f"average {ref_price:.4f}")
    return None


def volume_multiple_alert(trade: Trade, ref_qty: float, volume_multiple: float) -> Optional[Alert]:
    """VOLUME_SPIKE when the quantity is more than ``volume_multiple`` times ``ref_qty`` (a positive one)."""
    if not ref_qty > 0:
        return None
    multiple = trade.quantity / ref_qty
    if multiple > volume_multiple:
        return alert_on(trade, VOLUME_SPIKE, ref_qty, multiple,
                        f"{trade.symbol} {trade.side} {trade.quantity:g} is {multiple:.1f}x the average "
                        f"size {ref_qty:.4g}")
    return None


class WindowParams(RuleParams):
    rolling_window: int = 100   # trades in the rolling average
    min_history: int = 20       # trades seen before the rule fires

    def __post_init__(self):
        if not 1 <= self.min_history <= self.rolling_window:
            raise ValueError(f"need 1 <= min_history ({self.min_history}) <= rolling_window "
                             f"({self.rolling_window})")


class PriceDeviationParams(WindowParams):
    spike_pct: float = 5.0      # PRICE_SPIKE beyond this % from the rolling average price
    breaker_pct: float = 10.0   # CIRCUIT_BREAKER beyond this %

    def __post_init__(self):
        super().__post_init__()
        if not 0 < self.spike_pct < self.breaker_pct:
            raise ValueError(f"need 0 < spike_pct ({self.spike_pct}) < breaker_pct ({self.breaker_pct})")


class VolumeMultipleParams(WindowParams):
    volume_multiple: float = 3.0  # VOLUME_SPIKE above this multiple of the rolling average quantity

    def __post_init__(self):
        super().__post_init__()
        if self.volume_multiple <= 1:
            raise ValueError(f"volume_multiple ({self.volume_multiple}) must be > 1")


class PriceDeviationRule(WindowRule):
    """PRICE_SPIKE / CIRCUIT_BREAKER: price against the mean of the symbol's last N trade prices."""

    name = "price_deviation"
    alert_types = (PRICE_SPIKE, CIRCUIT_BREAKER)
    Params = PriceDeviationParams

    def value_of(self, trade: Trade) -> float:
        return trade.price

    def check(self, trade: Trade, window: RollingWindow) -> Optional[Alert]:
        return price_deviation_alert(trade, window.mean, self.params.spike_pct, self.params.breaker_pct)

    def values_of(self, price: np.ndarray, quantity: np.ndarray) -> np.ndarray:
        return price

    def candidates(self, steps: WindowSteps, price: np.ndarray, quantity: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            ref = steps.totals / steps.counts
            return (ref > 0) & (np.abs((price - ref) / ref * 100.0) > self.params.spike_pct)


class VolumeMultipleRule(WindowRule):
    """VOLUME_SPIKE: quantity against a multiple of the mean of the symbol's last N trade sizes."""

    name = "volume_multiple"
    alert_types = (VOLUME_SPIKE,)
    Params = VolumeMultipleParams

    def value_of(self, trade: Trade) -> float:
        return trade.quantity

    def check(self, trade: Trade, window: RollingWindow) -> Optional[Alert]:
        return volume_multiple_alert(trade, window.mean, self.params.volume_multiple)

    def values_of(self, price: np.ndarray, quantity: np.ndarray) -> np.ndarray:
        return quantity

    def candidates(self, steps: WindowSteps, price: np.ndarray, quantity: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            ref = steps.totals / steps.counts
            return (ref > 0) & (quantity / ref > self.params.volume_multiple)
