"""The alert lifecycle through the REST API on the real PostgreSQL: snoozes, notes, acknowledgements and the
audit trail of who did what and when; roles, cross-site refusals and errors that name the field."""
from __future__ import annotations

import time

import pytest

from app import create_app
from pipeline.events import iso
from tests import sign_in
from tests.integration.helpers import sql, wait_until
from tests.integration.test_api_rest import conforms

pytestmark = pytest.mark.integration


@pytest.fixture
def clients(market, servers, accounts):
    """Signed-in test clients per role, and an anonymous one, over the market of tests/market_data.py."""
    def client(role=None):
        c = create_app(servers.replace(stale_after_seconds=60)).test_client()
        return sign_in.flask_client(c, accounts[role]) if role else c

    return {"viewer": client("viewer"), "operator": client("operator"), "anonymous": client()}


def snooze_body(**changes) -> dict:
    return {"alert_type": "VOLUME_SPIKE", "symbol": "btc-usd", "duration_minutes": 60,
            "comment": "exchange maintenance", **changes}


def test_lcy001_an_operator_snoozes_everyone_sees_it(clients, accounts):
    op, viewer = clients["operator"], clients["viewer"]
    r = op.post("/api/v1/snoozes", json=snooze_body())
    assert r.status_code == 201, r.get_data(True)
    made = conforms(r.get_json(), "Snooze")
    assert (made["alert_type"], made["symbol"], made["state"]) == ("VOLUME_SPIKE", "BTC-USD", "active")
    assert made["created_by"] == accounts["operator"].username
    listed = conforms(viewer.get("/api/v1/snoozes").get_json(), "Snoozes")
    assert [s["snooze_id"] for s in listed["snoozes"]] == [made["snooze_id"]]
    events = conforms(viewer.get(f"/api/v1/audit?snooze_id={made['snooze_id']}").get_json(),
                      "Audit")["events"]
    assert [(e["action"], e["actor"]) for e in events] == [("snooze_create", accounts["operator"].username)]
    assert "VOLUME_SPIKE on BTC-USD" in events[0]["detail"] and "exchange maintenance" in events[0]["detail"]
    assert viewer.post("/api/v1/snoozes", json=snooze_body()).status_code == 403
    assert clients["anonymous"].post("/api/v1/snoozes", json=snooze_body()).status_code == 401
    assert clients["anonymous"].get("/api/v1/snoozes").status_code == 401


@pytest.mark.parametrize("body, parameter", [
    (snooze_body(alert_type=None, symbol=None), "alert_type"),
    (snooze_body(alert_type="NOT_A_TYPE"), "alert_type"),
    (snooze_body(symbol="A$B"), "symbol"),
    (snooze_body(ends_at=iso(time.time() + 600)), "ends_at"),           # both ends_at and duration
    (snooze_body(duration_minutes=0), "duration_minutes"),
    (snooze_body(duration_minutes=None, ends_at="2001-01-01T00:00:00Z"), "ends_at"),
    (snooze_body(comment="  "), "comment"),
    (snooze_body(until="tomorrow"), "until"),
])
def test_lcy002_bad_snoozes_are_refused_naming_the_field(clients, servers, body, parameter):
    r = clients["operator"].post("/api/v1/snoozes", json=body)
    assert r.status_code == 400, r.get_data(True)
    assert conforms(r.get_json(), "Error")["error"]["parameter"] == parameter
    assert sql(servers, "SELECT count(*) FROM alert_snoozes") == [(0,)]


def test_lcy003_ending_a_snooze_early_and_one_that_expires(clients, accounts):
    op = clients["operator"]
    made = op.post("/api/v1/snoozes", json=snooze_body()).get_json()
    ended = op.delete(f"/api/v1/snoozes/{made['snooze_id']}")
    assert ended.status_code == 200 and conforms(ended.get_json(), "Snooze")["state"] == "deleted"
    assert ended.get_json()["deleted_by"] == accounts["operator"].username
    again = op.delete(f"/api/v1/snoozes/{made['snooze_id']}")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "snooze_ended"
    assert op.delete("/api/v1/snoozes/999999").status_code == 404
    assert clients["viewer"].delete(f"/api/v1/snoozes/{made['snooze_id']}").status_code == 403

    short = op.post("/api/v1/snoozes", json=snooze_body(duration_minutes=None, ends_at=time.time() + 1.5))
    assert short.status_code == 201, short.get_data(True)
    sid = short.get_json()["snooze_id"]
    wait_until(lambda: op.get(f"/api/v1/snoozes/{sid}").get_json()["state"] == "expired", 10,
               "the snooze expiry")
    events = op.get("/api/v1/audit").get_json()["events"]
    actions = [(e["action"], e["actor"], e["snooze_id"]) for e in events]
    user = accounts["operator"].username
    assert actions == [("snooze_expire", "system", sid), ("snooze_create", user, sid),
                       ("snooze_delete", user, made["snooze_id"]), ("snooze_create", user, made["snooze_id"])]
    assert [s["snooze_id"] for s in op.get("/api/v1/snoozes?state=ended").get_json()["snoozes"]] == \
        [sid, made["snooze_id"]]
    assert op.get("/api/v1/snoozes").get_json()["count"] == 0


def test_lcy004_notes_and_acknowledgements_in_the_audit_trail(clients, market, accounts):
    op, viewer = clients["operator"], clients["viewer"]
    alert = market.alerts[0]
    r = op.post(f"/api/v1/alerts/{alert.alert_id}/notes", json={"text": "  known news: earnings  "})
    assert r.status_code == 201, r.get_data(True)
    note = conforms(r.get_json(), "Note")
    assert (note["body"], note["author"]) == ("known news: earnings", accounts["operator"].username)
    notes = conforms(viewer.get(f"/api/v1/alerts/{alert.alert_id}/notes").get_json(), "Notes")
    assert [n["note_id"] for n in notes["notes"]] == [note["note_id"]]
    assert op.post(f"/api/v1/alerts/{alert.alert_id}/ack").status_code == 200
    assert op.post(f"/api/v1/alerts/{alert.alert_id}/ack").status_code == 200  # idempotent: one audit row
    listed = {a["alert_id"]: a for a in viewer.get("/api/v1/alerts").get_json()["alerts"]}
    assert listed[alert.alert_id]["notes"] == 1 and listed[alert.alert_id]["acknowledged"]
    trail = conforms(viewer.get(f"/api/v1/audit?alert_id={alert.alert_id}").get_json(), "Audit")["events"]
    user = accounts["operator"].username
    assert [(e["action"], e["actor"]) for e in trail] == [("ack", user), ("note", user)]
    assert viewer.post(f"/api/v1/alerts/{alert.alert_id}/notes", json={"text": "x"}).status_code == 403
    assert op.post("/api/v1/alerts/nope/notes", json={"text": "x"}).status_code == 404
    assert op.get("/api/v1/alerts/nope/notes").status_code == 404
    for body, parameter in (({"text": ""}, "text"), ({"text": "x" * 2001}, "text"), ({"note": "x"}, "note"),
                            ([1], "body")):
        bad = op.post(f"/api/v1/alerts/{alert.alert_id}/notes", json=body)
        assert bad.status_code == 400 and bad.get_json()["error"]["parameter"] == parameter


def test_lcy005_cross_site_changes_are_refused(clients, market):
    op = clients["operator"]
    evil = {"Origin": "http://evil.example"}
    assert op.post("/api/v1/snoozes", json=snooze_body(), headers=evil).status_code == 403
    assert op.post(f"/api/v1/alerts/{market.alerts[0].alert_id}/notes", json={"text": "x"},
                   headers=evil).status_code == 403
    assert op.post("/api/v1/quality/browser-latency", json={"samples": [{"stage": "web_to_browser",
                                                                         "seconds": 0.1}]},
                   headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert op.get("/api/v1/audit").get_json()["count"] == 0
