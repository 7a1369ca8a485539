"""The alert engine on real Kafka, Redis and PostgreSQL: dedup, breakers, webhooks, restarts."""
from __future__ import annotations

import http.server
import json
import threading

import msgspec
import orjson
import pytest
import redis
from prometheus_client import CollectorRegistry

from standardwebhooks import Webhook

from pipeline import speed_layer
from pipeline.alert_engine import AlertEngine
from pipeline.breaker import BreakerPolicy, BreakerState, advance
from pipeline.events import Alert, alert_id_for
from pipeline.history.writer import HistoryWriter
from pipeline.metrics import AlertEngineMetrics
from pipeline.webhooks import ID_HEADER, new_secret, verify
from tests.integration.helpers import consume_all, produce, sql, wait_until

pytestmark = pytest.mark.integration
T0 = 1_700_000_000.0
SECRET = new_secret()


def make_alert(trade_id: str, alert_type: str, symbol: str = "TSLA", at: float = T0) -> Alert:
    severity = {"CIRCUIT_BREAKER": "CRITICAL", "PRICE_SPIKE": "HIGH", "VOLUME_SPIKE": "MEDIUM"}[alert_type]
    return Alert(alert_id=alert_id_for(trade_id, alert_type), alert_type=alert_type, severity=severity,
                 symbol=symbol, price=250.0, reference=220.0, deviation=13.6, trade_id=trade_id, ts=at,
                 message=f"{alert_type} on {symbol}", side="BUY", quantity=10.0)


def publish(settings, *alerts: Alert) -> None:
    HistoryWriter(settings.database_url).flush(trades=[], candles=[], alerts=list(alerts), outbox=[], checkpoints=[])
    produce(settings, ((a.symbol.encode(), a.encode()) for a in alerts), topic=settings.topic_alerts)


def status(settings, alert: Alert):
    rows = sql(settings, "SELECT status, delivery_status, delivery_attempts FROM alerts WHERE alert_id = %s",
               (alert.alert_id,))
    return rows[0] if rows else None


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def breaker(settings, symbol: str) -> dict:
    raw = redis.Redis.from_url(settings.redis_url).hget(speed_layer.BREAKERS, symbol)
    return orjson.loads(raw) if raw else {}


def test_alrt001_dedup_windows_and_breaker_states_survive_a_restart(topics, run_worker):
    clock = Clock(T0)
    first = make_alert("t1", "CIRCUIT_BREAKER")
    publish(topics, first)
    engine = run_worker(AlertEngine(topics, AlertEngineMetrics(CollectorRegistry()), clock=clock).run, "engine-1")
    wait_until(lambda: status(topics, first)[0] != "new", 30, "the first alert handled")
    engine.stop()
    assert status(topics, first)[:2] == ("routed", "skipped")
    assert breaker(topics, "TSLA")["state"] == "OPEN"

    # A new engine process (same group, fresh objects): the window and the breaker come from Redis.
    metrics = AlertEngineMetrics(CollectorRegistry())
    second_alert = make_alert("t2", "CIRCUIT_BREAKER", at=T0 + 10)
    spike = make_alert("t3", "VOLUME_SPIKE", at=T0 + 10)
    publish(topics, second_alert, spike)
    clock.now = T0 + 10
    engine = run_worker(AlertEngine(topics, metrics, clock=clock).run, "engine-2")
    wait_until(lambda: status(topics, spike)[0] != "new", 30, "the later alerts handled")
    assert status(topics, second_alert)[0] == "suppressed", "a CIRCUIT_BREAKER within 300 s is a duplicate"
    assert status(topics, spike)[0] == "routed", "another type has its own window"
    assert status(topics, first)[0] == "routed", "the first alert is not re-handled as its own duplicate"
    assert metrics.deduped.labels("CIRCUIT_BREAKER")._value.get() == 1
    b = breaker(topics, "TSLA")
    assert (b["state"], b["since"], b["trips"]) == ("OPEN", T0 + 10, 1), "the later breach restarts it"
    # The stored state is the alerts' fold by event time; the wall clock only changes what is shown:
    # HALF_OPEN 300 s after the latest breach, in the metrics, while Redis keeps the fold.
    clock.now = T0 + 311
    wait_until(lambda: metrics.breaker_state.labels("TSLA")._value.get() == 1, 10, "HALF_OPEN shown at 311 s")
    engine.stop()
    stored = BreakerState(**breaker(topics, "TSLA"))
    assert stored.state == "OPEN" and advance(stored, T0 + 311, BreakerPolicy()).state == "HALF_OPEN"
    assert metrics.breakers_open._value.get() == 0

    # A new breach 320 s in: by event time the breaker was HALF_OPEN, so it re-opens with a second trip.
    breach = make_alert("t4", "CIRCUIT_BREAKER", at=T0 + 320)
    clock.now = T0 + 320
    publish(topics, breach)
    engine = run_worker(AlertEngine(topics, AlertEngineMetrics(CollectorRegistry()), clock=clock).run, "engine-3")
    wait_until(lambda: status(topics, breach)[0] != "new", 30, "the breach handled")
    engine.stop()
    b = breaker(topics, "TSLA")
    assert (b["state"], b["since"], b["trips"]) == ("OPEN", T0 + 320, 2)
    ttl = redis.Redis.from_url(topics.redis_url).pttl(speed_layer.dedup_key("CIRCUIT_BREAKER", "TSLA"))
    assert 0 < ttl <= 300_000


class Hook(http.server.BaseHTTPRequestHandler):
    received: list = []
    fail_first = 0

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            self.send_response(503)
        else:
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hook_server():
    Hook.received, Hook.fail_first = [], 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def hook_settings(settings, *urls: str, **changes):
    return settings.replace(webhook_urls=",".join(urls), webhook_secret=SECRET, **changes)


def test_alrt002_critical_alerts_reach_the_webhook_signed_after_retries(topics, run_worker, hook_server):
    settings = hook_settings(topics, hook_server, webhook_backoff=0.01, webhook_attempts=4)
    Hook.fail_first = 2
    critical, medium = make_alert("w1", "CIRCUIT_BREAKER", "AAPL"), make_alert("w2", "VOLUME_SPIKE", "AAPL")
    publish(settings, critical, medium)
    engine = run_worker(AlertEngine(settings, AlertEngineMetrics(CollectorRegistry())).run, "engine")
    wait_until(lambda: (status(settings, critical) or ("",))[0] == "routed" and status(settings, critical)[1],
               30, "the webhook delivery finished")
    wait_until(lambda: status(settings, medium)[0] != "new", 30, "the medium alert handled")
    engine.stop()
    assert status(settings, critical) == ("routed", "delivered", 3)
    assert status(settings, medium)[:2] == ("routed", "skipped"), "MEDIUM is logged, not sent"
    assert len(Hook.received) == 3
    assert {h[ID_HEADER] for h, _ in Hook.received} == {critical.alert_id}, "the same webhook-id on every try"
    headers, body = Hook.received[-1]
    verify(SECRET, headers, body)
    assert Webhook(SECRET).verify(body, headers)["alert_id"] == critical.alert_id  # the reference library
    assert json.loads(body)["alert_id"] == critical.alert_id


def test_alrt003_a_webhook_that_never_answers_well_is_dead_lettered(topics, run_worker, hook_server):
    url = hook_server + "/T0K3N-in-the-path?token=s3cr3t"
    settings = hook_settings(topics, url, webhook_backoff=0.01, webhook_attempts=3)
    Hook.fail_first = 100
    alert = make_alert("f1", "PRICE_SPIKE", "MSFT")
    publish(settings, alert)
    metrics = AlertEngineMetrics(CollectorRegistry())
    engine = run_worker(AlertEngine(settings, metrics).run, "engine")
    wait_until(lambda: (status(settings, alert) or ("", None))[1] is not None, 30, "delivery given up")
    engine.stop()
    assert status(settings, alert) == ("routed", "failed", 3)
    dead = consume_all(settings, settings.topic_webhook_deadletter, 1)
    assert len(dead) == 1 and orjson.loads(dead[0].value())["alert"]["alert_id"] == alert.alert_id
    assert metrics.webhooks.labels("failed")._value.get() == 1
    assert metrics.webhooks.labels("retried")._value.get() == 2
    # The URL's path and query hold credentials: only scheme://host:port is stored or dead-lettered.
    origin = hook_server.rsplit("/", 1)[0]
    last_error = sql(settings, "SELECT last_error FROM alerts WHERE alert_id = %s", (alert.alert_id,))[0][0]
    assert last_error == f"{origin}: HTTP 503"
    assert orjson.loads(dead[0].value())["endpoint"] == origin
    stored = str(sql(settings, "SELECT * FROM webhook_deliveries"))
    stored += str(sql(settings, "SELECT * FROM alerts"))
    for secret in ("T0K3N", "s3cr3t", "/hook"):
        assert secret not in stored and secret.encode() not in dead[0].value()


def test_alrt010_a_replays_alerts_keep_to_their_source(topics, run_worker, hook_server):
    """A replay's CIRCUIT_BREAKER opens the replay's breaker only, is not a duplicate of a live one, and sends
    no webhook (only the live source's alerts do, by default); a replay of the same alerts gives the same
    states."""
    settings = hook_settings(topics, hook_server, webhook_backoff=0.01)
    history = "spx-daily"
    old = msgspec.structs.replace(make_alert("h1", "CIRCUIT_BREAKER", at=T0 - 86400 * 3000), source=history)
    live = make_alert("l1", "CIRCUIT_BREAKER", at=T0)
    metrics = AlertEngineMetrics(CollectorRegistry())
    publish(settings, old, live)
    engine = run_worker(AlertEngine(settings, metrics, clock=Clock(T0 + 1)).run, "engine")
    wait_until(lambda: status(settings, live)[1] == "delivered", 30, "the live alert delivered")
    wait_until(lambda: status(settings, old)[0] != "new", 30, "the replayed alert handled")
    engine.stop()
    assert status(settings, old)[:2] == ("routed", "skipped"), "no webhook for a replay's alert"
    assert [json.loads(body)["alert_id"] for _, body in Hook.received] == [live.alert_id]
    assert breaker(settings, "TSLA")["trips"] == 1 and breaker(settings, "TSLA")["since"] == T0
    r = redis.Redis.from_url(settings.redis_url)
    replayed = orjson.loads(r.hget(speed_layer.breakers_key(history), "TSLA"))
    assert (replayed["state"], replayed["since"], replayed["last_alert_id"]) == ("OPEN", old.ts, old.alert_id)
    assert r.exists(speed_layer.dedup_key("CIRCUIT_BREAKER", "TSLA", history))
    assert metrics.breakers_open._value.get() == 1  # the live breaker only
