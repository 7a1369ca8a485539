"""Alert lifecycle on the Alerts page: an operator writes a note on an alert, snoozes alerts and ends the
snooze; the alert's history and the audit trail say who did what; a viewer sees it all but may not act."""
from __future__ import annotations

import psycopg2
import pytest
from selenium.webdriver.common.by import By

from tests.e2e.browser_page import Page
from tests.e2e.test_alerts import rows

pytestmark = pytest.mark.e2e


def text(page, element_id: str) -> str:
    return page.driver.find_element(By.ID, element_id).text


def tick(page, symbol: str) -> None:
    """Tick the row of ``symbol`` (and only it)."""
    index = [r["symbol"] for r in rows(page)].index(symbol)
    page.driver.find_elements(By.CSS_SELECTOR, "#al-table tbody tr td.dash-select-cell input")[index].click()


def test_lcyc001_note_snooze_and_the_audit_trail(page, market, servers, accounts):
    me = accounts["operator"].username
    page.open("/alerts", "#al-table")
    page.wait(lambda: len(rows(page)) == 4, 30, "4 alerts")
    tick(page, "TSLA")
    page.wait(lambda: "TSLA" in text(page, "al-detail"), 30, "the selected alert's detail")
    page.driver.find_element(By.ID, "al-note-text").send_keys("Halted on news; checked with the desk")
    page.driver.find_element(By.ID, "al-note-add").click()
    page.wait(lambda: "Note saved" in text(page, "al-note-result"), 30, "the note saved")
    page.wait(lambda: "Halted on news" in text(page, "al-detail"), 30, "the note shown")
    page.wait(lambda: next(r for r in rows(page) if r["symbol"] == "TSLA")["notes"] == "1", 30,
              "the notes count")
    assert f"{me} noted" in text(page, "al-detail"), "the alert's history"

    page.br.select_dcc_dropdown("#al-snooze-type", value="Volume spike")
    page.br.select_dcc_dropdown("#al-snooze-symbol", value="BTC-USD")
    page.driver.find_element(By.ID, "al-snooze-comment").send_keys("exchange maintenance")
    page.driver.find_element(By.ID, "al-snooze-add").click()
    page.wait(lambda: "in force until" in text(page, "al-snooze-result"), 30, "the snooze made")
    item = page.wait(lambda: page.driver.find_elements(By.CSS_SELECTOR, "#al-snoozes .snooze-item"), 30,
                     "listed")
    assert "Volume spike on BTC-USD" in item[0].text and "exchange maintenance" in item[0].text
    page.wait(lambda: f"{me} snoozed" in text(page, "al-audit"), 30, "the audit trail")
    assert f"{me} noted" in text(page, "al-audit")
    page.screenshot("alerts-lifecycle")

    page.driver.find_element(By.CSS_SELECTOR, "#al-snoozes .snooze-item button").click()
    page.wait(lambda: "ended" in text(page, "al-snooze-result"), 30, "the snooze ended")
    page.wait(lambda: "No snoozes in force" in text(page, "al-snoozes"), 30, "the list empty")
    page.wait(lambda: f"{me} ended snooze" in text(page, "al-audit"), 30, "the end in the audit trail")
    conn = psycopg2.connect(servers.database_url)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT action, actor FROM alert_audit ORDER BY event_id")
        assert cur.fetchall() == [("note", me), ("snooze_create", me), ("snooze_delete", me)]
    conn.close()
    assert page.console_errors() == []
    assert page.csp_violations() == []


def test_lcyc002_a_snooze_form_error_names_the_field(page, market):
    page.open("/alerts", "#al-table")
    page.br.select_dcc_dropdown("#al-snooze-symbol", value="AAPL")
    page.driver.find_element(By.ID, "al-snooze-add").click()  # no comment
    page.wait(lambda: text(page, "al-snooze-result").startswith("comment:"), 30, "the error")


def test_lcyc003_a_viewer_sees_but_may_not_act(dash_br, web, accounts, market):
    viewer = Page(dash_br, web).sign_in(accounts["viewer"])
    viewer.open("/alerts", "#al-table")
    viewer.wait(lambda: len(rows(viewer)) == 4, 30, "4 alerts")
    for element_id in ("al-note-add", "al-snooze-add", "al-note-text", "al-snooze-comment"):
        element = viewer.driver.find_element(By.ID, element_id)
        assert not element.is_enabled(), element_id
    assert "operator" in viewer.driver.find_element(By.ID, "al-snooze-add").get_attribute("title")
    viewer.wait(lambda: "Nobody has done anything yet" in text(viewer, "al-audit"), 30, "the audit trail")
