"""Admission control: ordinary requests run a few at a time, streams are never held back."""
import threading

from flask import Flask

from app import admission


def test_adm001_ordinary_requests_bounded_streams_exempt(monkeypatch):
    monkeypatch.setattr(admission, "WAIT_SECONDS", 60.0)  # a queued request would sit out the whole test
    server = Flask(__name__)
    admission.init_app(server, concurrency=2)
    running, peak, changed = [0], [0], threading.Condition()
    release = threading.Event()

    @server.get("/work")
    def work():
        with changed:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            changed.notify_all()
        release.wait(30)
        with changed:
            running[0] -= 1
        return "ok"

    @server.get("/ws/prices")
    def stream():
        return "stream"

    threads = [threading.Thread(target=lambda: server.test_client().get("/work")) for _ in range(8)]
    for t in threads:
        t.start()
    with changed:
        assert changed.wait_for(lambda: running[0] == 2, timeout=30), "two requests never got their slots"
    answered = []
    caller = threading.Thread(target=lambda: answered.append(server.test_client().get("/ws/prices").data))
    caller.start()
    caller.join(30)
    assert answered == [b"stream"] and running[0] == 2  # answered while both slots were held: not queued
    release.set()
    for t in threads:
        t.join(30)
    assert peak[0] == 2
