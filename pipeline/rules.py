"""Asset classes and the seed rules' thresholds (``RuleConfig``) — pure definitions.

The seed's rules — PRICE_SPIKE / CIRCUIT_BREAKER and VOLUME_SPIKE against the rolling averages of a
symbol's last trades — run as the built-in ``seed`` rule set (``pipeline.rulesets.deviation``,
``rulesets.config.seed_ruleset``); ``RuleConfig`` holds their thresholds from the settings
(``STOCKIT_SPIKE_PCT`` ...), ``STOCKIT_RULE_OVERRIDES`` varies them per asset class or symbol.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)

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
