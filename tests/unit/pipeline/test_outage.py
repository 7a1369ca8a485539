"""Waiting out an unavailable server: what is transient, capped backoff, one log line per change."""
import logging
import threading

import psycopg2
import pytest
import redis

from pipeline.outage import (Availability, Stopped, call_until_available, retry_delay, unavailable_server)


@pytest.mark.parametrize("exc, server", [
    (redis.ConnectionError("Connection refused"), "redis"),
    (redis.TimeoutError("Timeout reading from socket"), "redis"),
    (redis.BusyLoadingError("loading the dataset"), "redis"),
    (psycopg2.OperationalError("server closed the connection unexpectedly"), "postgres"),
    (psycopg2.InterfaceError("connection already closed"), "postgres"),
    (psycopg2.DataError("invalid input syntax"), None),
    (psycopg2.IntegrityError("duplicate key"), None),
    (redis.ResponseError("WRONGTYPE"), None),
    (KeyError("bug"), None),
])
def test_out001_only_unreachable_servers_are_transient(exc, server):
    assert unavailable_server(exc) == server


@pytest.mark.parametrize("attempt, delay", [(0, 0.1), (1, 0.2), (3, 0.8), (6, 5.0), (1000, 5.0)])
def test_out002_backoff_doubles_and_is_capped(attempt, delay):
    assert retry_delay(attempt, cap=5.0) == pytest.approx(delay)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_out003_one_log_line_and_one_report_per_change_of_state(caplog):
    clock, changes = FakeClock(), []
    a = Availability(lambda server, since: changes.append((server, since)), clock)
    with caplog.at_level(logging.INFO, logger="pipeline.outage"):
        for _ in range(5):
            a.failed("redis", redis.ConnectionError("refused"))
            clock.now += 1
        a.answered(["redis", "postgres"])
        a.answered(["redis"])
    assert changes == [("redis", 1000.0), ("redis", None)]
    messages = [r.getMessage().split(" (")[0] for r in caplog.records]
    assert messages == ["redis unavailable", "redis available again after 5.0 s"]
    assert a.describe() == {}


class Flaky:
    """Fails with the given errors, then answers."""

    def __init__(self, *errors):
        self.errors = list(errors)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


class NoWait(threading.Event):
    """A stop event whose waits return at once (the test needs no real time to pass)."""

    def __init__(self, stop_after: int = 10**9):
        super().__init__()
        self.waits: list[float] = []
        self.stop_after = stop_after

    def wait(self, timeout=None):
        self.waits.append(timeout)
        return len(self.waits) >= self.stop_after


def test_out004_retries_transient_errors_then_marks_the_server_available():
    a, stop = Availability(), NoWait()
    fn = Flaky(redis.ConnectionError("a"), redis.ConnectionError("b"), psycopg2.OperationalError("c"))
    retried = []
    assert call_until_available(fn, a, stop, cap=5.0, on_retry=retried.append) == "done"
    assert fn.calls == 4 and retried == ["redis", "redis", "postgres"]
    assert stop.waits == [0.1, 0.2, 0.4]
    assert a.describe() == {}


def test_out005_other_errors_propagate_at_once():
    a, stop = Availability(), NoWait()
    fn = Flaky(psycopg2.DataError("bad row"))
    with pytest.raises(psycopg2.DataError):
        call_until_available(fn, a, stop, cap=5.0)
    assert fn.calls == 1 and stop.waits == []


def test_out006_a_stop_while_waiting_ends_the_wait():
    a, stop = Availability(), NoWait(stop_after=3)
    fn = Flaky(*[redis.ConnectionError("down")] * 100)
    with pytest.raises(Stopped):
        call_until_available(fn, a, stop, cap=5.0)
    assert fn.calls == 3 and "redis" in a.describe()
