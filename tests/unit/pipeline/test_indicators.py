"""Indicators against the standard formulas computed independently with pandas."""
import math

import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from pipeline.indicators import bollinger, ema, macd, rsi

closes_strategy = st.lists(st.floats(1.0, 1000.0), min_size=0, max_size=120)


def same(ours, expected: pd.Series):
    """None where pandas has NaN, equal (to rounding) elsewhere."""
    assert len(ours) == len(expected)
    for got, want in zip(ours, expected.tolist()):
        if math.isnan(want):
            assert got is None
        else:
            assert got == pytest.approx(want, rel=1e-9, abs=1e-9)


def seeded_ema(s: pd.Series, period: int) -> pd.Series:
    """EMA seeded with the mean of the first ``period`` values: pandas' recursive ewm from that mean."""
    if len(s) < period:
        return pd.Series([math.nan] * len(s))
    seed = pd.Series([s.iloc[:period].mean()])
    rest = pd.concat([seed, s.iloc[period:]], ignore_index=True).ewm(span=period, adjust=False).mean()
    return pd.concat([pd.Series([math.nan] * (period - 1)), rest], ignore_index=True)


def wilder(s: pd.Series, period: int) -> pd.Series:
    """Wilder's smoothing of s[1:]-aligned values: first the mean of ``period``, then alpha = 1/period."""
    if len(s) < period:
        return pd.Series([math.nan] * len(s))
    seed = pd.Series([s.iloc[:period].mean()])
    rest = pd.concat([seed, s.iloc[period:]], ignore_index=True).ewm(alpha=1 / period, adjust=False).mean()
    return pd.concat([pd.Series([math.nan] * (period - 1)), rest], ignore_index=True)


@settings(max_examples=100)
@given(closes=closes_strategy)
def test_ind001_bollinger_is_sma_plus_minus_two_population_sd(closes):
    s = pd.Series(closes, dtype=float)
    mid, sd = s.rolling(20).mean(), s.rolling(20).std(ddof=0)
    middle, upper, lower = bollinger(closes)
    same(middle, mid)
    same(upper, mid + 2 * sd)
    same(lower, mid - 2 * sd)


@settings(max_examples=100)
@given(closes=closes_strategy)
def test_ind002_rsi_with_wilders_smoothing(closes):
    s = pd.Series(closes, dtype=float)
    delta = s.diff().iloc[1:].reset_index(drop=True)
    avg_gain = wilder(delta.clip(lower=0), 14)
    avg_loss = wilder((-delta).clip(lower=0), 14)
    expected = 100 - 100 / (1 + avg_gain / avg_loss)
    expected = expected.where(avg_loss != 0, 100.0).where((avg_loss != 0) | (avg_gain != 0), 50.0)
    expected = expected.where(avg_gain.notna())
    expected = pd.concat([pd.Series([math.nan]), expected], ignore_index=True) if len(s) else expected
    same(rsi(closes), expected)


@settings(max_examples=100)
@given(closes=closes_strategy)
def test_ind003_macd_12_26_9(closes):
    s = pd.Series(closes, dtype=float)
    line = seeded_ema(s, 12) - seeded_ema(s, 26)
    valid = line.dropna()
    signal = pd.Series([math.nan] * len(s))
    if len(valid):
        sig = seeded_ema(valid.reset_index(drop=True), 9)
        signal.iloc[valid.index[0]:] = sig.to_numpy()
    ours_line, ours_signal, ours_hist = macd(closes)
    same(ours_line, line)
    same(ours_signal, signal)
    same(ours_hist, line - signal)


@pytest.mark.parametrize("closes, expected", [
    ([1.0] * 20, 50.0),                         # nothing moved
    ([float(i) for i in range(1, 21)], 100.0),  # no losses
    ([float(i) for i in range(20, 0, -1)], 0.0),
])
def test_ind004_rsi_edges(closes, expected):
    assert rsi(closes)[-1] == pytest.approx(expected)
    assert rsi(closes)[:14] == [None] * 14


def test_ind005_first_values_and_lengths():
    closes = [100.0 + math.sin(i / 3) for i in range(40)]
    middle, _, _ = bollinger(closes)
    line, signal, hist = macd(closes)
    assert middle.index(next(v for v in middle if v is not None)) == 19
    assert line.index(next(v for v in line if v is not None)) == 25
    assert signal.index(next(v for v in signal if v is not None)) == 33
    assert len(hist) == len(closes) and ema(closes[:5], 12) == [None] * 5
