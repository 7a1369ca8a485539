"""Rolling mean price and quantity over a symbol's last N trades."""
import math

import pytest
from hypothesis import given, settings, strategies as st

from pipeline.rolling import RollingStats

values = st.floats(min_value=1e-6, max_value=1e9)


@pytest.mark.parametrize("size, prices, mean", [
    (3, [1, 2, 3], 2.0),
    (3, [1, 2, 3, 10], 5.0),            # the oldest drops out
    (1, [5, 7, 9], 9.0),
    (100, list(range(1, 151)), 100.5),  # last 100 of 1..150
])
def test_rol001_mean_of_the_last_n(size, prices, mean):
    r = RollingStats(size)
    for p in prices:
        r.add(float(p), float(p) * 2)
    assert len(r) == min(size, len(prices))
    assert r.mean_price == mean
    assert r.mean_quantity == mean * 2


@settings(max_examples=150)
@given(size=st.integers(1, 30), pairs=st.lists(st.tuples(values, values), min_size=1, max_size=200))
def test_rol002_means_match_a_direct_computation(size, pairs):
    r = RollingStats(size)
    for p, q in pairs:
        r.add(p, q)
    tail = pairs[-size:]
    # Between exact recomputes (every ``size`` additions) the running sum may carry a few ulps of the
    # largest value seen since: a bounded error, not an accumulating drift.
    recent = pairs[-2 * size - 1:]
    for i, got in ((0, r.mean_price), (1, r.mean_quantity)):
        slack = 1e-15 * size * max(v[i] for v in recent)
        assert got == pytest.approx(math.fsum(v[i] for v in tail) / len(tail), rel=1e-9, abs=slack)


def test_rol003_no_drift_after_a_huge_value_leaves_the_window():
    r = RollingStats(10)
    r.add(1e15, 1e15)
    for _ in range(9):
        r.add(1.0, 1.0)
    for _ in range(10):  # the huge value is long gone; an exact recompute has happened since
        r.add(1.0, 1.0)
    assert r.mean_price == 1.0 and r.mean_quantity == 1.0


@settings(max_examples=100)
@given(pairs=st.lists(st.tuples(values, values), max_size=60),
       more=st.lists(st.tuples(values, values), max_size=60))
def test_rol004_state_round_trip_continues_identically(pairs, more):
    a = RollingStats(7)
    for p, q in pairs:
        a.add(p, q)
    b = RollingStats.from_state(7, a.to_state())
    for p, q in more:
        a.add(p, q)
        b.add(p, q)
    assert b.to_state() == a.to_state()


@pytest.mark.parametrize("size", [0, -1])
def test_rol005_size_must_be_positive(size):
    with pytest.raises(ValueError, match="size"):
        RollingStats(size)


# Quantities that drove the old running sum to exactly 0 (window 3): the 1e12 is added right after an
# exact recompute, absorbs the small values that follow, and its removal cancels them all.
CRAFTED_TO_ZERO = [1.0, 1.0, 1.0, 1e12, 2e-6, 1e-7, 1e-6, 1e-6]


@pytest.mark.parametrize("run, size", [
    (CRAFTED_TO_ZERO, 3),
    ([1e12] + [1e-12] * 12, 4),                            # the largest value, then the smallest ones
    ([1e12, 1e-12, 1e12, 1e-12] * 6 + [1e-12] * 5, 5),      # alternating extremes
    ([2.0 ** -k for k in range(60)], 7),                    # halving: every removal takes half the sum
])
def test_rol006_crafted_runs_keep_both_means_positive_and_right(run, size):
    r = RollingStats(size)
    for i, v in enumerate(run):
        r.add(v, v)
        tail = run[max(0, i + 1 - size):i + 1]
        exact = math.fsum(tail) / len(tail)
        assert r.mean_quantity > 0 and r.mean_price > 0
        assert r.mean_quantity == pytest.approx(exact, rel=1e-6)


extreme = st.floats(min_value=1e-12, max_value=1e12)


@settings(max_examples=300)
@given(size=st.integers(1, 12), values=st.lists(extreme, min_size=1, max_size=80))
def test_rol007_means_over_the_whole_accepted_range_stay_positive(size, values):
    """Over the trade gate's whole range [1e-12, 1e12] both means stay positive at every step."""
    r = RollingStats(size)
    for v in values:
        r.add(v, v)
        assert r.mean_price > 0 and r.mean_quantity > 0
    assert r.mean_quantity >= min(values[-size:]) * (1 - 1e-9)
