"""The alert engine worker: deduplicate, run each symbol's circuit breaker, route alerts.

Consumes ``trade-alerts``.  For each alert: an active snooze that matches it (``pipeline.snooze``,
read from PostgreSQL every few seconds) marks it ``snoozed`` — kept, counted, routed nowhere;
otherwise the Redis dedup window of its (source, type, symbol) decides new or suppressed
(suppressed alerts are counted and marked ``suppressed`` in PostgreSQL, never dropped without
trace); the breaker of its (source, symbol) advances by the alert's event time and is saved to
Redis; the decision — and, for CRITICAL and HIGH alerts of a source in ``STOCKIT_WEBHOOK_SOURCES``
(default: the live one), one webhook delivery per configured URL — is stored in PostgreSQL; every
alert is logged as one structured line.  So a replay of history never trips a live breaker, never
suppresses a live alert, and sends no webhook unless configured to.  Webhooks go out from per-URL
workers (``webhook_delivery``), never from this loop.

Offsets are committed only after every alert of the batch is handled and stored, so a restart
re-sees at most one batch, and handling is idempotent: a dedup window and a breaker recognise an
alert they already applied, and a delivery exists once per alert and URL.  While Redis or
PostgreSQL is unavailable the engine waits and retries with capped backoff (logged once per change,
``alertengine_dependency_up`` in its metrics) and then goes on; a record that is not an alert is
logged, counted and skipped.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterable, Optional

import orjson
import redis
from confluent_kafka import Consumer, KafkaError, KafkaException

from pipeline import kafka_io, speed_layer
from pipeline.alert_types import CRITICAL, HIGH
from pipeline.breaker import BreakerPolicy
from pipeline.breaker_board import BreakerBoard
from pipeline.dedup import DEFAULT_TTLS, DedupPolicy
from pipeline.events import Alert, InvalidRecord
from pipeline.history.alert_status import AlertStatusStore
from pipeline.history.lifecycle import AlertLifecycle
from pipeline.metrics import AlertEngineMetrics
from pipeline.outage import (POSTGRES, REDIS, SERVERS, Availability, Stopped, call_until_available,
                             unavailable_server)
from pipeline.settings import Settings, SettingsError
from pipeline.snooze import SnoozeBook
from pipeline.webhook_delivery import Deliveries
from pipeline.webhooks import check_url, redact_url, secret_key

logger = logging.getLogger(__name__)
alert_log = logging.getLogger("stockit.alerts")
ROUTED_SEVERITIES = (CRITICAL, HIGH)

# SET NX with GET answers atomically "who owns this window": nil means we opened it.
_CLAIM = "return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'GET', 'PX', ARGV[2])"


def check_settings(s: Settings) -> None:
    """Refuse, before anything starts, a webhook configuration that cannot be honoured."""
    for url in s.webhook_url_list:
        try:
            check_url(url)
        except ValueError as exc:
            raise SettingsError(f"STOCKIT_WEBHOOK_URLS: {exc}") from None
    if s.webhook_url_list and not s.webhook_secret:
        raise SettingsError("STOCKIT_WEBHOOK_URLS is set but STOCKIT_WEBHOOK_SECRET is empty: webhooks are "
                            "never sent unsigned. Set a secret (`stockit webhook-secret` prints a new "
                            "one) or unset the URLs")
    logger.debug("live source %s; webhooks for the alerts of %s", s.live_source,  # SettingsError if invalid
                 ", ".join(s.webhook_source_list) or "no source")
    if s.webhook_secret:
        try:
            secret_key(s.webhook_secret)
        except ValueError as exc:
            raise SettingsError(f"STOCKIT_WEBHOOK_SECRET: {exc}") from None
    for name, value, least in (("STOCKIT_WEBHOOK_TIMEOUT", s.webhook_timeout, 0.001),
                               ("STOCKIT_WEBHOOK_ATTEMPTS", s.webhook_attempts, 1),
                               ("STOCKIT_WEBHOOK_WORKERS", s.webhook_workers, 1),
                               ("STOCKIT_OUTAGE_RETRY_MAX", s.outage_retry_max, 0.001)):
        if not value >= least:
            raise SettingsError(f"{name}={value!r} must be at least {least:g}")


class AlertTopics:
    """The engine's Kafka side in one place: consume ``trade-alerts``, commit, dead-letter webhooks."""

    def __init__(self, s: Settings, metrics: AlertEngineMetrics):
        self.s = s
        self.metrics = metrics
        # Offsets are stored as messages are consumed and committed after the batch is handled.
        config = kafka_io.consumer_config(s, s.alert_group, **{"enable.auto.offset.store": True})
        self.consumer = Consumer(config)
        self.consumer.subscribe([s.topic_alerts], on_assign=self._on_assign)
        self.producer = kafka_io.make_producer(s)

    def _on_assign(self, consumer: Consumer, partitions) -> None:
        for tp in partitions:
            self.metrics.lag.labels(str(tp.partition)).set(0)
        consumer.assign(partitions)

    def consume(self, timeout: float) -> list:
        """The next batch of records (consume errors and partition ends are logged or skipped)."""
        out = []
        for msg in self.consumer.consume(500, timeout):
            err = msg.error()
            if err is None:
                out.append(msg)
            elif err.code() != KafkaError._PARTITION_EOF:
                logger.warning("consume error: %s", err)
        return out

    def commit(self) -> None:
        """Commit the consumed offsets. A refused commit (the group rebalanced while a server was down)
        is logged: those records come again, and handling them again changes nothing."""
        try:
            self.consumer.commit(asynchronous=False)
        except KafkaException as exc:
            self.metrics.commit_errors.inc()
            logger.warning("offset commit refused (%s); the batch will be seen again", exc)

    def observe_lag(self) -> None:
        assigned = self.consumer.assignment()
        if assigned:
            for p, lag in kafka_io.consumer_lag(self.consumer, assigned).items():
                self.metrics.lag.labels(str(p)).set(lag)

    def deadletter(self, key: bytes, value: bytes, timeout: float = 10.0) -> bool:
        """Publish a failed delivery on the webhook dead-letter topic; True once the broker acked it."""
        acked: list = []
        while True:
            try:
                self.producer.produce(self.s.topic_webhook_deadletter, value, key,
                                      on_delivery=lambda err, msg: acked.append(err is None))
                break
            except BufferError:
                self.producer.poll(0.05)
        self.producer.flush(timeout)
        return acked == [True]

    def close(self) -> None:
        self.consumer.close()
        self.producer.flush(10)


class AlertEngine:
    def __init__(self, settings: Settings, metrics: Optional[AlertEngineMetrics] = None,
                 clock: Callable[[], float] = time.time):
        check_settings(settings)
        self.s = settings
        self.metrics = metrics or AlertEngineMetrics()
        self.clock = clock  # the wall clock: what the breakers *show*, heartbeats; never a breaker's state
        self.dedup = DedupPolicy({**DEFAULT_TTLS, **settings.dedup_ttl_map})
        self.policy = BreakerPolicy(settings.breaker_open_seconds, settings.breaker_probation_seconds)
        self.live_source = settings.live_source
        sources = settings.webhook_source_list
        self.webhook_sources = None if sources == ("*",) else frozenset(sources)  # None: every source
        self.availability = Availability(self._availability_changed)
        self.stop_event = threading.Event()
        self.topics: Optional[AlertTopics] = None
        self.redis: Optional[redis.Redis] = None
        self.history: Optional[AlertStatusStore] = None
        self.board: Optional[BreakerBoard] = None
        self.deliveries: Optional[Deliveries] = None
        self.snoozes = SnoozeBook(settings.snooze_refresh_seconds)
        self.handled = 0
        self._last_tick = 0.0
        for server in SERVERS:
            self.metrics.dependency_up.labels(server).set(1)

    def _availability_changed(self, server: str, since: Optional[float]) -> None:
        self.metrics.dependency_up.labels(server).set(0 if since else 1)
        self.metrics.dependency_down_since.labels(server).set(since or 0)

    def _wait(self, fn, servers: Iterable[str] = SERVERS):
        """``fn()``, waiting out an unavailable Redis or PostgreSQL; Stopped if asked to stop meanwhile."""
        m = self.metrics
        return call_until_available(fn, self.availability, self.stop_event, self.s.outage_retry_max, servers,
                                    on_retry=lambda server: m.dependency_retries.labels(server).inc())

    def open(self) -> None:
        s = self.s
        self.redis = speed_layer.connect(s.redis_url)
        self._claim = self.redis.register_script(_CLAIM)
        workers = len(s.webhook_url_list) * max(1, s.webhook_workers)
        self.history = self._wait(lambda: AlertStatusStore(s.database_url, maxconn=2 + workers), (POSTGRES,))
        self.board = BreakerBoard(self.redis, self.policy, self.metrics, self.live_source)
        self._wait(self.board.load, (REDIS,))
        self.topics = AlertTopics(s, self.metrics)
        self.deliveries = Deliveries(s, self.history, self.metrics, self.availability, self.topics.deadletter)
        self.deliveries.start()

    def close(self) -> None:
        self.stop_event.set()
        if self.topics is not None:
            self.topics.consumer.close()  # no new records; what was not committed comes again
        if self.deliveries is not None:
            self.deliveries.stop()
        if self.topics is not None:
            self.topics.producer.flush(10)
            self.topics = None
        if self.history is not None:
            self.history.close()
            self.history = None

    def run(self, stop: threading.Event) -> None:
        self.stop_event = stop
        logger.info("alert engine consuming %s as group %s; webhooks: %s", self.s.topic_alerts,
                    self.s.alert_group, ", ".join(redact_url(u) for u in self.s.webhook_url_list) or "none")
        try:
            self.open()
            while not stop.is_set():
                self.step()
        except Stopped:
            logger.info("alert engine stopped while waiting for %s", ", ".join(self.availability.describe()))
        finally:
            self.close()

    def step(self, timeout: float = 0.5) -> int:
        if self.deliveries.crashed is not None:
            raise RuntimeError("a webhook delivery worker failed; stopping") from self.deliveries.crashed
        msgs = self.topics.consume(timeout)
        for msg in msgs:
            try:
                alert = Alert.decode(msg.value())
            except InvalidRecord as exc:
                self.metrics.malformed.labels(exc.kind).inc()
                logger.error("skipped a record that is not an alert at %s[%d]@%d: %s", msg.topic(),
                             msg.partition(), msg.offset(), exc.reason[:300])
                continue
            self._wait(self._refresh_snoozes, (POSTGRES,))
            self._wait(lambda: self.handle(alert))
        if msgs:
            self.topics.commit()
        now = self.clock()
        if now - self._last_tick >= 1.0:
            self._last_tick = now
            self._tick(now)
        return len(msgs)

    def _tick(self, now: float) -> None:
        """Once a second: breaker views, lag, snoozes, webhook backlog and heartbeat — best effort."""
        self.board.observe(now)
        self.topics.observe_lag()
        self._best_effort(POSTGRES, self._refresh_snoozes)
        self._best_effort(POSTGRES, self._observe_backlog)
        self._best_effort(REDIS, lambda: speed_layer.heartbeat(
            self.redis, "alert-engine", handled=self.handled, unavailable=self.availability.describe()))

    def _observe_backlog(self) -> None:
        backlog = self.history.backlog()
        for origin in {e.origin for e in self.deliveries.endpoints} | set(backlog):
            self.metrics.webhook_backlog.labels(origin).set(backlog.get(origin, 0))

    def _best_effort(self, server: str, fn) -> None:
        """``fn()`` once; an unavailable server is noted (and seen again when it answers), not waited for."""
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - only an unavailable server is tolerated here
            if unavailable_server(exc) is None:
                raise
            self.availability.failed(unavailable_server(exc), exc)
        else:
            self.availability.answered((server,))

    def _refresh_snoozes(self) -> None:
        """Re-read the active snoozes when the cache is due (``STOCKIT_SNOOZE_REFRESH_SECONDS``)."""
        mono = time.monotonic()
        if self.snoozes.due(mono):
            self.snoozes.replace(AlertLifecycle(self.history).active_snoozes(), mono)
            self.metrics.snoozes_active.set(sum(1 for s in self.snoozes.snoozes if s.active(self.clock())))

    def handle(self, alert: Alert) -> str:
        """Snooze or dedup, breaker, store the decision (and the deliveries), log. Idempotent; returns the
        outcome."""
        snooze = self.snoozes.matching(alert.alert_type, alert.symbol, alert.source, self.clock())
        if snooze is not None:  # kept and marked, sent nowhere, opens no dedup window; the breaker counts it
            breaker = self.board.apply(alert)
            status = self.history.record(alert.alert_id, "snoozed", snooze_id=snooze.snooze_id)
            return self._handled(alert, status, breaker, False)
        holder = self._claim(keys=[speed_layer.dedup_key(alert.alert_type, alert.symbol, alert.source)],
                             args=[alert.alert_id, int(self.dedup.ttl(alert.alert_type) * 1000)])
        duplicate = self.dedup.is_duplicate(holder.decode() if holder else None, alert.alert_id)
        breaker = self.board.apply(alert)
        routed = alert.severity in ROUTED_SEVERITIES and (self.webhook_sources is None
                                                          or alert.source in self.webhook_sources)
        endpoints = self.deliveries.endpoints if routed else []
        if duplicate:
            status = self.history.record(alert.alert_id, "suppressed")
        elif not endpoints:
            status = self.history.record(alert.alert_id, "routed", "skipped")
        else:
            body = orjson.dumps({**alert.to_wire(), "breaker_state": breaker.state})
            queued = [(e.key, e.origin) for e in endpoints]
            status = self.history.record(alert.alert_id, "routed", None, queued, body)
            self.deliveries.notify(e.key for e in endpoints)
        return self._handled(alert, status, breaker, bool(endpoints))

    def _handled(self, alert: Alert, status: str, breaker, routed: bool) -> str:
        """Count, observe and log a decision that stands (``status``); returns the outcome."""
        m = self.metrics
        outcome = status if status in ("suppressed", "snoozed") else "routed" if routed else "logged"
        if outcome == "suppressed":
            m.deduped.labels(alert.alert_type).inc()
        elif outcome == "snoozed":
            m.snoozed.labels(alert.alert_type).inc()
        elif outcome == "logged":
            m.webhooks.labels("skipped").inc()
        m.alerts.labels(alert.alert_type, alert.severity, outcome).inc()
        if alert.source == self.live_source:
            self.board.observe(self.clock(), (alert.symbol,))
        self.handled += 1
        alert_log.info(orjson.dumps({**alert.to_wire(), "suppressed": status == "suppressed",
                                     "snoozed": status == "snoozed", "breaker": breaker.state}).decode())
        return outcome


def run(settings: Settings, stop: threading.Event) -> None:
    from pipeline.metrics import serve

    check_settings(settings)
    metrics = AlertEngineMetrics()
    serve(metrics.registry, settings.metrics_host, settings.alert_metrics_port)
    AlertEngine(settings, metrics).run(stop)
