"""Market simulator: repeatable GBM prices, injected market events, tick rounding."""
import math

import pytest
from hypothesis import given, settings, strategies as st

from pipeline.events import Trade
from pipeline.simulator import PROFILES, MarketSimulator, profile_for

ALL = list(PROFILES)
T0 = 1_717_000_000.0


def run(sim, n, step=0.02, start=T0):
    return [sim.next_trade(start + i * step) for i in range(n)]


@settings(max_examples=20)
@given(seed=st.integers(1, 2**32), rate=st.sampled_from([0.0, 0.01, 0.5]))
def test_sim001_seeded_runs_are_repeatable(seed, rate):
    a = run(MarketSimulator(ALL, seed=seed, event_rate=rate), 300)
    b = run(MarketSimulator(ALL, seed=seed, event_rate=rate), 300)
    assert a == b
    assert run(MarketSimulator(ALL, seed=seed + 1, event_rate=rate), 300) != a


def test_sim002_unseeded_runs_get_distinct_trade_ids():
    # seed 0 means "from the clock" (STOCKIT_SEED): two unseeded producers must not reuse trade ids
    a, b = MarketSimulator(ALL), MarketSimulator(ALL)
    assert a.run_id != b.run_id
    assert a.next_trade(T0)[0].trade_id != b.next_trade(T0)[0].trade_id
    assert MarketSimulator(ALL, seed=42).run_id == MarketSimulator(ALL, seed=42).run_id == "2a"


@settings(max_examples=15)
@given(seed=st.integers(1, 2**32), step=st.sampled_from([0.001, 1.0, 3600.0, 86400.0 * 30]))
def test_sim003_prices_stay_positive_and_on_tick(seed, step):
    sim = MarketSimulator(ALL, seed=seed, event_rate=0.05)
    for trade, _ in run(sim, 400, step=step):
        tick = PROFILES[trade.symbol].tick
        assert trade.price >= tick > 0
        assert math.isfinite(trade.price)
        assert trade.price / tick == pytest.approx(round(trade.price / tick), abs=1e-6)
        assert trade.quantity > 0
    assert all(p > 0 for p in sim.prices.values())


@pytest.mark.parametrize("symbol, tick, decimals", [
    ("AAPL", 0.01, 2), ("BTC-USD", 0.01, 2), ("EUR-USD", 0.0001, 4), ("JPY-USD", 0.000001, 6),
])
def test_sim004_prices_round_to_the_tick(symbol, tick, decimals):
    sim = MarketSimulator([symbol], seed=7, event_rate=0.2)
    for trade, _ in run(sim, 300, step=5.0):
        assert trade.price == round(trade.price, decimals)
        assert round(trade.price / tick) * tick == pytest.approx(trade.price, rel=1e-12)


def test_sim005_events_at_the_configured_rate_with_the_configured_sizes():
    sim = MarketSimulator(ALL, seed=2024, event_rate=0.1)
    sim.SIZE_SIGMA = 0.0  # every ordinary trade has exactly its profile's size
    n, jumps, whales = 6000, [], []
    for i in range(n):
        trade, event = sim.next_trade(T0 + i * 0.02)
        p = PROFILES[trade.symbol]
        market = sim.prices[trade.symbol]  # the GBM price; a jump is a print away from it
        move = trade.price / market - 1
        ratio = trade.quantity / p.size
        size_step = (1.0 if p.size >= 10 else 1e-4) / p.size  # sizes round to whole units or 4 decimals
        if event == "price_jump":
            jumps.append(move)
            assert 0.05 - p.tick / market <= abs(move) <= 0.15 + p.tick / market, (trade, market)
        elif event == "whale":
            whales.append(ratio)
            assert 5 - size_step <= ratio <= 20 + size_step, trade
        else:
            assert event is None
            assert abs(move) <= p.tick / market
            assert ratio == 1.0
    # binomial(6000, 0.1): mean 600, sd ~23
    assert 500 < len(jumps) + len(whales) < 700
    assert 200 < len(jumps) < 400 and 200 < len(whales) < 400
    assert any(m > 0 for m in jumps) and any(m < 0 for m in jumps)
    assert min(abs(m) for m in jumps) < 0.07 and max(abs(m) for m in jumps) > 0.13
    assert min(whales) < 7 and max(whales) > 18


def test_sim006_no_events_without_an_event_rate():
    sim = MarketSimulator(ALL, seed=3)
    assert {e for _, e in run(sim, 2000)} == {None}


def test_sim007_a_jump_is_a_print_the_market_reverts_from():
    sim = MarketSimulator(["AAPL"], seed=11, event_rate=1.0)
    sim.SIZE_SIGMA = 0.0
    for i in range(50):
        trade, event = sim.next_trade(T0)  # frozen clock: the GBM price does not move
        assert sim.prices["AAPL"] == PROFILES["AAPL"].price
        if event == "price_jump":
            assert 0.049 < abs(trade.price / 189.50 - 1) < 0.151


def test_sim008_trades_are_valid_records_with_unique_ids_and_sequences():
    sim = MarketSimulator(ALL, seed=5, event_rate=0.05)
    trades = [t for t, _ in run(sim, 1000)]
    assert len({t.trade_id for t in trades}) == len(trades)
    for exchange in {t.exchange for t in trades}:  # each exchange numbers its own trades, without gaps
        assert [t.sequence for t in trades if t.exchange == exchange] == \
            list(range(1, sum(t.exchange == exchange for t in trades) + 1))
    assert {t.side for t in trades} == {"BUY", "SELL"}
    assert {t.symbol for t in trades} == set(ALL)
    for i, t in enumerate(trades):
        assert t.ts == T0 + i * 0.02
        assert t.exchange == PROFILES[t.symbol].exchange
        decoded = Trade.decode(t.encode(), now=T0 + 100)
        assert (decoded.trade_id, decoded.symbol, decoded.price, decoded.quantity, decoded.side) == \
            (t.trade_id, t.symbol, t.price, t.quantity, t.side)


def test_sim009_start_prices_and_unknown_symbols():
    sim = MarketSimulator(["AAPL", "ZZZZ"], seed=1, start_prices={"AAPL": 10.0})
    assert sim.prices == {"AAPL": 10.0, "ZZZZ": profile_for("ZZZZ").price}
    z = profile_for("ZZZZ")
    assert z == profile_for("ZZZZ") and 20.0 <= z.price < 420.0 and z.exchange == "SIM"
    with pytest.raises(ValueError, match="at least one symbol"):
        MarketSimulator([], seed=1)
