"""Stream connections under limits: WebSocket endpoints over simple-websocket, and the socket policy of SSE.

A stream client is cut off, without touching the others, when its socket takes no data for
``send_timeout`` seconds (the kernel send buffer, capped at ``send_buffer`` bytes, is its bounded
send queue; a price stream never queues more, it sends the newest frame once the socket takes it),
when it has not answered a ping by the next one, or when it sends a message over
``max_message_bytes`` (closed with 1009).  Streams hold at most ``max_streams`` of a process's
connections, so ordinary requests always find one.  Writes to a socket are whole and serialised:
the stream's frames and simple-websocket's control frames never interleave.
"""
from __future__ import annotations

import functools
import logging
import socket
import struct
import threading
from dataclasses import dataclass
from typing import Callable, Optional

import simple_websocket
from flask import Blueprint, Flask, Response, current_app, request
from simple_websocket import ConnectionClosed
from wsproto.frame_protocol import CloseReason, FrameProtocol
from wsproto.utilities import RemoteProtocolError

from app.api import error_response
from app.metrics import WebMetrics
from pipeline.settings import Settings

logger = logging.getLogger(__name__)
SLOW, UNRESPONSIVE, TOO_BIG, FULL = "slow", "unresponsive", "too_big", "full"
INBOX_KEPT = 8  # streams take no input: a client's messages beyond this are discarded
RETRY_AFTER_SECONDS = 5


def stream_limit(connections: int) -> int:
    """Streams one process admits: all but a tenth of its connections, kept for ordinary requests."""
    return max(1, connections - max(1, connections // 10))


@dataclass(frozen=True)
class StreamPolicy:
    max_message_bytes: int
    send_timeout: float
    send_buffer: int
    ping_interval: float
    max_streams: int

    @classmethod
    def from_settings(cls, s: Settings) -> "StreamPolicy":
        return cls(max_message_bytes=s.stream_max_message_bytes, send_timeout=s.stream_send_timeout,
                   send_buffer=s.stream_send_buffer, ping_interval=s.stream_ping_interval,
                   max_streams=stream_limit(s.web_connections))

    def apply(self, sock: socket.socket) -> None:
        """Bound the socket's unsent bytes and the time any write may wait for the client."""
        sock.settimeout(self.send_timeout)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)


class StreamGate:
    """Admits stream clients up to the policy's limit; counts them, and the ones refused or cut off."""

    def __init__(self, policy: StreamPolicy, metrics: WebMetrics):
        self.policy = policy
        self.metrics = metrics
        self.open = 0
        self._lock = threading.Lock()

    def enter(self, stream: str) -> bool:
        with self._lock:
            if self.open >= self.policy.max_streams:
                admitted = False
            else:
                self.open += 1
                admitted = True
        if admitted:
            self.metrics.ws_clients.labels(stream).inc()
        else:
            self.dropped(stream, FULL)
        return admitted

    def leave(self, stream: str) -> None:
        with self._lock:
            self.open -= 1
        self.metrics.ws_clients.labels(stream).dec()

    def dropped(self, stream: str, reason: str) -> None:
        self.metrics.stream_drops.labels(stream, reason).inc()

    def refusal(self) -> Response:
        response = error_response(503, "streams_full", "this server holds all the streams it may; try later")
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response


def gate() -> StreamGate:
    return current_app.extensions["stockit.streams"]


def init_app(server: Flask, settings: Settings, metrics: WebMetrics) -> StreamGate:
    server.extensions["stockit.streams"] = StreamGate(StreamPolicy.from_settings(settings), metrics)
    return server.extensions["stockit.streams"]


@functools.lru_cache(maxsize=64)
def text_frame(payload: bytes) -> bytes:
    """A server's unmasked WebSocket text frame of a UTF-8 ``payload``: framed once, sent to many clients."""
    return bytes(FrameProtocol(client=False, extensions=[]).send_data(payload.decode(), fin=True))


class _Inbox(list):
    """simple-websocket's input buffer, keeping only the newest ``INBOX_KEPT`` messages."""

    def append(self, item) -> None:
        super().append(item)
        if len(self) > INBOX_KEPT:
            del self[0]


class _Writer:
    """The connection's socket as simple-websocket sees it: every write whole, one at a time, bounded in
    time by the socket's timeout."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.lock = threading.Lock()

    def send(self, data: bytes) -> int:
        with self.lock:
            view = memoryview(data)
            while view:  # send() until all is out: cheaper than gevent's sendall() when the socket takes it
                view = view[self.sock.send(view):]
        return len(data)

    def recv(self, size: int) -> bytes:
        return self.sock.recv(size)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


SERVER_SOCKETS = ("gunicorn.socket", "werkzeug.socket")


class StreamSocket(simple_websocket.Server):
    """A server WebSocket under a :class:`StreamPolicy`, without compression; ``dropped`` says why the
    server cut the client off (None: it left or the stream ended)."""

    def __init__(self, environ: dict, policy: StreamPolicy):
        key = next(k for k in SERVER_SOCKETS if k in environ)
        self.raw = environ[key]
        policy.apply(self.raw)
        self.dropped: Optional[str] = None
        # Without the client's Sec-WebSocket-Extensions offer no permessage-deflate is negotiated: no zlib
        # state per client, and one frame of a shared message fits every client.
        environ = {k: v for k, v in environ.items() if k != "HTTP_SEC_WEBSOCKET_EXTENSIONS"}
        environ[key] = _Writer(self.raw)
        super().__init__(environ, ping_interval=policy.ping_interval,
                         max_message_size=policy.max_message_bytes)
        self.input_buffer = _Inbox(self.input_buffer)

    def send(self, data) -> None:
        """Send one text (str) or binary (bytes) message."""
        self._write(lambda: super(StreamSocket, self).send(data))

    def send_shared(self, payload: bytes) -> None:
        """Send a JSON text message many clients receive (see :func:`text_frame`)."""
        if not self.connected:
            raise ConnectionClosed(self.close_reason, self.close_message)
        self._write(lambda: self.sock.send(text_frame(payload)))

    def _write(self, write: Callable[[], object]) -> None:
        try:
            write()
        except TimeoutError:
            self.drop(SLOW)
            raise ConnectionClosed(self.close_reason, "too slow") from None
        except OSError:
            self.connected = False
            raise ConnectionClosed(self.close_reason, self.close_message) from None

    def close(self, reason=None, message=None) -> None:
        if reason == CloseReason.POLICY_VIOLATION:  # simple-websocket's verdict on an unanswered ping
            self.drop(UNRESPONSIVE)
            return
        super().close(reason, message)

    def drop(self, reason: str) -> None:
        """Cut the client off at once: no closing handshake (it reads nothing), its unsent bytes discarded
        (the socket is reset when it closes), simple-websocket's reader woken to close it."""
        self.dropped = self.dropped or reason
        self.connected = False
        try:
            self.raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.raw.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def finish(self) -> Optional[str]:
        """End the connection after the handler; returns why the server cut the client off, if it did."""
        if self.dropped is None and self.incoming_message_len > (self.max_message_size or float("inf")):
            self.dropped = TOO_BIG  # simple-websocket closed it with 1009
        if self.connected:
            try:
                self.close()
            except (ConnectionClosed, OSError):
                pass
        return self.dropped


class _Handled(Response):
    """What a WebSocket endpoint returns: the server must write nothing more on the connection."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode

    def __call__(self, environ, start_response):
        if self.mode == "gunicorn":
            raise StopIteration()  # gunicorn closes the connection without writing a response
        return super().__call__(environ, start_response)


def _bad_handshake() -> Response:
    return error_response(400, "bad_handshake", "not a valid WebSocket opening handshake")


class SocketRoutes:
    """WebSocket endpoints on a blueprint: ``@routes.route(path, stream=name)`` over ``handler(ws)``.

    They go through Flask's request path (``before_request`` guards run first); the upgrade is refused
    with 503 when the process holds all the streams its policy allows.
    """

    def __init__(self, name: str):
        self.blueprint = Blueprint(name, __name__)

    def route(self, path: str, stream: str):
        def decorator(handler: Callable[[StreamSocket], None]):
            @functools.wraps(handler)
            def endpoint():
                streams = gate()
                if not any(k in request.environ for k in SERVER_SOCKETS):
                    raise RuntimeError("WebSockets need gunicorn or Werkzeug's server (no socket in environ)")
                if not streams.enter(stream):
                    return streams.refusal()
                try:
                    try:
                        ws = StreamSocket(request.environ, streams.policy)
                    except (simple_websocket.ConnectionError, RemoteProtocolError):
                        return _bad_handshake()
                    try:
                        handler(ws)
                    except ConnectionClosed:
                        pass
                    finally:
                        reason = ws.finish()
                        if reason is not None:
                            streams.dropped(stream, reason)
                            logger.info("stream %s: client %s cut off (%s)", stream, request.remote_addr,
                                        reason)
                finally:
                    streams.leave(stream)
                return _Handled(ws.mode)

            self.blueprint.add_url_rule(path, view_func=endpoint, websocket=True)
            return handler

        return decorator
