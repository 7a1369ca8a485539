"""Tumbling OHLCV/VWAP windows: alignment, accumulation, finalization and lateness."""
import pytest
from hypothesis import given, settings, strategies as st

from pipeline.windows import CandleAccumulator, SymbolWindows, check_sizes, window_start


@pytest.mark.parametrize("ts, size, start", [
    (0.0, 60, 0.0),
    (59.999, 60, 0.0),
    (60.0, 60, 60.0),
    (1_717_000_199.75, 60, 1_717_000_140.0),
    (1_717_000_199.75, 300, 1_716_999_900.0),
    (1_717_000_199.75, 900, 1_716_999_300.0),
    (561_653_099.5, 900, 561_652_200.0),  # 1987-10-19 14:44:59.5 UTC
])
def test_win001_window_start_is_epoch_aligned(ts, size, start):
    assert window_start(ts, size) == start
    assert start % size == 0 and start <= ts < start + size


# (ts, price, qty, is_buy) in arrival order -> open, high, low, close, volume, count, buy, sell
ACCUMULATE = [
    ("single", [(10, 5.0, 2, True)], (5.0, 5.0, 5.0, 5.0, 2, 1, 2, 0)),
    ("in_order", [(1, 10.0, 1, True), (2, 12.0, 1, False), (3, 9.0, 2, True), (4, 11.0, 1, False)],
     (10.0, 12.0, 9.0, 11.0, 5, 4, 3, 2)),
    ("out_of_order_open_close_by_event_time",
     [(30, 10.0, 1, True), (5, 20.0, 1, True), (50, 30.0, 1, False), (40, 40.0, 1, True)],
     (20.0, 40.0, 10.0, 30.0, 4, 4, 3, 1)),
    ("equal_times_keep_arrival_order", [(7, 1.0, 1, True), (7, 2.0, 1, True), (7, 3.0, 1, True)],
     (1.0, 3.0, 1.0, 3.0, 3, 3, 3, 0)),
    ("falling_first_trade_is_high", [(1, 9.0, 1, False), (2, 8.0, 1, False), (3, 7.0, 1, False)],
     (9.0, 9.0, 7.0, 7.0, 3, 3, 0, 3)),
]


@pytest.mark.parametrize("trades, expected", [c[1:] for c in ACCUMULATE], ids=[c[0] for c in ACCUMULATE])
def test_win002_accumulator_ohlcv(trades, expected):
    acc = CandleAccumulator("AAPL", 60, 0.0)
    for t in trades:
        acc.add(*t)
    c = acc.to_candle()
    assert (c.open, c.high, c.low, c.close, c.volume, c.trade_count, c.buy_volume, c.sell_volume) == expected
    assert c.vwap == pytest.approx(sum(p * q for _, p, q, _ in trades) / sum(q for _, _, q, _ in trades))
    assert (c.symbol, c.window_seconds, c.window_start, c.window_end) == ("AAPL", 60, 0.0, 60.0)


fills = st.lists(st.tuples(st.floats(0, 59.999), st.floats(1e-6, 1e7), st.floats(1e-9, 1e9), st.booleans()),
                 min_size=1, max_size=60)


@settings(max_examples=300)
@given(fills)
def test_win003_low_le_vwap_le_high_always(trades):
    acc = CandleAccumulator("X", 60, 0.0)
    for t in trades:
        acc.add(*t)
    c = acc.to_candle()
    assert c.low <= c.vwap <= c.high
    assert c.low == min(p for _, p, _, _ in trades) and c.high == max(p for _, p, _, _ in trades)
    assert c.low <= c.open <= c.high and c.low <= c.close <= c.high
    assert c.buy_volume + c.sell_volume == pytest.approx(c.volume)
    assert c.trade_count == len(trades)


@settings(max_examples=100)
@given(fills, st.integers(0, 60))
def test_win004_accumulator_state_round_trip_continues_identically(trades, cut):
    a = CandleAccumulator("X", 60, 0.0)
    for t in trades[:cut]:
        a.add(*t)
    b = CandleAccumulator.from_state("X", 60, a.to_state())
    for t in trades[cut:]:
        a.add(*t)
        b.add(*t)
    assert b.to_candle() == a.to_candle()


def test_win005_finalize_waits_for_end_plus_grace():
    w = SymbolWindows("AAPL", [60], grace=2.0)
    w.add(100.0, 10.0, 1.0, True)  # window [60, 120)
    assert w.finalize(121.999) == []
    assert w.finalize(122.0)[0].window_start == 60.0
    assert w.open[60] == {}


def test_win006_finalize_closes_oldest_first_per_size_and_each_once():
    w = SymbolWindows("AAPL", [300, 60], grace=0.0)
    for ts in (10.0, 70.0, 130.0, 310.0):
        w.add(ts, 1.0, 1.0, True)
    out = w.finalize(300.0)
    assert [(c.window_seconds, c.window_start) for c in out] == \
        [(60, 0.0), (60, 60.0), (60, 120.0), (300, 0.0)]
    assert w.finalize(300.0) == [] and w.finalize(250.0) == []
    assert [(c.window_seconds, c.window_start) for c in w.current()] == [(60, 300.0), (300, 300.0)]


@pytest.mark.parametrize("watermark, ts, late", [
    (None, 0.0, False),          # nothing finalized yet
    (122.0, 119.999, True),      # [60,120) was finalized at 122
    (122.0, 120.0, False),       # next window is open
    (122.0, 30.0, True),         # an empty window that ended by the horizon is final too
    (121.0, 119.0, False),       # 121 - grace < 120: [60,120) still open
])
def test_win007_is_late_after_the_window_is_final(watermark, ts, late):
    w = SymbolWindows("AAPL", [60, 300, 900], grace=2.0)
    w.add(100.0, 10.0, 1.0, True)
    if watermark is not None:
        w.finalize(watermark)
    assert w.is_late(ts) is late


def test_win008_state_round_trip_preserves_open_windows_and_progress():
    w = SymbolWindows("ETH-USD", [60, 300], grace=2.0)
    for ts, p in ((10.0, 1.0), (70.0, 2.0), (200.0, 3.0)):
        w.add(ts, p, 1.0, ts < 100)
    w.finalize(130.0)
    r = SymbolWindows.from_state("ETH-USD", [60, 300], 2.0, w.to_state())
    assert r.closed_through == w.closed_through
    assert r.current() == w.current()
    assert r.is_late(100.0) and not r.is_late(121.0)
    assert r.finalize(1000.0) == w.finalize(1000.0)


@pytest.mark.parametrize("sizes, ok", [
    ((60, 300, 900), True), ((900, 60, 300), True), ((60,), True), ((60, 3600), True),
    ((60, 90), False), ((0, 60), False), ((-60,), False), ((), False),
])
def test_win009_window_sizes_must_nest(sizes, ok):
    if ok:
        assert SymbolWindows("A", sizes, 2.0).sizes == check_sizes(sizes) == tuple(sorted(sizes))
    else:
        with pytest.raises(ValueError, match="window sizes"):
            SymbolWindows("A", sizes, 2.0)
