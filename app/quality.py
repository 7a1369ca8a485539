"""Data quality in the web app: the figures of the /quality page and its API, the browser stage of the
latency (samples the page measures from its WebSocket ticks and reports back), and the sequence-gap
and late-trade gauges added to the web app's ``/metrics``.

Browser samples are kept in Redis (the newest ``BROWSER_KEPT`` per stage, shared by every web process)
and observed in the ``web_browser_latency_seconds`` histogram.  The gauges are computed from
PostgreSQL when ``/metrics`` is scraped, at most once per ``GAUGE_SECONDS``.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Iterable, Optional

import orjson
from prometheus_client.core import GaugeMetricFamily

from app.services import Services, Unavailable
from pipeline.history.quality import QualityReport
from pipeline.latency import summarise
from pipeline.speed_layer import PREFIX

logger = logging.getLogger(__name__)
BROWSER_STAGES = ("event_to_browser", "web_to_browser")
PIPELINE_STAGES = ("event_to_processor", "processor_to_redis")
BROWSER_KEPT = 1000
BROWSER_WINDOW = 300.0   # seconds of browser samples summarised
MAX_SAMPLES = 200        # per beacon
MAX_LATENCY = 3600.0
GAUGE_SECONDS = 15.0
GAUGE_WINDOW_MINUTES = 15


def browser_key(stage: str) -> str:
    return f"{PREFIX}quality:browser:{stage}"


def check_samples(body: dict) -> list[tuple[str, float]]:
    """(stage, seconds) pairs of a beacon body ``{"samples": [{"stage", "seconds"}, ...]}`` (ValueError names
    what is wrong, as "field: message")."""
    samples = body.get("samples")
    if not isinstance(samples, list) or not 1 <= len(samples) <= MAX_SAMPLES:
        raise ValueError(f"samples: a list of 1 to {MAX_SAMPLES} samples")
    out = []
    for i, s in enumerate(samples):
        if not isinstance(s, dict) or set(s) != {"stage", "seconds"}:
            raise ValueError(f"samples[{i}]: an object with stage and seconds")
        stage, seconds = s["stage"], s["seconds"]
        if stage not in BROWSER_STAGES:
            raise ValueError(f"samples[{i}].stage: one of {', '.join(BROWSER_STAGES)}")
        number = isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
        if not number or not 0 <= seconds <= MAX_LATENCY:
            raise ValueError(f"samples[{i}].seconds: a number from 0 to {MAX_LATENCY:g}")
        out.append((stage, float(seconds)))
    return out


def record_browser(services: Services, samples: Iterable[tuple[str, float]], histogram) -> int:
    now = time.time()
    by_stage: dict[str, list[bytes]] = {}
    for stage, seconds in samples:
        histogram.labels(stage).observe(seconds)
        by_stage.setdefault(stage, []).append(orjson.dumps([now, seconds]))

    def write(reader) -> int:
        pipe = reader.client.pipeline(transaction=False)
        for stage, values in by_stage.items():
            pipe.lpush(browser_key(stage), *values)
            pipe.ltrim(browser_key(stage), 0, BROWSER_KEPT - 1)
        pipe.execute()
        return sum(len(v) for v in by_stage.values())

    return services.speed(write)


def latency(services: Services) -> dict:
    """Every stage's recent latency: the processor's from its heartbeat, the browsers' from their samples."""
    def read(reader):
        beat = reader.heartbeat("processor") or {}
        stages = dict.fromkeys(PIPELINE_STAGES, summarise([]))
        stages.update({k: v for k, v in (beat.get("latency") or {}).items() if k in PIPELINE_STAGES})
        cutoff = time.time() - BROWSER_WINDOW
        for stage in BROWSER_STAGES:
            raw = reader.client.lrange(browser_key(stage), 0, BROWSER_KEPT - 1)
            stages[stage] = summarise([v for t, v in map(orjson.loads, raw) if t >= cutoff])
        return stages

    return services.speed(read)


def report(services: Services, minutes: int, symbol: Optional[str] = None) -> dict:
    """The data-quality figures of the page and of ``GET /api/v1/quality``."""
    def query(h):
        q = QualityReport(h)
        return {"late": q.late_trades(minutes, symbol), "late_series": q.late_series(minutes, symbol),
                "dead_letters": q.dead_letters(minutes), "sequence_gaps": q.sequence_gaps(minutes)}

    body = {"minutes": minutes, "symbol": symbol, **services.history(query)}
    try:
        body["latency"] = latency(services)
    except Unavailable:
        body["latency"] = None
    return body


class QualityGauges:
    """A Prometheus collector: sequence gaps, missing numbers per exchange and late trades per symbol over
    the last ``GAUGE_WINDOW_MINUTES`` of event time, from PostgreSQL (cached ``GAUGE_SECONDS``)."""

    def __init__(self, services: Services):
        self.services = services
        self._lock = threading.Lock()
        self._cached: tuple[float, list] = (0.0, [])

    def collect(self):
        with self._lock:
            at, families = self._cached
            if time.monotonic() - at >= GAUGE_SECONDS:
                families = self._families()
                self._cached = (time.monotonic(), families)
        return iter(families)

    def _families(self) -> list:
        try:
            minutes = GAUGE_WINDOW_MINUTES
            gaps, late = self.services.history(lambda h: (QualityReport(h).sequence_gaps(minutes),
                                                          QualityReport(h).late_trades(minutes)))
        except Unavailable as exc:
            logger.info("quality gauges unavailable: %s", exc)
            return []
        window = f"over the last {GAUGE_WINDOW_MINUTES} minutes of event time"
        g_gaps = GaugeMetricFamily("stockit_sequence_gaps", f"Gaps in sequence per exchange {window}",
                                   labels=["exchange"])
        g_missing = GaugeMetricFamily("stockit_sequence_missing",
                                      f"Sequence numbers missing per exchange {window}", labels=["exchange"])
        g_late = GaugeMetricFamily("stockit_late_trades",
                                   f"Late trades stored per source and symbol {window}",
                                   labels=["source", "symbol"])
        for r in gaps["exchanges"]:
            g_gaps.add_metric([r["exchange"]], r["gaps"])
            g_missing.add_metric([r["exchange"]], r["missing"])
        for r in late:
            g_late.add_metric([r["source"], r["symbol"]], r["late"])
        return [g_gaps, g_missing, g_late]
