"""The interface every rule implements, the base of its per-symbol state, and the alert builder.

A rule is configured once with its parameters (a ``msgspec.Struct`` checked on construction) and
holds no per-symbol data itself: each symbol's data lives in a ``RuleState`` the caller keeps.
For every trade, in this order:

    alerts = rule.evaluate(trade, state)   # what this trade raises against the trades before it
    rule.update(trade, state)              # fold the trade into the state (mutates it)

or ``alerts = rule.step(trade, state)``, which does both (the same result, sooner).  ``evaluate``
never changes the state, so it may be skipped (a late trade) or repeated.  States are tagged msgspec
structs: ``msgspec.msgpack.encode`` / ``decode`` round-trip them for a checkpoint.

A *timed* rule can also raise an alert when event time passes a moment without a trade of the symbol
(LULD's trading pause): ``due(state)`` says when, and the caller, whose clock follows the source's
other trades and its lulls, calls ``advance(symbol, source, now, state)`` once ``now`` reaches it.
"""
from __future__ import annotations

import hashlib
import logging
import math
from typing import ClassVar, Optional

import msgspec

from pipeline.alert_types import severity_of
from pipeline.events import Alert, Trade, alert_id_for

logger = logging.getLogger(__name__)


class RuleParams(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base of every rule's parameters: unknown keys are rejected, values checked in ``__post_init__``."""


class RuleState(msgspec.Struct, tag_field="rule", kw_only=True):
    """Base of every rule's per-symbol state. ``params`` is the digest of the parameters it was built
    under: a state restored under different parameters is discarded (the rule warms up again)."""

    params: str = ""


class Rule:
    """One anomaly rule. Subclasses set ``name``, ``alert_types``, ``Params`` and ``State``."""

    name: ClassVar[str]
    alert_types: ClassVar[tuple[str, ...]]
    Params: ClassVar[type[RuleParams]]
    State: ClassVar[type[RuleState]]
    timed: ClassVar[bool] = False  # True: overrides ``due`` and ``advance``

    def __init__(self, params: Optional[RuleParams] = None):
        self.params = params if params is not None else self.Params()
        self.digest = params_digest(self.name, self.params)

    def new_state(self) -> RuleState:
        return self.State(params=self.digest)

    def evaluate(self, trade: Trade, state: RuleState) -> list[Alert]:
        raise NotImplementedError

    def update(self, trade: Trade, state: RuleState) -> None:
        raise NotImplementedError

    def step(self, trade: Trade, state: RuleState) -> list[Alert]:
        """``evaluate`` then ``update`` in one call (a rule may share work between the two)."""
        alerts = self.evaluate(trade, state)
        self.update(trade, state)
        return alerts

    def due(self, state: RuleState) -> float:
        """Event time from which ``advance`` raises something without a trade (inf: nothing is due)."""
        return math.inf

    def advance(self, symbol: str, source: str, now: float, state: RuleState) -> list[Alert]:
        """Alerts due at event time ``now`` (>= ``due``) of a symbol that did not trade; mutates the state."""
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"


def params_digest(rule_name: str, params: RuleParams) -> str:
    """A short stable fingerprint of a rule and its parameters."""
    raw = rule_name.encode() + b"|" + msgspec.json.encode(params, order="sorted")
    return hashlib.sha1(raw).hexdigest()[:12]


def make_alert(alert_type: str, *, trade_id: str, symbol: str, price: float, ts: float, side: str,
               quantity: float, reference: float, deviation: float, message: str, source: str) -> Alert:
    """An alert with its deterministic id (from trade and type) and its type's severity."""
    return Alert(alert_id=alert_id_for(trade_id, alert_type), alert_type=alert_type,
                 severity=severity_of(alert_type), symbol=symbol, price=price, reference=reference,
                 deviation=deviation, trade_id=trade_id, ts=ts, message=message, side=side, quantity=quantity,
                 source=source)


def alert_on(trade: Trade, alert_type: str, reference: float, deviation: float, message: str) -> Alert:
    """An alert raised by ``trade`` itself."""
    return make_alert(alert_type, trade_id=trade.trade_id, symbol=trade.symbol, price=trade.price,
                      ts=trade.ts, side=trade.side, quantity=trade.quantity, reference=reference,
                      deviation=deviation, message=message, source=trade.source)
