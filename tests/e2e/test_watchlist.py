"""Watchlist page in headless Chromium: live prices over the WebSocket, chart, book, tape, alert feed."""
from __future__ import annotations

import time

import pytest
import redis
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from components.format import fmt_price
from pipeline import speed_layer
from pipeline.events import Alert
from tests import market_data

pytestmark = pytest.mark.e2e


def last_cell(page, symbol):
    return page.by_id(symbol=symbol, type="wl-last")


def test_wtch001_loads_with_data_and_no_console_errors(page, market):
    page.open("/")
    aapl = fmt_price(market.tickers["AAPL"]["price"])
    page.wait(lambda: last_cell(page, "AAPL").text == aapl, what="AAPL price")
    page.wait(lambda: all(last_cell(page, sym).text == fmt_price(t["price"]) for sym, t in market.tickers.items()),
              what="every symbol's price")
    page.wait(lambda: page.js("var g = document.querySelector('#wl-chart .js-plotly-plot');"
                              "return g && g.data && g.data.length === 3 && g.data[0].type === 'candlestick';"),
              what="candlestick chart")
    closes = page.js("return document.querySelector('#wl-chart .js-plotly-plot').data[0].close")
    assert closes[:-1] == [c.close for c in market.candles_of("AAPL", 60)][-len(closes) + 1:]
    assert "simulated" in page.driver.find_element(By.CSS_SELECTOR, ".panel-title .tag").text
    page.wait(lambda: len(page.driver.find_elements(By.CSS_SELECTOR, "#wl-book .book-row")) == 12, what="book")
    page.wait(lambda: len(page.driver.find_elements(By.CSS_SELECTOR, "#wl-tape tbody tr")) == 40, what="tape")
    page.wait(lambda: len(page.driver.find_elements(By.CSS_SELECTOR, "#wl-feed .feed-item")) == 4, what="feed")
    page.wait(lambda: page.driver.find_element(By.ID, "status-pill").text == "LIVE", what="LIVE pill")
    assert "banner-hidden" in page.driver.find_element(By.ID, "status-banner").get_attribute("class")
    page.screenshot("watchlist")
    assert page.console_errors() == []


def test_wtch002_price_ticks_on_screen_without_reload(page, market, servers):
    page.open("/")
    page.wait(lambda: last_cell(page, "MSFT").text == fmt_price(market.tickers["MSFT"]["price"]), what="MSFT")
    page.js("window.__sameDocument = true;")
    up = round(market.tickers["MSFT"]["price"] + 3.21, 2)
    sent = time.monotonic()
    market_data.tick(servers, "MSFT", up)
    page.wait(lambda: last_cell(page, "MSFT").text == fmt_price(up), 3, "MSFT price to tick up")
    assert time.monotonic() - sent < 3
    assert "flash-up" in last_cell(page, "MSFT").get_attribute("class")
    down = round(up - 5.0, 2)
    market_data.tick(servers, "MSFT", down)
    page.wait(lambda: last_cell(page, "MSFT").text == fmt_price(down), 3, "MSFT price to tick down")
    assert "flash-down" in last_cell(page, "MSFT").get_attribute("class")
    assert page.js("return window.__sameDocument === true")  # no reload happened
    change = page.by_id(symbol="MSFT", type="wl-change").text
    assert change.startswith(("+", "-")) and change.endswith("%")
    assert page.console_errors() == []


def test_wtch003_selecting_a_symbol_updates_chart_book_and_tape(page, market):
    page.open("/")
    page.wait(lambda: last_cell(page, "BTC-USD").text != "—", what="prices")
    page.by_id(symbol="BTC-USD", type="wl-row").click()
    page.wait(lambda: "selected" in page.by_id(symbol="BTC-USD", type="wl-row").get_attribute("class"),
              what="row selected")
    page.wait(lambda: page.driver.find_element(By.ID, "wl-head-price").text ==
              fmt_price(market.tickers["BTC-USD"]["price"]) or None, what="headline")
    last = market.trades["BTC-USD"][-1]
    page.wait(lambda: page.driver.find_element(By.CSS_SELECTOR, "#wl-tape tbody tr td:nth-child(3)").text ==
              fmt_price(last.price), what="BTC tape")
    page.wait(lambda: page.js("return document.querySelector('#wl-chart .js-plotly-plot').data[0].name") ==
              "BTC-USD", what="BTC chart")
    bid = float(page.driver.find_element(By.CSS_SELECTOR, "#wl-book .book-row.bid td").text.replace(",", ""))
    assert abs(bid - last.price) / last.price < 0.001


def test_wtch004_chart_keeps_the_users_zoom_across_updates(page, market, servers):
    page.open("/")
    graph = "document.querySelector('#wl-chart .js-plotly-plot')"
    page.wait(lambda: page.js(f"var g={graph}; return g && g.data && g.data.length === 3"), what="chart")
    shown = lambda: page.js(f"return {graph}.layout.xaxis.range")  # noqa: E731
    whole = shown()
    plot_area = page.driver.find_element(By.CSS_SELECTOR, "#wl-chart .nsewdrag")
    width = plot_area.size["width"]
    ActionChains(page.driver).move_to_element(plot_area).move_by_offset(-width // 8, 0).click_and_hold() \
        .move_by_offset(width // 4, 0).release().perform()  # drag a box across the middle quarter: zoom in
    zoomed = page.wait(lambda: shown() if shown() != whole else None, 5, "the chart to zoom in")
    revision = page.js(f"return {graph}.data[0].close.slice(-1)[0]")
    market_data.tick(servers, "AAPL", 150.0)  # the open candle changes at the next refresh
    r = redis.Redis.from_url(servers.redis_url)
    live = dict(market.open_candles[("AAPL", 60)].to_wire(), close=150.0, low=150.0)
    r.set(speed_layer.candle_key("AAPL", 60), __import__("orjson").dumps(live))
    page.wait(lambda: page.js(f"return {graph}.data[0].close.slice(-1)[0]") == 150.0, 8, "chart refresh")
    assert revision != 150.0
    assert shown() == zoomed


def test_wtch005_banner_when_the_pipeline_stops(page, market, servers):
    page.open("/")
    page.wait(lambda: page.driver.find_element(By.ID, "status-pill").text == "LIVE", what="LIVE")
    redis.Redis.from_url(servers.redis_url).delete(speed_layer.heartbeat_key("processor"))
    banner = page.driver.find_element(By.ID, "status-banner")
    page.wait(lambda: "not running" in banner.text, 10, "stopped banner")
    assert "banner-danger" in banner.get_attribute("class")
    assert page.driver.find_element(By.ID, "status-pill").text == "STOPPED"
    assert last_cell(page, "AAPL").text == fmt_price(market.tickers["AAPL"]["price"])  # last known values stay
    assert page.console_errors() == []


def test_wtch006_live_alert_feed(page, market, servers):
    page.open("/")
    page.wait(lambda: len(page.driver.find_elements(By.CSS_SELECTOR, "#wl-feed .feed-item")) == 4, what="feed")
    alert = Alert(alert_id="e2e-feed-1", alert_type="PRICE_SPIKE", severity="HIGH", symbol="GOOGL",
                  price=190.0, reference=178.0, deviation=6.7, trade_id="t-feed", ts=time.time(),
                  message="jump", side="BUY", quantity=3.0)
    market_data.publish_alert(servers, alert, history=False)
    page.wait(lambda: "GOOGL" in page.driver.find_element(By.CSS_SELECTOR, "#wl-feed .feed-item").text, 5,
              "new alert on top of the feed")


def test_wtch007_reads_in_a_narrow_window(page, market):
    page.open("/")
    page.wait(lambda: last_cell(page, "AAPL").text != "—", what="prices")
    page.viewport(400, 800)
    page.wait(lambda: page.js("return document.documentElement.scrollWidth") <= 401, what="the page to fit 400 px")
    assert last_cell(page, "AAPL").is_displayed()


def test_wtch008_indicators_switch_on_and_off_keeping_the_zoom(page, market):
    from pipeline.indicators import macd, rsi

    page.open("/")
    graph = "document.querySelector('#wl-chart .js-plotly-plot')"
    names = lambda: page.js(  # noqa: E731
        f"var g={graph}; return g && g.data ? g.data.map(d => d.name) : null")
    page.wait(lambda: names() and len(names()) == 3, what="chart without indicators")
    plot_area = page.driver.find_element(By.CSS_SELECTOR, "#wl-chart .nsewdrag")
    width = plot_area.size["width"]
    whole = page.js(f"return {graph}.layout.xaxis.range")
    ActionChains(page.driver).move_to_element(plot_area).move_by_offset(-width // 8, 0).click_and_hold() \
        .move_by_offset(width // 4, 0).release().perform()
    zoomed = page.wait(lambda: page.js(f"return {graph}.layout.xaxis.range") != whole or None, 5, "zoom")
    zoomed = page.js(f"return {graph}.layout.xaxis.range")

    def toggle(label):
        """Click a switch and wait until it shows the new state (Dash re-renders the options)."""
        find = lambda: page.driver.find_element(  # noqa: E731
            By.XPATH, f'//*[@id="wl-indicators"]//label[normalize-space()="{label}"]')
        before = find().get_attribute("aria-selected")
        find().click()
        page.wait(lambda: find().get_attribute("aria-selected") != before, what=f"{label} switched")

    toggle("RSI")
    toggle("MACD")
    page.wait(lambda: "RSI (14)" in names() and "MACD (12, 26, 9)" in names(), what="RSI and MACD panels")
    assert page.js(f"return {graph}.layout.yaxis4 !== undefined")  # price, volume, RSI, MACD
    assert "with-panels" in page.driver.find_element(By.ID, "wl-chart-box").get_attribute("class")
    closes = page.js(f"return {graph}.data[0].close")
    shown_rsi = page.js(f"return {graph}.data[{names().index('RSI (14)')}].y")
    expected = rsi(closes)
    assert [v is None for v in shown_rsi] == [v is None for v in expected]
    assert [round(v, 6) for v in shown_rsi if v is not None] == \
        [round(v, 6) for v in expected if v is not None]
    shown_macd = page.js(f"return {graph}.data[{names().index('MACD (12, 26, 9)')}].y")
    assert [round(v, 6) for v in shown_macd if v is not None] == \
        [round(v, 6) for v in macd(closes)[0] if v is not None]
    assert page.js(f"return {graph}.layout.xaxis.range") == zoomed  # the user's zoom stays

    toggle("BB")
    page.wait(lambda: "Bollinger (20, 2σ)" in names() and len(names()) == 10, what="Bollinger bands")
    toggle("RSI")
    toggle("MACD")
    toggle("BB")
    page.wait(lambda: len(names()) == 3, what="indicators off again")
    assert page.js(f"return {graph}.layout.yaxis3 === undefined")
    assert page.console_errors() == []


def replayed_index(settings, source="spx-daily", days=30):
    """Daily closes of an index from 2015, stored as a replayed source's 1-minute candles."""
    from pipeline.events import Candle
    from pipeline.history.writer import HistoryWriter

    start = 1_420_232_400.0  # 2015-01-02T21:00:00Z
    candles = [Candle(symbol="SPX", window_seconds=60, window_start=start + d * 86400,
                      window_end=start + d * 86400 + 60, open=2000.0 + d, high=2001.0 + d, low=1999.0 + d,
                      close=2000.5 + d, volume=1e9, vwap=2000.2 + d, trade_count=1, buy_volume=5e8,
                      sell_volume=5e8, source=source) for d in range(days)]
    HistoryWriter(settings.database_url).flush(trades=[], candles=candles, alerts=[])
    return candles


def test_wtch020_the_chart_shows_a_replayed_source_on_request(page, market, servers):
    candles = replayed_index(servers)
    page.open("/")
    graph = "document.querySelector('#wl-chart .js-plotly-plot')"
    shown = lambda: page.js(f"var g={graph}; return g && g.data && g.data[0].name")  # noqa: E731
    page.wait(lambda: shown() == "AAPL", what="live chart")
    page.br.select_dcc_dropdown("#wl-source", value="spx-daily")
    page.wait(lambda: shown() == "SPX · spx-daily", 10, "the replayed index's chart")
    assert page.js(f"return {graph}.data[0].close") == [c.close for c in candles][-120:]
    page.br.select_dcc_dropdown("#wl-source", value="live")
    page.wait(lambda: shown() in market.tickers, 10, "back to a live symbol")
    assert page.console_errors() == []
