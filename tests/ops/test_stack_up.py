"""`stockit up` end to end (issue: the pipeline on real servers): within 90 s of starting, trades
flow, finalized 1-minute candles and alerts are on their topics and in PostgreSQL, Redis holds the
live picture and every worker serves its metrics. Stopping it is checked by the fixture."""
from __future__ import annotations

import time
import urllib.request

import orjson
import psycopg2
import pytest
import redis

from pipeline.settings import Settings
from pipeline.speed_layer import SpeedLayerReader
from tests.integration.helpers import consume_all

pytestmark = pytest.mark.integration
DEADLINE = 90.0


def stack_settings(stack) -> Settings:
    env = stack.env
    return Settings.from_env(env).replace(
        kafka_bootstrap_servers=f"127.0.0.1:{env['STOCKIT_KAFKA_PORT']}",
        redis_url=f"redis://127.0.0.1:{env['STOCKIT_REDIS_PORT']}/0",
        database_url=f"postgresql://postgres@127.0.0.1:{env['STOCKIT_POSTGRES_PORT']}/stockit")


def count(s: Settings, query: str) -> int:
    conn = psycopg2.connect(s.database_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(query)
            return cur.fetchone()[0]
    finally:
        conn.close()


def until_deadline(stack, predicate, what: str):
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() - stack.started > DEADLINE:
            pytest.fail(f"{what} not within {DEADLINE:.0f}s of `stockit up` starting")
        time.sleep(0.5)


def test_stack001_everything_flows_within_90_seconds(local_stack):
    s = stack_settings(local_stack)
    reader = SpeedLayerReader(redis.Redis.from_url(s.redis_url))
    until_deadline(local_stack, lambda: count(s, "SELECT count(*) FROM trades") > 0, "trades in PostgreSQL")
    until_deadline(local_stack, lambda: len(reader.prices()) == len(s.symbol_list), "a price for every symbol")
    until_deadline(local_stack, lambda: reader.open_candle("AAPL", 60), "an open candle in Redis")
    until_deadline(local_stack, lambda: count(s, "SELECT count(*) FROM alerts") > 0, "alerts in PostgreSQL")
    until_deadline(local_stack, lambda: count(s, "SELECT count(*) FROM candles WHERE window_seconds = 60") > 0,
                   "a finalized 1-minute candle in PostgreSQL")
    until_deadline(local_stack, lambda: count(s, "SELECT count(*) FROM outbox") == 0
                   and count(s, "SELECT count(*) FROM alerts WHERE status <> 'new'") > 0, "alerts handled")
    candles = [orjson.loads(m.value()) for m in consume_all(s, s.topic_aggregates, 1, timeout=10)]
    assert any(c["window_seconds"] == 60 for c in candles)
    alerts = [orjson.loads(m.value()) for m in consume_all(s, s.topic_alerts, 1, timeout=10)]
    assert alerts and {"alert_id", "alert_type", "severity", "deviation"} <= set(alerts[0])
    assert time.monotonic() - local_stack.started <= DEADLINE

    for name, metric in (("producer", "producer_trades_total"), ("processor", "processor_trades_total"),
                         ("alert-engine", "alertengine_circuit_breakers_open")):
        body = urllib.request.urlopen(f"http://{local_stack.targets[name]}/metrics", timeout=5).read().decode()
        assert metric in body, (name, metric)
    assert "processor_price{symbol=\"AAPL\"}" in urllib.request.urlopen(
        f"http://{local_stack.targets['processor']}/metrics", timeout=5).read().decode()
