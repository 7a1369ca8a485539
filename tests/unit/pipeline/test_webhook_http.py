"""One webhook POST against local HTTP servers: a total deadline, redirects not followed, no URL in errors."""
import http.server
import socket
import threading

import pytest

from pipeline.webhook_delivery import post

RELEASE = threading.Event()  # set at teardown: lets the slow handlers end
PATH = "/T0K3N/hook?token=s3cr3t"


class Handler(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, dict(self.headers), body))
        behaviour = self.server.behaviour
        if behaviour == "hang":
            RELEASE.wait(60)
            return
        if behaviour == "trickle":  # one byte of the status line every 0.1 s: no socket timeout ever fires
            for byte in b"HTTP/1.1 200 OK\r\n" * 20:
                if RELEASE.wait(0.1):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            return
        status, location = behaviour
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    servers = []
    Handler.received = []
    RELEASE.clear()

    def start(behaviour) -> str:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.behaviour = behaviour
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    RELEASE.set()
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.mark.parametrize("status, ok", [(200, True), (204, True), (503, False), (404, False)])
def test_http001_status_decides_and_the_request_is_what_was_given(serve, status, ok):
    base = serve((status, None))
    r = post(base + PATH, b'{"a":1}', {"webhook-id": "a1"}, deadline=5.0)
    assert (r.ok, r.status) == (ok, status)
    path, headers, body = Handler.received[0]
    assert (path, body, headers["webhook-id"], headers["Content-Type"]) == (PATH, b'{"a":1}', "a1",
                                                                            "application/json")


@pytest.mark.parametrize("behaviour", ["hang", "trickle"])
def test_http002_a_server_that_hangs_or_trickles_is_cut_at_the_deadline(serve, behaviour):
    r = post(serve(behaviour) + PATH, b"{}", {}, deadline=0.5)
    assert (r.ok, r.status) == (False, None)
    assert "deadline" in r.error


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_http003_redirects_are_not_followed(serve, status):
    elsewhere = serve((200, None))
    r = post(serve((status, elsewhere + "/steal")) + PATH, b"{}", {"webhook-signature": "v1,x"}, deadline=5.0)
    assert (r.ok, r.status) == (False, status) and "redirect" in r.error
    assert [p for p, _, _ in Handler.received] == [PATH], "nothing reached the redirect target"


def test_http004_connection_errors_name_no_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    r = post(f"http://127.0.0.1:{port}{PATH}", b"{}", {}, deadline=5.0)
    assert not r.ok and r.status is None and "Connection" in r.error
    assert "T0K3N" not in r.error and "s3cr3t" not in r.error
