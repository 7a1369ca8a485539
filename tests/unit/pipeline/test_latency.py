"""Stage latency windows: nearest-rank percentiles, samples older than the window dropped."""
import pandas as pd
from hypothesis import given, strategies as st

from pipeline.latency import LatencyWindow, percentile, summarise


@given(st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=200),
       st.sampled_from([0.5, 0.95, 1.0]))
def test_lat001_percentile_is_the_nearest_rank(values, q):
    ordered = sorted(values)
    got = percentile(ordered, q)
    # nearest rank: the smallest value with at least q of the values at or below it
    assert got == min(v for v in ordered if sum(x <= v for x in ordered) >= q * len(ordered) - 1e-9)
    assert pd.Series(ordered).quantile(q, interpolation="lower") <= got <= pd.Series(ordered).quantile(
        q, interpolation="higher")


def test_lat002_summary_of_the_last_window():
    w = LatencyWindow(seconds=60)
    for i, v in enumerate((5.0, 0.1, 0.2, 0.3, 0.4)):
        w.add(v, now=i * 20.0)  # the first (5.0 at t=0) is older than 60 s at t=80
    assert w.summary(now=80.0) == {"n": 4, "p50": 0.2, "p95": 0.4, "max": 0.4}
    assert w.summary(now=1000.0) == {"n": 0, "p50": None, "p95": None, "max": None}
    assert summarise([0.12345678]) == {"n": 1, "p50": 0.1235, "p95": 0.1235, "max": 0.1235}
    assert percentile([], 0.5) is None


def test_lat003_a_summary_is_reused_for_refresh_seconds_of_the_clock():
    w = LatencyWindow(seconds=60, refresh=1.0)
    w.add(0.010, 100.0)
    first = w.summary(100.0)
    w.add(0.500, 100.5)
    assert w.summary(100.9) == first == {"n": 1, "p50": 0.01, "p95": 0.01, "max": 0.01}
    assert w.summary(101.0)["n"] == 2 and w.summary(101.0)["max"] == 0.5
