"""The seed's rules as the built-in ``seed`` rule set: thresholds, precedence, history, overrides and
deterministic alert ids."""
import pytest
from hypothesis import given, settings, strategies as st

from pipeline.events import Trade, alert_id_for
from pipeline.rules import RuleConfig, asset_class
from pipeline.rulesets.config import RulesConfigError, rulebook_from, seed_ruleset
from pipeline.rulesets.deviation import price_deviation_alert, volume_multiple_alert

DEFAULT = RuleConfig()


def trade(price=100.0, qty=10.0, symbol="AAPL", trade_id="t-1", side="BUY"):
    return Trade(trade_id, symbol, price, qty, side, "NASDAQ", 1_717_000_000.0)


def evaluate(t, n=20, price=100.0, qty=10.0, ruleset=None):
    """The alerts ``t`` raises after ``n`` trades of ``price`` and ``qty`` under ``ruleset`` (or seed)."""
    ruleset = ruleset or seed_ruleset(DEFAULT)
    state = ruleset.new_state()
    for i in range(n):
        ruleset.update(trade(price, qty, t.symbol, f"h-{i}"), state)
    return ruleset.evaluate(t, state)


# price, quantity vs a history of price 100 and quantity 10 -> alert types in order
MOVES = [
    ("flat", 100.0, 10.0, []),
    ("up_4pct", 104.0, 10.0, []),
    ("up_exactly_5pct", 105.0, 10.0, []),
    ("up_7pct", 107.0, 10.0, ["PRICE_SPIKE"]),
    ("down_7pct", 93.0, 10.0, ["PRICE_SPIKE"]),
    ("up_exactly_10pct", 110.0, 10.0, ["PRICE_SPIKE"]),
    ("up_12pct", 112.0, 10.0, ["CIRCUIT_BREAKER"]),
    ("down_12pct", 88.0, 10.0, ["CIRCUIT_BREAKER"]),
    ("volume_exactly_3x", 100.0, 30.0, []),
    ("volume_3_1x", 100.0, 31.0, ["VOLUME_SPIKE"]),
    ("volume_20x", 100.0, 200.0, ["VOLUME_SPIKE"]),
    ("spike_and_volume", 107.0, 40.0, ["PRICE_SPIKE", "VOLUME_SPIKE"]),
    ("breaker_and_volume", 85.0, 40.0, ["CIRCUIT_BREAKER", "VOLUME_SPIKE"]),
]


@pytest.mark.parametrize("price, qty, types", [m[1:] for m in MOVES], ids=[m[0] for m in MOVES])
def test_rul001_thresholds_and_precedence(price, qty, types):
    assert [a.alert_type for a in evaluate(trade(price, qty))] == types


@pytest.mark.parametrize("alert_type, price, qty, severity, reference, deviation", [
    ("CIRCUIT_BREAKER", 112.0, 10.0, "CRITICAL", 100.0, 12.0),
    ("PRICE_SPIKE", 93.0, 10.0, "HIGH", 100.0, -7.0),
    ("VOLUME_SPIKE", 100.0, 45.0, "MEDIUM", 10.0, 4.5),
])
def test_rul002_alert_fields(alert_type, price, qty, severity, reference, deviation):
    t = trade(price, qty, trade_id="tid-77", side="SELL")
    (a,) = evaluate(t)
    assert (a.alert_type, a.severity, a.symbol, a.price, a.trade_id, a.ts, a.side, a.quantity, a.source) == \
        (alert_type, severity, "AAPL", price, "tid-77", t.ts, "SELL", qty, t.source)
    assert a.reference == pytest.approx(reference) and a.deviation == pytest.approx(deviation)
    assert a.alert_id == alert_id_for("tid-77", alert_type)
    assert "AAPL" in a.message


@pytest.mark.parametrize("n, alerted", [(0, False), (1, False), (19, False), (20, True), (100, True)])
def test_rul003_no_alert_before_min_history(n, alerted):
    assert bool(evaluate(trade(150.0, 1000.0), n)) is alerted


def test_rul004_alert_ids_are_deterministic():
    first = evaluate(trade(120.0, 100.0, trade_id="abc"))
    again = evaluate(trade(120.0, 100.0, trade_id="abc"))
    assert [a.alert_id for a in first] == [a.alert_id for a in again]
    assert len({a.alert_id for a in first}) == 2
    other = evaluate(trade(120.0, 100.0, trade_id="abd"))
    assert not {a.alert_id for a in first} & {a.alert_id for a in other}


def test_rul005_reference_is_the_rolling_window_only():
    ruleset = seed_ruleset(DEFAULT)
    state = ruleset.new_state()
    for i in range(200):  # 100 at 50, then 100 at 100: the 50s have rolled out
        ruleset.update(trade(50.0 if i < 100 else 100.0, trade_id=f"h-{i}"), state)
    assert ruleset.evaluate(trade(104.0), state) == []


@settings(max_examples=200)
@given(ref=st.floats(0.001, 1e6), move=st.floats(-0.9, 3.0), qty_mult=st.floats(0.01, 50))
def test_rul006_at_most_one_price_alert_and_the_right_one(ref, move, qty_mult):
    alerts = evaluate(trade(ref * (1 + move), 10.0 * qty_mult), price=ref)
    types = [a.alert_type for a in alerts]
    dev = abs(ref * (1 + move) - ref) / ref * 100
    assert not {"PRICE_SPIKE", "CIRCUIT_BREAKER"} <= set(types)
    if dev > 10.0 + 1e-6:
        assert "CIRCUIT_BREAKER" in types
    elif 5.0 + 1e-6 < dev < 10.0 - 1e-6:
        assert "PRICE_SPIKE" in types
    elif dev < 5.0 - 1e-6:
        assert not {"PRICE_SPIKE", "CIRCUIT_BREAKER"} & set(types)
    if qty_mult > 3.0 + 1e-9:
        assert types[-1] == "VOLUME_SPIKE"
    elif qty_mult < 3.0 - 1e-9:
        assert "VOLUME_SPIKE" not in types


@pytest.mark.parametrize("symbol, cls", [
    ("BTC-USD", "crypto"), ("ETH-USD", "crypto"), ("EUR-USD", "fx"), ("JPY-USD", "fx"), ("AAPL", "equity"),
    ("XYZ", "equity"),
])
def test_rul007_asset_class(symbol, cls):
    assert asset_class(symbol) == cls


BOOK = rulebook_from(DEFAULT, {"crypto": {"spike_pct": 8.0, "breaker_pct": 20.0},
                               "BTC-USD": {"spike_pct": 12.0}, "TSLA": {"volume_multiple": 5.0},
                               "fx": {"min_history": 50}})


def params_of(symbol):
    price, volume = BOOK.for_symbol(symbol).rules
    return (price.params.spike_pct, price.params.breaker_pct, volume.params.volume_multiple,
            price.params.min_history)


@pytest.mark.parametrize("symbol, expected", [
    ("AAPL", (5.0, 10.0, 3.0, 20)),
    ("ETH-USD", (8.0, 20.0, 3.0, 20)),
    ("BTC-USD", (12.0, 20.0, 3.0, 20)),  # symbol beats class, class fills the rest
    ("TSLA", (5.0, 10.0, 5.0, 20)),
    ("EUR-USD", (5.0, 10.0, 3.0, 50)),
])
def test_rul008_rulebook_overrides(symbol, expected):
    assert params_of(symbol) == expected
    assert BOOK.for_symbol(symbol) is BOOK.for_symbol(symbol)


@pytest.mark.parametrize("symbol, price, qty, types", [
    ("ETH-USD", 107.0, 10.0, []),                  # 7 % is normal for crypto (spike at 8 %)
    ("ETH-USD", 109.0, 10.0, ["PRICE_SPIKE"]),
    ("ETH-USD", 115.0, 10.0, ["PRICE_SPIKE"]),     # breaker at 20 %
    ("ETH-USD", 125.0, 10.0, ["CIRCUIT_BREAKER"]),
    ("BTC-USD", 111.0, 10.0, []),
    ("TSLA", 100.0, 40.0, []),
    ("TSLA", 100.0, 51.0, ["VOLUME_SPIKE"]),
    ("AAPL", 107.0, 40.0, ["PRICE_SPIKE", "VOLUME_SPIKE"]),
])
def test_rul009_overrides_change_the_alerts(symbol, price, qty, types):
    alerts = evaluate(trade(price, qty, symbol=symbol), ruleset=BOOK.for_symbol(symbol))
    assert [a.alert_type for a in alerts] == types


def test_rul010_fx_min_history_override():
    fx = BOOK.for_symbol("EUR-USD")
    assert evaluate(trade(150.0, symbol="EUR-USD"), 49, ruleset=fx) == []
    assert evaluate(trade(150.0, symbol="EUR-USD"), 50, ruleset=fx) != []


@pytest.mark.parametrize("kwargs", [
    {"spike_pct": 0.0}, {"spike_pct": 10.0}, {"spike_pct": 12.0, "breaker_pct": 10.0},
    {"volume_multiple": 1.0}, {"min_history": 0}, {"min_history": 101}, {"rolling_window": 10},
])
def test_rul011_invalid_rule_config(kwargs):
    with pytest.raises(ValueError):
        RuleConfig(**kwargs)


def test_rul012_unknown_override_setting_is_rejected():
    with pytest.raises(RulesConfigError, match="spike_percent"):
        rulebook_from(DEFAULT, {"TSLA": {"spike_percent": 7}})


@pytest.mark.parametrize("broken_mean", [0.0, -5.0])
def test_rul013_a_mean_that_is_not_positive_is_never_divided_by(broken_mean):
    t = trade(price=150.0, qty=1e6)
    assert price_deviation_alert(t, broken_mean, 5.0, 10.0) is None
    assert volume_multiple_alert(t, broken_mean, 3.0) is None


def test_rul014_the_crafted_run_that_zeroed_the_sum_raises_no_error_and_no_false_alert():
    ruleset = seed_ruleset(RuleConfig(min_history=1, rolling_window=3))
    state = ruleset.new_state()
    for i, q in enumerate([1.0, 1.0, 1.0, 1e12, 2e-6, 1e-7, 1e-6, 1e-6]):
        ruleset.update(trade(100.0, q, trade_id=f"h-{i}"), state)
    assert [a.alert_type for a in ruleset.evaluate(trade(qty=1e-6), state)] == []
    assert [a.alert_type for a in ruleset.evaluate(trade(qty=1e-5), state)] == ["VOLUME_SPIKE"]
