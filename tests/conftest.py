"""Session-wide real servers for the integration and browser tests.

The test session starts one Apache Kafka (KRaft), one Redis-compatible server and one
PostgreSQL, each on a free loopback port under a temporary home, and applies the migrations.
Set KAFKA_BOOTSTRAP_SERVERS / REDIS_URL / DATABASE_URL to run against servers of your own.
Tests isolate themselves with per-test topic names and consumer groups (``topics`` fixture) and
by clearing Redis and truncating the history tables (``clean_stores``).
"""
from __future__ import annotations

import os
import secrets
import uuid

import pytest

from pipeline.settings import Settings

# Servers this session started, by name ("kafka", "redis", "postgres"): the fault tests freeze and kill them.
STARTED_SERVERS: dict = {}


def pytest_setup_options():
    """Chrome options for dash[testing]: Debian's Chromium, headless, no network chatter."""
    from tests.browser import chrome_options

    return chrome_options()


@pytest.fixture(scope="session")
def servers(tmp_path_factory):
    """URLs of a running Kafka, Redis and PostgreSQL, migrated; started once per session."""
    from pipeline.migrations import migrate
    from pipeline.stack.servers import KafkaServer, PostgresServer, RedisServer, free_port

    home = tmp_path_factory.mktemp("stack")
    started = []
    env = os.environ
    try:
        kafka = env.get("KAFKA_BOOTSTRAP_SERVERS") or started.append(KafkaServer(home, free_port()).start()) \
            or started[-1].url
        redis_url = env.get("REDIS_URL") or started.append(RedisServer(home, free_port()).start()) or started[-1].url
        db = env.get("DATABASE_URL") or started.append(PostgresServer(home, free_port()).start()) or started[-1].url
        migrate(db)
        STARTED_SERVERS.update({server.name: server for server in started})
        # One session signing key for every web app of the session: a browser signed in to one of them
        # (cookies ignore the port) is signed in to all, including one whose database is down.
        yield Settings.from_env({}, kafka_bootstrap_servers=kafka, redis_url=redis_url, database_url=db,
                                home=str(home), secret_key=secrets.token_urlsafe(32))
    finally:
        STARTED_SERVERS.clear()
        for s in reversed(started):
            s.stop()


@pytest.fixture(scope="session")
def local_servers(servers) -> dict:
    """The ``LocalServer`` objects this session started, by name; servers given by URL are not in it."""
    return dict(STARTED_SERVERS)


@pytest.fixture(scope="session")
def accounts(servers):
    """A signed-up user per role (viewer, operator, admin): ``tests.sign_in.Account`` keyed by role."""
    from tests.sign_in import create_accounts

    return create_accounts(servers.database_url)


@pytest.fixture
def clean_stores(servers):
    """Empty Redis and the history tables before a test."""
    from tests.integration.helpers import empty_stores

    empty_stores(servers)
    return servers


@pytest.fixture
def topics(clean_stores):
    """Settings with fresh topic names and consumer groups for this test, topics created."""
    from pipeline.kafka_io import ensure_topics

    tag = uuid.uuid4().hex[:8]
    s = clean_stores.replace(
        topic_trades=f"raw-trades-{tag}", topic_aggregates=f"trade-aggregates-{tag}",
        topic_alerts=f"trade-alerts-{tag}", topic_deadletter=f"raw-trades-dlq-{tag}",
        topic_webhook_deadletter=f"alert-webhooks-dlq-{tag}", topic_outbox_progress=f"outbox-progress-{tag}",
        processor_group=f"processor-{tag}", alert_group=f"alerts-{tag}")
    ensure_topics(s)
    return s
