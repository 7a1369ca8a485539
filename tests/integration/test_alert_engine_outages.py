"""The alert engine on a bad day, against real servers: Redis and PostgreSQL go down and come back, a
webhook endpoint hangs, records are redelivered or malformed, a replay runs on another clock.

Destructive tests start their own Redis or PostgreSQL (the session's servers are shared) and stop it.
"""
from __future__ import annotations

import http.server
import logging
import signal
import threading
import time

import orjson
import pytest
import redis
from prometheus_client import CollectorRegistry

from pipeline import speed_layer
from pipeline.alert_engine import AlertEngine
from pipeline.history.writer import HistoryWriter
from pipeline.metrics import AlertEngineMetrics
from pipeline.migrations import migrate
from pipeline.stack.servers import PostgresServer, RedisServer, free_port
from pipeline.webhooks import ID_HEADER, endpoint_key, redact_url, verify
from tests.integration.helpers import consume_all, produce, sql, wait_until
from tests.integration.test_alert_engine import SECRET, T0, make_alert, publish, status

pytestmark = pytest.mark.integration
RELEASE = threading.Event()  # set at teardown: ends the handlers of hanging endpoints


class HookServer:
    """A local webhook receiver: records every request; ``hang`` holds each one up to 60 s unanswered."""

    def __init__(self, hang: bool = False):
        self.received: list[tuple[dict, bytes, float]] = []
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.received.append((dict(self.headers), body, time.monotonic()))
                if hang:
                    RELEASE.wait(60)
                    return
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T0K3N?sig=s3cr3t"

    def ids(self) -> list[str]:
        return [h[ID_HEADER] for h, _, _ in self.received]

    def first_arrival(self, alert_id: str):
        return next((t for h, _, t in self.received if h[ID_HEADER] == alert_id), None)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hooks():
    made: list[HookServer] = []
    RELEASE.clear()

    def make(hang: bool = False) -> HookServer:
        made.append(HookServer(hang))
        return made[-1]

    yield make
    RELEASE.set()
    for h in made:
        h.close()


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path, free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def own_postgres(tmp_path):
    server = PostgresServer(tmp_path, free_port()).start()
    migrate(server.url)
    yield server
    server.stop()


def store_rows(settings, *alerts) -> None:
    """The alerts' rows, as the processor writes them, without publishing them."""
    writer = HistoryWriter(settings.database_url)
    try:
        writer.flush(trades=[], candles=[], alerts=list(alerts), outbox=[], checkpoints=[])
    finally:
        writer.close()


def engine_settings(settings, *hooks: HookServer, **changes):
    return settings.replace(webhook_urls=",".join(h.url for h in hooks), webhook_secret=SECRET,
                            webhook_backoff=0.2, outage_retry_max=0.5, **changes)


def delivered(settings, alert) -> bool:
    return (status(settings, alert) or (None, None))[1] == "delivered"


def outage_lines(caplog, server: str) -> list[str]:
    return [r.getMessage().split(" (")[0].split(" after")[0] for r in caplog.records
            if r.name == "pipeline.outage" and r.getMessage().startswith(server)]


def kill(server) -> None:
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    server.proc = None


def test_alrt101_redis_down_then_back_nothing_lost_nothing_sent_twice(topics, own_redis, hooks, run_worker,
                                                                      caplog):
    caplog.set_level(logging.INFO, logger="pipeline.outage")
    hook = hooks()
    settings = engine_settings(topics.replace(redis_url=own_redis.url), hook)
    metrics = AlertEngineMetrics(CollectorRegistry())
    before = [make_alert("rb1", "CIRCUIT_BREAKER", "AAPL"), make_alert("rb2", "PRICE_SPIKE", "MSFT")]
    publish(settings, *before)
    engine = run_worker(AlertEngine(settings, metrics).run, "engine")
    wait_until(lambda: all(delivered(settings, a) for a in before), 60, "the first alerts delivered")

    kill(own_redis)
    during = [make_alert(f"rd{i}", "CIRCUIT_BREAKER", sym) for i, sym in enumerate(("TSLA", "AMZN", "GOOGL"))]
    publish(settings, *during)
    wait_until(lambda: metrics.dependency_up.labels("redis")._value.get() == 0, 30, "Redis seen down")
    assert metrics.dependency_down_since.labels("redis")._value.get() > 0
    wait_until(lambda: metrics.dependency_retries.labels("redis")._value.get() >= 3, 30, "retries under way")
    assert [status(settings, a)[0] for a in during] == ["new"] * 3, "nothing is decided without Redis"
    assert engine.alive()

    own_redis.start()  # same port and data directory
    wait_until(lambda: all(delivered(settings, a) for a in during), 60, "the alerts of the outage delivered")
    assert metrics.dependency_up.labels("redis")._value.get() == 1
    engine.stop()
    assert sorted(hook.ids()) == sorted(a.alert_id for a in before + during), "each alert sent exactly once"
    assert outage_lines(caplog, "redis") == ["redis unavailable", "redis available again"], \
        "one line per change of state"
    breakers = redis.Redis.from_url(own_redis.url).hgetall(speed_layer.BREAKERS)
    assert {b"TSLA", b"AMZN", b"GOOGL"} <= set(breakers), "breaker states written once Redis is back"


def test_alrt102_postgres_down_then_back_nothing_lost_nothing_sent_twice(topics, own_postgres, hooks,
                                                                         run_worker, caplog):
    caplog.set_level(logging.INFO, logger="pipeline.outage")
    hook = hooks()
    settings = engine_settings(topics.replace(database_url=own_postgres.url), hook)
    metrics = AlertEngineMetrics(CollectorRegistry())
    before = [make_alert("pb1", "CIRCUIT_BREAKER", "AAPL")]
    publish(settings, *before)
    engine = run_worker(AlertEngine(settings, metrics).run, "engine")
    wait_until(lambda: delivered(settings, before[0]), 60, "the first alert delivered")

    during = [make_alert(f"pd{i}", "PRICE_SPIKE", sym) for i, sym in enumerate(("TSLA", "AMZN", "GOOGL"))]
    publish(settings, *during)  # written to PostgreSQL by the "processor" and on Kafka: handled at once ...
    wait_until(lambda: all(delivered(settings, a) for a in during), 60, "the second batch delivered")
    later = [make_alert(f"pl{i}", "CIRCUIT_BREAKER", sym) for i, sym in enumerate(("NFLX", "META"))]
    store_rows(settings, *later)  # ... while these rows exist before the outage, their records after it
    own_postgres.proc.send_signal(signal.SIGINT)  # fast shutdown: sessions are cut, the server goes away
    own_postgres.proc.wait()
    own_postgres.proc = None
    produce(settings, ((a.symbol.encode(), a.encode()) for a in later), topic=settings.topic_alerts)
    wait_until(lambda: metrics.dependency_up.labels("postgres")._value.get() == 0, 30, "PostgreSQL seen down")
    wait_until(lambda: metrics.dependency_retries.labels("postgres")._value.get() >= 3, 30, "retries going")
    assert not set(hook.ids()) & {a.alert_id for a in later}, "no delivery without its durable claim"
    assert engine.alive()

    own_postgres.start()
    wait_until(lambda: all(delivered(settings, a) for a in later), 60, "the alerts of the outage delivered")
    engine.stop()
    assert sorted(hook.ids()) == sorted(a.alert_id for a in before + during + later), "each sent exactly once"
    assert outage_lines(caplog, "postgres") == ["postgres unavailable", "postgres available again"]
    assert metrics.dependency_up.labels("postgres")._value.get() == 1


def test_alrt103_a_hanging_endpoint_delays_no_other_alert(topics, hooks, run_worker):
    hanging, healthy = hooks(hang=True), hooks()
    settings = engine_settings(topics, hanging, healthy, webhook_timeout=2.0, webhook_attempts=3)
    metrics = AlertEngineMetrics(CollectorRegistry())
    warmup = make_alert("hw0", "VOLUME_SPIKE", "SPY")
    publish(settings, warmup)
    engine = run_worker(AlertEngine(settings, metrics).run, "engine")
    wait_until(lambda: status(settings, warmup)[0] != "new", 60, "the engine consuming")

    first = make_alert("hx1", "CIRCUIT_BREAKER", "TSLA")
    published = time.monotonic()
    publish(settings, first)
    wait_until(lambda: healthy.first_arrival(first.alert_id), 10, "the healthy endpoint served within 10 s")
    wait_until(lambda: hanging.first_arrival(first.alert_id), 10, "the hanging endpoint holding a try")
    second, logged = make_alert("hx2", "PRICE_SPIKE", "AAPL"), make_alert("hx3", "VOLUME_SPIKE", "MSFT")
    published_second = time.monotonic()
    publish(settings, second, logged)
    wait_until(lambda: healthy.first_arrival(second.alert_id), 10, "the next alert served within 10 s")
    wait_until(lambda: status(settings, logged)[0] == "routed", 10, "the consuming loop never waits")
    assert healthy.first_arrival(first.alert_id) - published < 10
    assert healthy.first_arrival(second.alert_id) - published_second < 10

    # The hanging endpoint: every try cut at the 2 s deadline, three tries, then the dead-letter topic.
    wait_until(lambda: all(status(settings, a)[1] == "failed" for a in (first, second)), 60, "tries given up")
    engine.stop()
    assert hanging.ids().count(first.alert_id) == 3 and hanging.ids().count(second.alert_id) == 3
    assert healthy.ids() == [first.alert_id, second.alert_id]
    for headers, body, _ in healthy.received:
        verify(SECRET, headers, body)
    dead = [orjson.loads(m.value()) for m in consume_all(settings, settings.topic_webhook_deadletter, 2)]
    assert sorted(d["alert"]["alert_id"] for d in dead) == sorted([first.alert_id, second.alert_id])
    assert {d["endpoint"] for d in dead} == {redact_url(hanging.url)}
    assert all("deadline" in d["error"] and "T0K3N" not in orjson.dumps(d).decode() for d in dead)
    errors = sql(settings, "SELECT last_error FROM alerts WHERE alert_id IN (%s, %s)",
                 (first.alert_id, second.alert_id))
    assert all(e[0].startswith(redact_url(hanging.url) + ": no complete answer") for e in errors)


def test_alrt104_redelivered_and_interrupted_deliveries_are_not_sent_again(topics, hooks, run_worker):
    hook = hooks()
    settings = engine_settings(topics, hook)
    alert = make_alert("dd1", "CIRCUIT_BREAKER", "TSLA")
    publish(settings, alert)
    engine = run_worker(AlertEngine(settings, AlertEngineMetrics(CollectorRegistry())).run, "engine-1")
    wait_until(lambda: delivered(settings, alert), 60, "delivered")
    engine.stop()

    # A try claimed by an engine that died during the request: its outcome is unknown.
    interrupted = make_alert("dd2", "PRICE_SPIKE", "AAPL")
    store_rows(settings, interrupted)  # its row, not on Kafka
    sql(settings, """INSERT INTO webhook_deliveries
                            (alert_id, endpoint, origin, state, body, attempts, claimed_at)
                     VALUES (%s, %s, %s, 'sending', %s, 1, now() - interval '1 hour') RETURNING alert_id""",
        (interrupted.alert_id, endpoint_key(hook.url), redact_url(hook.url), interrupted.encode()))
    # Every record read again from the start, by a new group: what was sent is not sent again.
    again = settings.replace(alert_group=settings.alert_group + "-again")
    metrics = AlertEngineMetrics(CollectorRegistry())
    engine = run_worker(AlertEngine(again, metrics).run, "engine-2")
    wait_until(lambda: status(settings, interrupted)[1] == "failed", 60, "the interrupted try given up")
    wait_until(lambda: metrics.alerts.labels("CIRCUIT_BREAKER", "CRITICAL", "routed")._value.get() == 1, 30,
               "the first alert read again")
    engine.stop()
    assert hook.ids() == [alert.alert_id], "neither the redelivered nor the interrupted alert went out again"
    assert status(settings, alert) == ("routed", "delivered", 1)
    dead = consume_all(settings, settings.topic_webhook_deadletter, 1)
    assert [orjson.loads(m.value())["error"] for m in dead] == [
        "outcome unknown: the alert engine stopped during the request; not sent again"]


def test_alrt105_records_that_are_not_alerts_never_stop_the_engine(topics, hooks, run_worker):
    hook = hooks()
    settings = engine_settings(topics, hook)
    metrics = AlertEngineMetrics(CollectorRegistry())
    unknown_type = make_alert("mx1", "CIRCUIT_BREAKER", "TSLA")
    wire = {**unknown_type.to_wire(), "alert_type": "DARK_POOL_PRINT"}
    store_rows(settings, unknown_type)
    deep = b'{"extra": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    produce(settings, [(b"k", b"\x00garbage"), (b"k", None), (b"k", b'{"alert_id": "x"}'), (b"k", deep),
                       (b"TSLA", orjson.dumps(wire))], topic=settings.topic_alerts)
    good = make_alert("mx2", "PRICE_SPIKE", "AAPL")
    publish(settings, good)
    engine = run_worker(AlertEngine(settings, metrics).run, "engine")
    wait_until(lambda: delivered(settings, good), 60, "the alert after the bad records delivered")
    wait_until(lambda: delivered(settings, unknown_type), 30, "an unknown alert type handled like any other")
    engine.stop()
    counted = {k: metrics.malformed.labels(k)._value.get() for k in ("bad_json", "tombstone",
                                                                     "invalid_field")}
    assert counted == {"bad_json": 2, "tombstone": 1, "invalid_field": 1}
    assert sorted(hook.ids()) == sorted([good.alert_id, unknown_type.alert_id])


BREAKER_SCRIPT = [  # (seconds after T0, trade id, type, symbol): trips, probation, re-opening, closing
    (0, "b1", "CIRCUIT_BREAKER", "TSLA"), (5, "b2", "PRICE_SPIKE", "AAPL"),
    (120, "b3", "PRICE_SPIKE", "TSLA"), (310, "b4", "PRICE_SPIKE", "TSLA"),
    (340, "b5", "CIRCUIT_BREAKER", "AAPL"), (365, "b6", "VOLUME_SPIKE", "TSLA"),
    (400, "b7", "PRICE_SPIKE", "TSLA"), (500, "b8", "CIRCUIT_BREAKER", "TSLA"),
    (650, "b9", "PRICE_SPIKE", "AAPL"),
    (900, "b10", "CIRCUIT_BREAKER", "TSLA"), (5000, "b11", "VOLUME_SPIKE", "AAPL"),
]


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def run_script_once(settings, run_worker, caplog, clock) -> tuple[dict, dict]:
    """Handle the script's alerts; returns (breaker state logged per alert, final stored breakers)."""
    caplog.clear()
    metrics = AlertEngineMetrics(CollectorRegistry())
    engine = run_worker(AlertEngine(settings, metrics, clock=clock).run, "engine")
    handled = lambda: sum(1 for r in caplog.records if r.name == "stockit.alerts")  # noqa: E731
    wait_until(lambda: handled() >= len(BREAKER_SCRIPT), 60, "every alert handled")
    engine.stop()
    logged = {(d := orjson.loads(r.getMessage()))["alert_id"]: d["breaker"] for r in caplog.records
              if r.name == "stockit.alerts"}
    stored = {k.decode(): orjson.loads(v) for k, v in
              redis.Redis.from_url(settings.redis_url).hgetall(speed_layer.BREAKERS).items()}
    return logged, stored


def test_alrt106_a_replay_gives_the_same_breaker_states_whatever_the_wall_clock(topics, run_worker, caplog):
    caplog.set_level(logging.INFO, logger="stockit.alerts")
    alerts = [make_alert(t, kind, sym, at=T0 + dt) for dt, t, kind, sym in BREAKER_SCRIPT]
    publish(topics, *alerts)
    live, live_stored = run_script_once(topics, run_worker, caplog, Clock(T0 + 1))

    # The replay: fresh speed layer and statuses, a new group, the wall clock 11 days later.
    redis.Redis.from_url(topics.redis_url).flushdb()
    sql(topics, "UPDATE alerts SET status = 'new', delivery_status = NULL RETURNING alert_id")
    replayed, replay_stored = run_script_once(topics.replace(alert_group=topics.alert_group + "-replay"),
                                              run_worker, caplog, Clock(T0 + 10**6))
    assert replayed == live and replay_stored == live_stored
    expected = {"b1": "OPEN", "b3": "OPEN", "b4": "HALF_OPEN", "b6": "HALF_OPEN", "b7": "CLOSED",
                "b8": "OPEN", "b10": "OPEN", "b2": "CLOSED", "b5": "OPEN", "b9": "HALF_OPEN", "b11": "CLOSED"}
    assert {a.trade_id: live[a.alert_id] for a in alerts} == expected
    assert (live_stored["TSLA"]["state"], live_stored["TSLA"]["trips"], live_stored["TSLA"]["since"]) == \
        ("OPEN", 3, T0 + 900)
