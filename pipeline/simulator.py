"""Market simulator: Geometric Brownian Motion per symbol plus injected market events — pure logic.

``MarketSimulator.next_trade(now)`` returns the next trade stamped ``now``; the caller owns the
clock and the pacing.  The same seed and the same sequence of ``now`` values give the same trades.
Market events: a price print 5-15 % away from the market (a jump that the next trades revert from)
and whale trades of 5-20x the usual size.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Iterable, Optional

from pipeline.events import DEFAULT_SOURCE, Trade

SECONDS_PER_YEAR = 365.25 * 86400


@dataclass(frozen=True)
class SymbolProfile:
    symbol: str
    price: float        # starting price
    volatility: float   # annualised
    size: float         # typical trade size (median)
    exchange: str
    tick: float = 0.01


PROFILES = {p.symbol: p for p in (
    SymbolProfile("AAPL", 189.50, 0.28, 100, "NASDAQ"),
    SymbolProfile("GOOGL", 141.80, 0.30, 80, "NASDAQ"),
    SymbolProfile("MSFT", 378.90, 0.26, 60, "NASDAQ"),
    SymbolProfile("AMZN", 153.40, 0.33, 90, "NASDAQ"),
    SymbolProfile("TSLA", 248.50, 0.60, 120, "NASDAQ"),
    SymbolProfile("BTC-USD", 43250.0, 0.65, 0.25, "COINBASE"),
    SymbolProfile("ETH-USD", 2280.0, 0.75, 2.5, "COINBASE"),
    SymbolProfile("EUR-USD", 1.0890, 0.07, 100000, "FX", 0.0001),
    SymbolProfile("GBP-USD", 1.2710, 0.08, 100000, "FX", 0.0001),
    SymbolProfile("JPY-USD", 0.00680, 0.10, 10000000, "FX", 0.000001),
)}


def profile_for(symbol: str) -> SymbolProfile:
    """Known profile, or a plausible equity profile derived from the name for unknown symbols."""
    if symbol in PROFILES:
        return PROFILES[symbol]
    h = sum(map(ord, symbol))
    return SymbolProfile(symbol, 20.0 + h % 400, 0.35, 100, "SIM")


class MarketSimulator:
    """Trades for a set of symbols. ``event_rate`` is the chance per trade of a market event."""

    SIZE_SIGMA = 0.35  # lognormal spread of trade sizes: natural 3x volume spikes stay rare

    def __init__(self, symbols: Iterable[str], seed: int = 0, event_rate: float = 0.0,
                 start_prices: Optional[dict[str, float]] = None, source: str = DEFAULT_SOURCE):
        # seed 0 means "not seeded": draw from OS entropy so every run gets its own run_id and trade ids.
        self.rng = random.Random(seed or None)
        self.profiles = [profile_for(s) for s in symbols]
        if not self.profiles:
            raise ValueError("the simulator needs at least one symbol")
        self.prices = {p.symbol: (start_prices or {}).get(p.symbol, p.price) for p in self.profiles}
        self.last_ts = {p.symbol: None for p in self.profiles}
        self.event_rate = event_rate
        self.sequence = 0  # trades made (the trade id's number)
        self.exchange_sequences: dict[str, int] = {}  # numbered per exchange, like a feed: gaps show losses
        self.run_id = f"{seed:x}" if seed else f"{self.rng.getrandbits(40):x}"
        self.source = source  # stamped on every trade

    def next_trade(self, now: float) -> tuple[Trade, Optional[str]]:
        """The next trade at time ``now`` and the market event it carries (None, 'price_jump', 'whale')."""
        rng = self.rng
        p = self.profiles[rng.randrange(len(self.profiles))]
        price = self._step(p, now)
        size = p.size * math.exp(rng.gauss(0.0, self.SIZE_SIGMA))
        event = None
        if self.event_rate and rng.random() < self.event_rate:
            if rng.random() < 0.5:
                event = "price_jump"
                price *= 1 + rng.choice((-1, 1)) * rng.uniform(0.05, 0.15)
            else:
                event = "whale"
                size *= rng.uniform(5, 20)
        decimals = max(0, -math.floor(math.log10(p.tick)))
        price = round(max(round(price / p.tick) * p.tick, p.tick), decimals)
        size = round(size, 4) if p.size < 10 else max(1.0, float(round(size)))
        self.sequence += 1
        exchange_sequence = self.exchange_sequences.get(p.exchange, 0) + 1
        self.exchange_sequences[p.exchange] = exchange_sequence
        trade = Trade(f"{self.run_id}-{self.sequence}", p.symbol, price, size,
                      "BUY" if rng.random() < 0.5 else "SELL", p.exchange, now,
                      f"T{rng.randrange(1, 500):04d}", exchange_sequence, self.source)
        return trade, event

    def _step(self, p: SymbolProfile, now: float) -> float:
        """Advance the symbol's GBM to ``now`` (exact solution of dS = mu S dt + sigma S dW, mu = 0)."""
        last = self.last_ts[p.symbol]
        self.last_ts[p.symbol] = now
        s = self.prices[p.symbol]
        if last is not None and now > last:
            dt = (now - last) / SECONDS_PER_YEAR
            # Intraday vol is scaled up so prices visibly move in a demo; still GBM.
            sigma = p.volatility * 8
            s *= math.exp(-0.5 * sigma * sigma * dt + sigma * math.sqrt(dt) * self.rng.gauss(0.0, 1.0))
            self.prices[p.symbol] = s
        return s
