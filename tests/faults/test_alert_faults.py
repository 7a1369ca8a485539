"""Faults around the alert engine and the speed layer: Redis and PostgreSQL outages, a hanging webhook."""
from __future__ import annotations

import base64
import threading
import time

import pytest

from pipeline.events import Alert, alert_id_for
from pipeline.history.writer import HistoryWriter
from tests.faults.checker import check_webhooks
from tests.faults.observe import heartbeat, newest_ticker_time
from tests.faults.readback import query
from tests.faults.receiver import WebhookReceiver
from tests.faults.scenario import hold
from tests.integration.helpers import produce, wait_until

pytestmark = pytest.mark.faults
T0 = 1_800_000_000.0
SECRET = "whsec_" + base64.b64encode(b"fault-suite-signing-key-32-bytes").decode()  # Standard Webhooks form


def routed_alerts(n: int, tag: str) -> list[Alert]:
    """``n`` alerts that are all routed to the webhooks: each its own symbol (no dedup window shared),
    CRITICAL and HIGH in turn."""
    out = []
    for i in range(n):
        kind, severity = ("CIRCUIT_BREAKER", "CRITICAL") if i % 2 else ("PRICE_SPIKE", "HIGH")
        symbol, trade_id = f"F{tag}{i:03d}", f"{tag}-t{i}"
        out.append(Alert(alert_id=alert_id_for(trade_id, kind), alert_type=kind, severity=severity,
                         symbol=symbol, price=100.0 + i, reference=90.0, deviation=11.1, trade_id=trade_id,
                         ts=T0 + i, message=f"{kind} on {symbol}", side="BUY", quantity=10.0))
    return out


class AlertFeed:
    """Alerts as the processor emits them: the row in PostgreSQL first, then the message; ``interval``
    apart."""

    def __init__(self, settings, alerts: list[Alert], interval: float):
        self.settings, self.alerts, self.interval = settings, alerts, interval
        self.sent_at: dict[str, float] = {}
        writer = HistoryWriter(settings.database_url)
        try:
            writer.flush(trades=[], candles=[], alerts=alerts, outbox=[], checkpoints=[])
        finally:
            writer.close()
        self._thread = threading.Thread(target=self._run, name="alert-feed", daemon=True)

    def start(self) -> "AlertFeed":
        self._thread.start()
        return self

    def _run(self) -> None:
        for a in self.alerts:
            self.sent_at[a.alert_id] = time.monotonic()
            produce(self.settings, [(a.symbol.encode(), a.encode())], topic=self.settings.topic_alerts)
            time.sleep(self.interval)

    def join(self) -> None:
        self._thread.join(120)
        assert not self._thread.is_alive(), "the alert feed did not finish"


@pytest.fixture
def receivers():
    made = []

    def make(hang: float = 0.0) -> WebhookReceiver:
        made.append(WebhookReceiver(hang))
        return made[-1]

    yield make
    for r in made:
        r.close()


def undecided(settings, alerts) -> int:
    """Alerts whose delivery has no outcome in PostgreSQL yet."""
    return query(settings, "SELECT count(*) FROM alerts WHERE alert_id = ANY(%s) AND delivery_status IS NULL",
                 (list(alerts),))[0][0]


def engine_up(settings) -> bool:
    return heartbeat(settings, "alert-engine") is not None


@pytest.mark.parametrize("server", ["redis", "postgres"])
def test_flt010_alert_engine_waits_out_an_outage(scenario, receivers, server):
    s = scenario
    hook = receivers()
    settings = s.settings.replace(webhook_urls=hook.url, webhook_secret=SECRET, webhook_backoff=0.05)
    alerts = routed_alerts(30, server[0].upper())
    engine = s.workers.alert_engine(settings)
    wait_until(lambda: engine_up(s.settings) or not engine.alive(), 60, "the alert engine's heartbeat")
    feed = AlertFeed(settings, alerts, interval=0.4).start()
    wait_until(lambda: len(hook.by_alert()) >= 5, 60, "the first webhooks")
    s.faults.kill(server)
    hold(10.0)
    s.faults.restart(server)
    feed.join()
    sent = {a.alert_id: a for a in alerts}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and engine.alive() and (len(hook.by_alert()) < len(sent)
                                                              or undecided(s.settings, sent)):
        time.sleep(0.2)
    bodies = {k: [a.body for a in v] for k, v in hook.by_alert().items()}
    report = s.record(check_webhooks(f"flt010 alert engine: {server} killed for 10 s, restarted", s.settings,
                                     sent, bodies, s.started))
    assert engine.alive(), "the alert engine exited: " + engine.log_tail()
    assert report.ok, report.summary()


def test_flt011_a_hanging_webhook_delays_no_other_alert(scenario, receivers):
    s = scenario
    hanging, healthy = receivers(hang=60.0), receivers()
    settings = s.settings.replace(webhook_urls=f"{hanging.url},{healthy.url}", webhook_secret=SECRET)
    alerts = routed_alerts(10, "H")
    engine = s.workers.alert_engine(settings)
    wait_until(lambda: engine_up(s.settings) or not engine.alive(), 60, "the alert engine's heartbeat")
    feed = AlertFeed(settings, alerts, interval=1.0).start()
    feed.join()
    sent = {a.alert_id: a for a in alerts}
    wait_until(lambda: len(healthy.by_alert()) >= len(sent) or not engine.alive(), 60,
               "every alert at the healthy endpoint")
    arrived = healthy.by_alert()
    delays = {k: round(v[0].at - feed.sent_at[k], 2) for k, v in arrived.items() if k in feed.sent_at}
    s.figures["max delay at the healthy endpoint s"] = max(delays.values(), default=None)
    # Each alert's row says "failed" (one of its endpoints never answered): only the deliveries are checked.
    report = s.record(check_webhooks("flt011 one webhook endpoint hangs 60 s", s.settings, sent,
                                     {k: [a.body for a in v] for k, v in arrived.items()}, s.started,
                                     statuses=False))
    assert engine.alive(), engine.log_tail()
    assert report.ok, report.summary()
    assert max(delays.values()) <= 10.0, f"alerts delayed by the hanging endpoint: {delays}"


def test_flt009_redis_killed_and_restarted(scenario):
    s = scenario
    engine = s.workers.alert_engine()
    feed, (processor,) = s.start(seed=9)
    wait_until(lambda: engine_up(s.settings), 60, "the alert engine's heartbeat")
    s.faults.kill("redis")
    hold(3.0)
    s.faults.restart("redis")
    up, up_wall, sent_before = time.monotonic(), time.time(), feed.last_ts
    current = wait_until(lambda: newest_ticker_time(s.settings) > sent_before and time.monotonic(), 60,
                         "a price sent after the restart in Redis")
    wait_until(lambda: (heartbeat(s.settings, "alert-engine") or {}).get("ts", 0) > up_wall
               or not engine.alive(), 60, "the alert engine's heartbeat after the restart")
    s.figures["speed layer current after s"] = round(current - up, 2)
    s.catch_up(feed)
    report = s.finish(feed, "flt009 Redis killed (SIGKILL) and restarted")
    assert processor.alive(), processor.log_tail()
    assert engine.alive(), "the alert engine exited: " + engine.log_tail()
    assert report.ok, report.summary()
    assert current - up <= 5.0, f"the speed layer was current again only {current - up:.1f}s after Redis"
