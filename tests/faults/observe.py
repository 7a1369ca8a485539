"""What a fault test watches while the fault lasts: group membership, a worker's health, the speed layer."""
from __future__ import annotations

import functools
import logging
from typing import Optional

import redis
from confluent_kafka.admin import AdminClient

from pipeline import speed_layer
from pipeline.settings import Settings
from tests.faults.workers import WorkerProcess

logger = logging.getLogger(__name__)

AVAILABLE_METRIC = "processor_database_available"              # 1 / 0
UNAVAILABLE_SINCE_METRIC = "processor_database_unavailable_since_seconds"  # epoch seconds, 0 when available
UNAVAILABLE_SINCE_BEAT = "database_unavailable_since"          # in the processor's Redis heartbeat


@functools.lru_cache(maxsize=4)
def _admin(bootstrap: str) -> AdminClient:
    """One admin client per cluster: a request's future only completes while its client is alive."""
    return AdminClient({"bootstrap.servers": bootstrap})


def group_assignment(settings: Settings, group: str) -> list[list[int]]:
    """The partitions of each member of ``group`` (a stable group only; [] while it rebalances)."""
    try:
        d = _admin(settings.kafka_bootstrap_servers).describe_consumer_groups(
            [group], request_timeout=5)[group].result(timeout=10)
    except Exception as exc:  # noqa: BLE001 - the coordinator may be busy; the caller polls
        logger.info("describe %s: %s", group, exc)
        return []
    if "STABLE" not in str(d.state):
        return []
    return sorted(sorted(tp.partition for tp in m.assignment.topic_partitions) for m in d.members)


def heartbeat(settings: Settings, worker: str) -> Optional[dict]:
    try:
        return speed_layer.SpeedLayerReader(redis.Redis.from_url(settings.redis_url, socket_timeout=2)
                                            ).heartbeat(worker)
    except redis.RedisError:
        return None


def metric_values(text: str) -> dict[str, float]:
    """Unlabelled samples of a /metrics text."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def says_database_unavailable(settings: Settings, processor: WorkerProcess) -> bool:
    """The processor's health shows the database unavailable: on /metrics (``processor_database_available``
    0 or an ``..._unavailable_since_seconds``) or in its Redis heartbeat (``database_unavailable_since``)."""
    values = metric_values(processor.metrics())
    if values.get(AVAILABLE_METRIC) == 0 or values.get(UNAVAILABLE_SINCE_METRIC, 0) > 0:
        return True
    return bool((heartbeat(settings, "processor") or {}).get(UNAVAILABLE_SINCE_BEAT))


def newest_ticker_time(settings: Settings) -> float:
    """Event time of the newest price in the speed layer (0 when Redis has none or does not answer)."""
    try:
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=2)
        prices = speed_layer.SpeedLayerReader(client).prices()
    except redis.RedisError:
        return 0.0
    return max((p["ts"] for p in prices.values()), default=0.0)
