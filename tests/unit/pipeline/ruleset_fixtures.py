"""Trades and rule runs shared by the rule-set tests."""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable, Optional, Sequence

from pipeline.events import Alert, Trade

T0 = 1_717_000_000.0


def trade(n: int, price: float, qty: float = 10.0, ts: Optional[float] = None, symbol: str = "AAPL",
          side: str = "BUY") -> Trade:
    return Trade(f"t{n}", symbol, float(price), float(qty), side, "X", T0 + n if ts is None else ts)


def series(prices: Sequence[float], qtys: Optional[Sequence[float]] = None, step: float = 1.0,
           symbol: str = "AAPL") -> list[Trade]:
    """One trade per price, ``step`` seconds apart from T0."""
    qtys = qtys or [10.0] * len(prices)
    return [trade(i, p, q, T0 + i * step, symbol) for i, (p, q) in enumerate(zip(prices, qtys))]


def run_rule(rule, trades: Sequence[Trade], state=None) -> list[list[Alert]]:
    """The alerts of each trade, evaluating before updating as the processor does."""
    state = rule.new_state() if state is None else state
    out = []
    for t in trades:
        out.append(rule.evaluate(t, state))
        rule.update(t, state)
    return out


def fired(per_trade: Sequence[Sequence[Alert]]) -> list[tuple[int, str]]:
    """(trade index, alert type) of every alert."""
    return [(i, a.alert_type) for i, alerts in enumerate(per_trade) for a in alerts]


def seed_alerts(trades: Iterable[Trade], spike_pct: float = 5.0, breaker_pct: float = 10.0,
                volume_multiple: float = 3.0, rolling_window: int = 100,
                min_history: int = 20) -> list[tuple[str, str, float]]:
    """(trade id, alert type, deviation) the seed's rules raise, computed directly: each trade against plain
    means of the price and size of its symbol's ``rolling_window`` trades before it."""
    before: dict[str, list[Trade]] = defaultdict(list)
    out = []
    for t in trades:
        past = before[t.symbol][-rolling_window:]
        if len(past) >= min_history:
            mean_price = math.fsum(p.price for p in past) / len(past)
            mean_qty = math.fsum(p.quantity for p in past) / len(past)
            dev = (t.price - mean_price) / mean_price * 100.0
            if abs(dev) > breaker_pct:
                out.append((t.trade_id, "CIRCUIT_BREAKER", dev))
            elif abs(dev) > spike_pct:
                out.append((t.trade_id, "PRICE_SPIKE", dev))
            if t.quantity / mean_qty > volume_multiple:
                out.append((t.trade_id, "VOLUME_SPIKE", t.quantity / mean_qty))
        before[t.symbol].append(t)
    return out
