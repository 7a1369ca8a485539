"""Anomaly rules: PRICE_SPIKE, CIRCUIT_BREAKER and VOLUME_SPIKE — pure logic.

A trade is compared with the rolling statistics of the trades *before* it.  A move beyond the
breaker threshold gives one CIRCUIT_BREAKER and no PRICE_SPIKE; the volume rule is independent.
Thresholds are configurable globally, per asset class and per symbol (symbol wins).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping

from pipeline.events import Alert, Trade, alert_id_for
from pipeline.rolling import RollingStats

ASSET_CLASSES = {
    "crypto": ("BTC-USD", "ETH-USD", "SOL-USD"),
    "fx": ("EUR-USD", "GBP-USD", "JPY-USD", "USD-JPY", "AUD-USD", "USD-CHF"),
}


def asset_class(symbol: str) -> str:
    for name, members in ASSET_CLASSES.items():
        if symbol in members:
            return name
    return "equity"


@dataclass(frozen=True)
class RuleConfig:
    """Thresholds of the anomaly rules for one symbol."""

    spike_pct: float = 5.0
    breaker_pct: float = 10.0
    volume_multiple: float = 3.0
    rolling_window: int = 100
    min_history: int = 20

    def __post_init__(self):
        if not 0 < self.spike_pct < self.breaker_pct:
            raise ValueError(f"need 0 < spike_pct ({self.spike_pct}) < breaker_pct ({self.breaker_pct})")
        if self.volume_multiple <= 1:
            raise ValueError("volume_multiple must be > 1")
        if not 1 <= self.min_history <= self.rolling_window:
            raise ValueError("need 1 <= min_history <= rolling_window")


class RuleBook:
    """Resolves the RuleConfig of a symbol: defaults < asset class < symbol overrides."""

    def __init__(self, default: RuleConfig, overrides: Mapping[str, Mapping[str, float]] | None = None):
        self.default = default
        self.overrides = {k: dict(v) for k, v in (overrides or {}).items()}
        fields = {f.name for f in dataclasses.fields(RuleConfig)}
        for key, values in self.overrides.items():
            unknown = set(values) - fields
            if unknown:
                raise ValueError(f"rule override {key!r} has unknown settings: {sorted(unknown)}")
        self._cache: dict[str, RuleConfig] = {}

    def for_symbol(self, symbol: str) -> RuleConfig:
        cfg = self._cache.get(symbol)
        if cfg is None:
            merged = {**self.overrides.get(asset_class(symbol), {}), **self.overrides.get(symbol, {})}
            cfg = self._cache[symbol] = dataclasses.replace(self.default, **merged) if merged else self.default
        return cfg


def evaluate(trade: Trade, stats: RollingStats, cfg: RuleConfig) -> list[Alert]:
    """Alerts raised by ``trade`` against the statistics of the trades before it."""
    if len(stats) < cfg.min_history:
        return []
    alerts = []
    ref_price = stats.mean_price
    # A mean that is not positive is no reference: no move, no multiple (never a division by it).
    dev_pct = (trade.price - ref_price) / ref_price * 100.0 if ref_price > 0 else 0.0
    size = abs(dev_pct)
    if size > cfg.breaker_pct:
        alerts.append(_alert(trade, "CIRCUIT_BREAKER", "CRITICAL", ref_price, dev_pct,
                             f"{trade.symbol} moved {dev_pct:+.2f}% from its rolling average "
                             f"{ref_price:.4f} (breaker threshold {cfg.breaker_pct:g}%)"))
    elif size > cfg.spike_pct:
        alerts.append(_alert(trade, "PRICE_SPIKE", "HIGH", ref_price, dev_pct,
                             f"{trade.symbol} price {trade.price:.4f} is {dev_pct:+.2f}% from its rolling "
                             f"average {ref_price:.4f}"))
    ref_qty = stats.mean_quantity
    multiple = trade.quantity / ref_qty if ref_qty > 0 else 0.0
    if multiple > cfg.volume_multiple:
        alerts.append(_alert(trade, "VOLUME_SPIKE", "MEDIUM", ref_qty, multiple,
                             f"{trade.symbol} {trade.side} {trade.quantity:g} is {multiple:.1f}x the average "
                             f"size {ref_qty:.4g}"))
    return alerts


def _alert(trade: Trade, alert_type: str, severity: str, reference: float, deviation: float, message: str) -> Alert:
    return Alert(alert_id_for(trade.trade_id, alert_type), alert_type, severity, trade.symbol, trade.price,
                 reference, deviation, trade.trade_id, trade.ts, message, trade.side, trade.quantity)
