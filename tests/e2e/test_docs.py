"""/docs: Swagger UI over the OpenAPI document, loaded from this server only (no internet)."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from selenium.webdriver.common.by import By

pytestmark = pytest.mark.e2e


def test_docs001_swagger_ui_offline(page, web):
    page.viewport(1280, 800)
    page.driver.get(web.url + "/docs")
    page.wait(lambda: len(page.driver.find_elements(By.CSS_SELECTOR, ".opblock")) >= 14, 15, "operations listed")
    paths = {e.text for e in page.driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/prices", "/ohlcv/{symbol}", "/trades/history", "/alerts/{alert_id}/ack", "/health"} <= paths
    hosts = {urlsplit(u).netloc for u in page.js("return performance.getEntriesByType('resource').map(e => e.name)")}
    assert hosts == {urlsplit(web.url).netloc}
    assert page.console_errors() == []
