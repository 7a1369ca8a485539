"""The alert engine honours snoozes on real Kafka, Redis and PostgreSQL: a matching alert is kept and marked
snoozed, sent to no webhook and opens no dedup window; snoozes are re-read while it runs and survive a
restart (they live in PostgreSQL)."""
from __future__ import annotations

import time

import pytest
import redis
from prometheus_client import CollectorRegistry

from pipeline import speed_layer
from pipeline.alert_engine import AlertEngine
from pipeline.history import Pool
from pipeline.history.lifecycle import AlertLifecycle
from pipeline.metrics import AlertEngineMetrics
from pipeline.snooze import check_request
from tests.integration.helpers import sql, wait_until
from tests.integration.test_alert_engine import (Hook, breaker, hook_server, hook_settings,  # noqa: F401
                                                 make_alert, publish)

pytestmark = pytest.mark.integration


def snooze(settings, **fields) -> dict:
    pool = Pool(settings.database_url, 1, "test")
    try:
        request = check_request({"comment": "maintenance", "duration_minutes": 30, **fields}, time.time())
        return AlertLifecycle(pool).create_snooze(request, "test-operator")
    finally:
        pool.close()


def end_snooze(settings, snooze_id: int) -> None:
    pool = Pool(settings.database_url, 1, "test")
    try:
        AlertLifecycle(pool).delete_snooze(snooze_id, "test-operator")
    finally:
        pool.close()


def decision(settings, alert):
    rows = sql(settings, "SELECT status, snooze_id FROM alerts WHERE alert_id = %s", (alert.alert_id,))
    return rows[0] if rows and rows[0][0] != "new" else None


def test_snz001_a_snoozed_alert_is_kept_marked_and_sent_nowhere(topics, run_worker, hook_server):
    settings = hook_settings(topics, hook_server, webhook_backoff=0.01)
    s = snooze(settings, alert_type="CIRCUIT_BREAKER", symbol="AAPL")
    snoozed = make_alert("s1", "CIRCUIT_BREAKER", "AAPL", at=time.time())
    other_symbol = make_alert("s2", "CIRCUIT_BREAKER", "MSFT", at=time.time())
    other_type = make_alert("s3", "PRICE_SPIKE", "AAPL", at=time.time())
    publish(settings, snoozed, other_symbol, other_type)
    metrics = AlertEngineMetrics(CollectorRegistry())
    engine = run_worker(AlertEngine(settings, metrics).run, "engine")
    for a in (snoozed, other_symbol, other_type):
        wait_until(lambda a=a: decision(settings, a), 30, f"{a.symbol} {a.alert_type} handled")
    wait_until(lambda: len(Hook.received) == 2, 30, "two webhooks delivered")
    engine.stop()
    assert decision(settings, snoozed) == ("snoozed", s["snooze_id"])
    assert decision(settings, other_symbol) == ("routed", None)
    assert decision(settings, other_type) == ("routed", None)
    sent = {headers["webhook-id"] for headers, _ in Hook.received}
    assert sent == {other_symbol.alert_id, other_type.alert_id}, "no webhook for the snoozed alert"
    assert breaker(settings, "AAPL")["state"] == "OPEN", "the breaker still counts a snoozed alert"
    client = redis.Redis.from_url(settings.redis_url)
    assert client.get(speed_layer.dedup_key("CIRCUIT_BREAKER", "AAPL")) is None, "no dedup window opened"
    assert metrics.snoozed.labels("CIRCUIT_BREAKER")._value.get() == 1
    assert metrics.alerts.labels("CIRCUIT_BREAKER", "CRITICAL", "snoozed")._value.get() == 1


def test_snz002_snoozes_are_reread_while_running_and_after_a_restart(topics, run_worker):
    settings = topics.replace(snooze_refresh_seconds=0.2)
    metrics = AlertEngineMetrics(CollectorRegistry())
    engine = run_worker(AlertEngine(settings, metrics).run, "engine-1")
    before = make_alert("r1", "VOLUME_SPIKE", "TSLA", at=time.time())
    publish(settings, before)
    wait_until(lambda: decision(settings, before), 30, "the first alert handled")
    assert decision(settings, before) == ("routed", None)

    s = snooze(settings, symbol="TSLA")  # every type on TSLA, made while the engine runs
    during = make_alert("r2", "VOLUME_SPIKE", "TSLA", at=time.time())
    wait_until(lambda: metrics.snoozes_active._value.get() == 1, 30, "the engine has read the new snooze")
    publish(settings, during)
    wait_until(lambda: decision(settings, during), 30, "the alert during the snooze handled")
    assert decision(settings, during) == ("snoozed", s["snooze_id"])
    engine.stop()

    # A new engine process reads the snooze from PostgreSQL at once.
    metrics = AlertEngineMetrics(CollectorRegistry())
    engine = run_worker(AlertEngine(settings, metrics).run, "engine-2")
    again = make_alert("r3", "PRICE_SPIKE", "TSLA", at=time.time())
    publish(settings, again)
    wait_until(lambda: decision(settings, again), 30, "the alert after the restart handled")
    assert decision(settings, again) == ("snoozed", s["snooze_id"])

    end_snooze(settings, s["snooze_id"])
    wait_until(lambda: metrics.snoozes_active._value.get() == 0, 30, "the engine has seen the snooze end")
    after = make_alert("r4", "CIRCUIT_BREAKER", "TSLA", at=time.time())
    publish(settings, after)
    wait_until(lambda: decision(settings, after), 30, "the alert after the snooze ended handled")
    engine.stop()
    assert decision(settings, after) == ("routed", None)
