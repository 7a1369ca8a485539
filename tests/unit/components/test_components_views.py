"""Formatting, candlestick figure, tape, sparkline, alert and whale views."""
import csv
import io

import pytest

from components.alerts import alert_feed, alert_table_rows, alerts_csv, breaker_panel, deviation_text
from components.candles import candlestick_figure
from components.format import (fmt_pct, fmt_price, fmt_qty, fmt_time, price_decimals, to_epoch, window_label,
                               window_words)
from components.tape import sparkline, trade_tape
from components.whales import merge_whales, whale_card, whale_grid


@pytest.mark.parametrize("price, text", [(190.123, "190.12"), (64000.5, "64,000.50"), (1.08434, "1.0843"),
                                         (0.0067123, "0.006712"), (0.5, "0.5000"), (None, "—")])
def test_fmt001_prices_show_their_ticks(price, text):
    assert fmt_price(price) == text


def test_fmt002_quantities_percentages_times():
    assert [fmt_qty(q) for q in (12_345_678, 12_500, 100.0, 12.5, 0.01234)] == [
        "12.35M", "12.5K", "100", "12.50", "0.01234"]
    assert fmt_pct(1.234) == "+1.23%" and fmt_pct(-0.5) == "-0.50%" and fmt_pct(None) == "—"
    assert fmt_time("2026-11-23T14:03:27.5Z") == "14:03:27"
    assert fmt_time(0, with_date=True) == "1970-01-01 00:00:00"
    assert to_epoch("1970-01-01T00:01:00") == 60.0
    assert price_decimals(float("nan")) == 2


@pytest.mark.parametrize("seconds, label, words", [(30, "30s", "30-second"), (60, "1m", "1-minute"),
                                                   (300, "5m", "5-minute"), (900, "15m", "15-minute"),
                                                   (90, "90s", "90-second"), (3600, "1h", "1-hour")])
def test_fmt003_candle_sizes_as_traders_write_them(seconds, label, words):
    assert window_label(seconds) == label and window_words(seconds) == words


def candle(start, o, h, low, c, v, vwap):
    return {"window_start": start, "open": o, "high": h, "low": low, "close": c, "volume": v, "vwap": vwap}


def test_cndl003_figure_has_candles_vwap_volume_and_keeps_zoom():
    cs = [candle(f"2026-01-01T00:0{i}:00Z", 10 + i, 12 + i, 9 + i, 11 + i, 5, 10.5 + i) for i in range(5)]
    fig = candlestick_figure(cs, "AAPL", 60)
    assert [t.type for t in fig.data] == ["candlestick", "scatter", "bar"]
    assert list(fig.data[0].close) == [11, 12, 13, 14, 15]
    assert fig.layout.uirevision == "AAPL:60"
    empty = candlestick_figure([], "AAPL", 60)
    assert not empty.data and "No 1-minute candles" in empty.layout.annotations[0].text


def test_tape001_sparkline_and_tape():
    assert sparkline([]) == "" and sparkline([1.0]) == ""
    line = sparkline([1, 2, 3, 4, 5, 6, 7, 8], width=8)
    assert line == "▁▂▃▄▅▆▇█"
    assert len(sparkline(list(range(100)), width=16)) == 16
    assert sparkline([5, 5, 5]) == "▄▄▄"
    trades = [{"timestamp": "2026-01-01T00:00:01Z", "side": "BUY", "price": 10.0, "quantity": 2.0},
              {"timestamp": "2026-01-01T00:00:00Z", "side": "SELL", "price": 9.5, "quantity": 1.0}]
    rows = trade_tape(trades).children[1].children
    assert [r.children[1].children for r in rows] == ["BUY", "SELL"]
    assert rows[0].children[1].className == "up" and rows[1].children[1].className == "down"


ALERT = {"alert_id": "a1", "alert_type": "VOLUME_SPIKE", "severity": "MEDIUM", "symbol": "BTC-USD", "price": 64000.0,
         "reference": 2.0, "deviation": 7.5, "trade_id": "t1", "timestamp": "2026-01-01T00:00:05Z",
         "message": "big", "side": "BUY", "quantity": 15.0}


def test_alrt001_alert_views():
    assert deviation_text(ALERT) == "7.5x avg size"
    assert deviation_text(dict(ALERT, alert_type="PRICE_SPIKE", deviation=-6.25)) == "-6.25% vs avg"
    assert "No alerts yet" in alert_feed([])[0].children
    rows = alert_table_rows([dict(ALERT, acknowledged=True, acknowledged_by="ann", status="routed")])
    assert rows[0]["id"] == "a1" and rows[0]["severity"] == "Medium" and rows[0]["ack"] == "✓ ann"
    text = alerts_csv([dict(ALERT, acknowledged=False)])
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert parsed[0]["alert_id"] == "a1" and parsed[0]["severity"] == "MEDIUM" and parsed[0]["acknowledged"] == "False"
    chips = breaker_panel([{"symbol": "TSLA", "state": "OPEN", "trips": 2, "since": 60.0},
                           {"symbol": "AAPL", "state": "CLOSED", "trips": 0, "since": None}])
    assert [c.className for c in chips] == ["breaker-chip breaker-open", "breaker-chip breaker-closed"]


def test_whal001_merge_keeps_volume_spikes_once_newest_first():
    old = dict(ALERT, alert_id="old", timestamp="2026-01-01T00:00:01Z")
    new = dict(ALERT, alert_id="new", timestamp="2026-01-01T00:00:09Z")
    price = dict(ALERT, alert_id="p", alert_type="PRICE_SPIKE")
    merged = merge_whales([old, price], [new, old])
    assert [a["alert_id"] for a in merged] == ["new", "old"]
    assert len(merge_whales([dict(ALERT, alert_id=str(i)) for i in range(100)], limit=10)) == 10
    card = whale_card(ALERT)
    assert card.id == {"type": "whale-card", "alert": "a1"} and "whale-up" in card.className
    assert card.children[1].children == "7.5×"
    assert "No volume spikes yet" in whale_grid([])[0].children
