"""``stockit up``: the whole system on one machine, without Docker.

Starts (or reuses, when their URLs are set) Kafka, Redis and PostgreSQL; applies migrations;
creates topics; then runs producer, processor, alert engine and web app as child processes,
restarting any that dies (with backoff).  SIGINT/SIGTERM stops the workers first, then the
servers, and leaves no process behind.  Data directories under STOCKIT_HOME persist.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

from pipeline.settings import Settings
from pipeline.stack.servers import KafkaServer, LocalServer, PostgresServer, RedisServer, _die_with_parent

logger = logging.getLogger(__name__)
WORKERS = ("processor", "alert-engine", "producer", "web")


@dataclass
class Worker:
    name: str
    argv: list[str]
    env: dict
    log_path: str
    proc: Optional[subprocess.Popen] = None
    restarts: int = 0
    started_at: float = 0.0
    next_start: float = 0.0
    log: Optional[object] = field(default=None, repr=False)

    def start(self) -> None:
        if self.log is None:
            self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
                                     start_new_session=True)
        self.started_at = time.monotonic()

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log is not None:
            self.log.close()
            self.log = None


def start_servers(s: Settings, out=print) -> tuple[Settings, list[LocalServer]]:
    """Start the servers whose URLs are not configured; returns settings naming all of them."""
    home = s.home_path
    home.mkdir(parents=True, exist_ok=True)
    started: list[LocalServer] = []
    changes = {}
    try:
        if not s.kafka_bootstrap_servers:
            out(f"starting Kafka (KRaft) on 127.0.0.1:{s.kafka_port} ...")
            started.append(KafkaServer(home, s.kafka_port).start())
            changes["kafka_bootstrap_servers"] = started[-1].url
        if not s.redis_url:
            out(f"starting Redis on 127.0.0.1:{s.redis_port} ...")
            started.append(RedisServer(home, s.redis_port).start())
            changes["redis_url"] = started[-1].url
        if not s.database_url:
            out(f"starting PostgreSQL on 127.0.0.1:{s.postgres_port} ...")
            started.append(PostgresServer(home, s.postgres_port).start())
            changes["database_url"] = started[-1].url
    except BaseException:
        for server in reversed(started):
            server.stop()
        raise
    return s.replace(**changes), started


def worker_env(s: Settings) -> dict:
    """The workers' environment: ours, with every setting (servers included) as ``s`` has it."""
    return {**os.environ, **s.to_env()}


def up(s: Settings, workers: tuple[str, ...] = WORKERS, out=print, stop: Optional[threading.Event] = None) -> int:
    from app.account_commands import first_admin
    from pipeline.kafka_io import ensure_topics
    from pipeline.migrations import migrate

    stop = stop or threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    s, servers = start_servers(s, out)
    running: list[Worker] = []
    try:
        applied = migrate(s.database_url)
        out(f"database migrated ({', '.join(applied) or 'up to date'})")
        admin = first_admin(s, generate="web" in workers)
        created = ensure_topics(s)
        out(f"topics ready ({', '.join(created) or 'already there'})")
        logs = s.home_path / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = worker_env(s)
        for name in workers:
            w = Worker(name, [sys.executable, "-m", "pipeline.cli", name], env, str(logs / f"{name}.log"))
            w.start()
            running.append(w)
        _print_summary(s, servers, running, out, admin)
        while not stop.wait(0.5):
            for w in running:
                if w.proc.poll() is not None and time.monotonic() >= w.next_start:
                    if w.next_start == 0.0:
                        delay = min(30.0, 2.0 ** min(w.restarts, 5))
                        out(f"{w.name} exited with code {w.proc.returncode}; restarting in {delay:.0f}s "
                            f"(log: {w.log_path})")
                        w.next_start = time.monotonic() + delay
                        continue
                    w.restarts += 1
                    w.next_start = 0.0
                    w.start()
        out("stopping ...")
        return 0
    finally:
        for w in reversed(running):
            w.stop()
        for server in reversed(servers):
            server.stop()
        out("stopped")


def _print_summary(s: Settings, servers: list[LocalServer], workers: list[Worker], out,
                   admin: Optional[tuple[str, str]] = None) -> None:
    local = {type(x).__name__ for x in servers}
    out("Stock-IT is running:")
    out(f"  Kafka       {s.kafka_bootstrap_servers}{'  (local)' if 'KafkaServer' in local else ''}")
    out(f"  Redis       {_safe(s.redis_url)}{'  (local)' if 'RedisServer' in local else ''}")
    out(f"  PostgreSQL  {_safe(s.database_url)}{'  (local)' if 'PostgresServer' in local else ''}")
    names = {w.name for w in workers}
    if "web" in names:
        out(f"  Web app     http://{s.web_host}:{s.web_port}/   API http://{s.web_host}:{s.web_port}/api/v1/  "
            f"docs http://{s.web_host}:{s.web_port}/docs")
        if admin and admin[1]:
            out(f"  Sign in     user {admin[0]}  password {admin[1]}")
            out(f"              (shown this once: change it with `stockit users passwd {admin[0]}`)")
        elif admin:
            out(f"  Sign in     user {admin[0]} with STOCKIT_ADMIN_PASSWORD")
    for name, port in (("producer", s.producer_metrics_port), ("processor", s.processor_metrics_port),
                       ("alert-engine", s.alert_metrics_port)):
        if name in names:
            out(f"  {name:<13}metrics http://127.0.0.1:{port}/metrics")
    out(f"  logs        {s.home_path / 'logs'}")
    out("Press Ctrl-C to stop.")


def _safe(url: str) -> str:
    from pipeline.settings import _mask

    return _mask(url)
