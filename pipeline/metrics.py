"""Prometheus metrics of every Stock-IT worker, declared in one place.

Each worker serves its own registry on its metrics port (``STOCKIT_PRODUCER_METRICS_PORT`` 8001,
``STOCKIT_PROCESSOR_METRICS_PORT`` 8002, ``STOCKIT_ALERT_METRICS_PORT`` 8003; the web app serves
``/metrics`` on its own port).  Labelled counters are
initialised for their known label values at start-up so dashboards and alert rules have a series
(at zero) before the first event.
"""
from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from pipeline.alert_types import ALERT_TYPES, SEVERITY_BY_TYPE
from pipeline.breaker import STATES
from pipeline.events import INVALID_KINDS

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000)
DEADLETTER_REASONS = (*INVALID_KINDS, "database_rejected")  # InvalidRecord.kind labels + rows refused
WEBHOOK_OUTCOMES = ("delivered", "retried", "failed", "skipped")


class ProducerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        r = self.registry = registry or CollectorRegistry()
        self.trades = Counter("producer_trades_total", "Trades published", ["symbol", "side"], registry=r)
        self.latency = Histogram("producer_latency_seconds", "Produce call to broker acknowledgement",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.errors = Counter("producer_errors_total", "Trades the broker did not acknowledge", registry=r)
        self.events = Counter("producer_market_events_total", "Injected market events", ["kind"], registry=r)
        self.errors.inc(0)
        for kind in ("price_jump", "whale"):
            self.events.labels(kind).inc(0)


class ProcessorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        r = self.registry = registry or CollectorRegistry()
        self.trades = Counter("processor_trades_total", "Valid trades processed", ["symbol"], registry=r)
        self.alerts = Counter("processor_alerts_total", "Alerts raised", ["alert_type", "severity"], registry=r)
        self.price = Gauge("processor_price", "Last traded price", ["symbol"], registry=r)
        self.candles = Counter("processor_candles_total", "Candles finalized", ["window_seconds"], registry=r)
        self.late = Counter("processor_late_trades_total", "Trades later than their finalized window",
                            registry=r)
        self.late_by_source = Counter("processor_late_trades_by_source_total",
                                      "Trades later than their finalized window, per source and symbol",
                                      ["source", "symbol"], registry=r)
        self.ingest_latency = Histogram("processor_ingest_latency_seconds",
                                        "Trade event time to the processor folding it in (live trades)",
                                        buckets=LATENCY_BUCKETS, registry=r)
        self.deadletter = Counter("processor_deadletter_total", "Invalid records sent to the dead-letter topic",
                                  ["reason"], registry=r)
        self.batch_size = Histogram("processor_batch_size", "Records per consumed batch",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.batch_duration = Histogram("processor_batch_duration_seconds", "Time to process one batch",
                                        buckets=LATENCY_BUCKETS, registry=r)
        self.flush_duration = Histogram("processor_db_flush_duration_seconds", "Database flush (one transaction)",
                                        buckets=LATENCY_BUCKETS, registry=r)
        self.flush_rows = Counter("processor_db_rows_total", "Rows written to PostgreSQL", ["table"], registry=r)
        self.redis_duration = Histogram("processor_redis_write_duration_seconds", "Pipelined Redis write per batch",
                                        buckets=LATENCY_BUCKETS, registry=r)
        self.e2e_latency = Histogram("processor_end_to_end_latency_seconds",
                                     "Trade event time to its effect in Redis", buckets=LATENCY_BUCKETS, registry=r)
        self.lag = Gauge("processor_consumer_lag", "Records behind the partition end", ["partition"], registry=r)
        self.committed = Counter("processor_offsets_committed_total", "Checkpoints committed", registry=r)
        self.outbox_published = Counter("processor_outbox_published_total",
                                        "Outbox messages published in committed Kafka transactions", registry=r)
        self.db_available = Gauge("processor_database_available",
                                  "1 while PostgreSQL takes checkpoints, 0 while it is unavailable", registry=r)
        self.db_unavailable_since = Gauge("processor_database_unavailable_since_seconds",
                                          "Epoch seconds since when PostgreSQL is unavailable (0: available)",
                                          registry=r)
        self.db_available.set(1)
        self.late.inc(0)
        for reason in DEADLETTER_REASONS:
            self.deadletter.labels(reason).inc(0)
        for alert_type in ALERT_TYPES:
            self.alerts.labels(alert_type, SEVERITY_BY_TYPE[alert_type]).inc(0)


class AlertEngineMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        r = self.registry = registry or CollectorRegistry()
        self.alerts = Counter("alertengine_alerts_total", "Alerts consumed", ["alert_type", "severity", "outcome"],
                              registry=r)
        self.deduped = Counter("alertengine_deduped_total", "Alerts suppressed as duplicates", ["alert_type"],
                               registry=r)
        self.breakers_open = Gauge("alertengine_circuit_breakers_open", "Symbols whose breaker is OPEN", registry=r)
        self.breaker_state = Gauge("alertengine_circuit_breaker_state",
                                   "Breaker state per symbol: 0 CLOSED, 1 HALF_OPEN, 2 OPEN", ["symbol"], registry=r)
        self.transitions = Counter("alertengine_breaker_transitions_total", "Breaker state changes",
                                   ["to_state"], registry=r)
        self.webhooks = Counter("alertengine_webhook_deliveries_total", "Webhook delivery outcomes", ["outcome"],
                                registry=r)
        self.webhook_duration = Histogram("alertengine_webhook_duration_seconds", "One webhook request",
                                          buckets=LATENCY_BUCKETS, registry=r)
        self.lag = Gauge("alertengine_consumer_lag", "Records behind the partition end", ["partition"], registry=r)
        self.dependency_up = Gauge("alertengine_dependency_up", "1 while the server answers, 0 while it is "
                                   "unavailable and the engine waits for it", ["server"], registry=r)
        self.dependency_down_since = Gauge("alertengine_dependency_unavailable_since_seconds",
                                           "Unix time the server became unavailable (0: available)",
                                           ["server"], registry=r)
        self.dependency_retries = Counter("alertengine_dependency_retries_total",
                                          "Operations retried because a server was unavailable", ["server"],
                                          registry=r)
        self.malformed = Counter("alertengine_malformed_alerts_total", "Records on trade-alerts that are not "
                                 "alerts, skipped", ["kind"], registry=r)
        self.commit_errors = Counter("alertengine_commit_errors_total", "Offset commits the group refused",
                                     registry=r)
        self.webhook_backlog = Gauge("alertengine_webhook_backlog", "Webhook deliveries pending or in flight",
                                     ["endpoint"], registry=r)
        self.snoozed = Counter("alertengine_snoozed_total", "Alerts kept but not routed: an active snooze "
                               "matched them", ["alert_type"], registry=r)
        self.snoozes_active = Gauge("alertengine_snoozes_active", "Snoozes in force", registry=r)
        self.commit_errors.inc(0)
        for server in ("redis", "postgres"):
            self.dependency_retries.labels(server).inc(0)
        for kind in INVALID_KINDS:
            self.malformed.labels(kind).inc(0)
        for alert_type in ALERT_TYPES:
            self.deduped.labels(alert_type).inc(0)
            self.snoozed.labels(alert_type).inc(0)
        for outcome in WEBHOOK_OUTCOMES:
            self.webhooks.labels(outcome).inc(0)
        for state in STATES:
            self.transitions.labels(state).inc(0)


def serve(registry: CollectorRegistry, host: str, port: int) -> None:
    """Serve ``registry`` on http://host:port/metrics in a daemon thread."""
    start_http_server(port, addr=host, registry=registry)
    logger.info("metrics on http://%s:%d/metrics", host, port)
