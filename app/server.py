"""``create_app()``: one Flask server with the Dash pages, the REST API, the docs, streams and metrics."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from dash import Dash
from flask import Flask

from app import admission, api, auth, layout, metrics, security_headers, sockets, streams
from app.docs import docs
from app.live import LiveHub
from app.quality import QualityGauges
from app.services import Services
from pipeline.settings import Settings, get_settings

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
PAGES = Path(__file__).resolve().parent / "pages"


def create_app(settings: Optional[Settings] = None) -> Flask:
    """Build the web server. Redis and PostgreSQL may be down: nothing connects until it is needed."""
    settings = settings or get_settings()
    server = Flask(__name__)
    server.config.update(JSON_SORT_KEYS=False, MAX_CONTENT_LENGTH=64 * 1024)
    services = Services(settings)
    server.extensions["stockit"] = services
    server.extensions["stockit.hub"] = LiveHub(services.redis, services.reader,
                                               price_interval=settings.stream_price_interval)
    admission.init_app(server)
    web_metrics = metrics.WebMetrics()
    web_metrics.add_computed(QualityGauges(services))  # sequence gaps and late trades, from PostgreSQL
    metrics.init_app(server, web_metrics)
    sockets.init_app(server, settings, web_metrics)
    api.init_app(server)
    server.register_blueprint(docs)
    streams.init_app(server)

    dash_app = Dash("app", server=server, use_pages=True, pages_folder=str(PAGES), assets_folder=str(ASSETS),
                    title="Stock-IT", update_title=None, suppress_callback_exceptions=True, serve_locally=True,
                    external_stylesheets=[], meta_tags=[{"name": "viewport",
                                                         "content": "width=device-width, initial-scale=1"}])
    dash_app.index_string = layout.INDEX
    dash_app.layout = layout.shell
    layout.register_callbacks(dash_app)
    # Take this app's page callbacks now: they are registered globally when Dash imports the pages, and
    # a second app built in the same process (tests) must not take them first.
    with server.test_request_context("/"):
        dash_app._setup_server()
        server.preprocess_request()  # Dash's page router registers its callbacks on the first request
    # After Dash: every inline script of the page is known now, for the CSP hashes.
    auth.init_app(server, settings, services)
    security_headers.init_app(server, dash_app)
    server.extensions["dash"] = dash_app
    return server
