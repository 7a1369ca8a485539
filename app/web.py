"""``stockit web``: serve the app with gunicorn — ``STOCKIT_WEB_WORKERS`` gevent worker processes.

Each process serves up to ``STOCKIT_WEB_CONNECTIONS`` connections on greenlets: an open WebSocket or
SSE stream costs a few kilobytes, not a thread, and never holds up a request (app/sockets.py caps
streams below the connection limit and cuts off clients that do not read).  gevent makes the
standard library's sockets, threads and locks cooperative, so redis-py is too; psycogreen's wait
callback does the same for psycopg2.  Every process keeps its own Redis subscription (app/live.py), so every
process's clients get every tick.  Nothing is loaded before the fork: each worker patches first,
then builds the app.
"""
from __future__ import annotations

import gc
import logging
import os
import shutil
import tempfile

import gevent
from gunicorn.app.base import BaseApplication
from gunicorn.workers.ggevent import GeventWorker
from prometheus_client import multiprocess

from app.metrics import MULTIPROCESS_DIR

from pipeline.settings import Settings, SettingsError, get_settings

logger = logging.getLogger(__name__)
WORKER_CLASS = "app.web.StreamingGeventWorker"
CONNECT_TIMEOUT = 5.0  # seconds a connection to PostgreSQL may take to open (as the history pool's)


class StreamingGeventWorker(GeventWorker):
    """A gevent worker with psycopg2 made cooperative, that ends its endless streams when asked to stop."""

    def patch(self) -> None:
        super().patch()  # gevent's monkey.patch_all(), in the worker process after the fork
        from psycopg2 import extensions

        extensions.set_wait_callback(green_wait)

    def handle_exit(self, sig, frame) -> None:
        _stop_streams()
        super().handle_exit(sig, frame)

    def handle_quit(self, sig, frame) -> None:
        _stop_streams()
        super().handle_quit(sig, frame)


def green_wait(conn, timeout=None) -> None:
    """psycogreen's wait callback (psycopg2 yields to other greenlets while it waits for PostgreSQL), with
    the connect timeout kept: libpq applies none to the non-blocking connects a wait callback implies, and
    a frozen server would hold the connecting greenlet (and the history pool's lock) forever."""
    from psycopg2 import OperationalError, extensions
    from psycogreen.gevent import gevent_wait_callback

    connected = (extensions.STATUS_READY, extensions.STATUS_BEGIN, extensions.STATUS_PREPARED)
    try:
        gevent_wait_callback(conn, timeout if conn.status in connected else CONNECT_TIMEOUT)
    except TimeoutError:
        raise OperationalError(f"no answer from PostgreSQL in {CONNECT_TIMEOUT:g} s while connecting") \
            from None


def _stop_streams() -> None:
    from app.live import stop_all

    gevent.spawn(stop_all)  # a signal handler must not block; the hub's locks are gevent's


def gunicorn_options(settings: Settings) -> dict:
    """gunicorn's configuration from ``settings``; bad values raise SettingsError naming the variable."""
    for value, env, least in ((settings.web_workers, "STOCKIT_WEB_WORKERS", 1),
                              (settings.web_connections, "STOCKIT_WEB_CONNECTIONS", 10),
                              (settings.stream_ping_interval, "STOCKIT_STREAM_PING_INTERVAL", 0.1),
                              (settings.stream_send_timeout, "STOCKIT_STREAM_SEND_TIMEOUT", 0.1),
                              (settings.stream_send_buffer, "STOCKIT_STREAM_SEND_BUFFER", 1024),
                              (settings.stream_max_message_bytes, "STOCKIT_STREAM_MAX_MESSAGE_BYTES", 1),
                              (settings.stream_price_interval, "STOCKIT_STREAM_PRICE_INTERVAL", 0.0)):
        if value < least:
            raise SettingsError(f"{env}={value} is below {least}")
    return {
        "bind": f"{settings.web_host}:{settings.web_port}",
        "workers": settings.web_workers,
        "worker_class": WORKER_CLASS,
        "worker_connections": settings.web_connections,
        "backlog": 2048,
        "keepalive": 5,
        "timeout": 60,
        "graceful_timeout": 5,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "proc_name": "stockit-web",
    }


class WebServer(BaseApplication):
    def __init__(self, settings: Settings):
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        options = gunicorn_options(self.settings)
        if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25.1: no shared ~/.gunicorn socket
            options["control_socket_disable"] = True
        # The processes' metrics meet in files under a directory of this server run (app/metrics.py).
        metrics_dir = tempfile.mkdtemp(prefix="stockit-web-metrics-")
        os.environ[MULTIPROCESS_DIR] = metrics_dir
        options["child_exit"] = lambda _arbiter, worker: multiprocess.mark_process_dead(worker.pid)
        options["on_exit"] = lambda _arbiter: shutil.rmtree(metrics_dir, ignore_errors=True)
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self):
        from app.metrics import share_between_processes
        from app.server import create_app

        share_between_processes()
        server = create_app(self.settings)
        # Dash and Plotly leave ~1e6 long-lived objects; full collections walking them stalled requests for
        # tens of milliseconds (the p99).  Move them out of the collector's sight.
        gc.collect()
        gc.freeze()
        return server


def run(settings: Settings | None = None) -> None:
    """Serve until SIGINT/SIGTERM (blocks; call from the main thread)."""
    settings = settings or get_settings()
    gunicorn_options(settings)  # refuse bad settings before anything starts
    logger.info("web app on http://%s:%d/ (API /api/v1, docs /docs, metrics /metrics): %d processes, "
                "up to %d connections each", settings.web_host, settings.web_port, settings.web_workers,
                settings.web_connections)
    WebServer(settings).run()


if __name__ == "__main__":
    from pipeline import logs

    s = get_settings()
    logs.setup(s.log_level, s.log_format, "web")
    run(s)
