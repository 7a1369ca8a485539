"""The rolling window of a symbol's last N values (``rulesets.window.RollingWindow``): means, drift,
typed snapshots and crafted runs that once drove a running sum to zero."""
import math

import msgspec
import pytest
from hypothesis import given, settings, strategies as st

from pipeline.rulesets.window import RollingWindow

values = st.floats(min_value=1e-6, max_value=1e9)


def window(size, items=()):
    w = RollingWindow(size=size)
    for v in items:
        w.add(float(v))
    return w


@pytest.mark.parametrize("size, items, mean", [
    (3, [1, 2, 3], 2.0),
    (3, [1, 2, 3, 10], 5.0),            # the oldest drops out
    (1, [5, 7, 9], 9.0),
    (100, list(range(1, 151)), 100.5),  # last 100 of 1..150
])
def test_rwin001_mean_of_the_last_n(size, items, mean):
    w = window(size, items)
    assert len(w) == min(size, len(items))
    assert w.mean == mean


@settings(max_examples=150)
@given(size=st.integers(1, 30), items=st.lists(values, min_size=1, max_size=200))
def test_rwin002_mean_and_variance_match_a_direct_computation(size, items):
    w = window(size, items)
    tail = items[-size:]
    # Between exact recomputes (every ``size`` additions) the running sum may carry a few ulps of the
    # largest value seen since: a bounded error, not an accumulating drift.
    slack = 1e-15 * size * max(items[-2 * size - 1:])
    mean = math.fsum(tail) / len(tail)
    assert w.mean == pytest.approx(mean, rel=1e-9, abs=slack)
    assert w.variance >= 0.0


def test_rwin003_no_drift_after_a_huge_value_leaves_the_window():
    w = window(10, [1e15] + [1.0] * 19)  # the huge value is long gone; an exact recompute has happened since
    assert w.mean == 1.0 and w.variance == 0.0


@settings(max_examples=100)
@given(items=st.lists(values, max_size=60), more=st.lists(values, max_size=60))
def test_rwin004_a_snapshot_round_trip_continues_identically(items, more):
    a = window(7, items)
    b = msgspec.msgpack.decode(msgspec.msgpack.encode(a), type=RollingWindow)
    for v in more:
        a.add(v)
        b.add(v)
    assert b == a


# Quantities that drove the seed's old running sum to exactly 0 (window 3): the 1e12 is added right after an
# exact recompute, absorbs the small values that follow, and its removal cancels them all.
CRAFTED_TO_ZERO = [1.0, 1.0, 1.0, 1e12, 2e-6, 1e-7, 1e-6, 1e-6]


@pytest.mark.parametrize("run, size", [
    (CRAFTED_TO_ZERO, 3),
    ([1e12] + [1e-12] * 12, 4),                            # the largest value, then the smallest ones
    ([1e12, 1e-12, 1e12, 1e-12] * 6 + [1e-12] * 5, 5),      # alternating extremes
    ([2.0 ** -k for k in range(60)], 7),                    # halving: every removal takes half the sum
])
def test_rwin005_crafted_runs_keep_the_mean_positive_and_right(run, size):
    w = RollingWindow(size=size)
    for i, v in enumerate(run):
        w.add(v)
        tail = run[max(0, i + 1 - size):i + 1]
        assert w.mean > 0
        assert w.mean == pytest.approx(math.fsum(tail) / len(tail), rel=1e-6)


extreme = st.floats(min_value=1e-12, max_value=1e12)


@settings(max_examples=300)
@given(size=st.integers(1, 12), items=st.lists(extreme, min_size=1, max_size=80))
def test_rwin006_means_over_the_whole_accepted_range_stay_positive(size, items):
    """Over the trade gate's whole range [1e-12, 1e12] the mean stays positive at every step."""
    w = RollingWindow(size=size)
    for v in items:
        w.add(v)
        assert w.mean > 0
    assert w.mean >= min(items[-size:]) * (1 - 1e-9)
