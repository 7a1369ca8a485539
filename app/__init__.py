"""Stock-IT web app: Dash pages, REST API, WebSocket/SSE streams and metrics on one Flask server."""
from __future__ import annotations

__all__ = ["create_app"]


def __getattr__(name: str):
    # Importing a pure module of the package (app.access, app.market ...) must not load Dash and Flask.
    if name == "create_app":
        from app.server import create_app

        return create_app
    raise AttributeError(name)
