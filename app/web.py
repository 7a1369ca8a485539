"""``stockit web``: serve the app with gunicorn — one worker process, threads (gthread), flask-sock streams.

One process keeps one Redis subscription and one metrics registry.  Every open WebSocket or SSE
stream holds one thread for its lifetime, so the pool has at least ``MIN_THREADS`` threads;
plain requests share it, and idle keep-alive connections wait in the poller without a thread.
"""
from __future__ import annotations

import gc
import logging

from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

from pipeline.settings import Settings, get_settings

logger = logging.getLogger(__name__)
MIN_THREADS = 64


class StreamingThreadWorker(ThreadWorker):
    """A gthread worker that ends its endless streams when asked to stop, so it can exit in time."""

    def handle_exit(self, sig, frame) -> None:
        _stop_streams()
        super().handle_exit(sig, frame)

    def handle_quit(self, sig, frame) -> None:
        _stop_streams()
        super().handle_quit(sig, frame)


def _stop_streams() -> None:
    from app.live import stop_all

    stop_all()


def gunicorn_options(settings: Settings) -> dict:
    return {
        "bind": f"{settings.web_host}:{settings.web_port}",
        "workers": 1,
        "worker_class": "app.web.StreamingThreadWorker",
        "threads": max(settings.web_workers, MIN_THREADS),
        "worker_connections": 1000,
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
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self):
        from app.server import create_app

        server = create_app(self.settings)
        # Dash and Plotly leave ~1e6 long-lived objects; full collections walking them stalled requests for
        # tens of milliseconds (the p99).  Move them out of the collector's sight.
        gc.collect()
        gc.freeze()
        return server


def run(settings: Settings | None = None) -> None:
    """Serve until SIGINT/SIGTERM (blocks; call from the main thread)."""
    settings = settings or get_settings()
    logger.info("web app on http://%s:%d/ (API /api/v1, docs /docs, metrics /metrics)", settings.web_host,
                settings.web_port)
    WebServer(settings).run()


if __name__ == "__main__":
    from pipeline import logs

    s = get_settings()
    logs.setup(s.log_level, s.log_format, "web")
    run(s)
