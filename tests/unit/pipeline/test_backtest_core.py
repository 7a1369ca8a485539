"""The pure backtest core: rule books run over trades in event-time order, alerts compared."""
import itertools

import pytest

from pipeline.events import Alert, alert_id_for
from pipeline.rulesets.backtest import CountRow, compare_alerts, run_rules
from pipeline.simulator import MarketSimulator
from tests.unit.pipeline.ruleset_fixtures import T0, seed_alerts, trade

CANDIDATE = {"rulesets": {"volatility": {"price_deviation": {"spike_pct": 8, "breaker_pct": 15},
                                         "return_zscore": {}, "luld_bands": {}, "adaptive_whale": {}}},
             "assign": {"default": "volatility"}}


def simulated(n=20000, seed=11):
    sim = MarketSimulator(["AAPL", "BTC-USD", "EUR-USD"], seed=seed, event_rate=0.004)
    return [sim.next_trade(T0 + i * 0.1)[0] for i in range(n)]


def test_bkt001_default_rules_give_the_alerts_of_the_seed_rules():
    trades = simulated()
    expected = seed_alerts(trades)
    alerts = list(run_rules(trades))
    assert expected and [(a.trade_id, a.alert_type) for a in alerts] == [(i, kind) for i, kind, _ in expected]
    assert [a.deviation for a in alerts] == pytest.approx([dev for _, _, dev in expected], rel=1e-9)


def test_bkt002_streams_trades_without_reading_ahead():
    pulled = []

    def source():
        for i in itertools.count():
            pulled.append(i)
            yield trade(i, 100.0 if i != 30 else 150.0, ts=T0 + i)

    alerts = run_rules(source())
    first = next(alerts)
    assert (first.trade_id, first.alert_type) == ("t30", "CIRCUIT_BREAKER")
    assert len(pulled) == 31


def test_bkt003_refuses_trades_out_of_event_time_order():
    trades = [trade(0, 100.0, ts=T0 + 5), trade(1, 100.0, ts=T0 + 5), trade(2, 100.0, ts=T0 + 4)]
    with pytest.raises(ValueError, match="t2 .* not in event-time order|not in event-time order"):
        list(run_rules(trades))


def test_bkt004_states_continue_across_runs():
    trades = simulated(6000)
    whole = list(run_rules(trades, CANDIDATE))
    states = {}
    parts = list(run_rules(trades[:2500], CANDIDATE, states))
    parts += list(run_rules(trades[2500:], CANDIDATE, states))
    assert parts == whole
    assert set(states) == {("live", "AAPL"), ("live", "BTC-USD"), ("live", "EUR-USD")}


def alert(trade_id, alert_type="PRICE_SPIKE", symbol="AAPL", ts=T0):
    return Alert(alert_id=alert_id_for(trade_id, alert_type), alert_type=alert_type, severity="HIGH",
                 symbol=symbol, price=1.0, reference=1.0, deviation=0.0, trade_id=trade_id, ts=ts, message="")


def test_bkt005_comparison_counts_and_differences():
    actual = [alert("a", ts=T0 + 3), alert("b"), alert("c", "VOLUME_SPIKE"), alert("d", symbol="TSLA"),
              alert("b")]  # seen twice: counted once
    candidate = [alert("b"), alert("c", "VOLUME_SPIKE"), alert("e", "LIMIT_STATE", ts=T0 + 1),
                 alert("f", "LIMIT_STATE", ts=T0 + 2), alert("a", "RETURN_OUTLIER", ts=T0 + 3)]
    cmp = compare_alerts(actual, candidate)
    assert cmp.counts == [
        CountRow("LIMIT_STATE", "AAPL", 0, 2, 0),
        CountRow("PRICE_SPIKE", "AAPL", 2, 1, 1),
        CountRow("PRICE_SPIKE", "TSLA", 1, 0, 0),
        CountRow("RETURN_OUTLIER", "AAPL", 0, 1, 0),
        CountRow("VOLUME_SPIKE", "AAPL", 1, 1, 1),
    ]
    assert cmp.matched == 2
    assert [a.trade_id for a in cmp.only_in_actual] == ["d", "a"]          # by time
    assert [(a.trade_id, a.alert_type) for a in cmp.only_in_candidate] == [
        ("e", "LIMIT_STATE"), ("f", "LIMIT_STATE"), ("a", "RETURN_OUTLIER")]
    assert cmp.totals == {"LIMIT_STATE": (0, 2), "PRICE_SPIKE": (3, 1), "RETURN_OUTLIER": (0, 1),
                          "VOLUME_SPIKE": (1, 1)}


def test_bkt006_candidate_against_the_seed_on_simulated_trades():
    trades = simulated()
    actual, candidate = list(run_rules(trades)), list(run_rules(trades, CANDIDATE))
    same = compare_alerts(actual, actual)
    assert same.matched == len(actual) and not same.only_in_actual and not same.only_in_candidate
    cmp = compare_alerts(actual, candidate)
    assert cmp.matched + len(cmp.only_in_actual) == len(actual)
    assert cmp.matched + len(cmp.only_in_candidate) == len(candidate)
    totals = cmp.totals
    assert totals["RETURN_OUTLIER"][0] == 0 and totals["RETURN_OUTLIER"][1] > 0
    assert sum(r.both for r in cmp.counts) == cmp.matched
