"""Anomaly rules: PRICE_SPIKE, CIRCUIT_BREAKER and VOLUME_SPIKE — pure logic.

A trade is compared with the rolling statistics of the trades *before* it.  A move beyond the
breaker threshold gives one CIRCUIT_BREAKER and no PRICE_SPIKE; the volume rule is independent.
Thresholds are configurable globally, per asset class and per symbol (symbol wins).  The checks
themselves live in ``pipeline.rulesets.deviation``, shared with the rule-set form of these rules.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping

from pipeline.events import Alert, Trade
from pipeline.rolling import RollingStats
from pipeline.rulesets.deviation import price_deviation_alert, volume_multiple_alert

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
    price_alert = price_deviation_alert(trade, stats.mean_price, cfg.spike_pct, cfg.breaker_pct)
    if price_alert:
        alerts.append(price_alert)
    volume_alert = volume_multiple_alert(trade, stats.mean_quantity, cfg.volume_multiple)
    if volume_alert:
        alerts.append(volume_alert)
    return alerts
