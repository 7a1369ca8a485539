"""The rules configuration: built-in seed sets from the settings, STOCKIT_RULES files, clear errors."""
import json

import pytest

from pipeline.rulesets.config import RulesConfigError, rulebook_from_settings
from pipeline.settings import Settings

VOLATILITY = {
    "rulesets": {"volatility": {"return_zscore": {"lambda": 0.97, "threshold_sigmas": 7},
                                "luld_bands": None, "adaptive_whale": {}}},
    "assign": {"crypto": "volatility", "TSLA": "volatility"},
}


def book(env=None, **overrides):
    return rulebook_from_settings(Settings.from_env(env or {}, **overrides))


def rules_of(b, symbol):
    rs = b.for_symbol(symbol)
    return rs.name, {r.name: r.params for r in rs.rules}


def test_cfg001_default_is_the_seed_with_the_settings_thresholds():
    name, rules = rules_of(book({"STOCKIT_SPIKE_PCT": "7", "STOCKIT_ROLLING_WINDOW": "50"}), "AAPL")
    assert name == "seed" and list(rules) == ["price_deviation", "volume_multiple"]
    assert (rules["price_deviation"].spike_pct, rules["price_deviation"].breaker_pct) == (7.0, 10.0)
    assert rules["price_deviation"].rolling_window == rules["volume_multiple"].rolling_window == 50
    assert rules["volume_multiple"].volume_multiple == 3.0


@pytest.mark.parametrize("symbol, name, spike, breaker, multiple", [
    ("AAPL", "seed", 5.0, 10.0, 3.0),
    ("ETH-USD", "seed:crypto", 8.0, 20.0, 3.0),
    ("BTC-USD", "seed:BTC-USD", 12.0, 20.0, 3.0),   # symbol beats class, class fills the rest
    ("TSLA", "seed:TSLA", 5.0, 10.0, 5.0),
])
def test_cfg002_legacy_overrides_become_seed_variants(symbol, name, spike, breaker, multiple):
    overrides = {"crypto": {"spike_pct": 8.0, "breaker_pct": 20.0}, "BTC-USD": {"spike_pct": 12.0},
                 "TSLA": {"volume_multiple": 5.0}}
    got, rules = rules_of(book({"STOCKIT_RULE_OVERRIDES": json.dumps(overrides)}), symbol)
    assert got == name
    assert (rules["price_deviation"].spike_pct, rules["price_deviation"].breaker_pct,
            rules["volume_multiple"].volume_multiple) == (spike, breaker, multiple)


@pytest.mark.parametrize("form", ["inline", "json", "yaml"])
def test_cfg003_rule_sets_from_inline_json_or_a_file(form, tmp_path):
    if form == "inline":
        value = json.dumps(VOLATILITY)
    elif form == "json":
        value = str(tmp_path / "rules.json")
        (tmp_path / "rules.json").write_text(json.dumps(VOLATILITY))
    else:
        value = str(tmp_path / "rules.yaml")
        (tmp_path / "rules.yaml").write_text(
            "rulesets:\n  volatility:\n    return_zscore: {lambda: 0.97, threshold_sigmas: 7}\n"
            "    luld_bands:\n    adaptive_whale: {}\n"
            "assign:\n  crypto: volatility\n  TSLA: volatility\n")
    b = book({"STOCKIT_RULES": value, "STOCKIT_RULE_OVERRIDES": '{"TSLA": {"spike_pct": 6}}'})
    name, rules = rules_of(b, "BTC-USD")
    assert name == "volatility" and list(rules) == ["return_zscore", "luld_bands", "adaptive_whale"]
    assert (rules["return_zscore"].lambda_, rules["return_zscore"].threshold_sigmas) == (0.97, 7.0)
    assert rules["luld_bands"].bands == "auto"
    assert rules_of(b, "TSLA")[0] == "volatility"     # STOCKIT_RULES wins over an override of the same key
    assert rules_of(b, "AAPL")[0] == "seed"


def doc(**changes):
    d = json.loads(json.dumps(VOLATILITY))
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = d
        for p in parents:
            target = target[p]
        target[last] = value
    return json.dumps(d)


@pytest.mark.parametrize("value, message", [
    ('{"rulesets": {}, "assing": {}}', r"STOCKIT_RULES: unknown key 'assing'"),
    (doc(rulesets__volatility__return_zscor={}),
     r"rulesets\.volatility\.return_zscor: unknown rule 'return_zscor'"),
    (doc(rulesets__volatility__return_zscore={"lamda": 0.9}),
     r"rulesets\.volatility\.return_zscore: Object contains unknown field `lamda`"),
    (doc(rulesets__volatility__return_zscore={"lambda": "fast"}),
     r"rulesets\.volatility\.return_zscore: Expected `float`, got `str` \(at lambda\)"),
    (doc(rulesets__volatility__return_zscore={"lambda": 1.5}),
     r"rulesets\.volatility\.return_zscore: lambda \(1\.5\) must be between 0 and 1"),
    (doc(rulesets__volatility__luld_bands={"bands": "tier3"}), r"luld_bands: bands 'tier3' is not one of"),
    (doc(rulesets__volatility__volume_multiple={}), r"rulesets\.volatility: .*rules 'adaptive_whale' and "
                                                    r"'volume_multiple' both raise VOLUME_SPIKE"),
    (doc(rulesets__volatility=[]), r"rulesets\.volatility: must be a non-empty object"),
    (doc(rulesets__seed={"luld_bands": {}}), r"rulesets\.seed: the name is reserved"),
    (doc(assign__TSLA="calm"), r"assign\.TSLA: no rule set named 'calm'"),
    (doc(assign__bonds="volatility"), r"assign\.bonds: not a symbol nor one of default, equity, crypto, fx"),
    ('{"rulesets": ', r"STOCKIT_RULES: not JSON"),
    ("/nonexistent/rules.yaml", r"STOCKIT_RULES \(/nonexistent/rules.yaml\): cannot read the file"),
])
def test_cfg004_errors_name_the_bad_key(value, message):
    with pytest.raises(RulesConfigError, match=message):
        book({"STOCKIT_RULES": value})


@pytest.mark.parametrize("env, message", [
    ({"STOCKIT_RULE_OVERRIDES": '{"TSLA": {"spike_percent": 7}}'},
     r"STOCKIT_RULE_OVERRIDES\.TSLA: unknown settings \['spike_percent'\]"),
    ({"STOCKIT_RULE_OVERRIDES": '{"crypto": {"spike_pct": 30}}'},
     r"STOCKIT_RULE_OVERRIDES\.crypto: need 0 <"),
    ({"STOCKIT_SPIKE_PCT": "12"}, r"STOCKIT_SPIKE_PCT.*need 0 < spike_pct"),
])
def test_cfg005_seed_settings_errors_name_the_variable(env, message):
    with pytest.raises(RulesConfigError, match=message):
        book(env)


def test_cfg006_a_bad_yaml_file_is_named(tmp_path):
    path = tmp_path / "rules.yml"
    path.write_text("rulesets: [unclosed\n")
    with pytest.raises(RulesConfigError, match=r"rules\.yml\): not YAML"):
        book({"STOCKIT_RULES": str(path)})


def test_cfg007_stockit_rules_command_validates_and_shows(monkeypatch, capsys):
    from pipeline.cli import main

    monkeypatch.setenv("STOCKIT_RULES", json.dumps(VOLATILITY))
    assert main(["rules", "AAPL", "BTC-USD"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["AAPL", "seed", "price_deviation"]
    assert out[1].split()[:3] == ["BTC-USD", "volatility", "return_zscore"]
    monkeypatch.setenv("STOCKIT_RULES", '{"rulesets": {"v": {"luld_bands": {"band": "tier2"}}}}')
    assert main(["rules"]) == 2
    assert "rulesets.v.luld_bands: Object contains unknown field `band`" in capsys.readouterr().err
