"""Live streams on the production server (gunicorn, gevent workers): WebSockets and SSE, metrics, shutdown."""
from __future__ import annotations

import json
import time

import orjson
import pytest
import redis
import simple_websocket

from pipeline import speed_layer
from pipeline.events import Alert
from tests import market_data
from tests.integration.helpers import wait_until
from tests.sign_in import cookie_header
from tests.web_server import running_web

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def web(servers, accounts, tmp_path_factory):
    with running_web(servers, tmp_path_factory.mktemp("web"), STOCKIT_STALE_AFTER_SECONDS="60") as server:
        server.sign_in(accounts["viewer"])
        yield server


def ws(web, path: str) -> simple_websocket.Client:
    """A WebSocket with the signed-in user's session cookie (no Origin: simple_websocket is not a browser)."""
    return simple_websocket.Client.connect(web.url.replace("http", "ws") + path,
                                           headers={"Cookie": cookie_header(web.user)})


def receive(client, timeout=15.0) -> dict:
    """The next message; the timeout is generous (a web process answering its first stream on a busy
    machine may take seconds), as it only costs time when the message never comes."""
    raw = client.receive(timeout=timeout)
    assert raw is not None, "no message in time"
    return json.loads(raw)


def receive_until(client, predicate, timeout=5.0) -> tuple[dict, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = receive(client, deadline - time.monotonic())
        if predicate(msg):
            return msg, time.monotonic()
    pytest.fail("the expected message did not arrive")


def test_strm001_ws_prices_snapshot_every_second_and_each_update(web, market, servers):
    c = ws(web, "/ws/prices")
    try:
        first = receive(c)
        assert first["type"] == "prices" and set(first["prices"]) == set(market.tickers)
        assert first["prices"]["AAPL"]["price"] == market.tickers["AAPL"]["price"]
        # With nothing changing, a full snapshot still comes about once a second.
        t0 = time.monotonic()
        receive(c, 3)
        receive(c, 3)
        assert 1.2 < time.monotonic() - t0 < 3.5
        sent = time.monotonic()
        market_data.tick(servers, "AAPL", 321.5)
        msg, at = receive_until(c, lambda m: m["prices"]["AAPL"]["price"] == 321.5)
        assert at - sent < 0.5 and set(msg["prices"]) == set(market.tickers)
    finally:
        c.close()


def test_strm002_ws_prices_symbol_filter(web, market, servers):
    c = ws(web, "/ws/prices?symbols=msft,tsla")
    try:
        assert set(receive(c)["prices"]) == {"MSFT", "TSLA"}
    finally:
        c.close()


def test_strm003_ws_alerts_snapshot_then_live_filtered(web, market, servers):
    every, critical = ws(web, "/ws/alerts"), ws(web, "/ws/alerts?severity=critical")
    try:
        snap = receive(every)
        assert snap["type"] == "snapshot"
        assert {a["alert_id"] for a in snap["alerts"]} == {a.alert_id for a in market.alerts}
        assert [a["alert_type"] for a in receive(critical)["alerts"]] == ["CIRCUIT_BREAKER"]
        new = Alert(alert_id="live-1", alert_type="VOLUME_SPIKE", severity="MEDIUM", symbol="AAPL",
                    price=190.0, reference=2.0, deviation=9.0, trade_id="t-live", ts=time.time(),
                    message="whale", side="SELL", quantity=18.0)
        market_data.publish_alert(servers, new, history=False)
        msg, _ = receive_until(every, lambda m: m["type"] == "alert")
        assert msg["alert"] == new.to_wire()
        assert critical.receive(timeout=1.5) is None  # filtered out
    finally:
        every.close()
        critical.close()


def test_strm004_ws_aggregates_pushes_finalized_candles(web, market, servers):
    c = ws(web, "/ws/aggregates?symbol=AAPL&window_seconds=60")
    try:
        r = redis.Redis.from_url(servers.redis_url)
        other = market.candles_of("MSFT", 60)[0]
        mine = market.candles_of("AAPL", 60)[-1]

        def pushed():
            """Publish both until the stream passes one on: the handler says nothing when it starts listening."""
            r.publish(speed_layer.CHANNEL_AGGREGATES, other.encode())
            r.publish(speed_layer.CHANNEL_AGGREGATES, mine.encode())
            raw = c.receive(timeout=0.5)
            return raw is not None and json.loads(raw)["type"] == "candle" and json.loads(raw)

        msg = wait_until(pushed, 15, "a candle on /ws/aggregates", interval=0)
        assert msg["candle"] == orjson.loads(mine.encode())
    finally:
        c.close()


def test_strm005_sse_prices(web, market, servers):
    with web.user.get(web.url + "/api/v1/stream/prices?symbols=AAPL", stream=True, timeout=10) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        events = []
        for line in lines:
            if line.startswith(b"data: "):
                events.append(json.loads(line[6:]))
                if len(events) == 1:
                    market_data.tick(servers, "AAPL", 222.25)
                if events[-1]["prices"]["AAPL"]["price"] == 222.25:
                    break
        assert list(events[0]["prices"]) == ["AAPL"] and events[-1]["type"] == "prices"


def test_strm006_stream_clients_gauge(web, market):
    def gauge():
        text = web.user.get(web.url + "/metrics", timeout=10).text
        line = next(x for x in text.splitlines() if x.startswith('web_websocket_clients{stream="prices"}'))
        return float(line.split()[-1])

    before = gauge()
    clients = [ws(web, "/ws/prices") for _ in range(3)]
    try:
        for c in clients:
            receive(c)
        assert gauge() == before + 3
    finally:
        for c in clients:
            c.close()
    wait_until(lambda: gauge() == before, 10, "the gauge back to its value before")


def test_strm007_served_by_gunicorn_and_stops_promptly_with_open_streams(servers, market, tmp_path, accounts):
    with running_web(servers, tmp_path) as server:
        server.sign_in(accounts["viewer"])
        assert "gunicorn" in server.get("/api/v1/health").headers.get("Server", "").lower()
        c = ws(server, "/ws/prices")
        receive(c)
        took = server.stop()
        assert took < 8, f"took {took:.1f}s to stop"
        assert server.proc.returncode == 0
