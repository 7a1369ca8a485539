"""The alert engine worker: deduplicate, run each symbol's circuit breaker, route alerts.

Consumes ``trade-alerts``.  For each alert: the Redis dedup window decides new or suppressed
(suppressed alerts are counted and marked ``suppressed`` in PostgreSQL, never dropped without
trace); the symbol's breaker advances and is saved to Redis; CRITICAL and HIGH alerts go to the
configured webhooks; every alert is logged as one structured line.  Offsets are committed after
the batch's effects, so a restart re-sees at most one batch — dedup windows and breaker states
recognise an alert they have already applied.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

import orjson
import redis
from confluent_kafka import Consumer, KafkaError

from pipeline import kafka_io, speed_layer
from pipeline.breaker import CLOSED, OPEN, STATE_VALUE, BreakerPolicy, BreakerState, advance, on_alert
from pipeline.dedup import DEFAULT_TTLS, DedupPolicy
from pipeline.events import Alert
from pipeline.history.alert_status import AlertStatusStore
from pipeline.metrics import AlertEngineMetrics
from pipeline.settings import Settings
from pipeline.webhooks import Delivery, WebhookSender

logger = logging.getLogger(__name__)
alert_log = logging.getLogger("stockit.alerts")
ROUTED_SEVERITIES = ("CRITICAL", "HIGH")

# SET NX with GET answers atomically "who owns this window": nil means we opened it.
_CLAIM = "return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'GET', 'PX', ARGV[2])"


class BreakerBoard:
    """Breaker states of all symbols, cached in memory and written through to Redis."""

    def __init__(self, client: redis.Redis, policy: BreakerPolicy, metrics: AlertEngineMetrics):
        self.client = client
        self.policy = policy
        self.metrics = metrics
        self.states: dict[str, BreakerState] = {}
        for sym, raw in client.hgetall(speed_layer.BREAKERS).items():
            d = orjson.loads(raw)
            self.states[sym.decode()] = BreakerState(d["symbol"], d["state"], d["since"], d["last_event"], d["trips"],
                                                     d.get("last_alert_id"))
        self._publish_metrics()

    def get(self, symbol: str) -> BreakerState:
        return self.states.get(symbol) or BreakerState(symbol, CLOSED, time.time(), time.time())

    def apply(self, alert: Alert, now: float) -> BreakerState:
        before = self.get(alert.symbol)
        after = on_alert(before, alert.alert_type, alert.alert_id, now, self.policy)
        self._store(before, after)
        return after

    def tick(self, now: float) -> None:
        for sym, before in list(self.states.items()):
            self._store(before, advance(before, now, self.policy))

    def _store(self, before: BreakerState, after: BreakerState) -> None:
        if after == before and after.symbol in self.states:
            return
        self.states[after.symbol] = after
        self.client.hset(speed_layer.BREAKERS, after.symbol, orjson.dumps({
            "symbol": after.symbol, "state": after.state, "since": after.since, "last_event": after.last_event,
            "trips": after.trips, "last_alert_id": after.last_alert_id}))
        if after.state != before.state:
            self.metrics.transitions.labels(after.state).inc()
            logger.info("breaker %s: %s -> %s", after.symbol, before.state, after.state)
        self._publish_metrics()

    def _publish_metrics(self) -> None:
        self.metrics.breakers_open.set(sum(1 for b in self.states.values() if b.state == OPEN))
        for sym, b in self.states.items():
            self.metrics.breaker_state.labels(sym).set(STATE_VALUE[b.state])


class AlertEngine:
    def __init__(self, settings: Settings, metrics: Optional[AlertEngineMetrics] = None,
                 clock: Callable[[], float] = time.time):
        self.s = settings
        self.metrics = metrics or AlertEngineMetrics()
        self.clock = clock
        self.dedup = DedupPolicy({**DEFAULT_TTLS, **settings.dedup_ttl_map})
        self.policy = BreakerPolicy(settings.breaker_open_seconds, settings.breaker_probation_seconds)
        m = self.metrics
        self.sender = WebhookSender(settings.webhook_secret, settings.webhook_attempts, settings.webhook_backoff,
                                    settings.webhook_timeout, observe=m.webhook_duration.observe)
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="webhook")
        self.redis: Optional[redis.Redis] = None
        self.history: Optional[AlertStatusStore] = None
        self.consumer: Optional[Consumer] = None
        self.producer = None
        self.board: Optional[BreakerBoard] = None
        self.handled = 0
        self._last_tick = 0.0

    def open(self) -> None:
        s = self.s
        self.redis = speed_layer.connect(s.redis_url)
        self._claim = self.redis.register_script(_CLAIM)
        self.history = AlertStatusStore(s.database_url)
        self.producer = kafka_io.make_producer(s)
        self.board = BreakerBoard(self.redis, self.policy, self.metrics)
        # Offsets are stored as messages are consumed and committed after the batch is handled.
        self.consumer = Consumer(kafka_io.consumer_config(s, s.alert_group, **{"enable.auto.offset.store": True}))
        self.consumer.subscribe([s.topic_alerts], on_assign=self._on_assign)

    def _on_assign(self, consumer: Consumer, partitions) -> None:
        for tp in partitions:
            self.metrics.lag.labels(str(tp.partition)).set(0)
        consumer.assign(partitions)

    def _observe_lag(self) -> None:
        assigned = self.consumer.assignment()
        if assigned:
            for p, lag in kafka_io.consumer_lag(self.consumer, assigned).items():
                self.metrics.lag.labels(str(p)).set(lag)

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None
        self.pool.shutdown(wait=True)
        if self.producer is not None:
            self.producer.flush(10)
        if self.history is not None:
            self.history.close()

    def run(self, stop: threading.Event) -> None:
        self.open()
        logger.info("alert engine consuming %s as group %s; webhooks: %d", self.s.topic_alerts, self.s.alert_group,
                    len(self.s.webhook_url_list))
        try:
            while not stop.is_set():
                self.step()
        finally:
            self.close()

    def step(self, timeout: float = 0.5) -> int:
        msgs = self.consumer.consume(500, timeout)
        now = self.clock()
        futures = []
        for msg in msgs:
            if msg.error() is not None:
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    logger.warning("consume error: %s", msg.error())
                continue
            try:
                alert = Alert.decode(msg.value())
            except Exception as exc:  # noqa: BLE001 - a malformed alert must not stop the engine
                logger.error("undecodable alert at %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), exc)
                continue
            futures.append(self.handle(alert, now))
        for fut in futures:
            if fut is not None:
                fut.result()
        if msgs:
            self.consumer.commit(asynchronous=False)
        if now - self._last_tick >= 1.0:
            self._last_tick = now
            self.board.tick(now)
            self._observe_lag()
            speed_layer.heartbeat(self.redis, "alert-engine", handled=self.handled)
        return len(msgs)

    def handle(self, alert: Alert, now: float):
        """Dedup, breaker, log, route. Returns a future when webhook delivery is under way."""
        m = self.metrics
        holder = self._claim(keys=[speed_layer.dedup_key(alert.alert_type, alert.symbol)],
                             args=[alert.alert_id, int(self.dedup.ttl(alert.alert_type) * 1000)])
        duplicate = self.dedup.is_duplicate(holder.decode() if holder else None, alert.alert_id)
        breaker = self.board.apply(alert, now)
        self.handled += 1
        alert_log.info(orjson.dumps({**alert.to_wire(), "suppressed": duplicate, "breaker": breaker.state}).decode())
        if duplicate:
            m.deduped.labels(alert.alert_type).inc()
            m.alerts.labels(alert.alert_type, alert.severity, "suppressed").inc()
            self.history.set_alert_status(alert.alert_id, "suppressed")
            return None
        urls = self.s.webhook_url_list
        if alert.severity not in ROUTED_SEVERITIES or not urls:
            m.alerts.labels(alert.alert_type, alert.severity, "logged").inc()
            m.webhooks.labels("skipped").inc()
            self.history.set_alert_status(alert.alert_id, "routed", "skipped")
            return None
        m.alerts.labels(alert.alert_type, alert.severity, "routed").inc()
        body = orjson.dumps({**alert.to_wire(), "breaker_state": breaker.state})
        return self.pool.submit(self._deliver_all, alert, urls, body)

    def _deliver_all(self, alert: Alert, urls: list[str], body: bytes) -> None:
        m = self.metrics
        results: list[Delivery] = [
            self.sender.deliver(url, body, alert.alert_id, on_retry=lambda: m.webhooks.labels("retried").inc())
            for url in urls]
        failed = [r for r in results if not r.ok]
        for r in results:
            m.webhooks.labels("delivered" if r.ok else "failed").inc()
        for r in failed:
            record = {"alert": orjson.loads(body), "url": r.url, "attempts": r.attempts, "status": r.status,
                      "error": r.error, "failed_at": time.time()}
            self.producer.produce(self.s.topic_webhook_deadletter, orjson.dumps(record), alert.symbol.encode())
        if failed:
            self.producer.flush(10)
        status = "failed" if failed else "delivered"
        error = "; ".join(f"{r.url}: {r.error}" for r in failed) or None
        self.history.set_alert_status(alert.alert_id, "routed", status, sum(r.attempts for r in results), error)


def run(settings: Settings, stop: threading.Event) -> None:
    from pipeline.metrics import serve

    metrics = AlertEngineMetrics()
    serve(metrics.registry, settings.metrics_host, settings.alert_metrics_port)
    AlertEngine(settings, metrics).run(stop)
