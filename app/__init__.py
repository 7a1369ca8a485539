"""Stock-IT web app: Dash pages, REST API, WebSocket/SSE streams and metrics on one Flask server."""
from app.server import create_app

__all__ = ["create_app"]
