"""The producer worker: simulated market trades to ``raw-trades`` at a steady rate.

Pacing: every tick publishes the trades due since the start (rate x elapsed), so the long-run
rate is exact even when a tick is late.  Rate 0 publishes as fast as the broker accepts.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Optional

from pipeline import kafka_io, speed_layer
from pipeline.metrics import ProducerMetrics
from pipeline.settings import Settings
from pipeline.simulator import MarketSimulator

logger = logging.getLogger(__name__)
TICK = 0.01


class TradePublisher:
    """Publishes trades keyed by symbol and records delivery latency and errors."""

    def __init__(self, producer: kafka_io.Publisher, topic: str, metrics: ProducerMetrics):
        self.producer = producer
        self.topic = topic
        self.metrics = metrics
        self.sent = 0
        self.failed = 0

    def publish(self, key: bytes, value: bytes, symbol: str, side: str) -> None:
        sent_at = time.perf_counter()
        metrics = self.metrics

        def delivered(err: Optional[str], msg) -> None:
            if err is not None:
                self.failed += 1
                metrics.errors.inc()
                logger.error("trade not delivered: %s", err)
            else:
                metrics.latency.observe(time.perf_counter() - sent_at)

        self.producer.produce(self.topic, value, key, on_delivery=delivered)
        metrics.trades.labels(symbol, side).inc()
        self.sent += 1

    def flush(self, timeout: float = 30.0) -> int:
        return self.producer.flush(timeout)


def run(settings: Settings, stop: threading.Event, limit: Optional[int] = None,
        metrics: Optional[ProducerMetrics] = None, serve_metrics: bool = True) -> int:
    """Publish simulated trades until ``stop`` (or ``limit`` trades). Returns the number sent."""
    from pipeline.metrics import serve

    metrics = metrics or ProducerMetrics()
    if serve_metrics:
        serve(metrics.registry, settings.metrics_host, settings.producer_metrics_port)
    seed = settings.seed or int(time.time() * 1000) % 2**31
    sim = MarketSimulator(settings.symbol_list, seed=seed, event_rate=settings.event_rate,
                          source=settings.live_source)
    pub = TradePublisher(kafka_io.Publisher(settings), settings.topic_trades, metrics)
    rate = settings.trade_rate
    redis_client = _redis_or_none(settings)
    logger.info("producer: %s at %s trades/s (seed %d, source %s) -> %s", ",".join(settings.symbol_list),
                rate or "max", seed, sim.source, settings.topic_trades)
    start = time.time()
    last_beat = 0.0
    try:
        while not stop.is_set() and (limit is None or pub.sent < limit):
            now = time.time()
            due = (limit or 1 << 62) if rate <= 0 else int((now - start) * rate) + 1
            batch = min(due - pub.sent, 10000, (limit or 1 << 62) - pub.sent)
            for _ in range(batch):
                trade, event = sim.next_trade(time.time())
                if event:
                    metrics.events.labels(event).inc()
                pub.publish(trade.symbol.encode(), trade.encode(), trade.symbol, trade.side)
            pub.producer.poll(0)
            if now - last_beat > 5 and redis_client is not None:
                last_beat = now
                try:
                    speed_layer.heartbeat(redis_client, "producer", sent=pub.sent, rate=rate)
                except Exception:  # noqa: BLE001 - heartbeat is best effort
                    pass
            if rate > 0:
                stop.wait(TICK)
    finally:
        left = pub.flush()
        if left:
            logger.error("%d trades were not acknowledged by the broker", left)
        logger.info("producer stopped after %d trades", pub.sent)
    return pub.sent


def _redis_or_none(settings: Settings):
    if not settings.redis_url:
        return None
    try:
        return speed_layer.connect(settings.redis_url)
    except Exception:  # noqa: BLE001
        return None
