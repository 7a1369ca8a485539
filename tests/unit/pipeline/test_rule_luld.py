"""LULD-style price bands: the tier table, LIMIT_STATE, TRADING_PAUSE, warm-up and scale."""
import pytest
from hypothesis import given, settings, strategies as st

from pipeline.events import alert_id_for
from pipeline.rulesets.luld import BAND_TABLES, LuldBandRule, band_half_width, price_band
from tests.unit.pipeline.ruleset_fixtures import T0, fired, run_rule, trade

RULE = LuldBandRule()  # tiers by asset class, 300 s reference, 15 s pause, 300 s warm-up, 5 trades


@pytest.mark.parametrize("table, reference, lower, upper", [
    ("tier1", 100.0, 95.0, 105.0),
    ("tier1", 3.01, 3.01 * 0.95, 3.01 * 1.05),   # above $3.00: 5 %
    ("tier1", 3.00, 2.40, 3.60),                 # $0.75 to $3.00 inclusive: 20 %
    ("tier1", 0.75, 0.60, 0.90),
    ("tier1", 0.74, 0.59, 0.89),                 # below $0.75: the lesser of $0.15 ...
    ("tier1", 0.10, 0.025, 0.175),               # ... or 75 %
    ("tier2", 100.0, 90.0, 110.0),               # Tier 2 above $3.00: 10 %
    ("tier2", 2.00, 1.60, 2.40),
    ("tier2", 0.50, 0.35, 0.65),
    ("crypto", 40000.0, 36000.0, 44000.0),       # our choice: 10 %
    ("crypto", 0.0001, 0.00009, 0.00011),
    ("fx", 1.25, 1.225, 1.275),                  # our choice: 2 %
])
def test_lul001_band_table(table, reference, lower, upper):
    assert price_band(reference, table) == pytest.approx((lower, upper), rel=1e-12)


@settings(max_examples=300)
@given(reference=st.floats(0.0001, 1e6))
def test_lul002_bands_widen_with_tier(reference):
    assert band_half_width(reference, "tier2") >= band_half_width(reference, "tier1")


@settings(max_examples=300)
@given(low=st.floats(0.0001, 1e5), factor=st.floats(1.0, 100.0))
@pytest.mark.parametrize("table", sorted(BAND_TABLES))
def test_lul003_cheaper_prices_get_relatively_wider_bands(table, low, factor):
    high = low * factor
    assert band_half_width(low, table) / low >= band_half_width(high, table) / high - 1e-12


WARM = 300  # trades at 1 s apart: the first one that may alert is number 300


def warm(price=10.0, n=WARM):
    return [trade(i, price, ts=T0 + i) for i in range(n)]


def then(prices, start=WARM, step=1.0):
    return [trade(start + j, p, ts=T0 + start + j * step) for j, p in enumerate(prices)]


@pytest.mark.parametrize("name, symbol_prices, expected", [
    ("inside_band", [10.4, 9.6, 10.0], []),
    ("one_print_outside_then_back", [10.6, 10.0, 10.0], [(0, "LIMIT_STATE")]),
    ("below_the_band", [9.4, 10.0], [(0, "LIMIT_STATE")]),
    ("outside_14s_then_back", [10.6] * 14 + [10.0], [(0, "LIMIT_STATE")]),
    ("outside_15s", [10.6] * 16, [(0, "LIMIT_STATE"), (15, "TRADING_PAUSE")]),
    # the trade 15 s after the first one outside is back inside, but the pause was due first
    ("back_inside_exactly_at_15s_still_pauses", [10.6] * 15 + [10.0, 10.6],
     [(0, "LIMIT_STATE"), (15, "TRADING_PAUSE"), (16, "LIMIT_STATE")]),
    ("paused_stays_quiet_until_back_inside", [10.6] * 40 + [10.0, 10.7],
     [(0, "LIMIT_STATE"), (15, "TRADING_PAUSE"), (41, "LIMIT_STATE")]),
])
def test_lul004_limit_state_and_pause(name, symbol_prices, expected):
    trades = warm() + then(symbol_prices)
    result = fired(run_rule(RULE, trades))
    assert [(i - WARM, t) for i, t in result] == expected


def test_lul005_pause_alert_is_keyed_by_the_trade_that_opened_the_limit_state():
    trades = warm() + then([10.7] + [10.6] * 20, step=2.0)
    per_trade = run_rule(RULE, trades)
    (limit,) = per_trade[WARM]
    (pause,) = [a for alerts in per_trade for a in alerts if a.alert_type == "TRADING_PAUSE"]
    assert per_trade.index([pause]) == WARM + 8           # first trade at or after 15 s (2 s apart)
    assert (pause.trade_id, pause.price, pause.ts) == (f"t{WARM}", 10.7, T0 + WARM + 15.0)
    assert pause.alert_id == alert_id_for(f"t{WARM}", "TRADING_PAUSE") and pause.severity == "CRITICAL"
    assert (limit.alert_type, limit.severity, limit.reference) == ("LIMIT_STATE", "HIGH", pytest.approx(10.0))
    assert limit.deviation == pytest.approx(7.0)


@pytest.mark.parametrize("symbol, bands, price, alerted", [
    ("AAPL", "auto", 10.6, True),       # tier1: 5 %
    ("AAPL", "tier2", 10.6, False),     # tier2: 10 %
    ("AAPL", "tier2", 11.1, True),
    ("BTC-USD", "auto", 10.9, False),   # crypto: 10 %
    ("BTC-USD", "auto", 11.1, True),
    ("EUR-USD", "auto", 10.3, True),    # fx: 2 %
    ("EUR-USD", "auto", 10.19, False),
])
def test_lul006_band_tables_by_asset_class_and_configuration(symbol, bands, price, alerted):
    rule = LuldBandRule(LuldBandRule.Params(bands=bands))
    trades = [trade(i, 10.0, ts=T0 + i, symbol=symbol) for i in range(WARM)] + \
        [trade(WARM, price, ts=T0 + WARM, symbol=symbol)]
    assert bool(fired(run_rule(rule, trades))) is alerted


def test_lul007_reference_is_the_last_five_minutes_only():
    old = [trade(i, 5.0, ts=T0 + i) for i in range(300)]
    recent = [trade(300 + i, 10.0, ts=T0 + 1000 + i) for i in range(300)]  # the 5.0s are long gone
    assert fired(run_rule(RULE, old + recent + [trade(600, 10.4, ts=T0 + 1300)])) == []
    # a quiet gap: nothing in the last 5 minutes, no reference, no band
    assert fired(run_rule(RULE, old + [trade(300, 50.0, ts=T0 + 1000)])) == []


@settings(max_examples=150)
@given(prices=st.lists(st.floats(0.01, 1e4), min_size=1, max_size=60), step=st.floats(0.01, 5.0))
def test_lul008_no_alert_before_warmup(prices, step):
    trades = [trade(i, p, ts=T0 + i * step) for i, p in enumerate(prices) if i * step < 300]
    assert fired(run_rule(RULE, trades)) == []


tier_moves = st.lists(st.floats(-0.3, 0.3), min_size=1, max_size=60)


@settings(max_examples=150)
@given(moves=tier_moves, k=st.integers(0, 3), gaps=st.lists(st.floats(0.1, 20.0), min_size=60, max_size=60))
@pytest.mark.parametrize("base, lo, hi, table", [(10.0, 4.0, 25.0, "tier1"), (1.0, 0.8, 1.4, "tier2")])
def test_lul009_scaled_prices_give_the_same_alerts_within_a_tier(base, lo, hi, table, moves, k, gaps):
    """Scaling by a power of two is exact in floating point; prices stay inside one price-level tier."""
    if table == "tier2":
        k = min(k, 1)  # 0.8..1.4 doubled stays within $0.75..$3.00
    rule = LuldBandRule(LuldBandRule.Params(bands=table, warmup_seconds=30, min_trades=3))
    prices = [base] * 40 + [min(max(base * (1 + m), lo), hi) for m in moves]
    times, t = [], T0
    for i in range(len(prices)):
        times.append(t)
        t += 1.0 if i < 40 else gaps[i - 40]
    scale = 2.0 ** k
    base_run = run_rule(rule, [trade(i, p, ts=ts) for i, (p, ts) in enumerate(zip(prices, times))])
    scaled = run_rule(rule, [trade(i, p * scale, ts=ts) for i, (p, ts) in enumerate(zip(prices, times))])
    assert [[(a.alert_id, a.deviation) for a in x] for x in base_run] == \
        [[(a.alert_id, a.deviation) for a in x] for x in scaled]
