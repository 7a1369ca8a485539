"""The alert vocabulary, defined once: alert types, severities, their ranks and labels, and what each
type does to the circuit breaker and the deduplication window.

Every other module imports these names; a new alert type is one more ``AlertKind`` here.  Colours
live in ``components.theme`` keyed by the severities named here.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

logger = logging.getLogger(__name__)

# --- severities, highest first -------------------------------------------------------------------
CRITICAL, HIGH, MEDIUM, LOW = "CRITICAL", "HIGH", "MEDIUM", "LOW"
SEVERITIES = (CRITICAL, HIGH, MEDIUM, LOW)
SEVERITY_RANK = {CRITICAL: 3, HIGH: 2, MEDIUM: 1, LOW: 0}
SEVERITY_LABEL = {CRITICAL: "Critical", HIGH: "High", MEDIUM: "Medium", LOW: "Low"}

# --- what an alert type does to its symbol's circuit breaker --------------------------------------
TRIP = "trip"            # CLOSED/HALF_OPEN -> OPEN; while OPEN restarts the open period
PROBATION = "probation"  # while HALF_OPEN restarts the probation (trading is not normal yet)

# --- what an alert's ``deviation`` measures ------------------------------------------------------
PERCENT = "percent"      # percent move of the price from ``reference``
MULTIPLE = "multiple"    # quantity as a multiple of ``reference`` (a typical size)
SIGMAS = "sigmas"        # a z-score: standard deviations from the expected value


@dataclass(frozen=True)
class AlertKind:
    """One alert type: its severity, label, breaker effect, dedup window and deviation unit."""

    name: str
    severity: str
    label: str
    breaker: Optional[str]   # TRIP, PROBATION or None
    dedup_seconds: float     # default deduplication window per (type, symbol)
    deviation_unit: str      # PERCENT, MULTIPLE or SIGMAS
    meaning: str


CIRCUIT_BREAKER = "CIRCUIT_BREAKER"
PRICE_SPIKE = "PRICE_SPIKE"
VOLUME_SPIKE = "VOLUME_SPIKE"
RETURN_OUTLIER = "RETURN_OUTLIER"
LIMIT_STATE = "LIMIT_STATE"
TRADING_PAUSE = "TRADING_PAUSE"

ALERT_KINDS: dict[str, AlertKind] = {k.name: k for k in (
    AlertKind(CIRCUIT_BREAKER, CRITICAL, "Circuit breaker", TRIP, 300.0, PERCENT,
              "price beyond the breaker threshold from the rolling average price"),
    AlertKind(PRICE_SPIKE, HIGH, "Price spike", PROBATION, 60.0, PERCENT,
              "price beyond the spike threshold from the rolling average price"),
    AlertKind(VOLUME_SPIKE, MEDIUM, "Volume spike", None, 30.0, MULTIPLE,
              "a whale: quantity far above the symbol's usual size"),
    AlertKind(RETURN_OUTLIER, HIGH, "Return outlier", PROBATION, 60.0, SIGMAS,
              "log return beyond a number of EWMA volatilities"),
    AlertKind(LIMIT_STATE, HIGH, "Limit state", PROBATION, 60.0, PERCENT,
              "a trade outside the symbol's LULD-style price band"),
    AlertKind(TRADING_PAUSE, CRITICAL, "Trading pause", TRIP, 300.0, PERCENT,
              "prices did not come back inside the band within the limit-state period"),
)}

ALERT_TYPES = tuple(ALERT_KINDS)
SEVERITY_BY_TYPE = {k.name: k.severity for k in ALERT_KINDS.values()}
ALERT_SEVERITIES = tuple(s for s in SEVERITIES if s in SEVERITY_BY_TYPE.values())  # those alerts have, highest first
TYPE_LABEL = {k.name: k.label for k in ALERT_KINDS.values()}
DEDUP_SECONDS = {k.name: k.dedup_seconds for k in ALERT_KINDS.values()}
TRIPS_BREAKER = frozenset(k.name for k in ALERT_KINDS.values() if k.breaker == TRIP)
RESTARTS_PROBATION = frozenset(k.name for k in ALERT_KINDS.values() if k.breaker == PROBATION)


def severity_of(alert_type: str) -> str:
    """The severity of a known alert type (KeyError names an unknown one)."""
    return ALERT_KINDS[alert_type].severity
