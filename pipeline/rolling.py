"""Rolling statistics over a symbol's last N trades (price and quantity) — pure logic.

Sums are kept incrementally and recomputed exactly every N additions, so floating-point drift
from adding and subtracting cannot accumulate over a long stream.  They are also recomputed when
removing a value cancels nearly all of a sum (the value was over 2^20 times what remains), and when
a sum falls below the value just added — which only rounding garbage can cause — so a crafted run
cannot drive a sum to zero or below: for positive values both means stay positive.  Each decision
depends only on the window's contents and sums, so a restored state continues identically.
"""
from __future__ import annotations

import math
from collections import deque

import msgspec


class RollingSnapshot(msgspec.Struct, frozen=True):
    """Checkpoint form of :class:`RollingStats`."""

    prices: list[float]
    quantities: list[float]
    price_sum: float
    qty_sum: float
    since_exact: int


_CANCELLATION = 2.0 ** 20  # removed value / remaining sum above which the remainder is recomputed


class RollingStats:
    """Mean price and mean quantity of the last ``size`` trades."""

    __slots__ = ("size", "prices", "quantities", "price_sum", "qty_sum", "_since_exact")

    def __init__(self, size: int = 100):
        if size < 1:
            raise ValueError("rolling window size must be >= 1")
        self.size = size
        self.prices: deque[float] = deque(maxlen=size)
        self.quantities: deque[float] = deque(maxlen=size)
        self.price_sum = 0.0
        self.qty_sum = 0.0
        self._since_exact = 0

    def __len__(self) -> int:
        return len(self.prices)

    @property
    def mean_price(self) -> float:
        return self.price_sum / len(self.prices)

    @property
    def mean_quantity(self) -> float:
        return self.qty_sum / len(self.quantities)

    def add(self, price: float, quantity: float) -> None:
        # Each sum decides on its own, exactly as ``rulesets.window.RollingWindow`` does.
        price_cancelled = qty_cancelled = False
        if len(self.prices) == self.size:
            old_price, old_qty = self.prices[0], self.quantities[0]
            self.price_sum -= old_price
            self.qty_sum -= old_qty
            price_cancelled = abs(old_price) > abs(self.price_sum) * _CANCELLATION
            qty_cancelled = abs(old_qty) > abs(self.qty_sum) * _CANCELLATION
        self.prices.append(price)
        self.quantities.append(quantity)
        self.price_sum += price
        self.qty_sum += quantity
        self._since_exact += 1
        periodic = self._since_exact >= self.size
        if periodic or price_cancelled or self.price_sum < price:
            self.price_sum = math.fsum(self.prices)
        if periodic or qty_cancelled or self.qty_sum < quantity:
            self.qty_sum = math.fsum(self.quantities)
        if periodic:
            self._since_exact = 0

    def to_state(self) -> RollingSnapshot:
        return RollingSnapshot(prices=list(self.prices), quantities=list(self.quantities), price_sum=self.price_sum,
                               qty_sum=self.qty_sum, since_exact=self._since_exact)

    @classmethod
    def from_state(cls, size: int, state: RollingSnapshot) -> "RollingStats":
        r = cls(size)
        r.prices.extend(state.prices[-size:])
        r.quantities.extend(state.quantities[-size:])
        r.price_sum, r.qty_sum, r._since_exact = state.price_sum, state.qty_sum, state.since_exact
        return r
