"""Fixtures of the fault suite: servers a test may freeze and kill, workers as child processes, the checker.

The suite injects its faults into the session's own Kafka, Redis and PostgreSQL (tests/conftest.py),
whose processes it can signal; when the session was pointed at servers of its own by URL, the suite
starts a private set instead (it must not freeze servers it does not own).  Every test leaves the
servers healthy: ``Scenario.close`` kills the test's workers, thaws what is frozen, restarts what
was killed, and removes the checkpoint trigger.
"""
from __future__ import annotations

import logging

import pytest

from pipeline.settings import Settings
from tests.faults.checker import ReportFile
from tests.faults.scenario import Scenario
from tests.faults.workers import ROOT

logger = logging.getLogger(__name__)
SERVER_NAMES = ("kafka", "redis", "postgres")
REPORT_PATH = ROOT / "build" / "faults-report.json"
_OWN_STACK: dict = {}


@pytest.fixture(scope="session")
def servers(servers, local_servers, tmp_path_factory):
    """The session's servers when it started them; otherwise a private set started for the fault suite."""
    if all(name in local_servers for name in SERVER_NAMES):
        yield servers
        return
    from pipeline.migrations import migrate
    from pipeline.stack.servers import KafkaServer, PostgresServer, RedisServer, free_port

    home = tmp_path_factory.mktemp("fault-stack")
    started = []
    try:
        for kind in (KafkaServer, RedisServer, PostgresServer):
            started.append(kind(home, free_port()).start())
        kafka, redis_server, postgres = started
        migrate(postgres.url)
        _OWN_STACK.update({s.name: s for s in started})
        yield Settings.from_env({}, kafka_bootstrap_servers=kafka.url, redis_url=redis_server.url,
                                database_url=postgres.url, home=str(home))
    finally:
        _OWN_STACK.clear()
        for s in reversed(started):
            s.stop()


@pytest.fixture(scope="session")
def stack(servers, local_servers) -> dict:
    """name -> the ``LocalServer`` the fault tests signal."""
    return dict(_OWN_STACK) or {name: local_servers[name] for name in SERVER_NAMES}


@pytest.fixture(scope="session")
def report_file() -> ReportFile:
    f = ReportFile(REPORT_PATH)
    f.reset(ROOT)
    return f


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.fault_failed = rep.failed


@pytest.fixture
def scenario(topics, stack, tmp_path, report_file, request):
    """Settings of a fault test: fresh topics and groups, a checkpoint every half second."""
    settings = topics.replace(flush_interval=0.5, grace_seconds=2.0, batch_size=2000)
    world = Scenario(settings, stack, tmp_path, report_file)
    yield world
    world.close(getattr(request.node, "fault_failed", True))
