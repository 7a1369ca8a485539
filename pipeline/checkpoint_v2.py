"""Reads a version-2 processor checkpoint (one clock per partition, the seed's rolling statistics) as a
version-3 one whose trades all came from the default source — pure logic.

Before sources existed every trade was of the default source, so the partition's clock, windows,
tickers and counters become that source's unchanged.  The seed rules' rolling windows carry over
(``price_deviation`` keeps the last prices, ``volume_multiple`` the last quantities, their sums
recomputed exactly); any other rule of a symbol's rule set starts afresh and warms up again.
"""
from __future__ import annotations

import logging
import math
from typing import Union

import msgspec

from pipeline.events import DEFAULT_SOURCE
from pipeline.partition_state import (CHECKPOINT_VERSION, PartitionSnapshot, SourceSnapshot, SymbolSnapshot,
                                      TickerSnapshot)
from pipeline.rulesets.book import RuleBook, RuleSet, SymbolRules
from pipeline.rulesets.deviation import PriceDeviationRule, VolumeMultipleRule
from pipeline.rulesets.window import RollingWindow
from pipeline.windows import WindowsSnapshot

logger = logging.getLogger(__name__)


class RollingSnapshotV2(msgspec.Struct, frozen=True):
    """The seed's rolling statistics of a symbol's last N trades, as version 2 stored them."""

    prices: list[float]
    quantities: list[float]
    price_sum: float
    qty_sum: float
    since_exact: int


class SymbolSnapshotV2(msgspec.Struct, frozen=True):
    windows: WindowsSnapshot
    rolling: RollingSnapshotV2
    ticker: TickerSnapshot
    last_time: float


class PartitionSnapshotV2(msgspec.Struct, frozen=True):
    version: int = msgspec.field(name="v")
    sizes: list[int]
    grace: float
    partition_time: float
    idle_time: float
    counters: dict[str, Union[int, float]]
    symbols: dict[str, SymbolSnapshotV2]


def _window(rule, values: list[float]) -> RollingWindow:
    kept = values[-rule.params.rolling_window:]
    return RollingWindow(params=rule.digest, size=rule.params.rolling_window, values=list(kept),
                         total=math.fsum(kept), total_sq=math.fsum(v * v for v in kept))


def rule_states(ruleset: RuleSet, rolling: RollingSnapshotV2) -> SymbolRules:
    """The symbol's rule states: the seed rules' windows from ``rolling``, any other rule afresh."""
    state = ruleset.new_state()
    for rule in ruleset.rules:
        if isinstance(rule, PriceDeviationRule):
            state.states[rule.name] = _window(rule, rolling.prices)
        elif isinstance(rule, VolumeMultipleRule):
            state.states[rule.name] = _window(rule, rolling.quantities)
    return state


def upgrade(data: bytes, rules: RuleBook) -> tuple[bytes, dict[str, bytes]]:
    """A version-2 partition checkpoint -> (version-3 partition snapshot, {default source: its snapshot})."""
    old = msgspec.msgpack.decode(data, type=PartitionSnapshotV2)
    counters = dict(old.counters)
    invalid = int(counters.pop("invalid", 0))
    source = SourceSnapshot(
        version=CHECKPOINT_VERSION, source=DEFAULT_SOURCE, time=old.partition_time, idle_time=old.idle_time,
        counters=counters,
        symbols={name: SymbolSnapshot(windows=sym.windows, ticker=sym.ticker, last_time=sym.last_time,
                                      rules=rule_states(rules.for_symbol(name), sym.rolling))
                 for name, sym in old.symbols.items()})
    logger.info("upgrading a version-2 checkpoint (%d symbols) to version %d, source %r", len(old.symbols),
                CHECKPOINT_VERSION, DEFAULT_SOURCE)
    partition = PartitionSnapshot(version=CHECKPOINT_VERSION, sizes=old.sizes, grace=old.grace,
                                  invalid=invalid, sources=[DEFAULT_SOURCE] if old.symbols else [])
    return (msgspec.msgpack.encode(partition),
            {DEFAULT_SOURCE: msgspec.msgpack.encode(source)} if partition.sources else {})
