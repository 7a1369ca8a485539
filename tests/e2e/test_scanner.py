"""Scanner page: rows for every symbol, native sorting and filtering, the signal filter."""
from __future__ import annotations


import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

pytestmark = pytest.mark.e2e


def column(page, name: str) -> list[str]:
    """The shown text of a column's cells, top to bottom, read in one round trip to the browser."""
    return page.js("return Array.from(document.querySelectorAll("
                   "'#sc-table td[data-dash-column=\"' + arguments[0] + '\"]')).map(function (td) {"
                   " return td.innerText.trim(); });", name)


def numbers(texts):
    return [float(t.replace(",", "").replace("+", "").replace("−", "-").replace("k", "e3").replace("M", "e6"))
            for t in texts]


def test_scan001_loads_every_symbol_with_figures(page, market):
    page.open("/scanner", "#sc-table")
    page.wait(lambda: len(column(page, "symbol")) == len(market.tickers), what="rows")
    assert sorted(column(page, "symbol")) == sorted(market.tickers)
    assert set(column(page, "signal")) <= {"BUY", "SELL", "NEUTRAL"}
    assert all(t for t in column(page, "vwap")) and all(t for t in column(page, "change_5m"))
    row = dict(zip(column(page, "symbol"), column(page, "last")))
    assert float(row["AAPL"].replace(",", "")) == pytest.approx(market.tickers["AAPL"]["price"], rel=1e-5)
    page.screenshot("scanner")
    assert page.console_errors() == []


def test_scan002_sorting_and_filtering(page, market):
    page.open("/scanner", "#sc-table")
    page.wait(lambda: len(column(page, "symbol")) == len(market.tickers), what="rows")
    sort = page.driver.find_element(By.CSS_SELECTOR, 'th[data-dash-column="change_5m"] .column-header--sort')
    sort.click()
    page.wait(lambda: numbers(column(page, "change_5m")) == sorted(numbers(column(page, "change_5m"))), 5,
              "ascending 5m change")
    sort.click()
    page.wait(lambda: numbers(column(page, "change_5m")) == sorted(numbers(column(page, "change_5m")), reverse=True),
              5, "descending 5m change")
    updated = page.driver.find_element(By.ID, "sc-updated").text
    page.wait(lambda: page.driver.find_element(By.ID, "sc-updated").text != updated, 10, "a data refresh")
    page.wait_settled()  # ... drawn: it keeps the user's sort
    assert numbers(column(page, "change_5m")) == sorted(numbers(column(page, "change_5m")), reverse=True)

    box = page.driver.find_element(By.CSS_SELECTOR, 'th.dash-filter[data-dash-column="symbol"] input')
    box.send_keys("USD" + Keys.ENTER)
    page.wait(lambda: sorted(column(page, "symbol")) == sorted(s for s in market.tickers if "USD" in s), 5,
              "symbol filter")
    box.send_keys(Keys.BACKSPACE * 3 + Keys.ENTER)
    page.wait(lambda: len(column(page, "symbol")) == len(market.tickers), 5, "filter cleared")
    change = page.driver.find_element(By.CSS_SELECTOR, 'th.dash-filter[data-dash-column="change_5m"] input')
    change.send_keys("> 0" + Keys.ENTER)
    page.wait(lambda: column(page, "change_5m") and all(v > 0 for v in numbers(column(page, "change_5m"))), 5,
              "positive changes only")
    change.send_keys(Keys.BACKSPACE * 3 + Keys.ENTER)

    counts = {}
    for label, signal in (("Buy", "BUY"), ("Sell", "SELL"), ("Neutral", "NEUTRAL"), ("All", None)):
        page.driver.find_element(By.XPATH, f'//*[@id="sc-signal-filter"]//label[normalize-space()="{label}"]').click()
        page.wait_settled()  # the table filtered by the server
        signals = column(page, "signal")
        if signal:
            assert set(signals) <= {signal}
        counts[label] = len(signals)
    assert counts["Buy"] + counts["Sell"] + counts["Neutral"] == counts["All"] == len(market.tickers)
    assert page.console_errors() == []


def test_scan003_states_its_signal_rule(page, market):
    from app.market import BUY_PCT, SELL_PCT

    page.open("/scanner", "#sc-table")
    rule = page.wait(lambda: page.driver.find_element(By.ID, "sc-rule").text or None, what="signal rule")
    assert "BUY: last > 5m VWAP, 5m change > 0" in rule
    assert f"buyers ≥ {BUY_PCT:.0f}%" in rule and f"buyers ≤ {SELL_PCT:.0f}%" in rule
