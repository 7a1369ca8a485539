"""Alert snoozes, in the spirit of Prometheus Alertmanager's silences — pure logic.

A snooze has matchers (alert type, symbol, source; an empty one matches anything, at least one is
given) and a period [starts_at, ends_at) of wall-clock time.  An alert the alert engine handles while
a matching snooze is active is kept and marked ``snoozed`` (with the snooze's id) instead of being
routed: no webhook goes out for it; its circuit breaker still counts it.  Like a silence, a snooze is
judged when the alert is handled, not by the alert's event time.

``SnoozeBook`` is the engine's cache of the active snoozes, re-read every ``refresh`` seconds.
``check_request`` validates a snooze a person asks for, each error naming the field.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence

from pipeline.alert_types import ALERT_TYPES
from pipeline.events import SYMBOL_PATTERN, check_source, parse_iso

logger = logging.getLogger(__name__)
MIN_MINUTES, MAX_MINUTES = 1, 30 * 24 * 60  # a snooze lasts a minute to 30 days
COMMENT_MAX = 1000
SNOOZE_STATES = ("active", "pending", "ended", "all")  # what a list of snoozes may be narrowed to
REQUEST_FIELDS = ("alert_type", "symbol", "source", "starts_at", "ends_at", "duration_minutes", "comment")


@dataclass(frozen=True)
class Snooze:
    snooze_id: int
    alert_type: Optional[str]
    symbol: Optional[str]
    source: Optional[str]
    starts_at: float
    ends_at: float

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, alert_type: str, symbol: str, source: Optional[str] = None) -> bool:
        """Every matcher given equals the alert's value (an alert without a source matches no source)."""
        return ((self.alert_type is None or self.alert_type == alert_type)
                and (self.symbol is None or self.symbol == symbol)
                and (self.source is None or self.source == source))


def snoozed_by(snoozes: Iterable[Snooze], alert_type: str, symbol: str, source: Optional[str],
               now: float) -> Optional[Snooze]:
    """The active snooze (the oldest) that matches the alert, or None."""
    found = [s for s in snoozes if s.active(now) and s.matches(alert_type, symbol, source)]
    return min(found, key=lambda s: s.snooze_id) if found else None


class SnoozeBook:
    """The active snoozes as last loaded; ``due(now)`` says when to load them again (monotonic clock)."""

    def __init__(self, refresh: float):
        self.refresh = refresh
        self.snoozes: tuple[Snooze, ...] = ()
        self.loaded_at: Optional[float] = None

    def due(self, now: float) -> bool:
        return self.loaded_at is None or now - self.loaded_at >= self.refresh

    def replace(self, snoozes: Sequence[Snooze], now: float) -> None:
        if {s.snooze_id for s in snoozes} != {s.snooze_id for s in self.snoozes}:
            logger.info("active snoozes: %s", ", ".join(str(s.snooze_id) for s in snoozes) or "none")
        self.snoozes = tuple(snoozes)
        self.loaded_at = now

    def matching(self, alert_type: str, symbol: str, source: Optional[str], now: float) -> Optional[Snooze]:
        return snoozed_by(self.snoozes, alert_type, symbol, source, now)


# --- a snooze asked for ---------------------------------------------------------------------------------
class SnoozeRequestError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class SnoozeRequest:
    alert_type: Optional[str]
    symbol: Optional[str]
    source: Optional[str]
    starts_at: float
    ends_at: float
    comment: str


def _time(fields: Mapping[str, Any], name: str) -> Optional[float]:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        return parse_iso(str(value))
    except (ValueError, OverflowError):
        raise SnoozeRequestError(name, f"{value!r} is not an ISO-8601 time or epoch seconds") from None


def _text(fields: Mapping[str, Any], name: str) -> Optional[str]:
    value = fields.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise SnoozeRequestError(name, f"must be a string, got {type(value).__name__}")
    return value.strip()


def check_request(fields: Mapping[str, Any], now: float) -> SnoozeRequest:
    """A snooze request made valid, or SnoozeRequestError naming the field that is wrong."""
    unknown = sorted(set(fields) - set(REQUEST_FIELDS))
    if unknown:
        raise SnoozeRequestError(unknown[0], f"unknown field; a snooze has {', '.join(REQUEST_FIELDS)}")
    alert_type = _text(fields, "alert_type")
    if alert_type is not None:
        alert_type = alert_type.upper()
        if alert_type not in ALERT_TYPES:
            raise SnoozeRequestError("alert_type", f"{alert_type!r} is not one of {', '.join(ALERT_TYPES)}")
    symbol = _text(fields, "symbol")
    if symbol is not None:
        symbol = symbol.upper()
        if not re.match(SYMBOL_PATTERN, symbol):
            raise SnoozeRequestError("symbol", f"{symbol!r} is not a symbol")
    source = _text(fields, "source")
    if source is not None:
        try:
            source = check_source(source.strip().lower())
        except ValueError as exc:
            raise SnoozeRequestError("source", str(exc)) from None
    if alert_type is None and symbol is None and source is None:
        raise SnoozeRequestError("alert_type", "give at least one matcher: alert_type, symbol or source")
    starts_at = _time(fields, "starts_at") or now
    ends_at = _time(fields, "ends_at")
    minutes = fields.get("duration_minutes")
    if (ends_at is None) == (minutes is None or minutes == ""):
        raise SnoozeRequestError("ends_at", "give either ends_at or duration_minutes")
    if ends_at is None:
        try:
            minutes = float(minutes)
        except (TypeError, ValueError):
            raise SnoozeRequestError("duration_minutes", f"{minutes!r} is not a number") from None
        if isinstance(fields.get("duration_minutes"), bool) or not MIN_MINUTES <= minutes <= MAX_MINUTES:
            raise SnoozeRequestError("duration_minutes", f"must be between {MIN_MINUTES} and {MAX_MINUTES}")
        ends_at = starts_at + minutes * 60
    if ends_at <= max(starts_at, now):
        raise SnoozeRequestError("ends_at", "must be later than starts_at and than now")
    if (ends_at - starts_at) / 60 > MAX_MINUTES:
        raise SnoozeRequestError("ends_at", f"a snooze lasts at most {MAX_MINUTES // 1440} days")
    comment = _text(fields, "comment")
    if comment is None:
        raise SnoozeRequestError("comment", "say why (1 to 1000 characters): the audit trail shows it")
    if len(comment) > COMMENT_MAX:
        raise SnoozeRequestError("comment", f"at most {COMMENT_MAX} characters")
    return SnoozeRequest(alert_type, symbol, source, starts_at, ends_at, comment)
