"""The rules configuration: which rule set runs for which asset class or symbol, with which
parameters — parsed and validated at start, every error naming the bad key.

``STOCKIT_RULES`` holds a JSON or YAML file path (``.json``, ``.yaml``, ``.yml``) or inline JSON:

    rulesets:                       # name -> {rule name: parameters}; rules run in this order
      volatility:
        return_zscore: {lambda: 0.94, threshold_sigmas: 6, warmup: 50}
        luld_bands: {bands: auto}   # auto: tier1 for equities, crypto, fx by asset class
        adaptive_whale: {threshold_sigmas: 4}
    assign:                         # symbol > asset class (equity, crypto, fx) > default
      crypto: volatility
      TSLA: volatility

Built in, always available: ``seed`` — the seed's three rules (``price_deviation`` for PRICE_SPIKE
and CIRCUIT_BREAKER, ``volume_multiple`` for VOLUME_SPIKE) with the thresholds of
``STOCKIT_SPIKE_PCT``, ``STOCKIT_BREAKER_PCT``, ``STOCKIT_VOLUME_MULTIPLE``, ``STOCKIT_ROLLING_WINDOW``
and ``STOCKIT_MIN_HISTORY`` — and ``seed:<key>`` for each key of ``STOCKIT_RULE_OVERRIDES`` (the seed
with that asset class's or symbol's overrides).  ``default`` is ``seed`` unless assigned; an
assignment in ``STOCKIT_RULES`` wins over an override of the same key.  Rule parameters and their
defaults are the ``Params`` of each rule (``pipeline.rulesets.book.RULES``).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path
from typing import Any, Mapping, Optional

import msgspec

from pipeline.events import SYMBOL_PATTERN
from pipeline.rules import ASSET_CLASSES, RuleConfig, asset_class
from pipeline.rulesets.base import Rule
from pipeline.rulesets.book import RULES, RuleBook, RuleSet
from pipeline.rulesets.deviation import PriceDeviationRule, VolumeMultipleRule

logger = logging.getLogger(__name__)

SEED = "seed"
TOP_LEVEL_KEYS = ("rulesets", "assign")
ASSIGN_CLASSES = ("default", "equity", *ASSET_CLASSES)


class RulesConfigError(ValueError):
    """The rules configuration cannot be used; the message names the key and what is wrong."""


# --- the seed rule set from the legacy settings --------------------------------------------------
def seed_ruleset(cfg: RuleConfig, name: str = SEED) -> RuleSet:
    """The seed's three rules with the thresholds of ``cfg``."""
    window = {"rolling_window": cfg.rolling_window, "min_history": cfg.min_history}
    return RuleSet(name, [
        PriceDeviationRule(PriceDeviationRule.Params(spike_pct=cfg.spike_pct, breaker_pct=cfg.breaker_pct,
                                                     **window)),
        VolumeMultipleRule(VolumeMultipleRule.Params(volume_multiple=cfg.volume_multiple, **window)),
    ])


def legacy_rulesets(default: RuleConfig, overrides: Mapping[str, Mapping[str, Any]]
                    ) -> tuple[dict[str, RuleSet], dict[str, str]]:
    """``seed`` and one ``seed:<key>`` per override key (a symbol's overrides on top of its class's)."""
    fields = {f.name for f in dataclasses.fields(RuleConfig)}
    rulesets = {SEED: seed_ruleset(default)}
    assign = {"default": SEED}
    for key, values in overrides.items():
        where = f"STOCKIT_RULE_OVERRIDES.{key}"
        if not isinstance(values, Mapping):
            raise RulesConfigError(f"{where}: must be an object of settings, got {values!r}")
        unknown = sorted(set(values) - fields)
        if unknown:
            raise RulesConfigError(f"{where}: unknown settings {unknown} "
                                   f"(known: {', '.join(sorted(fields))})")
        merged = dict(values) if key in ASSET_CLASSES or key == "equity" else \
            {**overrides.get(asset_class(key), {}), **values}
        name = f"{SEED}:{key}"
        try:
            rulesets[name] = seed_ruleset(dataclasses.replace(default, **merged), name)
        except (TypeError, ValueError) as exc:
            raise RulesConfigError(f"{where}: {exc}") from None
        assign[key] = name
    return rulesets, assign


# --- parsing STOCKIT_RULES --------------------------------------------------------------------------
def read_rules_source(value: str, name: str = "STOCKIT_RULES") -> tuple[Any, str]:
    """(parsed document, where it came from) for a ``STOCKIT_RULES`` value (or another one called ``name``):
    a file path or inline JSON."""
    text = value.strip()
    if text.startswith("{"):
        where = name
        try:
            return json.loads(text), where
        except json.JSONDecodeError as exc:
            raise RulesConfigError(f"{where}: not JSON: {exc}") from None
    path = Path(text).expanduser()
    where = f"{name} ({path})"
    try:
        body = path.read_text()
    except OSError as exc:
        raise RulesConfigError(f"{where}: cannot read the file: {exc.strerror or exc}") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(body), where
        except yaml.YAMLError as exc:
            raise RulesConfigError(f"{where}: not YAML: {exc}") from None
    try:
        return json.loads(body), where
    except json.JSONDecodeError as exc:
        raise RulesConfigError(f"{where}: not JSON: {exc}") from None


def build_rule(rule_name: str, params: Any, where: str) -> Rule:
    """One rule from its name and a mapping of parameters (None or {} = its defaults)."""
    cls = RULES.get(rule_name)
    if cls is None:
        raise RulesConfigError(f"{where}: unknown rule {rule_name!r} (known: {', '.join(RULES)})")
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise RulesConfigError(f"{where}: parameters must be an object, got {params!r}")
    try:
        return cls(msgspec.convert(dict(params), cls.Params))
    except msgspec.ValidationError as exc:
        raise RulesConfigError(f"{where}: {_field_error(exc)}") from None


def _field_error(exc: msgspec.ValidationError) -> str:
    """msgspec's message with its ``$.field`` path turned into a plain key."""
    return re.sub(r" - at `\$\.?([^`]*)`", r" (at \1)", str(exc))


def parse_rules(doc: Any, where: str, rulesets: Mapping[str, RuleSet], assign: Mapping[str, str]
                ) -> tuple[dict[str, RuleSet], dict[str, str]]:
    """Add the rule sets and assignments of a parsed ``STOCKIT_RULES`` document to the built-in ones."""
    rulesets, assign = dict(rulesets), dict(assign)
    if doc is None:
        return rulesets, assign
    if not isinstance(doc, Mapping):
        raise RulesConfigError(f"{where}: must be an object with keys {' and '.join(TOP_LEVEL_KEYS)}")
    unknown = sorted(set(doc) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise RulesConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(TOP_LEVEL_KEYS)})")
    defined = doc.get("rulesets") or {}
    if not isinstance(defined, Mapping):
        raise RulesConfigError(f"{where}: rulesets must be an object of rule set name -> rules")
    for name, rules in defined.items():
        key = f"{where}: rulesets.{name}"
        if not isinstance(name, str) or not name or name == SEED or name.startswith(f"{SEED}:"):
            raise RulesConfigError(f"{key}: the name is reserved or empty (seed and seed:* are built in)")
        if not isinstance(rules, Mapping) or not rules:
            raise RulesConfigError(f"{key}: must be a non-empty object of rule name -> parameters")
        built = [build_rule(rule, params, f"{key}.{rule}") for rule, params in rules.items()]
        try:
            rulesets[name] = RuleSet(name, built)
        except ValueError as exc:
            raise RulesConfigError(f"{key}: {exc}") from None
    assigned = doc.get("assign") or {}
    if not isinstance(assigned, Mapping):
        raise RulesConfigError(f"{where}: assign must be an object of symbol or asset class -> rule set name")
    for target, name in assigned.items():
        key = f"{where}: assign.{target}"
        known = isinstance(target, str) and (target in ASSIGN_CLASSES or re.match(SYMBOL_PATTERN, target))
        if not known:
            raise RulesConfigError(f"{key}: not a symbol nor one of {', '.join(ASSIGN_CLASSES)}")
        if name not in rulesets:
            raise RulesConfigError(f"{key}: no rule set named {name!r} (have {', '.join(rulesets)})")
        assign[target] = name
    return rulesets, assign


def rulebook_from(default: RuleConfig, overrides: Optional[Mapping[str, Mapping[str, Any]]] = None,
                  rules: Optional[Any] = None, where: str = "rules config") -> RuleBook:
    """The rule book of the seed thresholds, their overrides and an optional parsed rules document."""
    rulesets, assign = legacy_rulesets(default, overrides or {})
    rulesets, assign = parse_rules(rules, where, rulesets, assign)
    return RuleBook(rulesets, assign)


def rulebook_from_settings(settings, rules: Optional[Any] = None, where: str = "rules") -> RuleBook:
    """The rule book the settings describe; raises RulesConfigError (or SettingsError) naming the bad key.
    ``rules``, a parsed rules document, replaces ``STOCKIT_RULES`` when given (a what-if backtest)."""
    s = settings
    try:
        default = RuleConfig(s.spike_pct, s.breaker_pct, s.volume_multiple, s.rolling_window, s.min_history)
    except ValueError as exc:
        raise RulesConfigError(f"STOCKIT_SPIKE_PCT/BREAKER_PCT/VOLUME_MULTIPLE/ROLLING_WINDOW/MIN_HISTORY: "
                               f"{exc}") from None
    if rules is not None:
        return rulebook_from(default, s.rule_override_map, rules, where)
    doc, where = read_rules_source(s.rules_config) if s.rules_config.strip() else (None, "STOCKIT_RULES")
    return rulebook_from(default, s.rule_override_map, doc, where)
