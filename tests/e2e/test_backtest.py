"""Backtest page: an operator runs candidate rules over the stored market, sees progress, the counts, the
timeline and the differences, and exports them; a bad configuration is refused naming the key; a viewer
may look but not run."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from pipeline.rulesets.backtest import compare_alerts, run_rules
from tests.e2e.browser_page import Page

pytestmark = pytest.mark.e2e
SENSITIVE = {"rulesets": {"t": {"price_deviation": {"spike_pct": 0.5, "breaker_pct": 5}}},
             "assign": {"default": "t"}}


def set_rules(page, text: str) -> None:
    box = page.driver.find_element(By.ID, "bt-rules")
    box.send_keys(Keys.CONTROL, "a")  # clear() would not tell React
    box.send_keys(Keys.DELETE)
    box.send_keys(text)


def status(page) -> str:
    return page.driver.find_element(By.ID, "bt-status").text


def table_rows(page, table_id: str) -> list[dict]:
    out = []
    for tr in page.driver.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr"):
        cells = {td.get_attribute("data-dash-column"): td.text
                 for td in tr.find_elements(By.CSS_SELECTOR, "td") if td.get_attribute("data-dash-column")}
        if cells:
            out.append(cells)
    return out


def test_bkt001_run_progress_results_and_export(page, market):
    trades = sorted((t for s in ("AAPL", "GOOGL") for t in market.trades[s]),
                    key=lambda t: (t.ts, t.trade_id))
    candidate = list(run_rules(trades, SENSITIVE))
    fired = [a for a in market.alerts if a.symbol in ("AAPL", "GOOGL")]
    expected = compare_alerts(fired, candidate)
    assert candidate, "the sensitive rules raise something on the market"

    page.open("/backtest", "#bt-run")
    set_rules(page, json.dumps(SENSITIVE))
    page.driver.find_element(By.ID, "bt-run").click()
    page.wait(lambda: "done" in status(page), 120, "the run to finish")
    assert f"{len(trades):,} trades" in status(page)
    page.wait(lambda: page.driver.find_elements(By.CSS_SELECTOR, "#bt-counts-table .bt-total-row"), 30,
              "counts")
    total = page.driver.find_element(By.CSS_SELECTOR, "#bt-counts-table .bt-total-row").text.split()
    assert total[1:4] == [str(len(fired)), str(len(candidate)), str(expected.matched)]
    only_fired = table_rows(page, "bt-only-actual")
    assert [r["symbol"] for r in only_fired] == [a.symbol for a in expected.only_in_actual]
    symbol = page.wait(lambda: page.driver.find_element(By.CSS_SELECTOR, "#bt-chart-symbol").text, 30,
                       "the timeline's symbol")
    page.wait(lambda: page.js("var g = document.querySelector('#bt-chart .js-plotly-plot');"
                              "return g && g.data && g.data.length === 3 &&"
                              "       g.data[0].name.startsWith(arguments[0]);", symbol),
              30, "the timeline of that symbol")
    shown = page.js("var d = document.querySelector('#bt-chart .js-plotly-plot').data;"
                    "return [d[0].x.length, d[1].x.length, d[2].x.length, d[1].name, d[2].name];")
    assert shown[3:] == ["Fired (actual)", "Candidate"]
    assert shown[2] == sum(1 for a in candidate if a.symbol in symbol)
    assert shown[0] > 0, "closing prices of the symbol under the markers"
    assert "Done" in [r["status"] for r in table_rows(page, "bt-runs")]
    page.screenshot("backtest")

    page.driver.find_element(By.ID, "bt-export").click()
    folder = Path(page.br.download_path)

    def downloaded():  # Chrome writes a .crdownload and renames it when complete
        with open(next(folder.glob("stockit-backtest-*.csv")), newline="") as f:
            return list(csv.DictReader(f))

    rows = page.wait(downloaded, 30, "the CSV download")
    assert len(rows) == len(fired) + len(candidate) - expected.matched
    assert {r["difference"] for r in rows} <= {"both", "only_actual", "only_candidate"}
    assert page.console_errors() == []
    assert page.csp_violations() == []


def test_bkt002_a_bad_configuration_names_the_key(page, market):
    page.open("/backtest", "#bt-run")
    set_rules(page, '{"rulesets": {"t": {"price_deviation": {"spike_pct": 9, "breaker_pct": 3}}}, '
                    '"assign": {"default": "t"}}')
    page.driver.find_element(By.ID, "bt-run").click()
    error = page.wait(lambda: page.driver.find_element(By.ID, "bt-error").text, 30, "the error")
    assert error.startswith("rules:") and "rulesets.t.price_deviation" in error and "spike_pct" in error


def test_bkt003_a_viewer_may_look_but_not_run(dash_br, web, accounts, market):
    viewer = Page(dash_br, web).sign_in(accounts["viewer"])
    viewer.open("/backtest", "#bt-run")
    button = viewer.driver.find_element(By.ID, "bt-run")
    assert not button.is_enabled() and "operator" in button.get_attribute("title")
