"""The candlestick figure with indicator panels, and the zoom carried over when panels change."""
import math

import pytest

from components.candles import BOLLINGER, MACD, RSI, candlestick_figure, chart_box_class, x_range_change
from components.alerts import deviation_text
from pipeline.indicators import rsi

CANDLES = [{"window_start": 1_717_000_000 + 60 * i, "open": 100 + math.sin(i / 4),
            "high": 101 + math.sin(i / 4), "low": 99 + math.sin(i / 4), "close": 100 + math.sin(i / 3),
            "volume": 5.0, "vwap": 100.0} for i in range(60)]


@pytest.mark.parametrize("indicators, traces, panels, box", [
    ((), 3, 2, "chart-box"),
    ((BOLLINGER,), 6, 2, "chart-box"),
    ((RSI,), 4, 3, "chart-box with-panels"),
    ((MACD,), 6, 3, "chart-box with-panels"),
    ((BOLLINGER, RSI, MACD), 10, 4, "chart-box with-panels"),
])
def test_ind101_panels_and_traces(indicators, traces, panels, box):
    fig = candlestick_figure(CANDLES, "AAPL", 60, indicators=indicators)
    assert len(fig.data) == traces
    assert sum(1 for key in fig.layout.to_plotly_json() if key.startswith("yaxis")) == panels
    assert chart_box_class(indicators) == box
    assert fig.layout.uirevision == "AAPL:60"


def test_ind102_rsi_panel_shows_the_pure_rsi_and_its_levels():
    fig = candlestick_figure(CANDLES, "AAPL", 60, indicators=(RSI,))
    (line,) = [t for t in fig.data if t.name == "RSI (14)"]
    assert list(line.y) == rsi([c["close"] for c in CANDLES])
    assert fig.layout.yaxis3.range == (0, 100)
    assert sorted(s.y0 for s in fig.layout.shapes) == [30.0, 70.0]


def test_ind103_x_range_is_applied_to_every_panel():
    fig = candlestick_figure(CANDLES, "AAPL", 60, indicators=(RSI, MACD),
                             x_range=["2024-05-29", "2024-05-30"])
    assert fig.layout.xaxis.range == fig.layout.xaxis4.range == ("2024-05-29", "2024-05-30")


@pytest.mark.parametrize("relayout, change", [
    ({"xaxis.range[0]": "a", "xaxis.range[1]": "b"}, ["a", "b"]),
    ({"xaxis2.range[0]": "a", "xaxis2.range[1]": "b", "yaxis.range[0]": 1}, ["a", "b"]),
    ({"xaxis.range": ["a", "b"]}, ["a", "b"]),
    ({"xaxis.autorange": True, "xaxis2.autorange": True}, []),
    ({"autosize": True}, None),
    ({"yaxis.range[0]": 1, "yaxis.range[1]": 2}, None),
    (None, None),
])
def test_ind104_what_a_relayout_did_to_the_time_axis(relayout, change):
    assert x_range_change(relayout) == change


@pytest.mark.parametrize("alert_type, deviation, text", [
    ("RETURN_OUTLIER", 8.44, "+8.4σ"), ("LIMIT_STATE", -6.0, "-6.00% vs avg"),
    ("TRADING_PAUSE", 7.0, "+7.00% vs avg"), ("VOLUME_SPIKE", 4.24, "4.2x avg size"),
])
def test_ind105_deviation_text_by_the_unit_of_the_type(alert_type, deviation, text):
    assert deviation_text({"alert_type": alert_type, "deviation": deviation}) == text
