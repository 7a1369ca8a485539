"""Data-quality page: late trades, dead letters with their reasons and sequence gaps from PostgreSQL, and the
browser stage of the latency measured by the page itself from its WebSocket ticks and reported back."""
from __future__ import annotations

import time

import psycopg2
import pytest
from selenium.webdriver.common.by import By

from pipeline.events import Trade
from pipeline.history.writer import HistoryWriter
from tests import market_data

pytestmark = pytest.mark.e2e


def seed_problems(settings) -> None:
    """Two late AAPL trades, NYSE sequences with 3 numbers missing, two dead letters."""
    now = time.time()
    late = [(Trade(f"late-{i}", "AAPL", 190.0, 1.0, "BUY", "TEST", now - 300 + i), True) for i in range(2)]
    nyse = [(Trade(f"ny-{s}", "IBM", 150.0, 1.0, "SELL", "NYSE", now - 400 + s, sequence=s), False)
            for s in range(1, 21) if s not in (5, 6, 7)]
    w = HistoryWriter(settings.database_url)
    try:
        w.flush(trades=late + nyse, candles=[], alerts=[])
    finally:
        w.close()
    conn = psycopg2.connect(settings.database_url)
    with conn, conn.cursor() as cur:
        cur.execute("""INSERT INTO dead_letters (kind, reason, topic, partition, "offset", symbol, value)
                       VALUES ('bad_json', 'bad JSON: unexpected character', 'raw-trades', 2, 1041, 'AAPL',
                               'not json'),
                              ('bad_timestamp', 'absurd timestamp before 1970: 1969-12-31T00:00:00Z',
                               'raw-trades', 0, 77, 'MSFT', '{"timestamp": "1969-12-31T00:00:00Z"}')""")
    conn.close()


def text(page, element_id: str) -> str:
    return page.driver.find_element(By.ID, element_id).text


def test_qual001_figures_tables_and_the_browser_stage(page, market, servers):
    seed_problems(servers)
    page.open("/quality", "#dq-late")
    page.wait(lambda: "AAPL" in text(page, "dq-late-table"), 30, "late trades")
    aapl = next(r for r in page.driver.find_elements(By.CSS_SELECTOR, "#dq-late-table tbody tr")
                if r.text.startswith("live AAPL"))
    assert aapl.text.split()[2:4] == [f"{len(market.trades['AAPL']) + 2:,}", "2"]
    gaps = page.wait(lambda: next((r.text for r in page.driver.find_elements(By.CSS_SELECTOR,
                                                                             "#dq-gaps-table tr")
                                   if r.text.startswith("NYSE")), None), 30, "NYSE sequence row")
    assert gaps.split()[2:6] == ["17", "1", "3", f"{3 / 20 * 100:.2f}"]
    assert "NYSE: 3 missing before #8 (IBM" in text(page, "dq-gaps")
    assert "bad_json 1" in text(page, "dq-dead") and "bad_timestamp 1" in text(page, "dq-dead")
    reasons = [r.text for r in page.driver.find_elements(By.CSS_SELECTOR,
                                                         "#dq-dead-table td[data-dash-column=reason]")]
    assert sorted(reasons) == ["absurd timestamp before 1970: 1969-12-31T00:00:00Z",
                               "bad JSON: unexpected character"]

    # The browser stage: the page times the ticks it receives and reports them (every 10 s).
    price = market.tickers["MSFT"]["price"]
    for i in range(6):
        market_data.tick(servers, "MSFT", round(price + i * 0.5, 2))
        time.sleep(0.3)  # paced: a price frame each (frames merge ticks closer than 0.25 s), each one timed
    page.wait(lambda: text(page, "dq-p50-event_to_browser").endswith("ms"), 60, "the browser stage measured")
    page.wait(lambda: text(page, "dq-p50-web_to_browser").endswith("ms"), 30, "the web -> browser stage")
    page.screenshot("quality")
    assert page.console_errors() == []
    assert page.csp_violations() == []
