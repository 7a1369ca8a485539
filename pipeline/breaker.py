"""Circuit-breaker state machine per symbol — pure logic, the clock is passed in.

Which alert types trip the breaker and which restart its probation is said once, in
``pipeline.alert_types`` (TRIPS_BREAKER: CIRCUIT_BREAKER, TRADING_PAUSE; RESTARTS_PROBATION:
PRICE_SPIKE, RETURN_OUTLIER, LIMIT_STATE).

CLOSED -> OPEN on a tripping alert.  OPEN -> HALF_OPEN once ``open_seconds`` have passed.
HALF_OPEN -> OPEN on a new breach (a tripping alert); HALF_OPEN -> CLOSED once trading has been
normal — no tripping or probation alert — for ``probation_seconds``.  A probation alert while
HALF_OPEN restarts the probation.  A tripping alert while OPEN restarts the open period.

Time is the alerts' event time: the alert engine applies each alert at its own timestamp, so the
same alerts give the same states however fast, late or often they are processed (a replay too).
A symbol's event time never runs backwards: an alert stamped before the breaker's last change
counts at that change.  ``advance`` to the wall clock gives the state *shown* now; it is a view,
never stored, so it cannot change what later alerts do.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import msgspec

from pipeline.alert_types import RESTARTS_PROBATION, TRIPS_BREAKER

CLOSED, HALF_OPEN, OPEN = "CLOSED", "HALF_OPEN", "OPEN"
STATES = (CLOSED, HALF_OPEN, OPEN)
STATE_VALUE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


@dataclass(frozen=True)
class BreakerPolicy:
    open_seconds: float = 300.0
    probation_seconds: float = 60.0


class BreakerState(msgspec.Struct, frozen=True):
    """One symbol's breaker. ``since`` is when it entered ``state``; ``last_event`` when the
    probation last restarted; ``last_alert_id`` makes re-applying the same alert a no-op."""

    symbol: str
    state: str = CLOSED
    since: float = 0.0
    last_event: float = 0.0
    trips: int = 0
    last_alert_id: Optional[str] = None


def on_alert(b: BreakerState, alert_type: str, alert_id: str, now: float, policy: BreakerPolicy) -> BreakerState:
    """The breaker after an alert of ``alert_type`` stamped ``now`` (event time)."""
    now = max(now, b.since, b.last_event)
    b = advance(b, now, policy)
    if alert_id == b.last_alert_id:
        return b
    if alert_type in TRIPS_BREAKER:
        trips = b.trips + (b.state != OPEN)
        return BreakerState(b.symbol, OPEN, now, now, trips, alert_id)
    if alert_type in RESTARTS_PROBATION and b.state == HALF_OPEN:
        return replace_struct(b, last_event=now, last_alert_id=alert_id)
    return b


def advance(b: BreakerState, now: float, policy: BreakerPolicy) -> BreakerState:
    """Apply the timed transitions that are due at ``now``."""
    if b.state == OPEN and now - b.since >= policy.open_seconds:
        b = replace_struct(b, state=HALF_OPEN, since=b.since + policy.open_seconds,
                           last_event=b.since + policy.open_seconds)
    if b.state == HALF_OPEN and now - b.last_event >= policy.probation_seconds:
        b = replace_struct(b, state=CLOSED, since=b.last_event + policy.probation_seconds)
    return b


def replace_struct(b: BreakerState, **changes) -> BreakerState:
    return msgspec.structs.replace(b, **changes)


__all__ = ["BreakerPolicy", "BreakerState", "on_alert", "advance", "CLOSED", "HALF_OPEN", "OPEN", "STATES",
           "STATE_VALUE", "replace_struct"]
