"""``/docs``: Swagger UI over ``/api/v1/openapi.json``, served from the swagger-ui-bundle wheel (no CDN)."""
from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Optional

from flask import Blueprint, Response, abort, send_from_directory

from app.openapi import openapi_document
from components import theme

logger = logging.getLogger(__name__)
docs = Blueprint("docs", __name__)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Stock-IT API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="stylesheet" href="/docs/assets/stockit-docs.css"></head>
<body><div class="stockit-bar">Stock-IT API <a href="/">← back to the app</a>
<a href="/api/v1/openapi.json">openapi.json</a></div><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/stockit-docs.js"></script>
</body></html>"""
# Served as files, not inline, so the Content-Security-Policy needs no 'unsafe-inline' for scripts.
OWN_ASSETS = {
    "stockit-docs.css": ("text/css", f"""body{{margin:0;background:#fafafa}} .topbar{{display:none}}
.stockit-bar{{background:{theme.BACKGROUND};color:{theme.TEXT};padding:10px 20px;font:600 15px system-ui,sans-serif}}
.stockit-bar a{{color:{theme.ACCENT};text-decoration:none;margin-left:16px;font-weight:400}}
"""),
    "stockit-docs.js": ("text/javascript", """window.ui = SwaggerUIBundle({url: "/api/v1/openapi.json",
  dom_id: "#swagger-ui", validatorUrl: null, deepLinking: true, tryItOutEnabled: true,
  displayRequestDuration: true, withCredentials: true});
"""),
}


def _swagger_dir() -> Optional[Path]:
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    return Path(swagger_ui_bundle.swagger_ui_path)


@docs.get("/docs")
@docs.get("/docs/")
def page() -> Response:
    if _swagger_dir() is None:
        return Response(_plain_page(), mimetype="text/html")
    return Response(PAGE, mimetype="text/html")


@docs.get("/docs/assets/<path:name>")
def asset(name: str) -> Response:
    if name in OWN_ASSETS:
        mimetype, text = OWN_ASSETS[name]
        return Response(text, mimetype=mimetype)
    folder = _swagger_dir()
    if folder is None or name not in ("swagger-ui.css", "swagger-ui-bundle.js"):
        abort(404)
    return send_from_directory(folder, name, max_age=86400)


def _plain_page() -> str:
    """Without swagger-ui-bundle installed: a static list of the endpoints."""
    doc = openapi_document()
    items = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            params = ", ".join(p["name"] for p in op.get("parameters", []))
            items.append(f"<li><code>{method.upper()} /api/v1{html.escape(path)}</code> — "
                         f"{html.escape(op['summary'])}{' (' + html.escape(params) + ')' if params else ''}</li>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Stock-IT API</title></head><body>"
            f"<h1>Stock-IT API</h1><p><a href='/api/v1/openapi.json'>openapi.json</a></p><ul>{''.join(items)}</ul>"
            f"</body></html>")
