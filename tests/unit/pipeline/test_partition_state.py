"""Partition state: candles independent of batching and restarts, lateness, quiet symbols, lulls."""
import math

import msgspec
import pytest
from hypothesis import given, settings, strategies as st

from pipeline.events import DEFAULT_SOURCE, Trade
from pipeline.partition_state import PartitionState
from pipeline.rules import RuleConfig
from pipeline.rulesets.config import rulebook_from

SIZES = (60, 300)
GRACE = 2.0
T0 = 1_717_000_000.0  # a multiple of 100 s, not of 60 or 300: windows do not start at T0
SYMBOLS = ("AAPL", "MSFT", "BTC-USD")


def rules():
    return rulebook_from(RuleConfig(min_history=3, rolling_window=10),
                         {"crypto": {"spike_pct": 8.0, "breaker_pct": 20.0}})


def new_state(sizes=SIZES, grace=GRACE):
    return PartitionState(sizes, grace, rules())


def trade(n, symbol, ts, price=100.0, qty=1.0, side="BUY", source=DEFAULT_SOURCE):
    return Trade(f"t{n}", symbol, float(price), float(qty), side, "X", float(ts), source=source)


def snapshot(state):
    """The whole checkpoint of a state: its partition snapshot and every source's (changed or not)."""
    return state.to_bytes(), {n: msgspec.msgpack.encode(s.to_state()) for n, s in state.sources.items()}


def restore(state, sizes=SIZES, grace=GRACE):
    """What a restart makes of a state: rebuilt from the checkpoint rows its flushes wrote."""
    data, sources = snapshot(state)
    return PartitionState.from_bytes(data, sources, sizes, grace, rules())


def live(state):
    return state.sources[DEFAULT_SOURCE]


# --- a brute-force reference ---------------------------------------------------------------------
def brute_candles(trades, sizes=SIZES):
    """Candles computed directly: group by (symbol, size, floor(ts/size)*size), arrival order kept."""
    groups = {}
    for t in trades:
        for size in sizes:
            groups.setdefault((t.symbol, size, math.floor(t.ts / size) * size), []).append(t)
    out = {}
    for (symbol, size, start), ts in groups.items():
        volume = sum(t.quantity for t in ts)
        out[(symbol, size, float(start))] = dict(
            window_end=float(start + size),
            open=min(enumerate(ts), key=lambda it: (it[1].ts, it[0]))[1].price,   # earliest; first on ties
            close=max(enumerate(ts), key=lambda it: (it[1].ts, it[0]))[1].price,  # latest; last on ties
            high=max(t.price for t in ts), low=min(t.price for t in ts), volume=volume,
            vwap=sum(t.price * t.quantity for t in ts) / volume, trade_count=len(ts),
            buy_volume=sum(t.quantity for t in ts if t.side == "BUY"),
            sell_volume=sum(t.quantity for t in ts if t.side == "SELL"),
        )
    return out


def assert_candles_match(candles, expected):
    keys = [c.key() for c in candles]
    assert len(keys) == len(set(keys)), "a window was published twice"
    assert set(keys) == set(expected)
    for c in candles:
        e = expected[c.key()]
        assert (c.window_end, c.open, c.close, c.high, c.low, c.trade_count) == \
            (e["window_end"], e["open"], e["close"], e["high"], e["low"], e["trade_count"]), c
        for name in ("volume", "vwap", "buy_volume", "sell_volume"):
            assert getattr(c, name) == pytest.approx(e[name], rel=1e-9, abs=1e-12), (name, c)
        assert c.low <= c.vwap <= c.high


def run(trades, cuts=(), checkpoints=(), tick=1e7):
    """Feed ``trades`` in batches split at ``cuts``, draining after each batch; restart from a
    checkpoint after the batches ending at ``checkpoints``; finally a lull of ``tick`` seconds."""
    st_ = new_state()
    candles, alerts, accepted = [], [], []
    bounds = [0, *sorted(set(cuts)), len(trades)]
    for a, b in zip(bounds, bounds[1:]):
        accepted += [st_.apply(t) for t in trades[a:b]]
        c, al = st_.drain()
        candles += c
        alerts += al
        if b in checkpoints:
            st_ = restore(st_)
    if tick:
        for name in st_.sources:
            st_.tick(name, tick)
    c, al = st_.drain()
    return candles + c, alerts + al, accepted, st_


# --- trade streams ------------------------------------------------------------------------------
PRICES = [100.0, 100.5, 99.5, 101.0, 93.0, 107.0, 88.0, 112.0, 130.0]
QTYS = [1.0, 2.0, 0.5, 10.0, 25.0, 0.125]
step = st.tuples(
    st.integers(0, 2),                       # symbol
    st.integers(0, 200),                     # quarter seconds after the previous trade's base time
    st.integers(0, 8),                       # quarter seconds of disorder: at most the grace period
    st.one_of(st.sampled_from(PRICES), st.floats(0.01, 1e5)),
    st.one_of(st.sampled_from(QTYS), st.floats(1e-4, 1e4)),
    st.booleans(),
)


def build(steps, base=T0):
    trades, now = [], base
    for n, (sym, gap, back, price, qty, buy) in enumerate(steps):
        now += gap * 0.25
        trades.append(trade(n, SYMBOLS[sym], now - back * 0.25, price, qty, "BUY" if buy else "SELL"))
    return trades


streams = st.lists(step, min_size=1, max_size=80).map(build)


@st.composite
def split_stream(draw):
    trades = draw(streams)
    cuts = draw(st.lists(st.integers(0, len(trades)), max_size=8))
    return trades, cuts


# --- properties ---------------------------------------------------------------------------------
@settings(max_examples=150)
@given(split_stream())
def test_pst001_candles_equal_brute_force_for_any_batch_split(case):
    trades, cuts = case
    candles, _, accepted, state = run(trades, cuts)
    assert all(accepted) and state.counters["late"] == 0  # disorder within the grace period is never late
    assert_candles_match(candles, brute_candles(trades))
    assert state.counters["candles"] == len(candles)
    assert state.counters["trades"] == len(trades)
    assert state.counters["volume"] == pytest.approx(sum(t.quantity for t in trades))


@settings(max_examples=120)
@given(split_stream())
def test_pst002_batching_does_not_change_candles_alerts_or_counters(case):
    trades, cuts = case
    whole = run(trades)
    split = run(trades, cuts)
    assert split[0] == whole[0]
    assert split[1] == whole[1]
    assert split[3].counters == whole[3].counters


@settings(max_examples=120)
@given(split_stream(), st.data())
def test_pst003_checkpoint_restart_equals_an_uninterrupted_run(case, data):
    trades, cuts = case
    points = data.draw(st.lists(st.sampled_from([*cuts, len(trades)]), max_size=3))
    for tick in (0, 1e7):  # before the final lull too: a quiet symbol must close on time after a restart
        whole = run(trades, cuts, tick=tick)
        restarted = run(trades, cuts, checkpoints=set(points), tick=tick)
        assert restarted[0] == whole[0]
        assert restarted[1] == whole[1]
        assert restarted[3].counters == whole[3].counters
        assert snapshot(restarted[3]) == snapshot(whole[3])


@settings(max_examples=100)
@given(split_stream())
def test_pst004_before_the_lull_nothing_closes_early_and_nothing_due_stays_open(case):
    trades, cuts = case
    candles, _, _, _ = run(trades, cuts, tick=0)
    newest = max(t.ts for t in trades)
    for c in candles:  # a window closes only once event time has passed its end plus the grace period
        assert c.window_end + GRACE <= newest
    due = {k for k, e in brute_candles(trades).items() if e["window_end"] + 2 * GRACE <= newest}
    assert due <= {c.key() for c in candles}  # quiet symbols follow the partition one grace behind


@settings(max_examples=150)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2400), st.sampled_from(PRICES), st.booleans()),
                min_size=1, max_size=80))
def test_pst005_arbitrary_disorder_late_trades_are_counted_not_folded_in(rows):
    trades = [trade(n, SYMBOLS[s], T0 + q * 0.5, p, 1.0 + n % 3, "BUY" if b else "SELL")
              for n, (s, q, p, b) in enumerate(rows)]
    st_ = new_state()
    accepted, newest = [], -math.inf
    for t in trades:
        ok = st_.apply(t)
        accepted.append(ok)
        if not ok:  # its window had closed: event time had passed the window's end plus the grace period
            assert math.floor(t.ts / 60) * 60 + 60 + GRACE <= newest
        newest = max(newest, t.ts)
    st_.tick(DEFAULT_SOURCE, 1e7)
    candles, _ = st_.drain()
    assert st_.counters["late"] == accepted.count(False)
    assert st_.counters["trades"] == accepted.count(True)
    assert_candles_match(candles, brute_candles([t for t, ok in zip(trades, accepted) if ok]))


@settings(max_examples=60)
@given(streams, st.integers(-19_000, 1_000))
def test_pst006_replaying_old_data_gives_the_same_candles(trades, days):
    shift = days * 86400.0  # a whole number of days: every window size divides it
    live, live_alerts, _, _ = run(trades)
    moved = [trade(t.trade_id[1:], t.symbol, t.ts + shift, t.price, t.quantity, t.side) for t in trades]
    replay, replay_alerts, _, _ = run(moved)
    assert [(c.symbol, c.window_seconds, c.window_start - shift, c.open, c.close, c.volume, c.vwap)
            for c in replay] == \
        [(c.symbol, c.window_seconds, c.window_start, c.open, c.close, c.volume, c.vwap) for c in live]
    assert [(a.alert_id, a.alert_type, a.deviation) for a in replay_alerts] == \
        [(a.alert_id, a.alert_type, a.deviation) for a in live_alerts]


# --- tables -------------------------------------------------------------------------------------
def test_pst010_out_of_order_within_grace_lands_in_its_window_later_is_late():
    s = new_state(sizes=(60,))
    W = 1_717_000_020.0  # a minute boundary
    assert s.apply(trade(1, "AAPL", W + 40, price=10))
    assert s.apply(trade(2, "AAPL", W + 61, price=11))       # next window; [W, W+60) waits for the grace
    assert s.apply(trade(3, "AAPL", W + 59.5, price=12))     # out of order, within grace: folded in
    assert s.drain()[0] == []
    assert s.apply(trade(4, "AAPL", W + 62, price=13))       # W+60 + grace reached: [W, W+60) is final
    (c,), _ = s.drain()
    assert (c.window_start, c.open, c.close, c.high, c.trade_count) == (W, 10.0, 12.0, 12.0, 2)
    assert s.apply(trade(5, "AAPL", W + 59.9, price=99)) is False  # after finalization: late
    assert s.apply(trade(6, "AAPL", W - 500, price=99)) is False   # long before: late as well
    assert s.counters["late"] == 2 and s.counters["trades"] == 4
    aapl = live(s).symbols["AAPL"]
    assert aapl.ticker.high == 13.0                            # late trades do not move anything
    assert len(aapl.rules.states["price_deviation"]) == 4
    s.tick(DEFAULT_SOURCE, 1000)
    (c2,), _ = s.drain()
    assert (c2.window_start, c2.open, c2.close, c2.trade_count) == (W + 60, 11.0, 13.0, 2)


@pytest.mark.parametrize("other_ts, closed", [(120 + 2 * GRACE - 0.25, False), (120 + 2 * GRACE, True)])
def test_pst011_a_quiet_symbol_closes_one_grace_behind_its_partition(other_ts, closed):
    base = 28_616_667 * 60.0  # a minute boundary near T0
    s = new_state(sizes=(60,))
    s.apply(trade(1, "AAPL", base + 100))
    s.apply(trade(2, "MSFT", base + 101))
    s.apply(trade(3, "MSFT", base + other_ts))
    candles, _ = s.drain()
    aapl = [c for c in candles if c.symbol == "AAPL"]
    assert bool(aapl) is closed
    # and MSFT's own window [60,120) closes on its own event time, one grace after its end
    assert any(c.symbol == "MSFT" and c.window_start == base + 60 for c in candles)


@pytest.mark.parametrize("idle, closed", [(0.0, False), (GRACE, False), (19.0, False), (21.9, False),
                                          (22.0, True), (3600.0, True)])
def test_pst012_a_lull_closes_candles_by_the_wall_clock(idle, closed):
    base = 28_616_667 * 60.0
    s = new_state(sizes=(60,))
    s.apply(trade(1, "AAPL", base + 100))  # window [60, 120): needs source time + idle - grace >= 120
    s.tick(DEFAULT_SOURCE, idle)
    candles, _ = s.drain()
    assert bool(candles) is closed
    s.tick(DEFAULT_SOURCE, idle)  # the same lull again publishes nothing twice
    assert s.drain()[0] == []


def test_pst017_a_lull_closes_exactly_at_end_plus_grace():
    base = 28_616_667 * 60.0
    s = new_state(sizes=(60,))
    s.apply(trade(1, "AAPL", base + 100))
    s.apply(trade(2, "AAPL", base + 130))  # closes [60, 120); [120, 180) closes at 130 + idle = 182
    assert [c.window_start for c in s.drain()[0]] == [base + 60]
    s.tick(DEFAULT_SOURCE, 51.75)
    assert s.drain()[0] == []
    s.tick(DEFAULT_SOURCE, 52.0)
    assert [c.window_start for c in s.drain()[0]] == [base + 120]


def test_pst018_after_a_restart_a_quiet_symbol_still_closes_on_partition_time():
    base = 28_616_667 * 60.0
    s = new_state(sizes=(60,))
    s.apply(trade(1, "AAPL", base + 100))
    s.apply(trade(2, "MSFT", base + 101))
    s = restore(s, (60,))
    s.apply(trade(3, "MSFT", base + 150))
    assert {(c.symbol, c.window_start) for c in s.drain()[0]} == {("AAPL", base + 60), ("MSFT", base + 60)}


def test_pst013_tick_before_any_trade_does_nothing_and_after_a_lull_trades_in_closed_windows_are_late():
    s = new_state(sizes=(60,))
    s.tick(DEFAULT_SOURCE, 1e6)
    assert s.drain() == ([], []) and s.sources == {}
    base = 28_616_667 * 60.0
    s.apply(trade(1, "AAPL", base + 10))
    s.tick(DEFAULT_SOURCE, 300)
    assert len(s.drain()[0]) == 1
    assert s.apply(trade(2, "AAPL", base + 30)) is False
    assert s.apply(trade(3, "AAPL", base + 400)) is True


def test_pst014_alerts_come_from_the_rules_and_are_counted():
    s = new_state(sizes=(60,))
    for n in range(3):
        s.apply(trade(n, "AAPL", T0 + n, price=100))
    s.apply(trade(3, "AAPL", T0 + 3, price=107, qty=10))   # min_history 3 reached: spike + volume
    s.apply(trade(4, "BTC-USD", T0 + 4, price=100))
    _, alerts = s.drain()
    assert [(a.alert_type, a.trade_id) for a in alerts] == [("PRICE_SPIKE", "t3"), ("VOLUME_SPIKE", "t3")]
    assert s.counters["alerts"] == 2
    assert s.drain() == ([], [])


def test_pst015_checkpoint_must_match_the_configuration():
    s = new_state()
    s.apply(trade(1, "AAPL", T0))
    data, sources = snapshot(s)
    with pytest.raises(ValueError, match="window sizes"):
        PartitionState.from_bytes(data, sources, (60, 900), GRACE, rules())
    bad = msgspec.msgpack.encode({**msgspec.msgpack.decode(data), "v": 99})
    with pytest.raises(ValueError, match="version"):
        PartitionState.from_bytes(bad, sources, SIZES, GRACE, rules())
    with pytest.raises(ValueError, match="sources .*'live'.* missing"):
        PartitionState.from_bytes(data, {}, SIZES, GRACE, rules())


def test_pst016_partition_state_refuses_window_sizes_that_do_not_nest():
    with pytest.raises(ValueError, match="window sizes"):
        PartitionState((60, 90), GRACE, rules())


# --- sources: an event-time clock per source -------------------------------------------------------
DAYS_BACK = 3000 * 86400.0  # years earlier: a whole number of days, so windows line up the same way
HISTORY = "index-history"


def as_history(trades, shift=DAYS_BACK):
    """The same trades as a replay of old history: its own source, ids and (much older) times."""
    return [trade(f"h{t.trade_id}", t.symbol, t.ts - shift, t.price, t.quantity, t.side, HISTORY)
            for t in trades]


@st.composite
def live_and_history(draw):
    """Live trades and old history on one partition, interleaved at random, with batch cuts and restarts."""
    live_trades, history = draw(streams), as_history(draw(streams))
    order = draw(st.permutations([0] * len(live_trades) + [1] * len(history)))
    queues = [list(live_trades), list(history)]
    merged = [queues[q].pop(0) for q in order]
    cuts = draw(st.lists(st.integers(0, len(merged)), max_size=6))
    points = draw(st.lists(st.sampled_from([*cuts, len(merged)]), max_size=3))
    return live_trades, history, merged, cuts, set(points)


def of(source, items):
    return [x for x in items if x.source == source]


@settings(max_examples=120)
@given(live_and_history())
def test_pst020_history_replayed_beside_live_trades_gives_what_it_gives_alone(case):
    live_trades, history, merged, cuts, points = case
    together, together_alerts, accepted, state = run(merged, cuts, checkpoints=points)
    alone_live, alone_live_alerts, _, _ = run(live_trades)
    alone_history, alone_history_alerts, _, _ = run(history)
    assert all(accepted)  # nothing is late because of the other source
    assert of(DEFAULT_SOURCE, together) == alone_live and of(HISTORY, together) == alone_history
    assert of(DEFAULT_SOURCE, together_alerts) == alone_live_alerts
    assert of(HISTORY, together_alerts) == alone_history_alerts
    assert len(together) == len(alone_live) + len(alone_history)
    assert state.counters["trades"] == len(merged)


def test_pst021_old_history_first_seen_after_live_trades_is_not_late():
    """The issue's case: an index the live feed does not trade, replayed from years back, on a partition
    whose live event time is today."""
    s = new_state(sizes=(60,))
    s.apply(trade(1, "AAPL", T0))
    s.apply(trade(2, "AAPL", T0 + 120))
    day = 86400.0 * (T0 // 86400.0 - 3000)
    closes = [trade(10 + d, "SPX", day + d * 86400.0 + 75600.0, 2000.0 + d, 1.0, source=HISTORY)
              for d in range(5)]
    assert [s.apply(t) for t in closes] == [True] * 5
    assert s.counters["late"] == 0
    candles, _ = s.drain()
    assert [(c.source, c.symbol, c.window_start) for c in candles if c.symbol == "SPX"] == \
        [(HISTORY, "SPX", day + d * 86400.0 + 75600.0) for d in range(4)]  # the last one waits for more
    assert all(c.source == DEFAULT_SOURCE for c in candles if c.symbol == "AAPL")


def test_pst022_only_the_sources_that_changed_are_checkpointed_again():
    s = new_state(sizes=(60,))
    s.apply(trade(1, "AAPL", T0))
    s.apply(trade(2, "SPX", T0 - DAYS_BACK, source=HISTORY))
    _, first = s.checkpoint()
    assert set(first) == {DEFAULT_SOURCE, HISTORY}
    s.apply(trade(3, "AAPL", T0 + 1))
    data, second = s.checkpoint()
    assert set(second) == {DEFAULT_SOURCE}
    assert s.checkpoint()[1] == {}
    # a restart from the rows those checkpoints wrote (each source's newest) continues both sources
    rows = {**first, **second}
    again = PartitionState.from_bytes(data, rows, (60,), GRACE, rules())
    assert snapshot(again) == snapshot(s)


def test_pst023_a_lull_of_one_source_closes_its_windows_only():
    s = new_state(sizes=(60,))
    base = 28_616_667 * 60.0
    s.apply(trade(1, "AAPL", base + 10))
    s.apply(trade(2, "SPX", base - DAYS_BACK + 10, source=HISTORY))
    s.tick(HISTORY, 300)
    assert [(c.source, c.symbol) for c in s.drain()[0]] == [(HISTORY, "SPX")]
    s.tick("never-seen", 300)  # a source this partition does not know: nothing to close
    s.tick(DEFAULT_SOURCE, 300)
    assert [(c.source, c.symbol) for c in s.drain()[0]] == [(DEFAULT_SOURCE, "AAPL")]


def test_pst024_alerts_carry_their_source_and_rules_run_per_source_and_symbol():
    s = new_state(sizes=(60,))
    for n in range(3):
        s.apply(trade(n, "AAPL", T0 + n, price=100))
        s.apply(trade(10 + n, "AAPL", T0 - DAYS_BACK + n, price=200, source=HISTORY))
    s.apply(trade(3, "AAPL", T0 + 3, price=107))                          # 7 % over the live average
    s.apply(trade(13, "AAPL", T0 - DAYS_BACK + 3, price=203, source=HISTORY))  # 1.5 % over the replay's
    _, alerts = s.drain()
    assert [(a.source, a.alert_type, a.trade_id) for a in alerts] == [(DEFAULT_SOURCE, "PRICE_SPIKE", "t3")]


# --- timed rules: LULD's trading pause by the source's clock -----------------------------------------
LULD_RULES = {"rulesets": {"bands": {"luld_bands": {"warmup_seconds": 0, "min_trades": 1,
                                                    "reference_seconds": 60}}},
              "assign": {"default": "bands"}}


def luld_state():
    return PartitionState((60,), GRACE, rulebook_from(RuleConfig(), None, LULD_RULES))


def limit_state_then(state, source=DEFAULT_SOURCE):
    """AAPL at 100 for a while, then a print 10 % up: a limit state opened at T0 + 20 (pause due T0 + 35)."""
    for n in range(20):
        state.apply(trade(n, "AAPL", T0 + n, source=source))
    state.apply(trade(20, "AAPL", T0 + 20, price=110.0, source=source))
    return [a.alert_type for a in state.drain()[1]]


@pytest.mark.parametrize("other_ts, paused", [(T0 + 35 + GRACE - 0.5, False), (T0 + 35 + GRACE, True)])
def test_pst030_a_quiet_symbol_in_a_limit_state_is_paused_by_its_sources_clock(other_ts, paused):
    s = luld_state()
    assert limit_state_then(s) == ["LIMIT_STATE"]
    s.apply(trade(30, "MSFT", other_ts))  # another symbol of the same source moves its clock on
    alerts = s.drain()[1]
    assert [(a.alert_type, a.symbol, a.trade_id, a.ts) for a in alerts] == \
        ([("TRADING_PAUSE", "AAPL", "t20", T0 + 35)] if paused else [])


def test_pst031_the_pause_is_the_same_alert_whichever_way_it_became_due():
    by_own_trade = luld_state()
    limit_state_then(by_own_trade)
    by_own_trade.apply(trade(30, "AAPL", T0 + 36, price=110.0))
    by_clock = luld_state()
    limit_state_then(by_clock)
    by_clock.apply(trade(30, "MSFT", T0 + 40))
    by_clock.apply(trade(31, "AAPL", T0 + 41, price=110.0))  # no second pause
    by_lull = luld_state()
    limit_state_then(by_lull)
    by_lull.tick(DEFAULT_SOURCE, 14.0)
    assert by_lull.drain()[1] == []
    by_lull.tick(DEFAULT_SOURCE, 15.0)
    pauses = [[a for a in s.drain()[1] if a.alert_type == "TRADING_PAUSE"]
              for s in (by_own_trade, by_clock, by_lull)]
    assert pauses[0] == pauses[1] == pauses[2] and len(pauses[0]) == 1


def test_pst032_another_sources_clock_does_not_pause_a_symbol():
    s = luld_state()
    limit_state_then(s, source=HISTORY)
    s.apply(trade(30, "MSFT", T0 + 3600))  # live time far ahead: the replay's AAPL is not paused by it
    assert s.drain()[1] == []
    s.apply(trade(31, "MSFT", T0 + 40, source=HISTORY))
    assert [(a.alert_type, a.source) for a in s.drain()[1]] == [("TRADING_PAUSE", HISTORY)]


def test_pst033_a_pause_due_survives_a_restart():
    s = luld_state()
    limit_state_then(s)
    s = PartitionState.from_bytes(*snapshot(s), (60,), GRACE, rulebook_from(RuleConfig(), None, LULD_RULES))
    s.apply(trade(30, "MSFT", T0 + 40))
    assert [a.alert_type for a in s.drain()[1]] == ["TRADING_PAUSE"]
