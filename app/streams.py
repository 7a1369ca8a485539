"""Live streams on the Flask server: WebSockets /ws/prices, /ws/alerts, /ws/aggregates and SSE prices.

``/ws/prices`` sends every symbol's ticker on connect, on each processor batch and at least once a
second; ``?symbols=AAPL,MSFT`` narrows it.  ``/ws/alerts`` sends a snapshot of recent alerts, then
each new alert (``?severity=``, ``?symbol=``, ``?type=`` filter).  ``/ws/aggregates`` sends each
finalized candle (``?symbol=``, ``?window_seconds=``).  ``/api/v1/stream/prices`` is the SSE form of
``/ws/prices``.  Every message is a JSON object with a ``type``.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Iterator, Optional

import orjson
from flask import Blueprint, Flask, Response, current_app, request, stream_with_context
from flask_sock import Sock

from app.live import AGGREGATES, ALERTS, LiveHub
from app.services import Services

logger = logging.getLogger(__name__)
sock = Sock()
sse = Blueprint("sse", __name__)
PRICE_PERIOD = 1.0   # a full snapshot at least this often
IDLE_PERIOD = 15.0   # alerts/aggregates: a heartbeat message this often


def _services() -> Services:
    return current_app.extensions["stockit"]


def _hub() -> LiveHub:
    return current_app.extensions["stockit.hub"].start()


def _csv_arg(name: str) -> Optional[set[str]]:
    raw = request.args.get(name, "")
    values = {v.strip().upper() for v in raw.split(",") if v.strip()}
    return values or None


def _price_messages(hub: LiveHub, symbols: Optional[set[str]]) -> Iterator[bytes]:
    """Encoded price snapshots: at once, on every change, and at least every PRICE_PERIOD."""
    version, last_sent = -1, 0.0
    while not hub.stopping.is_set():
        wait = max(0.0, last_sent + PRICE_PERIOD - time.monotonic())
        new_version, prices = hub.wait_prices(version, wait)
        now = time.monotonic()
        if new_version != version or now - last_sent >= PRICE_PERIOD:
            version, last_sent = new_version, now
            if symbols is not None:
                prices = {s: t for s, t in prices.items() if s in symbols}
            yield orjson.dumps({"type": "prices", "server_ts": time.time(), "live": hub.connected,
                                "prices": prices})


def _alert_filter() -> Callable[[dict], bool]:
    sev, sym, typ = _csv_arg("severity"), _csv_arg("symbol"), _csv_arg("type")
    return lambda a: ((sev is None or a.get("severity") in sev) and (sym is None or a.get("symbol") in sym)
                      and (typ is None or a.get("alert_type") in typ))


class _ClientCount:
    def __init__(self, stream: str):
        self.gauge = current_app.extensions["stockit.metrics"].ws_clients.labels(stream)

    def __enter__(self):
        self.gauge.inc()

    def __exit__(self, *exc):
        self.gauge.dec()


@sock.route("/ws/prices")
def ws_prices(ws) -> None:
    hub, symbols = _hub(), _csv_arg("symbols")
    with _ClientCount("prices"):
        for message in _price_messages(hub, symbols):
            ws.send(message.decode())


@sock.route("/ws/alerts")
def ws_alerts(ws) -> None:
    hub, keep = _hub(), _alert_filter()
    with _ClientCount("alerts"):
        seq = hub.current_seq()
        try:
            recent = _services().speed(lambda r: r.recent_alerts(50))
        except Exception:  # noqa: BLE001 - a snapshot is a courtesy; the stream still works
            recent = []
        ws.send(orjson.dumps({"type": "snapshot", "alerts": [a for a in recent if keep(a)]}).decode())
        for message in _events_after(hub, ALERTS, keep, seq):
            ws.send(message.decode())


def _events_after(hub: LiveHub, kind: str, keep: Callable[[dict], bool], seq: int) -> Iterator[bytes]:
    """Events of ``kind`` numbered above ``seq`` that pass ``keep``, and a heartbeat when idle."""
    last_sent = time.monotonic()
    name = "alert" if kind == ALERTS else "candle"
    while not hub.stopping.is_set():
        seq, events = hub.wait_events(kind, seq, 1.0)
        for e in events:
            if keep(e):
                last_sent = time.monotonic()
                yield orjson.dumps({"type": name, name: e})
        if time.monotonic() - last_sent >= IDLE_PERIOD:
            last_sent = time.monotonic()
            yield orjson.dumps({"type": "heartbeat", "server_ts": time.time(), "live": hub.connected})


@sock.route("/ws/aggregates")
def ws_aggregates(ws) -> None:
    hub, symbols = _hub(), _csv_arg("symbol")
    windows = {int(w) for w in (_csv_arg("window_seconds") or set()) if w.isdigit()} or None

    def keep(c: dict) -> bool:
        return ((symbols is None or c.get("symbol") in symbols)
                and (windows is None or c.get("window_seconds") in windows))

    with _ClientCount("aggregates"):
        for message in _events_after(hub, AGGREGATES, keep, hub.current_seq()):
            ws.send(message.decode())


@sse.route("/api/v1/stream/prices")
def sse_prices() -> Response:
    hub, symbols = _hub(), _csv_arg("symbols")
    gauge = current_app.extensions["stockit.metrics"].ws_clients.labels("sse-prices")

    def events() -> Iterator[bytes]:
        gauge.inc()
        try:
            yield b"retry: 2000\n\n"
            for message in _price_messages(hub, symbols):
                yield b"event: prices\ndata: " + message + b"\n\n"
        finally:
            gauge.dec()

    return Response(stream_with_context(events()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def init_app(server: Flask) -> None:
    sock.init_app(server)
    server.register_blueprint(sse)
    server.config.setdefault("SOCK_SERVER_OPTIONS", {"ping_interval": 25})
