"""Admission control: ordinary requests run a few at a time, streams are never held back."""
import threading
import time

from flask import Flask

from app import admission


def test_adm001_ordinary_requests_bounded_streams_exempt():
    server = Flask(__name__)
    admission.init_app(server, concurrency=2)
    running, peak, lock = [0], [0], threading.Lock()

    @server.get("/work")
    def work():
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        return "ok"

    @server.get("/ws/prices")
    def stream():
        return "stream"

    threads = [threading.Thread(target=lambda: server.test_client().get("/work")) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    started = time.perf_counter()
    assert server.test_client().get("/ws/prices").data == b"stream"  # not queued behind /work
    assert time.perf_counter() - started < 0.15
    for t in threads:
        t.join()
    assert peak[0] == 2
