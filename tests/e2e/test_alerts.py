"""Alerts page: history with filters, acknowledge (persisted), CSV export, circuit breakers."""
from __future__ import annotations

import csv
from pathlib import Path

import psycopg2
import pytest
from selenium.webdriver.common.by import By

pytestmark = pytest.mark.e2e


# Every row of the table as {column: shown text}, read in one round trip to the browser.
ROWS = """return Array.from(document.querySelectorAll('#al-table tbody tr')).map(function (tr) {
  var cells = {};
  tr.querySelectorAll('td[data-dash-column]').forEach(function (td) {
    cells[td.getAttribute('data-dash-column')] = td.innerText.trim();
  });
  return cells;
}).filter(function (cells) { return Object.keys(cells).length > 0; });"""


def rows(page) -> list[dict]:
    return page.js(ROWS)


def symbols(page) -> list[str]:
    return sorted(r["symbol"] for r in rows(page))


def test_alrt001_history_and_breakers(page, market):
    page.open("/alerts", "#al-table")
    page.wait(lambda: len(rows(page)) == 4, what="4 alerts")
    assert symbols(page) == sorted(a.symbol for a in market.alerts)
    assert {r["severity"] for r in rows(page)} == {"Critical", "High", "Medium"}
    page.wait(lambda: page.driver.find_elements(By.CSS_SELECTOR, "#breaker-TSLA"), what="breakers")
    assert "open" in page.driver.find_element(By.ID, "breaker-TSLA").text.lower()
    assert "closed" in page.driver.find_element(By.ID, "breaker-AAPL").text.lower()
    assert "4 unacknowledged" in page.driver.find_element(By.ID, "al-count").text
    page.screenshot("alerts")
    assert page.console_errors() == []


def test_alrt002_filters(page, market):
    page.open("/alerts", "#al-table")
    page.wait(lambda: len(rows(page)) == 4, what="4 alerts")
    page.driver.find_element(By.XPATH, '//*[@id="al-severity"]//label[normalize-space()="Critical"]').click()
    page.wait(lambda: symbols(page) == ["AAPL", "BTC-USD", "MSFT"], 5, "critical hidden")
    page.driver.find_element(By.XPATH, '//*[@id="al-severity"]//label[normalize-space()="Critical"]').click()
    page.wait(lambda: len(rows(page)) == 4, 5, "critical back")
    page.br.select_dcc_dropdown("#al-type", value="Volume spike")
    page.wait(lambda: symbols(page) == ["BTC-USD", "MSFT"], 5, "type filter")
    page.br.select_dcc_dropdown("#al-symbol", value="MSFT")
    page.wait(lambda: symbols(page) == ["MSFT"], 5, "symbol filter")
    assert page.console_errors() == []


def test_alrt003_acknowledge_persists(page, market, servers, accounts):
    operator = accounts["operator"].username
    page.open("/alerts", "#al-table")
    page.wait(lambda: len(rows(page)) == 4, what="4 alerts")
    target = next(r for r in rows(page) if r["symbol"] == "TSLA")
    index = rows(page).index(target)
    page.driver.find_elements(By.CSS_SELECTOR, "#al-table tbody tr td.dash-select-cell input")[index].click()
    page.driver.find_element(By.ID, "al-ack").click()
    page.wait(lambda: "Acknowledged 1 alert" in page.driver.find_element(By.ID, "al-ack-result").text, 5, "ack")
    page.wait(lambda: next(r for r in rows(page) if r["symbol"] == "TSLA")["ack"].startswith("✓"), 5, "ack column")
    page.open("/alerts", "#al-table")  # a fresh load reads it back from PostgreSQL
    page.wait(lambda: len(rows(page)) == 4, what="4 alerts after reload")
    assert next(r for r in rows(page) if r["symbol"] == "TSLA")["ack"] == f"✓ {operator}"  # who signed in
    conn = psycopg2.connect(servers.database_url)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT acknowledged, acknowledged_by FROM alerts WHERE symbol = 'TSLA'")
        assert cur.fetchall() == [(True, operator)]
    conn.close()
    page.driver.find_element(By.CSS_SELECTOR, "#al-unacked").click()
    page.wait(lambda: symbols(page) == ["AAPL", "BTC-USD", "MSFT"], 5, "unacknowledged only")


def test_alrt004_csv_export(page, market):
    page.open("/alerts", "#al-table")
    page.wait(lambda: len(rows(page)) == 4, what="4 alerts")
    page.driver.find_element(By.ID, "al-export").click()
    folder = Path(page.br.download_path)

    def downloaded():  # Chrome writes a .crdownload and renames it when complete
        files = list(folder.glob("*.csv"))
        with open(files[0], newline="") as f:
            return list(csv.DictReader(f))

    data = page.wait(downloaded, 10, "the downloaded CSV")
    assert sorted(r["alert_id"] for r in data) == sorted(a.alert_id for a in market.alerts)
    assert {r["severity"] for r in data} == {"CRITICAL", "HIGH", "MEDIUM"}


def test_alrt010_source_filter(page, market, servers):
    import msgspec

    from pipeline.history.writer import HistoryWriter

    old = msgspec.structs.replace(market.alerts[0], alert_id="replayed-1", source="spx-daily", symbol="SPX",
                                  ts=1_420_232_400.0)
    HistoryWriter(servers.database_url).flush(trades=[], candles=[], alerts=[old])
    page.open("/alerts", "#al-table")
    page.wait(lambda: len(rows(page)) == 5, what="5 alerts of every source")
    assert {r["source"] for r in rows(page)} == {"live", "spx-daily"}
    page.br.select_dcc_dropdown("#al-source", value="spx-daily")
    page.wait(lambda: symbols(page) == ["SPX"], 5, "the replay's alerts only")
    page.br.select_dcc_dropdown("#al-source", value="live")
    page.wait(lambda: symbols(page) == sorted(a.symbol for a in market.alerts), 5, "the live alerts only")
    assert page.console_errors() == []
