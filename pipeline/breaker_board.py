"""The alert engine's circuit breakers: each symbol's state folded from its alerts by event time, written
through to Redis (``stockit:breakers``), and the state it shows as of the wall clock, for metrics and logs.
"""
from __future__ import annotations

import logging
from typing import Iterable, Optional

import orjson
import redis

from pipeline import speed_layer
from pipeline.breaker import OPEN, STATE_VALUE, BreakerPolicy, BreakerState, advance, on_alert
from pipeline.events import Alert
from pipeline.metrics import AlertEngineMetrics

logger = logging.getLogger(__name__)


class BreakerBoard:
    """Every symbol's breaker as folded from its alerts by event time (written through to Redis), and
    its state as of the wall clock for metrics and logs (a view, never stored)."""

    def __init__(self, client: redis.Redis, policy: BreakerPolicy, metrics: AlertEngineMetrics):
        self.client = client
        self.policy = policy
        self.metrics = metrics
        self.states: dict[str, BreakerState] = {}
        self.shown: dict[str, str] = {}

    def load(self) -> None:
        """The stored states; what they show now is compared with what they showed when stored."""
        for sym, raw in self.client.hgetall(speed_layer.BREAKERS).items():
            d = orjson.loads(raw)
            b = self.states[sym.decode()] = BreakerState(d["symbol"], d["state"], d["since"], d["last_event"],
                                                         d["trips"], d.get("last_alert_id"))
            self.shown[b.symbol] = b.state
            self.metrics.breaker_state.labels(b.symbol).set(STATE_VALUE[b.state])

    def get(self, symbol: str) -> BreakerState:
        return self.states.get(symbol) or BreakerState(symbol)

    def apply(self, alert: Alert) -> BreakerState:
        """The breaker after ``alert`` at its own timestamp; stored in Redis before it is kept here."""
        before = self.get(alert.symbol)
        after = on_alert(before, alert.alert_type, alert.alert_id, alert.ts, self.policy)
        if after != before or alert.symbol not in self.states:
            self.client.hset(speed_layer.BREAKERS, after.symbol, orjson.dumps({
                "symbol": after.symbol, "state": after.state, "since": after.since,
                "last_event": after.last_event, "trips": after.trips, "last_alert_id": after.last_alert_id}))
            self.states[after.symbol] = after
        return after

    def observe(self, now: float, symbols: Optional[Iterable[str]] = None) -> None:
        """Log and count the changes of the shown states since the last look; set the gauges."""
        m = self.metrics
        for sym in list(self.states) if symbols is None else symbols:
            state = advance(self.get(sym), now, self.policy).state
            before = self.shown.get(sym)
            if state != before:
                self.shown[sym] = state
                m.breaker_state.labels(sym).set(STATE_VALUE[state])
                if before is not None or state != "CLOSED":
                    m.transitions.labels(state).inc()
                    logger.info("breaker %s: %s -> %s", sym, before or "CLOSED", state)
        m.breakers_open.set(sum(1 for s in self.shown.values() if s == OPEN))
