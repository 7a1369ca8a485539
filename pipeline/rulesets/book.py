"""Rule sets and the book that picks one per symbol — the interface the processor runs.

``RuleSet``: named, ordered rules.  Per symbol the caller keeps one ``SymbolRules`` (a msgspec
struct: the checkpoint snapshot itself) and, for each trade that is not late, calls

    alerts = ruleset.evaluate(trade, symbol_rules)
    ruleset.update(trade, symbol_rules)

(or ``alerts = ruleset.step(trade, symbol_rules)``, the same in one pass).
A rule set with timed rules (``RuleSet.timed``) also has ``due(state)`` — the event time from which
``advance(symbol, source, now, state)`` raises alerts without a trade of the symbol.

``RuleBook.for_symbol(symbol)`` resolves the rule set of a symbol: the symbol's own assignment,
else its asset class's, else the default.  After a restart, ``ruleset.resume(snapshot)`` keeps the
state of every rule whose parameters are unchanged and starts the others afresh (warm-up again).
"""
from __future__ import annotations

import logging
import math
from typing import Mapping, Optional, Sequence, Union

import msgspec

from pipeline.events import Alert, Trade
from pipeline.rules import asset_class
from pipeline.rulesets.base import Rule
from pipeline.rulesets.deviation import PriceDeviationRule, VolumeMultipleRule
from pipeline.rulesets.luld import LuldBandRule
from pipeline.rulesets.whales import AdaptiveWhaleRule
from pipeline.rulesets.zscore import ReturnZScoreRule

logger = logging.getLogger(__name__)

RULES: dict[str, type[Rule]] = {r.name: r for r in (
    PriceDeviationRule, VolumeMultipleRule, ReturnZScoreRule, LuldBandRule, AdaptiveWhaleRule)}
SEED_RULES = (PriceDeviationRule.name, VolumeMultipleRule.name)

AnyRuleState = Union[tuple(dict.fromkeys(r.State for r in RULES.values()))]


class SymbolRules(msgspec.Struct, kw_only=True):
    """One symbol's rule states, keyed by rule name — the checkpoint snapshot of its rules."""

    ruleset: str
    states: dict[str, AnyRuleState] = {}


class RuleSet:
    """Rules run in order for one symbol; no two of them may raise the same alert type."""

    def __init__(self, name: str, rules: Sequence[Rule]):
        self.name = name
        self.rules = tuple(rules)
        seen: dict[str, str] = {}
        for rule in self.rules:
            for alert_type in rule.alert_types:
                if alert_type in seen:
                    raise ValueError(f"rule set {name!r}: rules {seen[alert_type]!r} and {rule.name!r} "
                                     f"both raise {alert_type}; keep one")
                seen[alert_type] = rule.name
        self.alert_types = tuple(seen)
        self.timed = tuple(r for r in self.rules if r.timed)
        self._named = tuple((r, r.name) for r in self.rules)

    def new_state(self) -> SymbolRules:
        return SymbolRules(ruleset=self.name, states={r.name: r.new_state() for r in self.rules})

    def evaluate(self, trade: Trade, state: SymbolRules) -> list[Alert]:
        """Alerts ``trade`` raises against the trades before it; the state is not changed."""
        states = state.states
        alerts: list[Alert] = []
        for rule in self.rules:
            found = rule.evaluate(trade, states[rule.name])
            if found:
                alerts.extend(found)
        return alerts

    def update(self, trade: Trade, state: SymbolRules) -> None:
        """Fold ``trade`` into every rule's state."""
        states = state.states
        for rule in self.rules:
            rule.update(trade, states[rule.name])

    def step(self, trade: Trade, state: SymbolRules) -> list[Alert]:
        """``evaluate`` then ``update`` in one pass: each rule reads only its own state, so evaluating a
        rule after the rules before it were updated gives the same alerts."""
        states = state.states
        alerts: list[Alert] = []
        for rule, name in self._named:
            found = rule.step(trade, states[name])
            if found:
                alerts.extend(found)
        return alerts

    def due(self, state: SymbolRules) -> float:
        """Event time from which ``advance`` raises something (inf: nothing is due)."""
        states = state.states
        if len(self.timed) == 1:  # the common case (one LULD rule): no generator per trade
            rule = self.timed[0]
            return rule.due(states[rule.name])
        return min((r.due(states[r.name]) for r in self.timed), default=math.inf)

    def advance(self, symbol: str, source: str, now: float, state: SymbolRules) -> list[Alert]:
        """Alerts that event time ``now`` raises for a symbol that did not trade; mutates the state."""
        states = state.states
        alerts: list[Alert] = []
        for rule in self.timed:
            alerts.extend(rule.advance(symbol, source, now, states[rule.name]))
        return alerts

    def resume(self, snapshot: Optional[SymbolRules]) -> SymbolRules:
        """The state to continue from: the snapshot's rule states whose parameters still match."""
        if snapshot is None:
            return self.new_state()
        states = {}
        for rule in self.rules:
            old = snapshot.states.get(rule.name)
            if old is not None and type(old) is rule.State and old.params == rule.digest:
                states[rule.name] = old
            else:
                if old is not None:
                    logger.info("rule %s changed its parameters: its state starts afresh", rule.name)
                states[rule.name] = rule.new_state()
        return SymbolRules(ruleset=self.name, states=states)

    def __repr__(self) -> str:
        return f"RuleSet({self.name!r}, {list(self.rules)!r})"


class RuleBook:
    """The rule set of each symbol: ``assign`` maps a symbol, an asset class or ``default`` to a
    rule set name in ``rulesets``; symbol beats asset class beats default."""

    def __init__(self, rulesets: Mapping[str, RuleSet], assign: Mapping[str, str]):
        self.rulesets = dict(rulesets)
        self.assign = dict(assign)
        for key, name in self.assign.items():
            if name not in self.rulesets:
                raise ValueError(f"assign.{key}: no rule set named {name!r} "
                                 f"(have {', '.join(self.rulesets)})")
        if "default" not in self.assign:
            raise ValueError("assign.default: missing (the rule set of symbols not assigned otherwise)")
        self._cache: dict[str, RuleSet] = {}
        # Some rule set raises alerts without a trade (what is due feeds back into event time).
        self.timed = any(rs.timed for rs in self.rulesets.values())

    def for_symbol(self, symbol: str) -> RuleSet:
        ruleset = self._cache.get(symbol)
        if ruleset is None:
            name = self.assign.get(symbol) or self.assign.get(asset_class(symbol)) or self.assign["default"]
            ruleset = self._cache[symbol] = self.rulesets[name]
        return ruleset

    def describe(self, symbols: Sequence[str]) -> list[tuple[str, str, str]]:
        """(symbol, rule set, rules with parameters) for each of ``symbols``."""
        rows = []
        for symbol in symbols:
            rs = self.for_symbol(symbol)
            rows.append((symbol, rs.name, "; ".join(f"{r.name} {msgspec.json.encode(r.params).decode()}"
                                                    for r in rs.rules)))
        return rows
