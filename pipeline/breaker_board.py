"""The alert engine's circuit breakers: each (source, symbol)'s state folded from its alerts by event time,
written through to Redis (``speed_layer.breakers_key(source)``), and the live source's states as of the
wall clock, for metrics and logs.

A breaker per source: the alerts of a replay trip only the replay's breakers, never a live one.  Only
the live source's breakers are shown in the metrics (``alertengine_circuit_breakers_open`` ...) and
logged on a change; a replay's are stored all the same, so its states can be looked at and are the
same however it is processed.
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
    """Every (source, symbol)'s breaker as folded from its alerts by event time (written through to Redis),
    and the live source's states as of the wall clock for metrics and logs (a view, never stored)."""

    def __init__(self, client: redis.Redis, policy: BreakerPolicy, metrics: AlertEngineMetrics,
                 live_source: str):
        self.client = client
        self.policy = policy
        self.metrics = metrics
        self.live_source = live_source
        self.states: dict[tuple[str, str], BreakerState] = {}  # (source, symbol) -> state
        self.shown: dict[str, str] = {}  # live symbol -> state shown
        self._loaded: set[str] = set()

    def load(self, source: Optional[str] = None) -> None:
        """The stored states of a source (default: the live one); what the live ones show now is compared
        with what they showed when stored."""
        source = self.live_source if source is None else source
        for sym, raw in self.client.hgetall(speed_layer.breakers_key(source)).items():
            d = orjson.loads(raw)
            b = self.states[(source, sym.decode())] = BreakerState(d["symbol"], d["state"], d["since"],
                                                                   d["last_event"], d["trips"],
                                                                   d.get("last_alert_id"))
            if source == self.live_source:
                self.shown[b.symbol] = b.state
                self.metrics.breaker_state.labels(b.symbol).set(STATE_VALUE[b.state])
        self._loaded.add(source)

    def get(self, symbol: str, source: Optional[str] = None) -> BreakerState:
        key = (self.live_source if source is None else source, symbol)
        return self.states.get(key) or BreakerState(symbol)

    def apply(self, alert: Alert) -> BreakerState:
        """The breaker after ``alert`` at its own timestamp; stored in Redis before it is kept here."""
        source = alert.source
        if source not in self._loaded:
            self.load(source)
        key = (source, alert.symbol)
        before = self.get(alert.symbol, source)
        after = on_alert(before, alert.alert_type, alert.alert_id, alert.ts, self.policy)
        if after != before or key not in self.states:
            self.client.hset(speed_layer.breakers_key(source), after.symbol, orjson.dumps({
                "symbol": after.symbol, "state": after.state, "since": after.since,
                "last_event": after.last_event, "trips": after.trips, "last_alert_id": after.last_alert_id}))
            self.states[key] = after
        return after

    def observe(self, now: float, symbols: Optional[Iterable[str]] = None) -> None:
        """Log and count the changes of the live source's shown states since the last look; set the gauges."""
        m = self.metrics
        live = self.live_source
        for sym in [s for src, s in self.states if src == live] if symbols is None else symbols:
            state = advance(self.get(sym), now, self.policy).state
            before = self.shown.get(sym)
            if state != before:
                self.shown[sym] = state
                m.breaker_state.labels(sym).set(STATE_VALUE[state])
                if before is not None or state != "CLOSED":
                    m.transitions.labels(state).inc()
                    logger.info("breaker %s: %s -> %s", sym, before or "CLOSED", state)
        m.breakers_open.set(sum(1 for s in self.shown.values() if s == OPEN))
