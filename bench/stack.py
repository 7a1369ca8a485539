"""The whole Stock-IT stack for a benchmark: reuse one that runs, or start ``stockit up`` in a temp home.

``running_stack(url)`` yields the web app's base URL.  Without a URL it runs ``stockit up`` (Kafka,
Redis, PostgreSQL, producer, processor, alert engine, web) on free loopback ports in a temporary
STOCKIT_HOME, waits until the web app reports the pipeline live, and stops it all afterwards.

Benchmarks sign in like a user (``signed_in``): as the first admin of a stack started here, or, with
``--url``, as STOCKIT_BENCH_USER with STOCKIT_BENCH_PASSWORD.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.stack.servers import free_port  # noqa: E402
from tests.sign_in import Account, http_session  # noqa: E402

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
_started_admin: Optional[Account] = None  # the first admin of a stack this module started


def bench_account() -> Account:
    """Who the benchmark signs in as."""
    if _started_admin is not None:
        return _started_admin
    user, password = os.environ.get("STOCKIT_BENCH_USER"), os.environ.get("STOCKIT_BENCH_PASSWORD")
    if not user or not password:
        raise SystemExit("set STOCKIT_BENCH_USER and STOCKIT_BENCH_PASSWORD to sign in at --url")
    return Account(user, password, "")


def signed_in(url: str) -> requests.Session:
    """A requests session signed in through the sign-in form."""
    return http_session(url, bench_account())


def check_loopback(url: str) -> str:
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK and not host.startswith("127."):
        raise SystemExit(f"refusing to load {url}: benchmarks only target this machine (loopback)")
    return url.rstrip("/")


def wait_live(url: str, timeout: float = 240.0) -> dict:
    deadline = time.monotonic() + timeout
    last, session = None, None
    while time.monotonic() < deadline:
        try:
            session = session or signed_in(url)
            last = session.get(url + "/api/v1/health", timeout=3).json()
            if last.get("pipeline") == "ok":
                return last
        except (requests.RequestException, ValueError, AssertionError) as exc:  # not up yet
            last = last or repr(exc)
        time.sleep(1)
    raise SystemExit(f"the stack at {url} did not become live in {timeout:.0f}s (last health: {last})")


@contextmanager
def running_stack(url: Optional[str], trade_rate: float = 50.0, warmup: float = 5.0,
                  require_live: bool = True, env: Optional[dict] = None) -> Iterator[str]:
    """``env``: more settings for the stack this starts (e.g. STOCKIT_WEB_WORKERS)."""
    if url:
        url = check_loopback(url)
        if require_live:
            wait_live(url, 60)
        yield url
        return
    home = tempfile.mkdtemp(prefix="stockit-webbench-")
    ports = {name: str(free_port()) for name in ("STOCKIT_KAFKA_PORT", "STOCKIT_REDIS_PORT", "STOCKIT_POSTGRES_PORT",
                                                 "STOCKIT_WEB_PORT", "STOCKIT_PRODUCER_METRICS_PORT",
                                                 "STOCKIT_PROCESSOR_METRICS_PORT", "STOCKIT_ALERT_METRICS_PORT")}
    env_extra = env or {}
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "DATABASE_URL")}
    global _started_admin
    _started_admin = Account("admin", secrets.token_urlsafe(16), "admin")
    env.update(ports, STOCKIT_HOME=home, STOCKIT_WEB_HOST="127.0.0.1", STOCKIT_METRICS_HOST="127.0.0.1",
               STOCKIT_TRADE_RATE=str(trade_rate), STOCKIT_ADMIN_USER=_started_admin.username,
               STOCKIT_ADMIN_PASSWORD=_started_admin.password, PYTHONUNBUFFERED="1")
    env.update(env_extra)
    log = open(Path(home) / "stack.log", "wb")
    print(f"starting the stack (stockit up) in {home} ...", file=sys.stderr)
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "up"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{ports['STOCKIT_WEB_PORT']}"
    try:
        wait_live(url)
        time.sleep(warmup)
        print(f"stack live at {url}", file=sys.stderr)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        if not os.environ.get("STOCKIT_BENCH_KEEP"):  # set it to keep the logs and data for a look
            shutil.rmtree(home, ignore_errors=True)
