"""Scanner figures and the BUY/SELL/NEUTRAL signal."""
import pytest

from components.scanner import BUY, NEUTRAL, SELL, change_over, dominant_side, pressure, scanner_row, signal


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
