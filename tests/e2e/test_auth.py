"""Signing in and out in the browser, roles on the pages, and every page working under the CSP."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from selenium.webdriver.common.by import By

from tests import sign_in
from tests.e2e.browser_page import Page

pytestmark = pytest.mark.e2e
PAGES = [("/", "#wl-table"), ("/scanner", "#sc-table"), ("/whales", "#wh-grid"), ("/alerts", "#al-table")]


def text(page, element_id: str) -> str:
    return page.driver.find_element(By.ID, element_id).text


def test_auth001_sign_in_page_one_message_for_any_wrong_part(dash_br, web, accounts, market):
    page = Page(dash_br, web)
    page.driver.get(web.url + "/alerts?unacked=1")
    page.wait(lambda: urlsplit(page.driver.current_url).path == "/login", what="the sign-in page")
    assert parse_qs(urlsplit(page.driver.current_url).query)["next"] == ["/alerts?unacked=1"]
    # In the app's theme: Bootstrap's dark mode and stockit.css's background.
    assert page.js("return getComputedStyle(document.body).backgroundColor") == "rgb(11, 15, 20)"
    assert page.driver.find_element(By.ID, "login-submit").get_attribute("class") == "btn btn-warning w-100"
    messages = []
    for username in (accounts["viewer"].username, "nobody-here"):  # a known user, then an unknown one
        page.driver.find_element(By.ID, "username").clear()
        page.driver.find_element(By.ID, "username").send_keys(username)
        page.driver.find_element(By.ID, "password").send_keys("wrong-password")
        page.driver.find_element(By.ID, "login-submit").click()
        messages.append(page.wait(lambda: text(page, "login-message"), what="the error message"))
    assert messages == ["Wrong user name or password."] * 2
    viewer = accounts["viewer"]
    page.driver.find_element(By.ID, "username").clear()
    page.driver.find_element(By.ID, "username").send_keys(viewer.username)
    page.driver.find_element(By.ID, "password").send_keys(viewer.password)
    page.driver.find_element(By.ID, "login-submit").click()
    page.wait(lambda: page.driver.find_elements(By.ID, "al-table"), 15, "the alerts page after signing in")
    assert urlsplit(page.driver.current_url).path == "/alerts"
    assert page.csp_violations() == []
    # The two refused sign-ins answered 401, which the browser logs; nothing else may appear.
    assert [e for e in page.console_errors() if "/login - " not in e["message"]] == []


def test_auth002_navbar_shows_user_and_role_and_signs_out(page, accounts, market):
    page.open("/")
    assert text(page, "user-name") == accounts["operator"].username
    assert text(page, "user-role").lower() == "operator"
    # Navigation comes from Dash's page registry, in the pages' order.
    links = [a.text for a in page.driver.find_elements(By.CSS_SELECTOR, ".topbar .nav-link")]
    assert links == ["Watchlist", "Scanner", "Whales", "Alerts", "Backtest", "Quality"]
    page.driver.find_element(By.ID, "sign-out").click()
    on_sign_in_page = lambda: urlsplit(page.driver.current_url).path == "/login"  # noqa: E731
    page.wait(on_sign_in_page, what="the sign-in page after signing out")
    page.driver.get(page.web.url + "/scanner")
    page.wait(on_sign_in_page, what="pages closed after signing out")


def test_auth003_viewer_sees_a_disabled_acknowledge_button(dash_br, web, accounts, market):
    page = Page(dash_br, web).sign_in(accounts["viewer"]).open("/alerts", "#al-table")
    button = page.driver.find_element(By.ID, "al-ack")
    assert button.get_attribute("disabled") is not None
    assert "operator" in button.get_attribute("title")
    assert text(page, "user-role").lower() == "viewer"


@pytest.mark.parametrize("path, wait_for", PAGES + [("/docs", ".opblock")])
def test_auth004_pages_work_under_the_csp_without_violations(page, market, path, wait_for):
    if path == "/docs":
        page.driver.get(page.web.url + path)
    else:
        page.open(path, wait_for)
    page.wait(lambda: page.driver.find_elements(By.CSS_SELECTOR, wait_for), 15, wait_for)
    if path == "/":  # the live price WebSocket connects under connect-src 'self'
        page.wait(lambda: page.by_id(symbol="AAPL", type="wl-last").text not in ("", "—"), 15, "a price")
    page.wait(lambda: page.csp_violations() is not None, 5, "the CSP recorder")
    assert page.csp_violations() == []
    assert page.console_errors() == []
    # The policy is really enforced (and the recorder really records): an injected inline script and an inline
    # event handler do not run.  (Code run through WebDriver itself is exempt from CSP, so eval is not tried
    # here; test_auth005 checks that no policy allows it.)
    page.js("var s = document.createElement('script'); s.textContent = 'window.__injected = 1;';"
            "document.body.appendChild(s); var i = document.createElement('img');"
            "i.setAttribute('onerror', 'window.__handler = 1'); i.src = 'data:,';"
            "document.body.appendChild(i);")
    page.wait(lambda: len(page.csp_violations()) == 2, 5, "two violations")
    assert page.js("return [window.__injected, window.__handler]") == [None, None]
    assert {v["directive"] for v in page.csp_violations()} == {"script-src-elem", "script-src-attr"}


def test_auth005_headers_on_every_page(web, accounts):
    session = sign_in.http_session(web.url, accounts["viewer"])
    for path in ["/", "/scanner", "/alerts", "/docs", "/login"]:
        r = (requests if path == "/login" else session).get(web.url + path, timeout=10)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html"), path
        csp = r.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp
        script_src = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
        assert "'unsafe-inline'" not in script_src and "'sha256-" in script_src
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "same-origin"
