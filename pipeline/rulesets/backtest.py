"""The pure core of the what-if backtest: run a rule book over trades, compare with actual alerts.

``run_rules`` is a generator: trades stream through it in event-time order and alerts come out as
they are raised, so a caller reading a server-side cursor never holds the whole history.  Alerts
match across runs by ``alert_id`` (deterministic from trade and type), so ``compare_alerts`` tells
which alerts the candidate configuration would add or drop.  Alerts that fired live were computed
in arrival order: trades reordered within the grace period can make small differences even for the
same configuration.
"""
from __future__ import annotations

import logging
import math
from collections import Counter
from typing import Any, Iterable, Iterator, Mapping, Optional, Union

import msgspec

from pipeline.events import Alert, Trade
from pipeline.rules import RuleConfig
from pipeline.rulesets.book import RuleBook, RuleSet, SymbolRules
from pipeline.rulesets.config import rulebook_from

logger = logging.getLogger(__name__)


def as_rulebook(rules: Union[RuleBook, Mapping[str, Any], None]) -> RuleBook:
    """A rule book as is; a parsed rules document (``rulesets``/``assign``) on top of the seed defaults."""
    if isinstance(rules, RuleBook):
        return rules
    return rulebook_from(RuleConfig(), None, rules, "rules config")


def run_rules(trades: Iterable[Trade], rules: Union[RuleBook, Mapping[str, Any], None] = None,
              states: Optional[dict[tuple[str, str], SymbolRules]] = None,
              grace: float = 0.0) -> Iterator[Alert]:
    """Alerts that ``rules`` raise over ``trades`` (in event-time order), trade by trade.

    As in the processor, each source's symbols have their own rule states, and what timed rules have due
    (LULD's trading pause of a symbol that stopped trading) is raised once the source's event time, one
    ``grace`` behind its newest trade, passes it.  ``states`` ((source, symbol) -> SymbolRules), when
    given, is continued and left holding the final states.  Raises ValueError on a trade older than the
    one before it: the input must be sorted.
    """
    book = as_rulebook(rules)
    states = {} if states is None else states
    running: dict[tuple[str, str], tuple[RuleSet, SymbolRules]] = {}
    pending: dict[str, dict[str, float]] = {}  # source -> symbol -> event time its timed rules are due
    first_due: dict[str, float] = {}            # source -> the earliest of those
    newest = float("-inf")
    for trade in trades:
        ts, source, symbol = trade.ts, trade.source, trade.symbol
        if ts < newest:
            raise ValueError(f"trades are not in event-time order: {trade.trade_id} at {ts} after {newest}")
        newest = ts
        if ts - grace >= first_due.get(source, math.inf):
            yield from _advance(running, pending[source], source, ts - grace)
            first_due[source] = min(pending[source].values(), default=math.inf)
        key = (source, symbol)
        entry = running.get(key)
        if entry is None:
            ruleset = book.for_symbol(symbol)
            state = states[key] = ruleset.resume(states.get(key))
            entry = running[key] = (ruleset, state)
        alerts = entry[0].step(trade, entry[1])
        if alerts:
            yield from alerts
        if entry[0].timed:
            due = entry[0].due(entry[1])
            waiting = pending.setdefault(source, {})
            if waiting.get(symbol, math.inf) != due:  # the earliest due time is looked for again only then
                if due == math.inf:
                    del waiting[symbol]
                else:
                    waiting[symbol] = due
                first_due[source] = min(waiting.values(), default=math.inf)


def _advance(running: dict, waiting: dict[str, float], source: str, now: float) -> Iterator[Alert]:
    """What timed rules of ``source``'s symbols have due by event time ``now``."""
    for symbol, due in sorted(waiting.items(), key=lambda item: item[1]):
        if now >= due:
            ruleset, state = running[(source, symbol)]
            yield from ruleset.advance(symbol, source, now, state)
            after = ruleset.due(state)
            if after == math.inf:
                del waiting[symbol]
            else:
                waiting[symbol] = after


class CountRow(msgspec.Struct, frozen=True):
    """Alerts of one type and symbol: how many fired, would fire, and do both."""

    alert_type: str
    symbol: str
    actual: int
    candidate: int
    both: int


class AlertComparison(msgspec.Struct, frozen=True):
    """Candidate against actual alerts, matched by ``alert_id``."""

    counts: list[CountRow]                 # by (alert_type, symbol), sorted
    only_in_actual: list[Alert]            # fired, but the candidate would not raise them (by time)
    only_in_candidate: list[Alert]         # the candidate would raise them, but they did not fire
    matched: int

    @property
    def totals(self) -> dict[str, tuple[int, int]]:
        """alert_type -> (actual, candidate)."""
        out: dict[str, tuple[int, int]] = {}
        for row in self.counts:
            a, c = out.get(row.alert_type, (0, 0))
            out[row.alert_type] = (a + row.actual, c + row.candidate)
        return out


def compare_alerts(actual: Iterable[Alert], candidate: Iterable[Alert]) -> AlertComparison:
    """Counts by type and symbol and the differences; an alert id seen twice on one side counts once."""
    actual_by_id = {a.alert_id: a for a in actual}
    candidate_by_id = {a.alert_id: a for a in candidate}
    both_ids = actual_by_id.keys() & candidate_by_id.keys()
    n_actual = Counter((a.alert_type, a.symbol) for a in actual_by_id.values())
    n_candidate = Counter((a.alert_type, a.symbol) for a in candidate_by_id.values())
    n_both = Counter((actual_by_id[i].alert_type, actual_by_id[i].symbol) for i in both_ids)
    counts = [CountRow(t, s, n_actual[(t, s)], n_candidate[(t, s)], n_both[(t, s)])
              for t, s in sorted(n_actual.keys() | n_candidate.keys())]

    def by_time(alerts):
        return sorted(alerts, key=lambda a: (a.ts, a.symbol, a.alert_type, a.alert_id))

    return AlertComparison(
        counts=counts,
        only_in_actual=by_time(a for i, a in actual_by_id.items() if i not in both_ids),
        only_in_candidate=by_time(a for i, a in candidate_by_id.items() if i not in both_ids),
        matched=len(both_ids))


def side_by_side(actual: Iterable[Alert], candidate: Iterable[Alert]) -> list[tuple[Alert, bool, bool]]:
    """Every alert of either side once, by time: (alert, fired, the candidate raises it).  An alert on both
    sides is the candidate's (the same trade and type; its message may name other thresholds)."""
    actual_by_id = {a.alert_id: a for a in actual}
    candidate_by_id = {a.alert_id: a for a in candidate}
    rows = [(a, a.alert_id in actual_by_id, True) for a in candidate_by_id.values()]
    rows += [(a, True, False) for i, a in actual_by_id.items() if i not in candidate_by_id]
    rows.sort(key=lambda r: (r[0].ts, r[0].symbol, r[0].alert_type, r[0].alert_id))
    return rows
