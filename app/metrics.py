"""Prometheus metrics of the web server, on its own registry, served at ``/metrics``.

With several server processes (``PROMETHEUS_MULTIPROC_DIR`` set by app/web.py) each process writes its
metrics to files there and ``/metrics`` answers the sum over all of them, whichever process serves it.
"""
from __future__ import annotations

import os
import time

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess, values

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
STREAMS = ("prices", "alerts", "aggregates", "sse-prices")
BROWSER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class WebMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        r = self.registry = registry or CollectorRegistry()
        self.requests = Counter("web_requests_total", "HTTP requests served", ["method", "endpoint", "status"],
                                registry=r)
        self.duration = Histogram("web_request_duration_seconds", "Time to produce a response", ["endpoint"],
                                  buckets=BUCKETS, registry=r)
        self.ws_clients = Gauge("web_websocket_clients", "Connected stream clients", ["stream"], registry=r,
                                multiprocess_mode="livesum")
        self.stream_drops = Counter("web_stream_drops_total",
                                    "Stream clients refused (full) or cut off (slow, unresponsive, too_big)",
                                    ["stream", "reason"], registry=r)
        self.browser_latency = Histogram("web_browser_latency_seconds", "Latency measured by browsers from "
                                         "their WebSocket ticks: event_to_browser (trade event time to the "
                                         "page), web_to_browser (the web server's send to the page)",
                                         ["stage"], buckets=BROWSER_BUCKETS, registry=r)
        for stream in STREAMS:
            self.ws_clients.labels(stream).set(0)
        self.computed: list = []  # collectors that compute their samples at scrape time

    def add_computed(self, collector) -> None:
        """A collector whose samples are computed when scraped (the same in every process)."""
        self.registry.register(collector)
        self.computed.append(collector)


def share_between_processes() -> None:
    """Keep this process's metrics in files under ``PROMETHEUS_MULTIPROC_DIR`` (call before making any)."""
    values.ValueClass = values.MultiProcessValue()


def _exposition(metrics: WebMetrics) -> bytes:
    if not os.environ.get(MULTIPROCESS_DIR):
        return generate_latest(metrics.registry)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    for collector in metrics.computed:
        registry.register(collector)
    return generate_latest(registry)


def init_app(server: Flask, metrics: WebMetrics) -> None:
    server.extensions["stockit.metrics"] = metrics

    @server.before_request
    def _start_timer() -> None:
        g.stockit_started = time.perf_counter()

    @server.after_request
    def _observe(response: Response) -> Response:
        started = g.pop("stockit_started", None)
        if started is not None:
            endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
            metrics.duration.labels(endpoint).observe(time.perf_counter() - started)
            metrics.requests.labels(request.method, endpoint, str(response.status_code)).inc()
        return response

    @server.get("/metrics")
    def _metrics() -> Response:
        return Response(_exposition(metrics), mimetype=CONTENT_TYPE_LATEST)
