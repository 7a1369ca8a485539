"""The production web server (``python -m app.web``: gunicorn, gevent) as a child process for tests."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import requests

from pipeline.settings import Settings
from pipeline.stack.servers import free_port

ROOT = Path(__file__).resolve().parent.parent


class WebServer:
    def __init__(self, url: str, proc: subprocess.Popen, log: Path):
        self.url = url
        self.proc = proc
        self.log = log
        self.user: requests.Session | None = None  # the session of ``sign_in``

    def sign_in(self, account) -> requests.Session:
        """Sign in as ``account`` (tests.sign_in.Account); the session is kept as ``user``."""
        from tests.sign_in import http_session

        self.user = http_session(self.url, account)
        return self.user

    def get(self, path: str, **kw) -> requests.Response:
        """An anonymous GET."""
        return requests.get(self.url + path, timeout=10, **kw)

    def worker_pids(self) -> list[int]:
        """The gunicorn worker processes (children of the server process)."""
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                    pids.append(int(stat.parent.name))
            except (OSError, ValueError):
                continue
        return sorted(pids)

    def connections_by_worker(self) -> dict[int, int]:
        """Established client connections each worker process holds (from /proc: Linux only)."""
        port = int(self.url.rsplit(":", 1)[1])
        inodes = set()
        for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            cols = row.split()
            if cols[3] == "01" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # ESTABLISHED, our side
                inodes.add(f"socket:[{cols[9]}]")
        held = {}
        for pid in self.worker_pids():
            try:
                held[pid] = sum(1 for fd in Path(f"/proc/{pid}/fd").iterdir() if os.readlink(fd) in inodes)
            except OSError:
                held[pid] = 0
        return held

    def stop(self, timeout: float = 20.0) -> float:
        """SIGTERM and wait; returns how long the server took to exit."""
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise
        return time.monotonic() - started


@contextmanager
def running_web(settings: Settings, log_dir: Path, **env_overrides: str) -> Iterator[WebServer]:
    """Start the web app on a free loopback port against ``settings``' Redis and PostgreSQL."""
    port = free_port()
    env = dict(os.environ, REDIS_URL=settings.redis_url, DATABASE_URL=settings.database_url,
               STOCKIT_WEB_HOST="127.0.0.1", STOCKIT_WEB_PORT=str(port), STOCKIT_LOG_FORMAT="text",
               STOCKIT_SECRET_KEY=settings.secret_key, STOCKIT_HOME=str(log_dir), PYTHONUNBUFFERED="1")
    env.update(env_overrides)
    log = Path(log_dir) / f"web-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app.web"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    server = WebServer(f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"web server exited with {proc.returncode}: {log.read_text()[-3000:]}")
            try:
                requests.get(server.url + "/api/v1/health", timeout=2)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"web server not up after 60 s: {log.read_text()[-3000:]}") from None
                time.sleep(0.2)
        yield server
    finally:
        server.stop()
