"""Every kind of route against anonymous, viewer, operator, admin and API-token callers; cross-site requests.

In-process (Flask test client) for pages, Dash callbacks, REST, docs, OpenAPI, health and metrics; the
production server (gunicorn) for WebSockets and SSE.
"""
from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import psycopg2
import pytest
import simple_websocket

from app import create_app
from app.accounts import AccountStore
from pipeline.history import Pool
from tests import sign_in
from tests.sign_in import cookie_header
from tests.web_server import running_web

pytestmark = pytest.mark.integration
METRICS_TOKEN = "metrics-token-for-the-tests"
CALLERS = ("anonymous", "viewer", "operator", "admin", "viewer-token", "operator-token")
SIGNED_IN = CALLERS[1:]
STATUS_OUTPUTS = [("status-banner", "children"), ("status-banner", "className"), ("status-pill", "children"),
                  ("status-pill", "className"), ("status-pill", "title")]
STATUS_CALLBACK = {
    "output": ".." + "...".join(f"{i}.{p}" for i, p in STATUS_OUTPUTS) + "..",
    "outputs": [{"id": i, "property": p} for i, p in STATUS_OUTPUTS],
    "inputs": [{"id": "status-interval", "property": "n_intervals", "value": 1}],
    "changedPropIds": ["status-interval.n_intervals"], "state": []}


def ack_callback(alert_id: str) -> dict:
    """The request the alerts page's "Acknowledge selected" button makes."""
    return {"output": "al-ack-result.children", "outputs": {"id": "al-ack-result", "property": "children"},
            "inputs": [{"id": "al-ack", "property": "n_clicks", "value": 1}],
            "changedPropIds": ["al-ack.n_clicks"],
            "state": [{"id": "al-table", "property": "selected_row_ids", "value": [alert_id]}]}


@pytest.fixture(scope="module")
def tokens(servers):
    store = AccountStore(Pool(servers.database_url, 1, "stockit-tests"))
    try:
        return {role: store.create_token(f"test-{role}-token", role, created_by="tests")[1]
                for role in ("viewer", "operator")}
    finally:
        store.db.close()


@pytest.fixture(scope="module")
def app(servers):
    return create_app(servers.replace(stale_after_seconds=60, metrics_token=METRICS_TOKEN,
                                      allowed_origins="https://ops.example"))


@pytest.fixture(scope="module")
def callers(app, accounts, tokens):
    """A test client per kind of caller (signed in through /login, or carrying a bearer token)."""
    out = {"anonymous": app.test_client()}
    for role in ("viewer", "operator", "admin"):
        out[role] = sign_in.flask_client(app.test_client(), accounts[role])
    for role, token in tokens.items():
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        out[f"{role}-token"] = client
    return out


def acknowledged_by(servers, alert_id: str):
    conn = psycopg2.connect(servers.database_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT acknowledged_by FROM alerts WHERE alert_id = %s", (alert_id,))
            return cur.fetchone()[0]
    finally:
        conn.close()


def unauthorized(r) -> None:
    assert r.status_code == 401 and r.mimetype == "application/json", r.get_data(as_text=True)[:200]
    assert r.get_json()["error"]["code"] == "unauthorized"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", ["/", "/alerts", "/scanner?x=1", "/docs"])
@pytest.mark.parametrize("who", CALLERS)
def test_acs001_pages_and_docs(callers, who, path, market):
    r = callers[who].get(path)
    if who == "anonymous":
        assert r.status_code == 302 and urlsplit(r.headers["Location"]).path == "/login"
        assert parse_qs(urlsplit(r.headers["Location"]).query)["next"] == [path]
    else:
        assert r.status_code == 200 and r.mimetype == "text/html"


@pytest.mark.parametrize("method, path, body", [
    ("get", "/api/v1/prices", None), ("get", "/api/v1/alerts", None), ("get", "/api/v1/openapi.json", None),
    ("get", "/_dash-layout", None), ("get", "/_dash-dependencies", None), ("post", "/_dash-update-component",
                                                                           STATUS_CALLBACK),
    ("get", "/metrics", None), ("get", "/docs/assets/stockit-docs.js", None),
])
@pytest.mark.parametrize("who", CALLERS)
def test_acs002_reads_api_dash_callbacks_and_metrics(callers, who, method, path, body, market):
    r = getattr(callers[who], method)(path, json=body) if body else getattr(callers[who], method)(path)
    if who == "anonymous":
        unauthorized(r)
    else:
        assert r.status_code == 200, r.get_data(as_text=True)[:300]


@pytest.mark.parametrize("who", CALLERS)
def test_acs003_rest_acknowledge_needs_operator(callers, who, market, servers):
    alert = market.alerts[0]
    r = callers[who].post(f"/api/v1/alerts/{alert.alert_id}/ack")
    if who == "anonymous":
        unauthorized(r)
    elif who in ("viewer", "viewer-token"):
        assert r.status_code == 403 and r.get_json()["error"]["code"] == "forbidden"
        assert "operator" in r.get_json()["error"]["message"]
    else:
        assert r.status_code == 200
        expected = {"operator-token": "token:test-operator-token"}.get(who, f"test-{who}")
        assert r.get_json()["acknowledged_by"] == expected
    assert acknowledged_by(servers, alert.alert_id) == (
        None if who in ("anonymous", "viewer", "viewer-token") else r.get_json()["acknowledged_by"])


@pytest.mark.parametrize("who", ["anonymous", "viewer", "operator", "admin", "viewer-token"])
def test_acs004_dash_acknowledge_callback_needs_operator(callers, who, market, servers):
    alert = market.alerts[1]
    r = callers[who].post("/_dash-update-component", json=ack_callback(alert.alert_id))
    if who == "anonymous":
        unauthorized(r)
    elif who in ("viewer", "viewer-token"):
        assert r.status_code == 403 and r.mimetype == "application/json"
        message = "acknowledging alerts needs the operator role; you are viewer"
        assert r.get_json()["error"] == {"status": 403, "code": "forbidden", "message": message}
    else:
        assert r.status_code == 200 and "Acknowledged 1 alert" in r.get_data(as_text=True)
    expected = f"test-{who}" if who in ("operator", "admin") else None
    assert acknowledged_by(servers, alert.alert_id) == expected


def test_acs005_health_is_open_without_details(callers, market):
    anonymous = callers["anonymous"].get("/api/v1/health")
    assert anonymous.status_code == 200 and anonymous.get_json() == {"status": "ok"}
    for who in SIGNED_IN:
        body = callers[who].get("/api/v1/health").get_json()
        assert body["status"] == "ok" and body["workers"]["processor"]["alive"] is True
    bad = callers["anonymous"].get("/api/v1/health", headers={"Authorization": "Bearer stk_nonsense"})
    assert bad.status_code == 200 and bad.get_json() == {"status": "ok"}


def test_acs006_openapi_declares_security(callers):
    doc = callers["viewer"].get("/api/v1/openapi.json").get_json()
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": doc["components"]["securitySchemes"]["bearerAuth"]
        ["description"]}
    assert doc["components"]["securitySchemes"]["cookieAuth"]["name"] == "stockit_session"
    assert doc["security"] == [{"bearerAuth": []}, {"cookieAuth": []}]
    for path, ops in doc["paths"].items():
        for op in ops.values():
            assert ("401" in op["responses"]) is (path != "/health"), path
    assert "403" in doc["paths"]["/alerts/{alert_id}/ack"]["post"]["responses"]
    assert {} in doc["paths"]["/health"]["get"]["security"]


def test_acs007_metrics_token_opens_metrics_only(callers, app):
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {METRICS_TOKEN}"
    r = client.get("/metrics")
    assert r.status_code == 200 and b"web_requests_total" in r.data
    unauthorized(client.get("/api/v1/prices"))
    assert client.get("/").status_code == 401
    unauthorized(callers["anonymous"].get("/metrics", headers={"Authorization": "Bearer wrong"}))


@pytest.mark.parametrize("headers, content_type, data", [
    ({"Origin": "http://evil.example"}, "application/json", "{}"),
    ({"Origin": "http://evil.example"}, "text/plain", "{}"),  # a form or fetch needing no preflight
    ({"Origin": "null"}, "text/plain", ""),
    ({"Sec-Fetch-Site": "cross-site"}, "text/plain", ""),
    ({"Origin": "http://localhost:9999"}, "application/json", ""),       # another port of this host
])
def test_acs008_cross_site_posts_are_refused_even_signed_in(callers, market, servers, headers, content_type,
                                                            data):
    alert = market.alerts[2]
    r = callers["operator"].post(f"/api/v1/alerts/{alert.alert_id}/ack", headers=headers, data=data,
                                 content_type=content_type)
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "cross_site_request"
    assert acknowledged_by(servers, alert.alert_id) is None
    callback = callers["operator"].post("/_dash-update-component", json=ack_callback(alert.alert_id),
                                        headers=headers)
    assert callback.status_code == 403
    assert acknowledged_by(servers, alert.alert_id) is None


def test_acs009_same_origin_and_allowed_origins_may_post(callers, market, servers):
    for origin, alert in (("http://localhost", market.alerts[0]), ("https://ops.example", market.alerts[1])):
        headers = {"Origin": origin, "Sec-Fetch-Site": "cross-site"}  # an allowed origin is another site
        r = callers["operator"].post(f"/api/v1/alerts/{alert.alert_id}/ack", headers=headers)
        assert r.status_code == 200, (origin, r.get_data(as_text=True))
    r = callers["operator"].post(f"/api/v1/alerts/{market.alerts[2].alert_id}/ack",
                                 headers={"Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 200


def test_acs010_cross_site_sign_in_is_refused(app, accounts):
    r = app.test_client().post("/login", data=sign_in.form(accounts["viewer"]),
                               headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "stockit_session" not in r.headers.get("Set-Cookie", "")


# --- the production server: WebSockets and SSE ---------------------------------------------------------
@pytest.fixture(scope="module")
def web(servers, accounts, tmp_path_factory):
    with running_web(servers, tmp_path_factory.mktemp("web"), STOCKIT_STALE_AFTER_SECONDS="60") as server:
        server.sign_in(accounts["viewer"])
        yield server


def ws(web, path: str, **headers) -> simple_websocket.Client:
    return simple_websocket.Client.connect(web.url.replace("http", "ws") + path, headers=headers)


def first_message(client) -> dict:
    try:
        raw = client.receive(timeout=10)
        assert raw is not None, "no message in time"
        return json.loads(raw)
    finally:
        client.close()


@pytest.mark.parametrize("path", ["/ws/prices", "/ws/alerts", "/ws/aggregates"])
def test_acs011_websockets_need_a_session_or_token_and_our_origin(web, tokens, market, path):
    with pytest.raises(simple_websocket.ConnectionError, match="401"):
        ws(web, path)
    with pytest.raises(simple_websocket.ConnectionError, match="401"):
        ws(web, path, Authorization="Bearer stk_not-a-token")
    with pytest.raises(simple_websocket.ConnectionError, match="403"):
        ws(web, path, Cookie=cookie_header(web.user), Origin="http://evil.example")
    with pytest.raises(simple_websocket.ConnectionError, match="403"):
        ws(web, path, Cookie=cookie_header(web.user), **{"Sec-Fetch-Site": "cross-site"})
    if path != "/ws/aggregates":  # aggregates only speak when a candle closes
        first = {"/ws/prices": "prices", "/ws/alerts": "snapshot"}[path]
        assert first_message(ws(web, path, Cookie=cookie_header(web.user)))["type"] == first
        assert first_message(ws(web, path, Authorization=f"Bearer {tokens['viewer']}"))["type"] == first
    else:
        ws(web, path, Cookie=cookie_header(web.user)).close()


def test_acs012_sse_needs_a_session_or_token(web, tokens, market):
    import requests

    url = web.url + "/api/v1/stream/prices"
    anonymous = requests.get(url, timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"
    for session, headers in ((web.user, {}), (requests, {"Authorization": f"Bearer {tokens['viewer']}"})):
        with session.get(url, stream=True, timeout=10, headers=headers) as r:
            assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
            assert next(line for line in r.iter_lines() if line.startswith(b"data: "))
