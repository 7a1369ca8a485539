"""RETURN_OUTLIER: log return against the EWMA volatility of log returns."""
import math

import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from pipeline.rulesets.zscore import ReturnZScoreRule
from tests.unit.pipeline.ruleset_fixtures import fired, run_rule, series

RULE = ReturnZScoreRule(ReturnZScoreRule.Params(lambda_=0.9, threshold_sigmas=5.0, warmup=10))


def zigzag(n, step=0.001, start=100.0, signs=None):
    """Prices whose log returns are +-step: every squared return equals step**2, so sigma == step."""
    signs = signs or [1 if i % 2 == 0 else -1 for i in range(n)]
    out = [start]
    for s in signs[:n - 1]:
        out.append(out[-1] * math.exp(s * step))
    return out


@pytest.mark.parametrize("name, jump_at, jump_sigmas, expected", [
    ("no_jump", None, 0, []),
    ("jump_after_warmup", 30, 8.0, [(30, "RETURN_OUTLIER")]),
    ("drop_after_warmup", 30, -8.0, [(30, "RETURN_OUTLIER")]),
    ("just_below_threshold", 30, 4.9, []),
    ("jump_at_first_scored_trade", 11, 8.0, [(11, "RETURN_OUTLIER")]),   # 10 returns seen before it
    ("jump_inside_warmup", 10, 8.0, []),                                  # only 9 returns seen before it
])
def test_zsc001_table(name, jump_at, jump_sigmas, expected):
    prices = zigzag(60)
    if jump_at is not None:
        factor = math.exp(jump_sigmas * 0.001)
        prices = prices[:jump_at] + [p * factor for p in prices[jump_at:]]
    assert fired(run_rule(RULE, series(prices))) == expected


def test_zsc002_alert_fields():
    prices = zigzag(40)
    prices[-1] = prices[-2] * math.exp(0.01)  # 10 sigma
    alerts = run_rule(RULE, series(prices))[-1]
    (a,) = alerts
    assert (a.alert_type, a.severity, a.trade_id, a.price) == ("RETURN_OUTLIER", "HIGH", "t39", prices[-1])
    assert a.reference == prices[-2]
    assert a.deviation == pytest.approx(10.0, rel=1e-6)
    assert "σ" in a.message and "AAPL" in a.message


@settings(max_examples=200)
@given(signs=st.lists(st.sampled_from([-1, 1]), min_size=80, max_size=80), step=st.floats(1e-5, 0.02),
       at=st.integers(11, 79), multiple=st.floats(6.5, 100.0), down=st.booleans())
def test_zsc003_fires_exactly_at_a_known_jump(signs, step, at, multiple, down):
    """The jump adds ``multiple`` sigmas to a +-1 sigma return: at least 5.5 sigma, the threshold is 5."""
    prices = zigzag(81, step, signs=signs)
    factor = math.exp((-1 if down else 1) * multiple * step)
    prices = prices[:at] + [p * factor for p in prices[at:]]
    assert fired(run_rule(RULE, series(prices))) == [(at, "RETURN_OUTLIER")]


@settings(max_examples=150)
@given(returns=st.lists(st.floats(-0.5, 0.5), min_size=1, max_size=10))
def test_zsc004_no_alert_before_warmup(returns):
    prices = [100.0]
    for r in returns:
        prices.append(prices[-1] * math.exp(r))
    assert fired(run_rule(RULE, series(prices))) == []


@settings(max_examples=150)
@given(returns=st.lists(st.floats(-0.05, 0.05), min_size=12, max_size=120), k=st.integers(-20, 20),
       start=st.floats(0.01, 1e5))
def test_zsc005_scaling_prices_by_a_constant_gives_the_same_alerts(returns, k, start):
    prices = [start]
    for r in returns:
        prices.append(prices[-1] * math.exp(r))
    scale = 2.0 ** k  # exact in binary floating point: the returns are identical
    base = run_rule(RULE, series(prices))
    scaled = run_rule(RULE, series([p * scale for p in prices]))
    assert [[(a.alert_id, a.deviation) for a in x] for x in base] == \
        [[(a.alert_id, a.deviation) for a in x] for x in scaled]


@settings(max_examples=60)
@given(returns=st.lists(st.floats(-0.05, 0.05), min_size=2, max_size=80), lam=st.floats(0.5, 0.995))
def test_zsc006_volatility_is_the_ewma_of_squared_returns(returns, lam):
    rule = ReturnZScoreRule(ReturnZScoreRule.Params(lambda_=lam))
    prices = [100.0]
    for r in returns:
        prices.append(prices[-1] * math.exp(r))
    state = rule.new_state()
    for t in series(prices):
        rule.update(t, state)
    s = pd.Series(prices)
    logr = (s / s.shift()).dropna().apply(math.log)  # ln(p / p_prev), as the rule computes it
    expected = (logr ** 2).ewm(alpha=1 - lam, adjust=True).mean().iloc[-1]
    assert state.returns == len(returns)
    assert state.weighted_sq / state.weight == pytest.approx(expected, rel=1e-9, abs=1e-300)
