"""Rule sets: the seed's rules in rule-set form, evaluate/update semantics, typed snapshots, the book."""
import msgspec
import pytest
from hypothesis import given, settings, strategies as st

from pipeline.rules import RuleConfig
from pipeline.rulesets.book import RuleBook, RuleSet, SymbolRules
from pipeline.rulesets.config import seed_ruleset
from pipeline.rulesets.deviation import PriceDeviationRule, VolumeMultipleRule
from pipeline.rulesets.luld import LuldBandRule
from pipeline.rulesets.whales import AdaptiveWhaleRule
from pipeline.rulesets.zscore import ReturnZScoreRule
from tests.unit.pipeline.ruleset_fixtures import T0, seed_alerts, trade

prices = st.floats(50.0, 150.0)
quantities = st.floats(0.5, 200.0)
moves = st.lists(st.tuples(prices, quantities), min_size=1, max_size=150)


def every_rule() -> RuleSet:
    return RuleSet("all", [
        PriceDeviationRule(PriceDeviationRule.Params(rolling_window=20, min_history=5)),
        ReturnZScoreRule(ReturnZScoreRule.Params(warmup=5, threshold_sigmas=2.0)),
        LuldBandRule(LuldBandRule.Params(warmup_seconds=10, min_trades=2, pause_seconds=3)),
        AdaptiveWhaleRule(AdaptiveWhaleRule.Params(rolling_window=30, min_history=5, threshold_sigmas=1.5)),
    ])


def trades_of(pairs, symbols=("AAPL",)):
    return [trade(i, p, q, T0 + i * 0.7, symbols[i % len(symbols)]) for i, (p, q) in enumerate(pairs)]


@settings(max_examples=150)
@given(pairs=moves, window=st.integers(1, 30), data=st.data())
def test_rst001_seed_ruleset_raises_exactly_what_the_seed_rules_raise(pairs, window, data):
    cfg = RuleConfig(spike_pct=3.0, breaker_pct=8.0, volume_multiple=2.0, rolling_window=window,
                     min_history=data.draw(st.integers(1, window)))
    ruleset = seed_ruleset(cfg)
    state = ruleset.new_state()
    raised = []
    trades = trades_of(pairs)
    for t in trades:
        raised += ruleset.evaluate(t, state)
        ruleset.update(t, state)
    expected = seed_alerts(trades, cfg.spike_pct, cfg.breaker_pct, cfg.volume_multiple, cfg.rolling_window,
                           cfg.min_history)
    assert [(a.trade_id, a.alert_type) for a in raised] == [(i, kind) for i, kind, _ in expected]
    assert [a.deviation for a in raised] == pytest.approx([dev for _, _, dev in expected], rel=1e-9)


@settings(max_examples=100)
@given(pairs=moves)
def test_rst002_evaluate_does_not_change_the_state(pairs):
    ruleset = every_rule()
    state = ruleset.new_state()
    for t in trades_of(pairs):
        before = msgspec.msgpack.encode(state)
        first = ruleset.evaluate(t, state)
        assert msgspec.msgpack.encode(state) == before
        assert ruleset.evaluate(t, state) == first
        ruleset.update(t, state)


@settings(max_examples=100)
@given(pairs=moves, cut=st.integers(0, 150))
def test_rst003_a_snapshot_restored_mid_stream_continues_exactly(pairs, cut):
    ruleset, trades = every_rule(), trades_of(pairs, ("AAPL", "BTC-USD", "EUR-USD"))
    cut = min(cut, len(trades))

    def run(ts, states):
        out = []
        for t in ts:
            s = states.setdefault(t.symbol, ruleset.new_state())
            out += ruleset.evaluate(t, s)
            ruleset.update(t, s)
        return out

    straight = run(trades, {})
    states = {}
    first = run(trades[:cut], states)
    raw = msgspec.msgpack.encode(states)
    decoded = msgspec.msgpack.decode(raw, type=dict[str, SymbolRules])
    restored = {k: ruleset.resume(v) for k, v in decoded.items()}
    assert first + run(trades[cut:], restored) == straight


def test_rst004_snapshot_is_tagged_and_named():
    ruleset = every_rule()
    state = ruleset.new_state()
    ruleset.update(trade(1, 100.0, ts=T0 + 0.25), state)
    plain = msgspec.to_builtins(state)
    assert plain["ruleset"] == "all"
    assert {k: v["rule"] for k, v in plain["states"].items()} == {
        "price_deviation": "window", "return_zscore": "ewma_returns", "luld_bands": "luld",
        "adaptive_whale": "window"}
    assert plain["states"]["luld_bands"]["seconds"] == [int(T0)]
    assert plain["states"]["price_deviation"]["values"] == [100.0]


def test_rst005_resume_keeps_unchanged_rules_and_restarts_changed_ones():
    old = every_rule()
    state = old.new_state()
    for i in range(10):
        old.update(trade(i, 100.0 + i), state)
    changed = RuleSet("all", [
        PriceDeviationRule(PriceDeviationRule.Params(rolling_window=20, min_history=5)),   # same
        ReturnZScoreRule(ReturnZScoreRule.Params(warmup=5, threshold_sigmas=3.0)),          # changed
        VolumeMultipleRule(),                                                                # new
    ])
    resumed = changed.resume(msgspec.msgpack.decode(msgspec.msgpack.encode(state), type=SymbolRules))
    assert resumed.states["price_deviation"] == state.states["price_deviation"]
    assert resumed.states["return_zscore"].returns == 0
    assert len(resumed.states["volume_multiple"]) == 0
    assert set(resumed.states) == {"price_deviation", "return_zscore", "volume_multiple"}
    assert changed.resume(None) == changed.new_state()


def test_rst006_two_rules_raising_one_type_are_refused():
    with pytest.raises(ValueError, match="volume_multiple.*adaptive_whale.*VOLUME_SPIKE"):
        RuleSet("both", [VolumeMultipleRule(), AdaptiveWhaleRule()])


SEED, CALM = seed_ruleset(RuleConfig(), "seed"), RuleSet("calm", [ReturnZScoreRule()])
CRYPTO = RuleSet("crypto-set", [LuldBandRule()])
BOOK = RuleBook({"seed": SEED, "calm": CALM, "crypto-set": CRYPTO},
                {"default": "seed", "crypto": "crypto-set", "ETH-USD": "calm", "MSFT": "calm"})


@pytest.mark.parametrize("symbol, name", [
    ("AAPL", "seed"), ("MSFT", "calm"), ("BTC-USD", "crypto-set"), ("ETH-USD", "calm"), ("EUR-USD", "seed"),
])
def test_rst007_symbol_beats_asset_class_beats_default(symbol, name):
    assert BOOK.for_symbol(symbol).name == name
    assert BOOK.for_symbol(symbol) is BOOK.for_symbol(symbol)


@pytest.mark.parametrize("assign, message", [
    ({"default": "seed", "TSLA": "nope"}, "assign.TSLA: no rule set named 'nope'"),
    ({"crypto": "seed"}, "assign.default: missing"),
])
def test_rst008_book_refuses_dangling_assignments(assign, message):
    with pytest.raises(ValueError, match=message):
        RuleBook({"seed": SEED}, assign)
