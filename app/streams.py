"""Live streams on the Flask server: WebSockets /ws/prices, /ws/alerts, /ws/aggregates and SSE prices.

``/ws/prices`` sends every symbol's ticker on connect, then when prices change (at most every
``STOCKIT_STREAM_PRICE_INTERVAL``, changes in between merged) and at least once a second;
``?symbols=AAPL,MSFT`` narrows it.  ``/ws/alerts`` sends a snapshot of recent alerts, then
each new alert (``?severity=``, ``?symbol=``, ``?type=`` filter).  ``/ws/aggregates`` sends each
finalized candle (``?symbol=``, ``?window_seconds=``).  ``/api/v1/stream/prices`` is the SSE form of
``/ws/prices``.  Every message is a JSON object with a ``type``.  Limits on stream clients: app/sockets.py.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Iterator, Optional

import orjson
from flask import Blueprint, Flask, Response, current_app, request, stream_with_context

from app import sockets
from app.live import AGGREGATES, ALERTS, LiveHub
from app.services import current
from app.sockets import SocketRoutes, StreamSocket

logger = logging.getLogger(__name__)
routes = SocketRoutes("ws")
sse = Blueprint("sse", __name__)
IDLE_PERIOD = 15.0   # alerts/aggregates: a heartbeat message this often
EVENT_WAIT = 1.0     # alerts/aggregates: how often a handler looks whether its client is still there


def _hub() -> LiveHub:
    return current_app.extensions["stockit.hub"].start()


def _csv_arg(name: str) -> Optional[set[str]]:
    raw = request.args.get(name, "")
    values = {v.strip().upper() for v in raw.split(",") if v.strip()}
    return values or None


def _symbols_arg() -> Optional[frozenset]:
    symbols = _csv_arg("symbols")
    return frozenset(symbols) if symbols is not None else None


def _price_messages(hub: LiveHub, symbols: Optional[frozenset]) -> Iterator[bytes]:
    """The hub's price frames for ``symbols``: the newest at once, then each new one (at least every
    PRICE_PERIOD).  A client that was busy gets the newest frame next, never a backlog."""
    sent = None
    frame, message = hub.price_message(symbols)
    while not hub.stopping.is_set():
        if frame != sent:
            yield message
            sent = frame
        hub.wait_price_frame(frame)
        frame, message = hub.price_message(symbols)


def _alert_filter() -> Callable[[dict], bool]:
    sev, sym, typ = _csv_arg("severity"), _csv_arg("symbol"), _csv_arg("type")
    return lambda a: ((sev is None or a.get("severity") in sev) and (sym is None or a.get("symbol") in sym)
                      and (typ is None or a.get("alert_type") in typ))


@routes.route("/ws/prices", stream="prices")
def ws_prices(ws: StreamSocket) -> None:
    hub, symbols = _hub(), _symbols_arg()
    for message in _price_messages(hub, symbols):
        ws.send_shared(message)


@routes.route("/ws/alerts", stream="alerts")
def ws_alerts(ws: StreamSocket) -> None:
    hub, keep = _hub(), _alert_filter()
    seq = hub.current_seq()
    try:
        recent = current().speed(lambda r: r.recent_alerts(50))
    except Exception:  # noqa: BLE001 - a snapshot is a courtesy; the stream still works
        recent = []
    ws.send(orjson.dumps({"type": "snapshot", "alerts": [a for a in recent if keep(a)]}).decode())
    for message in _events_after(hub, ALERTS, keep, seq, ws):
        ws.send(message.decode())


def _events_after(hub: LiveHub, kind: str, keep: Callable[[dict], bool], seq: int,
                  ws: StreamSocket) -> Iterator[bytes]:
    """Events of ``kind`` numbered above ``seq`` that pass ``keep``, and a heartbeat when idle; ends when
    the client has gone."""
    last_sent = time.monotonic()
    name = "alert" if kind == ALERTS else "candle"
    while not hub.stopping.is_set() and ws.connected:
        seq, events = hub.wait_events(kind, seq, EVENT_WAIT)
        for e in events:
            if keep(e):
                last_sent = time.monotonic()
                yield orjson.dumps({"type": name, name: e})
        if time.monotonic() - last_sent >= IDLE_PERIOD:
            last_sent = time.monotonic()
            yield orjson.dumps({"type": "heartbeat", "server_ts": time.time(), "live": hub.connected})


@routes.route("/ws/aggregates", stream="aggregates")
def ws_aggregates(ws: StreamSocket) -> None:
    hub, symbols = _hub(), _csv_arg("symbol")
    windows = {int(w) for w in (_csv_arg("window_seconds") or set()) if w.isdigit()} or None

    def keep(c: dict) -> bool:
        return ((symbols is None or c.get("symbol") in symbols)
                and (windows is None or c.get("window_seconds") in windows))

    for message in _events_after(hub, AGGREGATES, keep, hub.current_seq(), ws):
        ws.send(message.decode())


@sse.route("/api/v1/stream/prices")
def sse_prices() -> Response:
    hub, symbols, streams = _hub(), _symbols_arg(), sockets.gate()
    if not streams.enter("sse-prices"):
        return streams.refusal()
    raw = request.environ.get("gunicorn.socket")
    if raw is not None:
        streams.policy.apply(raw)  # a client that stops reading times out a write: gunicorn drops it

    def events() -> Iterator[bytes]:
        yield b"retry: 2000\n\n"
        for message in _price_messages(hub, symbols):
            yield b"event: prices\ndata: " + message + b"\n\n"

    response = Response(stream_with_context(events()), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    response.call_on_close(lambda: streams.leave("sse-prices"))
    return response


def init_app(server: Flask) -> None:
    server.register_blueprint(routes.blueprint)
    server.register_blueprint(sse)
