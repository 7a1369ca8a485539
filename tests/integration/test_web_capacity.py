"""Streams cannot starve requests: many sockets, several processes, clients that misbehave."""
from __future__ import annotations

import asyncio
import base64
import os
import socket
import statistics
import struct
import threading
import time
from collections import Counter
from typing import Optional

import orjson
import pytest
import requests
import simple_websocket
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from pipeline.events import Alert
from tests import market_data
from tests.integration.helpers import wait_until
from tests.sign_in import cookie_header
from tests.web_server import running_web

pytestmark = pytest.mark.integration
LIMITS = {"STOCKIT_WEB_WORKERS": "2", "STOCKIT_WEB_CONNECTIONS": "400", "STOCKIT_STREAM_PING_INTERVAL": "1",
          "STOCKIT_STREAM_SEND_TIMEOUT": "1", "STOCKIT_STREAM_SEND_BUFFER": "4096",
          "STOCKIT_STREAM_MAX_MESSAGE_BYTES": "1024", "STOCKIT_STALE_AFTER_SECONDS": "60"}
TCP_ESTABLISHED = 1


@pytest.fixture(scope="module")
def web(servers, accounts, tmp_path_factory):
    with running_web(servers, tmp_path_factory.mktemp("web"), **LIMITS) as server:
        server.sign_in(accounts["viewer"])
        yield server


def auth(web) -> dict:
    """The signed-in viewer's cookie, for clients other than ``web.get``."""
    return {"Cookie": cookie_header(web.user)}


class Crowd:
    """WebSocket clients that read everything they are sent, held by one asyncio loop on a thread."""

    def __init__(self, base_url: str, headers: dict):
        self.url = base_url.replace("http", "ws", 1)
        self.headers = headers
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.tasks: list[asyncio.Task] = []
        self.messages: list[list[dict]] = []

    def open(self, path: str, n: int, timeout: float = 120) -> list[object]:
        """Open ``n`` clients of ``path``; returns each one's outcome: "open", an HTTP status or an error."""
        return asyncio.run_coroutine_threadsafe(self._open(path, n), self.loop).result(timeout)

    async def _open(self, path: str, n: int) -> list[object]:
        outcomes: list[asyncio.Future] = []
        for _ in range(n):
            outcomes.append(self.loop.create_future())
            self.messages.append([])
            self.tasks.append(asyncio.ensure_future(self._client(path, outcomes[-1], self.messages[-1])))
            if len(outcomes) % 50 == 0:
                await asyncio.gather(*outcomes[-50:])
        return list(await asyncio.gather(*outcomes))

    async def _client(self, path: str, outcome: asyncio.Future, inbox: list) -> None:
        try:
            async with connect(self.url + path, open_timeout=60, ping_interval=None,
                               additional_headers=self.headers) as ws:
                outcome.set_result("open")
                async for raw in ws:
                    inbox.append(orjson.loads(raw))
        except InvalidStatus as exc:
            outcome.set_result(exc.response.status_code)
        except (OSError, ConnectionClosed, asyncio.TimeoutError) as exc:
            if not outcome.done():
                outcome.set_result(repr(exc))

    def close(self) -> None:
        async def cancel() -> None:
            for t in self.tasks:
                t.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def metric(web, name: str, **labels: str) -> float:
    """The value of one sample on /metrics (0 when absent), summed over the server's processes."""
    for family in text_string_to_metric_families(web.user.get(web.url + "/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def health_latencies(web, n: int = 10) -> list[float]:
    """Seconds each of ``n`` GET /api/v1/health took, on fresh connections; each must answer 200."""
    took = []
    for _ in range(n):
        started = time.monotonic()
        r = requests.get(web.url + "/api/v1/health", headers=auth(web), timeout=10)
        took.append(time.monotonic() - started)
        assert r.status_code == 200, r.text
    return took


def never_reading_client(web, path: str) -> socket.socket:
    """A client that completes the WebSocket handshake and then reads nothing (with a small window)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = web.url.split("//")[1].split(":")
    s.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nCookie: {auth(web)['Cookie']}\r\n\r\n"
              .encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def tcp_state(s: socket.socket) -> int:
    return struct.unpack("B", s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1))[0]


def ws(web, path: str) -> simple_websocket.Client:
    return simple_websocket.Client.connect(web.url.replace("http", "ws", 1) + path, headers=auth(web))


def test_cap001_300_idle_sockets_all_open_while_health_answers(web, market):
    assert len(web.worker_pids()) == 2  # STOCKIT_WEB_WORKERS as configured
    crowd = Crowd(web.url, auth(web))
    try:
        outcomes = crowd.open("/ws/alerts", 250) + crowd.open("/ws/prices?symbols=AAPL", 50)
        assert Counter(outcomes) == {"open": 300}
        wait_until(lambda: all(crowd.messages), 30, "every client's first message")
        assert statistics.median(health_latencies(web)) < 1.0
        r = web.user.get(web.url + "/api/v1/prices", timeout=10)
        assert r.status_code == 200 and r.json()["count"] == len(market.tickers)
        assert metric(web, "web_websocket_clients", stream="alerts") == 250
        assert metric(web, "web_websocket_clients", stream="prices") == 50
    finally:
        crowd.close()


def test_cap002_every_process_clients_get_every_alert(web, market, servers):
    crowd = Crowd(web.url, auth(web))
    try:
        assert Counter(crowd.open("/ws/alerts?type=VOLUME_SPIKE", 40)) == {"open": 40}
        wait_until(lambda: all(crowd.messages), 30, "every client's snapshot")
        held = web.connections_by_worker()
        assert len(held) == 2 and all(held.values()), f"clients did not reach both processes: {held}"
        new = Alert(alert_id="fan-out-1", alert_type="VOLUME_SPIKE", severity="MEDIUM", symbol="AAPL",
                    price=190.0, reference=2.0, deviation=9.0, trade_id="t-fan", ts=time.time(),
                    message="whale", side="SELL", quantity=18.0)
        market_data.publish_alert(servers, new, history=False)

        def got_it() -> int:
            return sum(1 for inbox in crowd.messages if any(m.get("type") == "alert" for m in inbox))

        wait_until(lambda: got_it() == 40, 10, "the alert at every client of every process")
        alerts = [m["alert"] for inbox in crowd.messages for m in inbox if m["type"] == "alert"]
        assert alerts == [new.to_wire()] * 40
    finally:
        crowd.close()


def test_cap003_never_reading_client_cut_off_others_keep_receiving(web, market):
    def dropped() -> float:
        return sum(metric(web, "web_stream_drops_total", stream="prices", reason=reason)
                   for reason in ("slow", "unresponsive"))

    dropped_before = dropped()
    reader = ws(web, "/ws/prices")
    stuck = never_reading_client(web, "/ws/prices")
    try:
        started = time.monotonic()
        wait_until(lambda: tcp_state(stuck) != TCP_ESTABLISHED, 30, "the server to cut off the client")
        waited = time.monotonic() - started
        wait_until(lambda: dropped() == dropped_before + 1, 10, "the drop counted")
        received = 0
        while reader.receive(timeout=0) is not None:
            received += 1
        assert received >= int(waited) - 1  # a snapshot a second all along
        assert reader.receive(timeout=3) is not None and reader.connected
    finally:
        reader.close()
        stuck.close()


def test_cap004_message_over_the_limit_closes_only_its_client(web, market):
    other = ws(web, "/ws/prices")
    too_big_before = metric(web, "web_stream_drops_total", stream="alerts", reason="too_big")

    async def send_too_much() -> Optional[int]:
        async with connect(web.url.replace("http", "ws", 1) + "/ws/alerts", ping_interval=None,
                           additional_headers=auth(web)) as client:
            assert orjson.loads(await client.recv())["type"] == "snapshot"
            await client.send("x" * 1025)  # STOCKIT_STREAM_MAX_MESSAGE_BYTES is 1024
            try:
                while True:
                    await asyncio.wait_for(client.recv(), 10)
            except ConnectionClosed:
                return client.close_code

    try:
        assert asyncio.run(send_too_much()) == 1009  # message too big
        wait_until(lambda: metric(web, "web_stream_drops_total", stream="alerts", reason="too_big")
                   == too_big_before + 1, 10, "the drop counted")
        assert other.receive(timeout=3) is not None and other.receive(timeout=3) is not None
    finally:
        other.close()


def test_cap005_streams_cannot_take_the_connections_requests_need(servers, accounts, market, tmp_path):
    # One process with 20 connections admits 18 streams; the two left are for requests.
    with running_web(servers, tmp_path, STOCKIT_WEB_WORKERS="1", STOCKIT_WEB_CONNECTIONS="20") as server:
        assert len(server.worker_pids()) == 1
        server.sign_in(accounts["viewer"])
        crowd = Crowd(server.url, auth(server))
        try:
            assert Counter(crowd.open("/ws/alerts", 25)) == {"open": 18, 503: 7}
            assert statistics.median(health_latencies(server, 5)) < 1.0
            assert server.user.get(server.url + "/api/v1/prices", timeout=10).status_code == 200
            assert metric(server, "web_stream_drops_total", stream="alerts", reason="full") == 7
        finally:
            crowd.close()
