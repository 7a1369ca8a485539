"""Session fixtures of the live monitoring test: the local stack (`stockit up`) and a real
Prometheus server (Debian's binary) scraping it on loopback."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.ops import opsfiles

STARTUP_TIMEOUT = float(os.environ.get("STOCKIT_OPS_STARTUP_TIMEOUT", "300"))  # first run fetches Kafka
STOP_TIMEOUT = 90.0
# Scrape jobs of monitoring/prometheus.yml with no local counterpart (Grafana cannot be installed).
NOT_LOCAL = {"grafana"}
# Requests that give the web app's request metrics a series per endpoint.
REUSED_SERVERS = {"KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "DATABASE_URL"}
WEB_PATHS = ("/", "/api/v1/health", "/api/v1/prices", "/api/v1/stats/summary", "/api/v1/alerts")
# The web app's /metrics is signed-in only: Prometheus presents this token (as compose's secret does).
WEB_METRICS_TOKEN = "ops-test-metrics-token"
ADMIN_PASSWORD = "ops-test-admin-password"


@dataclass(frozen=True)
class LocalStack:
    """A running `stockit up`: the loopback address of each scrape job, its environment and when it
    was started (``time.monotonic()``)."""

    home: Path
    log: Path
    targets: dict[str, str]
    env: dict[str, str]
    started: float


@dataclass(frozen=True)
class PrometheusServer:
    url: str
    jobs: set[str]
    config: Path

    def api(self, path: str, **params: str) -> dict:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out now; held open together so they differ."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def http_ok(url: str, token: str = "") -> bool:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status == 200


def tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def stop(process: subprocess.Popen, name: str, timeout: float) -> None:
    """SIGTERM ``process`` and wait; SIGKILL its own process group only if it does not exit."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise AssertionError(f"{name} did not stop within {timeout:.0f}s of SIGTERM") from None


def leftover_processes(home: Path) -> list[int]:
    """PIDs of live processes started with STOCKIT_HOME=home: servers and workers run in sessions of
    their own, so the process group of `stockit up` does not find them."""
    marker = f"STOCKIT_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                status = (entry / "stat").read_text().split()
                if status[2] != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory) -> Iterator[LocalStack]:
    home = tmp_path_factory.mktemp("stockit-home")
    log = home / "stockit-up.log"
    kafka, redis, postgres, producer, processor, alert, web = free_ports(7)
    # Servers of its own, never ones the developer's environment names.
    env = {k: v for k, v in os.environ.items() if k not in REUSED_SERVERS}
    env.update({
        "STOCKIT_HOME": str(home),
        "STOCKIT_KAFKA_PORT": str(kafka),
        "STOCKIT_REDIS_PORT": str(redis),
        "STOCKIT_POSTGRES_PORT": str(postgres),
        "STOCKIT_PRODUCER_METRICS_PORT": str(producer),
        "STOCKIT_PROCESSOR_METRICS_PORT": str(processor),
        "STOCKIT_ALERT_METRICS_PORT": str(alert),
        "STOCKIT_WEB_PORT": str(web),
        "STOCKIT_METRICS_HOST": "127.0.0.1",
        "STOCKIT_WEB_HOST": "127.0.0.1",
        "STOCKIT_SEED": "42",
        "STOCKIT_METRICS_TOKEN": WEB_METRICS_TOKEN,
        "STOCKIT_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PYTHONUNBUFFERED": "1",
    })
    targets = {"producer": f"127.0.0.1:{producer}", "processor": f"127.0.0.1:{processor}",
               "alert-engine": f"127.0.0.1:{alert}", "web": f"127.0.0.1:{web}"}
    # `stockit up`, whether or not the console script is installed.
    command = [sys.executable, "-c",
               "import sys; from pipeline.cli import main; sys.argv = ['stockit', 'up']; sys.exit(main())"]
    started = time.monotonic()
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=opsfiles.ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        def metrics_answer() -> bool:
            if process.poll() is not None:
                pytest.fail(f"`stockit up` exited with {process.returncode}:\n{tail(log)}")
            for name, address in targets.items():
                token = WEB_METRICS_TOKEN if name == "web" else ""
                assert http_ok(f"http://{address}/metrics", token), address
            return True

        try:
            opsfiles.wait_for(metrics_answer, timeout=STARTUP_TIMEOUT, interval=1.0,
                              what="every /metrics endpoint of `stockit up`")
        except AssertionError as exc:
            pytest.fail(f"{exc}\n--- stockit up log ---\n{tail(log)}")
        yield LocalStack(home=home, log=log, targets=targets, env=env, started=started)
    finally:
        try:
            stop(process, "stockit up", STOP_TIMEOUT)
        finally:
            # Everything `stockit up` started must be gone once it exits.
            try:
                opsfiles.wait_for(lambda: not leftover_processes(home), timeout=15,
                                  what="the servers and workers of `stockit up` to exit")
            except AssertionError:
                for pid in leftover_processes(home):
                    os.kill(pid, signal.SIGKILL)
                raise AssertionError(f"`stockit up` left processes running after it exited\n{tail(log)}") \
                    from None


@pytest.fixture(scope="session")
def web_traffic(local_stack: LocalStack) -> None:
    """A few requests of the first admin, so the web request metrics have series per endpoint."""
    from tests.sign_in import Account, http_session

    base = f"http://{local_stack.targets['web']}"
    admin = http_session(base, Account("admin", ADMIN_PASSWORD, "admin"))
    for path in WEB_PATHS:
        admin.get(base + path, timeout=10)  # an error status is still a request the metrics count


def loopback_config(targets: dict[str, str], rule_dir: Path) -> tuple[dict, set[str]]:
    """monitoring/prometheus.yml with its targets on loopback and 1 s intervals."""
    config = opsfiles.load_yaml(opsfiles.PROMETHEUS_CONFIG)
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(rule_dir / pattern) for pattern in config["rule_files"]]
    jobs = []
    for job in config["scrape_configs"]:
        name = job["job_name"]
        if name in NOT_LOCAL:
            continue
        assert name in targets, f"no local target for scrape job {name!r}"
        job.pop("scrape_interval", None)
        job.pop("scrape_timeout", None)
        job["static_configs"] = [{"targets": [targets[name]]}]
        jobs.append(job)
    config["scrape_configs"] = jobs
    return config, {job["job_name"] for job in jobs}


@pytest.fixture(scope="session")
def prometheus(local_stack: LocalStack, tmp_path_factory) -> Iterator[PrometheusServer]:
    workdir = tmp_path_factory.mktemp("prometheus")
    (port,) = free_ports(1)
    targets = dict(local_stack.targets, prometheus=f"127.0.0.1:{port}")
    config, jobs = loopback_config(targets, opsfiles.MONITORING)
    config = opsfiles.with_local_secrets(config, workdir, {"web-metrics-token": WEB_METRICS_TOKEN})
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    log = workdir / "prometheus.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [opsfiles.tool("prometheus"), f"--config.file={config_path}",
             f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
             "--log.level=warn"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    server = PrometheusServer(url=f"http://127.0.0.1:{port}", jobs=jobs, config=config_path)
    try:
        def ready() -> bool:
            if process.poll() is not None:
                pytest.fail(f"prometheus exited with {process.returncode}:\n{tail(log)}")
            return http_ok(f"{server.url}/-/ready")

        opsfiles.wait_for(ready, timeout=60, what="prometheus to be ready")
        yield server
    finally:
        stop(process, "prometheus", 30)
