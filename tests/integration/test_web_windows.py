"""STOCKIT_WINDOWS is honoured by the web app: API validation, the OpenAPI document and the pages' choices."""
from __future__ import annotations

import pytest

from app import create_app, ids
from pipeline.events import iso
from tests import market_data, sign_in

pytestmark = pytest.mark.integration
WINDOWS = (30, 120)  # not the default 60, 300, 900


@pytest.fixture(scope="module")
def client(servers, accounts):
    app = create_app(servers.replace(window_sizes=",".join(map(str, WINDOWS)), stale_after_seconds=60))
    return sign_in.flask_client(app.test_client(), accounts["viewer"])


@pytest.fixture
def market(clean_stores):
    m = market_data.build(minutes=6, windows=WINDOWS)
    market_data.write(clean_stores, m)
    return m


def page(client, path: str) -> dict:
    """The layout the page router's callback answers for ``path`` (what the browser renders)."""
    r = client.post("/_dash-update-component", headers={"Origin": "http://localhost"}, json={
        "output": ".._pages_content.children..._pages_store.data..",
        "outputs": [{"id": "_pages_content", "property": "children"}, {"id": "_pages_store", "property": "data"}],
        "inputs": [{"id": "_pages_location", "property": "pathname", "value": path},
                   {"id": "_pages_location", "property": "search", "value": ""}],
        "changedPropIds": ["_pages_location.pathname"], "state": []})
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    return r.get_json()["response"]["_pages_content"]["children"]


def find(node, component_id: str):
    """The component of ``component_id`` in a serialised Dash layout."""
    if isinstance(node, list):
        return next((found for child in node if (found := find(child, component_id)) is not None), None)
    if isinstance(node, dict) and "props" in node:
        if node["props"].get("id") == component_id:
            return node
        return find(node["props"].get("children"), component_id)
    return None


def test_wind001_api_accepts_the_configured_windows_and_refuses_others(client, market):
    default = client.get("/api/v1/ohlcv/AAPL?include_open=false").get_json()
    assert default["window_seconds"] == 30  # the smallest configured
    assert [c["window_start"] for c in default["candles"]] == [
        iso(c.window_start) for c in market.candles_of("AAPL", 30)][-120:]
    two = client.get("/api/v1/ohlcv/AAPL?window_seconds=120").get_json()
    assert [c["window_start"] for c in two["candles"]] == [
        iso(c.window_start) for c in market.candles_of("AAPL", 120)]
    assert two["open_candle"]["window_start"] == iso(market.open_candles[("AAPL", 120)].window_start)
    for refused in (60, 300, 900):
        r = client.get(f"/api/v1/ohlcv/AAPL?window_seconds={refused}")
        assert r.status_code == 400
        error = r.get_json()["error"]
        assert error["parameter"] == "window_seconds" and "30, 120" in error["message"]


def test_wind002_openapi_lists_the_configured_windows(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["components"]["schemas"]["Ohlcv"]["properties"]["window_seconds"]["enum"] == [30, 120]
    param = next(p for p in doc["paths"]["/ohlcv/{symbol}"]["get"]["parameters"] if p["name"] == "window_seconds")
    assert param["schema"] == {"type": "integer", "enum": [30, 120], "default": 30}


def test_wind003_pages_offer_the_configured_windows(client, market):
    choice = find(page(client, "/"), ids.WL_WINDOW)
    assert choice["props"]["options"] == [{"label": "30s", "value": 30}, {"label": "2m", "value": 120}]
    assert choice["props"]["value"] == 30
    scanner = find(page(client, "/scanner"), ids.SC_TABLE)  # no 5-minute candles: the nearest size, 2 minutes
    names = [c["name"] for c in scanner["props"]["columns"]]
    assert "2m Chg %" in names and "VWAP (2m)" in names
