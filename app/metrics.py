"""Prometheus metrics of the web server, on its own registry, served at ``/metrics``."""
from __future__ import annotations

import time

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

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
        self.ws_clients = Gauge("web_websocket_clients", "Connected stream clients", ["stream"], registry=r)
        self.browser_latency = Histogram("web_browser_latency_seconds", "Latency measured by browsers from "
                                         "their WebSocket ticks: event_to_browser (trade event time to the "
                                         "page), web_to_browser (the web server's send to the page)",
                                         ["stage"], buckets=BROWSER_BUCKETS, registry=r)
        for stream in STREAMS:
            self.ws_clients.labels(stream).set(0)


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
        return Response(generate_latest(metrics.registry), mimetype=CONTENT_TYPE_LATEST)
