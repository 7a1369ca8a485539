"""A local webhook endpoint for the fault tests: records each arrival; can hang like a dead peer."""
from __future__ import annotations

import http.server
import json
import logging
import threading
import time
from dataclasses import dataclass

logger = logging.getLogger(__name__)
ID_HEADERS = ("webhook-id", "X-Stockit-Alert-Id")  # Standard Webhooks' message id is the alert id


@dataclass(frozen=True)
class Arrival:
    alert_id: str
    body: dict
    at: float  # time.monotonic() when the request arrived


class WebhookReceiver:
    """Answers 200 to every POST, after holding it ``hang`` seconds (or until ``close``)."""

    def __init__(self, hang: float = 0.0):
        self.hang = hang
        self.arrivals: list[Arrival] = []
        self._released = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = {"unreadable": body[:200].decode(errors="replace")}
                alert_id = next((self.headers[h] for h in ID_HEADERS if self.headers.get(h)),
                                payload.get("alert_id", ""))
                receiver.arrivals.append(Arrival(alert_id, payload, time.monotonic()))
                if receiver.hang:
                    receiver._released.wait(receiver.hang)
                try:
                    self.send_response(200)
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up on us

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver",
                                        daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def by_alert(self) -> dict[str, list[Arrival]]:
        out: dict[str, list[Arrival]] = {}
        for a in list(self.arrivals):
            out.setdefault(a.alert_id, []).append(a)
        return out

    def close(self) -> None:
        self._released.set()
        self.server.shutdown()
        self.server.server_close()
