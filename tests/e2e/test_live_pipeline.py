"""The pages on real data: the simulator's trades through Kafka and the stream processor to the browser."""
from __future__ import annotations

import threading

import pytest
from selenium.webdriver.common.by import By

from pipeline import producer
from pipeline.processor import Processor

pytestmark = pytest.mark.e2e


@pytest.fixture
def pipeline(topics):
    """Producer (50 trades/s, frequent market events) and processor running in threads."""
    s = topics.replace(trade_rate=50.0, event_rate=0.03, seed=11, flush_interval=0.5, grace_seconds=1.0)
    stop = threading.Event()
    errors: list[BaseException] = []

    def guard(fn):
        def body():
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - reported at teardown
                errors.append(exc)
        return threading.Thread(target=body, daemon=True)

    threads = [guard(lambda: Processor(s).run(stop)),
               guard(lambda: producer.run(s, stop, serve_metrics=False))]
    for t in threads:
        t.start()
    yield s
    stop.set()
    for t in threads:
        t.join(60)
    assert not errors, errors


def test_live001_pages_show_the_running_pipeline(page, pipeline):
    page.open("/")
    cell = lambda: page.by_id(symbol="AAPL", type="wl-last")  # noqa: E731
    first = page.wait(lambda: cell().text if cell().text != "—" else None, 30, "a first AAPL price")
    page.wait(lambda: cell().text != first, 15, "the AAPL price to move")
    page.wait(lambda: page.driver.find_element(By.ID, "status-pill").text == "LIVE", 15, "LIVE")
    page.wait(lambda: page.js("var g = document.querySelector('#wl-chart .js-plotly-plot');"
                              "return g && g.data && g.data.length === 3 && g.data[0].close.length >= 1"), 15,
              "a candle")
    page.wait(lambda: len(page.driver.find_elements(By.CSS_SELECTOR, "#wl-tape tbody tr td.num")) > 0, 10, "tape")
    page.wait(lambda: page.driver.find_elements(By.CSS_SELECTOR, "#wl-feed .feed-item"), 60, "a live alert")
    assert page.console_errors() == []
    page.open("/whales", "#wh-grid")
    page.wait(lambda: page.driver.find_elements(By.CSS_SELECTOR, "#wh-grid .whale-card"), 60, "a whale card")
    page.open("/scanner", "#sc-table")
    page.wait(lambda: len(page.driver.find_elements(By.CSS_SELECTOR, '#sc-table td[data-dash-column="symbol"]'))
              == 10, 15, "ten scanner rows")
    page.wait_settled()
    assert page.console_errors() == []
