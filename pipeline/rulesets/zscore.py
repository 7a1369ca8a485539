"""RETURN_OUTLIER: a trade's log return against the symbol's EWMA volatility of log returns.

Volatility is RiskMetrics' exponentially weighted moving average of squared log returns with the
mean taken as zero and decay ``lambda``, normalised over the returns seen so far so it needs no
arbitrary seed:

    sigma2_n = sum_i lambda^(n-i) * r_i^2 / sum_i lambda^(n-i)      (pandas: ewm(alpha=1-lambda))

A trade's return ``r = ln(price / previous price)`` is scored against the volatility of the returns
*before* it, ``z = r / sigma``; |z| above ``threshold_sigmas`` raises RETURN_OUTLIER once
``warmup`` returns have been seen.  Returns are scale-free: multiplying every price by a constant
gives the same alerts.  With no variance yet (every return zero) nothing is scored.

RiskMetrics used lambda = 0.94 for daily returns; here returns are trade to trade and the default
is 0.99 (a memory of about 100 trades, like the seed's rolling window).  On the simulator (200 000
trades, seed 7) 0.99 at 6 sigma flags 182 of 187 injected jumps and 178 of their reversions with
10 other alerts; 0.94 flags no reversion (the jump itself inflates the volatility too much) and
58 other alerts, mostly moves of a tick or two after runs of unchanged prices.
"""
from __future__ import annotations

import logging
import math

import msgspec

from pipeline.alert_types import RETURN_OUTLIER
from pipeline.events import Alert, Trade
from pipeline.rulesets.base import Rule, RuleParams, RuleState, alert_on

logger = logging.getLogger(__name__)


class ReturnZScoreParams(RuleParams):
    lambda_: float = msgspec.field(default=0.99, name="lambda")  # EWMA decay per trade (RiskMetrics λ)
    threshold_sigmas: float = 6.0   # |z| above this raises RETURN_OUTLIER
    warmup: int = 50                # returns seen before the rule fires

    def __post_init__(self):
        if not 0 < self.lambda_ < 1:
            raise ValueError(f"lambda ({self.lambda_}) must be between 0 and 1")
        if self.threshold_sigmas <= 0:
            raise ValueError(f"threshold_sigmas ({self.threshold_sigmas}) must be > 0")
        if self.warmup < 2:
            raise ValueError(f"warmup ({self.warmup}) must be >= 2 returns")


class ReturnVolatility(RuleState, tag="ewma_returns"):
    """Last price and the EWMA sums: ``weighted_sq`` = Σ λ^k r², ``weight`` = Σ λ^k."""

    last_price: float = 0.0
    weighted_sq: float = 0.0
    weight: float = 0.0
    returns: int = 0


class ReturnZScoreRule(Rule):
    name = "return_zscore"
    alert_types = (RETURN_OUTLIER,)
    Params = ReturnZScoreParams
    State = ReturnVolatility

    def evaluate(self, trade: Trade, state: ReturnVolatility) -> list[Alert]:
        if state.returns < self.params.warmup or state.weighted_sq <= 0.0:
            return []
        return self._score(trade, state, math.log(trade.price / state.last_price))

    def _score(self, trade: Trade, state: ReturnVolatility, r: float) -> list[Alert]:
        """The alert of return ``r`` against the volatility of the returns before it (warmed up)."""
        sigma = math.sqrt(state.weighted_sq / state.weight)
        z = r / sigma
        threshold = self.params.threshold_sigmas
        if abs(z) <= threshold:
            return []
        return [alert_on(trade, RETURN_OUTLIER, state.last_price, z,
                         f"{trade.symbol} return {r * 100:+.3f}% is {z:+.1f}σ of its EWMA volatility "
                         f"{sigma * 100:.4f}% per trade (threshold {threshold:g}σ)")]

    def step(self, trade: Trade, state: ReturnVolatility) -> list[Alert]:
        """``evaluate`` then ``update``, the log return taken once (the same floats, so the same alerts)."""
        last = state.last_price
        if last <= 0.0:
            state.last_price = trade.price
            return []
        r = math.log(trade.price / last)
        warm = state.returns >= self.params.warmup and state.weighted_sq > 0.0
        alerts = self._score(trade, state, r) if warm else []
        lam = self.params.lambda_
        state.weighted_sq = lam * state.weighted_sq + r * r
        state.weight = lam * state.weight + 1.0
        state.returns += 1
        state.last_price = trade.price
        return alerts

    def update(self, trade: Trade, state: ReturnVolatility) -> None:
        if state.last_price > 0.0:
            r = math.log(trade.price / state.last_price)
            lam = self.params.lambda_
            state.weighted_sq = lam * state.weighted_sq + r * r
            state.weight = lam * state.weight + 1.0
            state.returns += 1
        state.last_price = trade.price
