"""Whales page: a card per volume spike, newest first, and new ones arriving live."""
from __future__ import annotations

import time

import pytest
from selenium.webdriver.common.by import By

from pipeline.events import Alert
from tests import market_data

pytestmark = pytest.mark.e2e


def cards(page):
    return page.driver.find_elements(By.CSS_SELECTOR, "#wh-grid .whale-card")


def test_whal001_cards_newest_first_with_size_multiple(page, market):
    page.open("/whales", "#wh-grid")
    whales = sorted((a for a in market.alerts if a.alert_type == "VOLUME_SPIKE"), key=lambda a: -a.ts)
    page.wait(lambda: len(cards(page)) == len(whales), what="whale cards")
    shown = cards(page)
    for card, alert in zip(shown, whales):
        assert card.find_element(By.CSS_SELECTOR, ".whale-symbol").text == alert.symbol
        assert card.find_element(By.CSS_SELECTOR, ".whale-multiple").text == f"{alert.deviation:.1f}×"
        assert card.find_element(By.CSS_SELECTOR, ".whale-side").text == alert.side
    page.screenshot("whales")
    assert page.console_errors() == []


def test_whal002_new_spike_appears_live_on_top(page, market, servers):
    page.open("/whales", "#wh-grid")
    page.wait(lambda: len(cards(page)) == 2, what="whale cards")
    page.js("window.__sameDocument = true;")
    page.wait_for_stream("/ws/alerts")  # connected, and the server has sent its snapshot: it is listening
    alert = Alert(alert_id="e2e-whale-1", alert_type="VOLUME_SPIKE", severity="MEDIUM", symbol="ETH-USD",
                  price=3390.0, reference=2.0, deviation=12.3, trade_id="t-whale", ts=time.time(),
                  message="whale", side="SELL", quantity=24.6)
    market_data.publish_alert(servers, alert, history=False)
    page.wait(lambda: cards(page)[0].find_element(By.CSS_SELECTOR, ".whale-symbol").text == "ETH-USD", 5,
              "live card first")
    first = cards(page)[0]
    assert first.find_element(By.CSS_SELECTOR, ".whale-multiple").text == "12.3×"
    assert first.find_element(By.CSS_SELECTOR, ".whale-side").text == "SELL"
    assert len(cards(page)) == 3 and page.js("return window.__sameDocument === true")
    assert page.driver.find_element(By.ID, "wh-count").text.startswith("3 volume spikes")
