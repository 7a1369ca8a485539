"""Redis and PostgreSQL unreachable: every page still renders, says so plainly, and logs no error."""
from __future__ import annotations


import pytest
from selenium.webdriver.common.by import By

from tests.e2e.browser_page import Page
from tests.web_server import running_web

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def dead_web(servers, tmp_path_factory):
    down = servers.replace(redis_url="redis://127.0.0.1:9/0", database_url="postgresql://nobody@127.0.0.1:9/none")
    with running_web(down, tmp_path_factory.mktemp("dead")) as server:
        yield server


@pytest.mark.parametrize("path, wait_for", [("/", "#wl-table"), ("/scanner", "#sc-table"), ("/whales", "#wh-grid"),
                                            ("/alerts", "#al-table")])
def test_outg001_pages_show_a_banner_not_a_traceback(dash_br, web, dead_web, accounts, path, wait_for):
    # Nobody can sign in while the database is down: sign in on the live server (the session cookie holds for
    # every port of 127.0.0.1, and the servers share the signing key), as if before the outage.
    page = Page(dash_br, dead_web).sign_in(accounts["viewer"], web=web).open(path, wait_for)
    banner = page.driver.find_element(By.ID, "status-banner")
    page.wait(lambda: "Redis" in banner.text, 10, "the outage banner")
    assert "banner-danger" in banner.get_attribute("class")
    assert page.driver.find_element(By.ID, "status-pill").text == "OFFLINE"
    ticks = page.prop("status-interval", "n_intervals") or 0  # the interval every page has
    page.wait(lambda: (page.prop("status-interval", "n_intervals") or 0) > ticks, 10,
              "the page's interval callbacks to run again, against the dead stores")
    page.wait_settled()
    assert "Traceback" not in page.driver.find_element(By.TAG_NAME, "body").text
    errors = [e for e in page.console_errors() if "/ws/" not in e["message"]]  # a refused socket is expected
    assert errors == []
