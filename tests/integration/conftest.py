"""Fixtures of the integration tests (servers come from tests/conftest.py)."""
from __future__ import annotations

import pytest

from pipeline.settings import Settings
from tests import market_data
from tests.integration.helpers import WorkerThread


@pytest.fixture
def fast(topics) -> Settings:
    """Test settings: quick flushes and a short grace period."""
    return topics.replace(flush_interval=0.3, grace_seconds=1.0, batch_size=2000)


@pytest.fixture
def market(clean_stores):
    """A small deterministic market (tests/market_data.py) written to Redis and PostgreSQL."""
    m = market_data.build(minutes=3)
    market_data.write(clean_stores, m)
    return m


@pytest.fixture
def run_worker():
    started: list[WorkerThread] = []

    def start(target, name="worker") -> WorkerThread:
        w = WorkerThread(target, name)
        started.append(w)
        return w

    yield start
    for w in started:
        if w.alive():
            w.stop()


@pytest.fixture
def market(clean_stores) -> market_data.Market:
    """A three-minute market (tickers, candles, trades, alerts) in Redis and PostgreSQL."""
    m = market_data.build(minutes=3)
    market_data.write(clean_stores, m)
    return m
