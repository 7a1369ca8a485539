"""The backtest program's pure parts: the request checked field by field, the CSV and the report."""
import csv
import io

import pytest

from pipeline.backtest import BacktestResult, SpecError, csv_text, make_spec, parse_rules_text, report
from pipeline.events import Alert, alert_id_for
from pipeline.rulesets.backtest import compare_alerts, side_by_side
from pipeline.settings import Settings

S = Settings.from_env({})
T0 = 1_700_000_000.0


def test_bts001_a_good_request_is_normalised():
    spec = make_spec(S, symbols="aapl, MSFT,aapl", start="2023-11-14T22:13:20Z", end=T0 + 60,
                     source=" replay ",
                     rules='{"rulesets": {"t": {"return_zscore": {}}}, "assign": {"crypto": "t"}}')
    assert spec.symbols == ["AAPL", "MSFT"] and spec.start == T0 and spec.end == T0 + 60
    assert spec.source == "replay" and spec.rules["assign"] == {"crypto": "t"}
    assert make_spec(S, symbols=["AAPL"], start=T0, end=T0 + 1, rules="").rules is None
    yaml_rules = "rulesets:\n  t:\n    price_deviation: {spike_pct: 2}\nassign:\n  default: t\n"
    spec = make_spec(S, symbols=["AAPL"], start=T0, end=T0 + 1, rules=yaml_rules)
    assert spec.rules["assign"] == {"default": "t"}


@pytest.mark.parametrize("fields, field, words", [
    ({"symbols": ""}, "symbols", "at least one"),
    ({"symbols": ["A B"]}, "symbols", "not a symbol"),
    ({"symbols": [f"S{i}" for i in range(51)]}, "symbols", "at most 50"),
    ({"symbols": 5}, "symbols", "a list"),
    ({"start": None}, "start", "required"),
    ({"start": "next tuesday"}, "start", "neither ISO-8601"),
    ({"end": 1e13}, "end", "out of range"),
    ({"end": T0}, "end", "later than start"),
    ({"source": 7}, "source", "a source name"),
    ({"rules": "[1, 2]"}, "rules", "keys rulesets and assign"),
    ({"rules": '{"rulesets": {"t": {"nope": {}}}}'}, "rules", "unknown rule 'nope'"),
    ({"rules": {"assign": {"default": "missing"}}}, "rules", "no rule set named 'missing'"),
    ({"rules": '{"rulesets": '}, "rules", "not JSON"),
])
def test_bts002_bad_requests_name_the_field(fields, field, words):
    args = {"symbols": "AAPL", "start": T0, "end": T0 + 60, **fields}
    with pytest.raises(SpecError) as err:
        make_spec(S, **args)
    assert err.value.field == field and words in err.value.message, err.value.message


def test_bts003_only_the_command_line_reads_a_rules_file(tmp_path):
    from pipeline.backtest_cli import _rules_text
    from pipeline.rulesets.config import RulesConfigError

    path = tmp_path / "candidate.yaml"
    path.write_text("rulesets:\n  t:\n    adaptive_whale: {}\nassign:\n  default: t\n")
    assert parse_rules_text(_rules_text(str(path)))["rulesets"] == {"t": {"adaptive_whale": {}}}
    with pytest.raises(RulesConfigError, match="must be an object"):
        parse_rules_text(str(path))  # a request's text is never taken for a path
    with pytest.raises(SpecError, match="cannot read"):
        _rules_text(str(tmp_path / "missing.yaml"))
    assert parse_rules_text("  ") is None


def alert(trade_id, kind="PRICE_SPIKE", ts=T0, symbol="AAPL"):
    return Alert(alert_id=alert_id_for(trade_id, kind), alert_type=kind, severity="HIGH", symbol=symbol,
                 price=100.0, reference=95.0, deviation=5.3, trade_id=trade_id, ts=ts, message=f"{kind} m")


def test_bts004_csv_and_report_show_every_alert_once_with_its_difference():
    actual = [alert("a", ts=T0 + 1), alert("b", ts=T0 + 2)]
    candidate = [alert("b", ts=T0 + 2), alert("c", "VOLUME_SPIKE", ts=T0 + 3, symbol="MSFT")]
    rows = side_by_side(actual, candidate)
    assert [(a.trade_id, x, c) for a, x, c in rows] == [("a", True, False), ("b", True, True),
                                                        ("c", False, True)]
    out = list(csv.DictReader(io.StringIO(csv_text(rows))))
    assert [(r["trade_id"], r["difference"]) for r in out] == [("a", "only_actual"), ("b", "both"),
                                                                ("c", "only_candidate")]
    stored = [{**a.to_wire(), "in_actual": x, "in_candidate": c} for a, x, c in rows]
    assert csv_text(stored) == csv_text(rows), "stored rows export the same CSV"
    spec = make_spec(S, symbols="AAPL,MSFT", start=T0, end=T0 + 60)
    text = report(BacktestResult(spec, 10, 0.5, compare_alerts(actual, candidate), rows))
    assert "10 trades in 0.50s; alerts: 2 fired, 2 with the candidate rules, 1 in both" in text
    assert "only in actual (fired, the candidate would not raise them): 1" in text
    assert "VOLUME_SPIKE     MSFT             0         1      0" in text


def test_bts005_a_symbol_that_stops_trading_in_a_limit_state_is_paused_by_its_source_clock():
    from pipeline.events import Trade
    from pipeline.rulesets.backtest import run_rules

    rules = {"rulesets": {"bands": {"luld_bands": {"warmup_seconds": 0, "min_trades": 1}}},
             "assign": {"default": "bands"}}
    calm = [Trade(f"x{i}", "AAPL", 100.0, 1.0, "BUY", "T", T0 + i) for i in range(10)]
    jump = Trade("x-out", "AAPL", 120.0, 1.0, "BUY", "T", T0 + 10)  # outside the 5 % band: LIMIT_STATE
    other = [Trade(f"m{i}", "MSFT", 50.0, 1.0, "SELL", "T", T0 + 11 + i) for i in range(30)]  # AAPL is silent
    alerts = list(run_rules(calm + [jump] + other, rules, grace=2.0))
    kinds = [(a.alert_type, a.trade_id, a.ts) for a in alerts]
    assert kinds == [("LIMIT_STATE", "x-out", T0 + 10), ("TRADING_PAUSE", "x-out", T0 + 25)]
    # ... the same pause (same id) as when AAPL trades again after the 15 s, outside the band
    again = Trade("x-late", "AAPL", 121.0, 1.0, "BUY", "T", T0 + 30)
    traded = list(run_rules(calm + [jump, again], rules, grace=2.0))
    assert [a.alert_id for a in traded] == [a.alert_id for a in alerts]
    other_source = [Trade(f"r{i}", "MSFT", 50.0, 1.0, "SELL", "T", T0 + 11 + i, source="replay")
                    for i in range(30)]
    alone = list(run_rules(sorted(calm + [jump] + other_source, key=lambda t: t.ts), rules, grace=2.0))
    assert [a.alert_type for a in alone] == ["LIMIT_STATE"], "another source's trades leave AAPL's clock"


@pytest.mark.parametrize("rule_name", ["price_deviation", "volume_multiple", "return_zscore", "luld_bands",
                                       "adaptive_whale"])
def test_bts006_step_gives_what_evaluate_then_update_give(rule_name):
    """Each rule's fused ``step`` (the backtest's fast path) raises the same alerts, leaves the same state."""
    from pipeline.rulesets.book import RULES
    from pipeline.simulator import MarketSimulator

    rule = RULES[rule_name]()
    sim = MarketSimulator(["AAPL", "BTC-USD"], seed=3, event_rate=0.01)
    trades = [sim.next_trade(T0 + i * 0.5)[0] for i in range(6000)]
    stepped, evaluated = {}, {}
    got, want = [], []
    for t in trades:
        a = stepped.setdefault(t.symbol, rule.new_state())
        got += rule.step(t, a)
        b = evaluated.setdefault(t.symbol, rule.new_state())
        want += rule.evaluate(t, b)
        rule.update(t, b)
    assert want and got == want
    assert stepped == evaluated
