"""The batch fold (``PartitionState.apply_batch``) against the per-trade reference (``apply`` of each
trade in turn): the same candles and alerts in the same order, the same late trades, tickers, rule
states, counters and checkpoint — for arbitrary batches, orders (out of order within grace, late),
splits, restarts between batches, sources and rule sets."""
import math

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pipeline import fold
from pipeline.events import Trade
from pipeline.partition_state import PartitionState
from pipeline.rules import RuleConfig
from pipeline.rulesets.config import rulebook_from
from pipeline.rulesets.window import RollingWindow
from pipeline.trade_batch import TradeColumns

T0 = 1_717_000_000.0
SIZES = (2, 4, 12)
GRACE = 1.5
# Small windows so that periodic recomputes, warm-up and alerts all happen within a few trades.
VECTOR_RULES = {"rulesets": {"vector": {"price_deviation": {"rolling_window": 5, "min_history": 2},
                                        "adaptive_whale": {"rolling_window": 6, "min_history": 2,
                                                           "threshold_sigmas": 1.0}},
                             "sizes": {"volume_multiple": {"rolling_window": 4, "min_history": 1,
                                                           "volume_multiple": 1.5}}},
                "assign": {"default": "vector", "C": "sizes"}}
MIXED_RULES = {"rulesets": {"mixed": {"return_zscore": {"warmup": 2, "threshold_sigmas": 1.0},
                                      "price_deviation": {"rolling_window": 3, "min_history": 1}}},
               "assign": {"default": "seed", "B": "mixed"}}
RULEBOOKS = {"seed": None, "vector": VECTOR_RULES, "mixed": MIXED_RULES}


def book(name):
    return rulebook_from(RuleConfig(min_history=2, rolling_window=4), None, RULEBOOKS[name], "test")


def new_state(rules):
    return PartitionState(SIZES, GRACE, book(rules))


def restore(state, rules):
    data, sources = state.to_bytes(), {n: msgspec.msgpack.encode(s.to_state()) for n, s in state.sources.items()}
    return PartitionState.from_bytes(data, sources, SIZES, GRACE, book(rules))


def picture(state):
    """Everything a state holds, comparable: each source's checkpoint (windows, rules, tickers, clock,
    counters) and what waits to be drained."""
    return ({n: msgspec.msgpack.encode(s.to_state()) for n, s in state.sources.items()}, state.invalid,
            state.candles, state.alerts)


def reference(trades, rules):
    state = new_state(rules)
    late = [i for i, t in enumerate(trades) if not state.apply(t)]
    return state, late


step = st.one_of(st.just(0.0), st.sampled_from([0.001, 0.25, 0.5, 1.0, 2.0]), st.floats(0, 30))
moves = st.lists(st.tuples(
    st.sampled_from(["A", "B", "C"]), st.sampled_from(["live", "live", "replay"]),
    st.one_of(step, st.floats(-20, 0)),  # forward, or back (within grace, or late)
    st.sampled_from([100.0, 100.5, 99.0, 130.0, 60.0, 100.0]),
    st.sampled_from([1.0, 2.5, 10.0, 0.5, 400.0]), st.booleans()), min_size=1, max_size=120)


def trades_of(spec):
    out, clock = [], {"live": T0, "replay": T0 - 86400 * 3}
    for n, (symbol, source, dt, price, qty, buy) in enumerate(spec):
        clock[source] += dt
        out.append(Trade(f"t{n}", symbol, price, qty, "BUY" if buy else "SELL", "X", round(clock[source], 3),
                         source=source))
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=moves, cuts=st.lists(st.integers(0, 120), max_size=6), restarts=st.booleans(),
       rules=st.sampled_from(sorted(RULEBOOKS)), scalar_below=st.sampled_from([0, 3, fold.SCALAR_BELOW]))
def test_fold001_batch_fold_equals_the_per_trade_reference(spec, cuts, restarts, rules, scalar_below):
    kept_default = fold.SCALAR_BELOW
    fold.SCALAR_BELOW = scalar_below  # NumPy for every symbol, for some, or as configured
    try:
        check_batches_against_reference(trades_of(spec), cuts, restarts, rules)
    finally:
        fold.SCALAR_BELOW = kept_default


def check_batches_against_reference(trades, cuts, restarts, rules):
    expected, expected_late = reference(trades, rules)
    state = new_state(rules)
    late, kept = [], {}
    bounds = sorted({0, len(trades), *(c for c in cuts if c < len(trades))})
    for a, b in zip(bounds, bounds[1:]):
        cols = TradeColumns.from_trades(trades[a:b])
        result = state.apply_batch(cols, list(range(b - a)))
        late += [a + r for r in result.late]
        for key, rows in result.kept.items():
            kept.setdefault(key, []).extend(a + r for r in rows)
        if restarts:
            held = state.candles, state.alerts
            state = restore(state, rules)
            state.candles, state.alerts = held
    assert late == expected_late
    assert picture(state) == picture(expected)
    late_set = set(late)
    assert kept == {key: [i for i, t in enumerate(trades) if (t.source, t.symbol) == key and i not in late_set]
                    for key in {(t.source, t.symbol) for i, t in enumerate(trades) if i not in late_set}}


def test_fold002_tickers_and_candles_match_on_a_long_simulated_stream():
    from pipeline.settings import Settings
    from pipeline.simulator import MarketSimulator

    sim = MarketSimulator(Settings().symbol_list, seed=7, event_rate=0.01)
    trades = [sim.next_trade(T0 + i * 0.05)[0] for i in range(6000)]
    expected, expected_late = reference(trades, "seed")
    state = new_state("seed")
    cols = TradeColumns.from_trades(trades)
    late = []
    for a in range(0, len(trades), 1700):
        rows = list(range(a, min(a + 1700, len(trades))))
        late += state.apply_batch(cols, rows).late
    assert late == expected_late
    assert picture(state) == picture(expected)
    assert expected.alerts and expected.candles  # the comparison is not vacuous


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.one_of(st.floats(-1e6, 1e6), st.sampled_from([0.0, 1.0, 2.0 ** 40, -2.0 ** 40, 1e-9])),
                       max_size=60),
       prefix=st.lists(st.floats(-100, 100), max_size=8), size=st.integers(1, 7))
def test_fold003_rolling_window_add_many_equals_add_one_by_one(values, prefix, size):
    one, many = RollingWindow(size=size), RollingWindow(size=size)
    for v in prefix:
        one.add(v)
        many.add(v)
    before = []
    for v in values:
        before.append((one.total, one.total_sq, len(one.values)))
        one.add(v)
    steps = many.add_many(np.array(values, dtype=float))
    assert many == one
    assert [(float(t), float(q), int(c)) for t, q, c in zip(steps.totals, steps.squares, steps.counts)] == before


def test_fold004_a_timed_rule_book_folds_trade_by_trade_with_the_same_result():
    rules = rulebook_from(RuleConfig(), None, {"rulesets": {"bands": {"luld_bands": {
        "warmup_seconds": 0, "min_trades": 1, "pause_seconds": 2}}}, "assign": {"default": "bands"}}, "test")
    trades = [Trade(f"t{i}", "A", p, 1.0, "BUY", "X", T0 + i) for i, p in enumerate([100.0, 100.0, 150.0, 151.0])]
    trades.append(Trade("t9", "Z", 5.0, 1.0, "BUY", "X", T0 + 30))
    expected = PartitionState(SIZES, GRACE, rules)
    for t in trades:
        expected.apply(t)
    state = PartitionState(SIZES, GRACE, rules)
    state.apply_batch(TradeColumns.from_trades(trades), list(range(len(trades))))
    assert picture(state) == picture(expected)
    assert {a.alert_type for a in state.alerts} >= {"LIMIT_STATE", "TRADING_PAUSE"}


@pytest.mark.parametrize("values", [[1.0] * 25, [3.0, -3.0] * 10, [2.0 ** 30, 1.0, 1.0, 1.0, 1.0]])
def test_fold005_recomputes_happen_at_the_same_steps(values):
    one, many = RollingWindow(size=4), RollingWindow(size=4)
    for v in values:
        one.add(v)
    many.add_many(np.array(values))
    assert many == one and not math.isnan(many.total)
