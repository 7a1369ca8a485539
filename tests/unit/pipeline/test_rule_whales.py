"""Adaptive whales: VOLUME_SPIKE by the symbol's own log-size distribution."""
import math
import statistics

import pytest
from hypothesis import assume, given, settings, strategies as st

from pipeline.rulesets.whales import AdaptiveWhaleRule
from tests.unit.pipeline.ruleset_fixtures import fired, run_rule, series

RULE = AdaptiveWhaleRule(AdaptiveWhaleRule.Params(rolling_window=50, min_history=20, threshold_sigmas=3.0))
SIZES = [100.0 * math.exp(0.3 * ((i * 7) % 11 - 5) / 5) for i in range(60)]  # spread +-0.3 in log size


def z_of(history, q):
    logs = [math.log(x) for x in history]
    return (math.log(q) - statistics.fmean(logs)) / statistics.pstdev(logs)


@pytest.mark.parametrize("name, sizes, last, alerted", [
    ("typical", SIZES, 100.0, False),
    ("large_but_usual", SIZES, 130.0, False),
    ("whale_10x", SIZES, 1000.0, True),
    ("small_trade", SIZES, 1.0, False),                    # only large trades are whales
    ("before_min_history", SIZES[:19], 1000.0, False),
    ("constant_sizes_1_5x_below_floor", [100.0] * 30, 150.0, False),
    ("constant_sizes_2_5x", [100.0] * 30, 250.0, True),     # no spread: the min_multiple floor decides
])
def test_wha001_table(name, sizes, last, alerted):
    trades = series([100.0] * (len(sizes) + 1), sizes + [last])
    result = fired(run_rule(RULE, trades))
    assert result == ([(len(sizes), "VOLUME_SPIKE")] if alerted else [])


def test_wha002_alert_fields_read_like_the_seed_rule():
    trades = series([100.0] * 61, SIZES + [1000.0])
    (a,) = run_rule(RULE, trades)[-1]
    window = SIZES[-50:]
    typical = math.exp(statistics.fmean(math.log(x) for x in window))
    assert (a.alert_type, a.severity, a.quantity) == ("VOLUME_SPIKE", "MEDIUM", 1000.0)
    assert a.reference == pytest.approx(typical)
    assert a.deviation == pytest.approx(1000.0 / typical)
    assert f"{z_of(window, 1000.0):.1f}σ" in a.message


sizes_strategy = st.lists(st.floats(0.01, 1e6), min_size=1, max_size=80)


@settings(max_examples=150)
@given(sizes=st.lists(st.floats(0.001, 1e9), min_size=1, max_size=20))
def test_wha003_no_alert_before_min_history(sizes):
    assert fired(run_rule(RULE, series([100.0] * len(sizes), sizes))) == []


@settings(max_examples=150)
@given(sizes=st.lists(st.floats(1.0, 1e4), min_size=21, max_size=80), k=st.integers(-10, 10))
def test_wha004_scaled_sizes_give_the_same_alerts(sizes, k):
    """Lots of 100 or single shares: the same whales (away from rounding at the threshold itself)."""
    for i in range(20, len(sizes)):
        window = sizes[max(0, i - 50):i]
        spread = statistics.pstdev(math.log(x) for x in window)
        multiple = sizes[i] / math.exp(statistics.fmean(math.log(x) for x in window))
        assume(abs(multiple - 2.0) > 1e-6)
        assume(spread < 1e-6 or abs(z_of(window, sizes[i]) - 3.0) > 1e-6)
    scale = 2.0 ** k
    base = fired(run_rule(RULE, series([100.0] * len(sizes), sizes)))
    scaled = fired(run_rule(RULE, series([100.0] * len(sizes), [q * scale for q in sizes])))
    assert base == scaled


@settings(max_examples=100)
@given(sizes=st.lists(st.floats(1.0, 1e4), min_size=21, max_size=120))
def test_wha005_fires_exactly_when_the_direct_z_score_says_so(sizes):
    expected = []
    for i in range(20, len(sizes)):
        window = sizes[max(0, i - 50):i]
        logs = [math.log(x) for x in window]
        mean, spread = statistics.fmean(logs), statistics.pstdev(logs)
        multiple = sizes[i] / math.exp(mean)
        z = (math.log(sizes[i]) - mean) / spread if spread > 0 else math.inf
        assume(abs(multiple - 2.0) > 1e-6 and (math.isinf(z) or abs(z - 3.0) > 1e-6))
        if multiple >= 2.0 and z > 3.0:
            expected.append((i, "VOLUME_SPIKE"))
    assert fired(run_rule(RULE, series([100.0] * len(sizes), sizes))) == expected
