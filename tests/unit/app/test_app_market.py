"""Market computations: ticker view, movers, breaker states, chart candles, the simulated order book,
pressure, change and the scanner's signal."""
import pytest
from hypothesis import given, strategies as st

from app.market import (BUY, NEUTRAL, SELL, anchored_vwap, breaker_view, change_over, dominant_side,
                        merge_open_candle, movers, pressure, scanner_row, scanner_window, signal,
                        simulate_order_book, tick_size, ticker_view, typical_size, window_for)
from pipeline.breaker import BreakerPolicy


def test_mkt001_ticker_view_adds_symbol_and_iso_time():
    v = ticker_view("AAPL", {"price": 1.0, "ts": 60.5})
    assert v == {"price": 1.0, "ts": 60.5, "symbol": "AAPL", "timestamp": "1970-01-01T00:01:00.500000Z"}
    assert ticker_view("X", {"price": 1.0, "ts": 0})["timestamp"] is None


def test_mkt002_movers_split_gainers_losers_and_activity():
    prices = {s: {"price": 1.0, "change_pct": c, "volume": v, "trade_count": n}
              for s, c, v, n in (("A", 2.0, 10, 5), ("B", -3.0, 20, 50), ("C", 0.0, 5, 7), ("D", 5.0, 1, 1),
                                 ("E", -1.0, 1, 9))}
    m = movers(prices, limit=2)
    assert [r["symbol"] for r in m["gainers"]] == ["D", "A"]
    assert [r["symbol"] for r in m["losers"]] == ["B", "E"]
    assert [r["symbol"] for r in m["most_active"]] == ["B", "E"]
    assert movers({}) == {"gainers": [], "losers": [], "most_active": []}


def test_mkt003_breakers_default_closed_and_timed_transitions_applied():
    policy = BreakerPolicy(open_seconds=300, probation_seconds=60)
    raw = {"TSLA": {"symbol": "TSLA", "state": "OPEN", "since": 1000.0, "last_event": 1000.0, "trips": 1,
                    "last_alert_id": "x"},
           "AAPL": {"symbol": "AAPL", "state": "OPEN", "since": 1000.0, "last_event": 1000.0, "trips": 2}}
    rows = breaker_view(raw, ["MSFT", "TSLA"], now=1100.0, policy=policy)
    assert [(r["symbol"], r["state"], r["trips"]) for r in rows] == [
        ("AAPL", "OPEN", 2), ("MSFT", "CLOSED", 0), ("TSLA", "OPEN", 1)]
    later = {r["symbol"]: r["state"] for r in breaker_view(raw, [], now=1310.0, policy=policy)}
    assert later == {"AAPL": "HALF_OPEN", "TSLA": "HALF_OPEN"}
    # a replay's breakers: as its alerts left them, whatever the wall clock says
    as_left = {r["symbol"]: r["state"] for r in breaker_view(raw, [], now=None, policy=policy)}
    assert as_left == {"AAPL": "OPEN", "TSLA": "OPEN"}
    assert breaker_view({"X": {"state": "WEIRD", "since": "?"}}, [], 0.0)[0]["state"] == "WEIRD"


@pytest.mark.parametrize("price, tick", [(190.12, 0.01), (64_000.0, 1.0), (1.0843, 0.0001), (0.006712, 1e-7),
                                         (3400.0, 0.1), (10.0, 0.001)])
def test_book001_tick_is_about_one_ten_thousandth(price, tick):
    assert tick_size(price) == pytest.approx(tick)


@pytest.mark.parametrize("price", [0.0, -1.0, float("nan"), float("inf")])
def test_book002_tick_rejects_non_positive_prices(price):
    with pytest.raises(ValueError):
        tick_size(price)


@given(price=st.floats(min_value=1e-4, max_value=1e6), depth=st.integers(1, 30),
       size=st.floats(min_value=0.01, max_value=1e4), seed=st.integers(0, 2**32 - 1))
def test_book003_bids_below_asks_above_sorted_best_first(price, depth, size, seed):
    book = simulate_order_book(price, depth, size, seed)
    bids, asks = book["bids"], book["asks"]
    assert book["simulated"] is True
    assert len(bids) == len(asks) == depth
    assert bids[0]["price"] < asks[0]["price"]
    assert bids[0]["price"] <= price + book["tick_size"] / 2 and asks[0]["price"] >= price - book["tick_size"] / 2
    assert [b["price"] for b in bids] == sorted((b["price"] for b in bids), reverse=True)
    assert [a["price"] for a in asks] == sorted(a["price"] for a in asks)
    for side in (bids, asks):
        assert all(lv["size"] > 0 for lv in side)
        totals = [lv["total"] for lv in side]
        assert totals == sorted(totals) and totals[-1] == pytest.approx(sum(lv["size"] for lv in side))
    assert book["spread"] == pytest.approx(asks[0]["price"] - bids[0]["price"], abs=book["tick_size"] / 10)


def test_book004_same_seed_same_book_other_seed_other_book():
    a, b = simulate_order_book(190.0, 10, 5.0, 42), simulate_order_book(190.0, 10, 5.0, 42)
    assert a == b
    assert simulate_order_book(190.0, 10, 5.0, 43) != a


def test_book005_depth_must_be_positive():
    with pytest.raises(ValueError):
        simulate_order_book(100.0, 0)


@pytest.mark.parametrize("series, expected", [
    ([], None),
    ([[0, 100.0]], None),
    ([[0, 100.0], [100, 101.0]], 1.0),                             # shorter than 5 min: from the oldest point
    ([[0, 100.0], [200, 110.0], [400, 121.0]], 21.0),              # base = newest point at or before 400-300=100: t=0
    ([[0, 50.0], [100, 100.0], [250, 90.0], [400, 99.0]], -1.0),   # base = point at 100
    ([[1e9, 200.0], [1e9 + 301, 190.0]], -5.0),                    # event time, not wall time
])
def test_scan001_change_over_five_minutes(series, expected):
    got = change_over(series, 300)
    assert got == (None if expected is None else pytest.approx(expected))


def test_scan002_pressure_splits_volume_by_side():
    trades = [{"side": "BUY", "quantity": 30.0}, {"side": "SELL", "quantity": 10.0}, {"side": "BUY", "quantity": 20.0}]
    p = pressure(trades)
    assert p == {"trade_count": 3, "buy_volume": 50.0, "sell_volume": 10.0, "buy_pct": pytest.approx(100 * 50 / 60),
                 "pressure": pytest.approx(40 / 60), "dominant_side": BUY}
    assert pressure([])["pressure"] is None and pressure([])["dominant_side"] == NEUTRAL


@pytest.mark.parametrize("buy_pct, side", [(None, NEUTRAL), (55.0, BUY), (54.9, NEUTRAL), (45.0, SELL), (45.1, NEUTRAL),
                                           (100.0, BUY), (0.0, SELL)])
def test_scan003_dominant_side_thresholds(buy_pct, side):
    assert dominant_side(buy_pct) == side


@pytest.mark.parametrize("last, vwap, change, buy_pct, expected", [
    (101, 100, 0.5, 60, BUY),
    (101, 100, 0.5, 50, NEUTRAL),    # buyers do not dominate
    (101, 100, -0.5, 60, NEUTRAL),   # falling
    (99, 100, 0.5, 60, NEUTRAL),     # below VWAP
    (99, 100, -0.5, 40, SELL),
    (99, 100, -0.5, 50, NEUTRAL),
    (101, 100, -0.5, 40, NEUTRAL),
    (None, 100, 1, 60, NEUTRAL), (101, None, 1, 60, NEUTRAL),
    (101, 100, None, 60, NEUTRAL), (101, 100, 1, None, NEUTRAL),
])
def test_scan004_signal(last, vwap, change, buy_pct, expected):
    assert signal(last, vwap, change, buy_pct) == expected


def test_scan005_row_combines_ticker_series_trades_and_candle():
    ticker = {"price": 102.0, "volume": 500.0, "change_pct": 1.5, "ts": 1000.0}
    series = [[600, 100.0], [700, 101.0], [1000, 102.0]]
    trades = [{"side": "BUY", "quantity": 7.0}, {"side": "SELL", "quantity": 3.0}]
    row = scanner_row("AAPL", ticker, series, trades, {"vwap": 101.5})
    assert row == {"id": "AAPL", "symbol": "AAPL", "last": 102.0, "change_5m": pytest.approx(0.99, abs=1e-3),
                   "change_day": 1.5, "vwap": 101.5, "volume": 500.0, "buy_pct": 70.0, "signal": BUY, "ts": 1000.0}
    empty = scanner_row("X", None, [], [], None)
    assert empty["signal"] == NEUTRAL and empty["last"] is None


@pytest.mark.parametrize("windows, window", [((60, 300, 900), 300), ((30, 120), 120), ((60, 600), 60),
                                             ((240, 360), 240), ((900,), 900)])
def test_scan006_scanner_window_is_five_minutes_or_the_nearest_configured(windows, window):
    assert scanner_window(windows) == window


def test_book007_typical_size_is_the_median_quantity():
    assert typical_size([]) == 1.0
    assert typical_size([{"quantity": q} for q in (3.0, 1.0, 2.0)]) == 2.0


def candle(start, o, h, low, c, v, vwap):
    return {"window_start": start, "open": o, "high": h, "low": low, "close": c, "volume": v, "vwap": vwap}


def test_cndl001_open_candle_appended_only_when_newer():
    final = [candle("2026-01-01T00:00:00Z", 1, 2, 1, 2, 10, 1.5)]
    newer = candle("2026-01-01T00:01:00Z", 2, 3, 2, 3, 5, 2.5)
    assert merge_open_candle(final, newer)[-1]["is_open"] is True
    assert merge_open_candle(final, final[0]) == final
    assert merge_open_candle(final, None) == final
    assert len(merge_open_candle([], newer)) == 1


def test_cndl002_anchored_vwap_weights_by_volume():
    cs = [candle("a", 0, 0, 0, 0, 10, 100.0), candle("b", 0, 0, 0, 0, 30, 104.0), candle("c", 0, 0, 0, 0, 0, 1.0)]
    assert anchored_vwap(cs) == [100.0, 103.0, 103.0]


@pytest.mark.parametrize("seconds, windows, window", [(3600, (30, 120), 30), (2 * 86400, (30, 120), 120),
                                                      (30 * 86400, (30, 120), 120), (86400, (60,), 60)])
def test_mkt004_history_charts_use_a_configured_candle_size(seconds, windows, window):
    assert window_for(seconds, windows) == window
