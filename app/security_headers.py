"""Security headers on every response (flask-talisman): a Content-Security-Policy Dash runs under, no framing.

Scripts: only this server's files and the inline scripts Dash itself writes into the page (its
renderer and the clientside callbacks given as strings), allowed by their SHA-256 hashes from
``Dash.csp_hashes()`` — no ``'unsafe-inline'`` and no ``'unsafe-eval'`` for scripts.  Plotly,
dash-table, dcc and dash-extensions' WebSocket reach ``new Function`` only as a fallback when
``globalThis`` is missing, which no supported browser lacks.  Styles keep ``'unsafe-inline'``:
Plotly and React set ``style`` attributes, which carry no script.  ``connect-src 'self'`` covers
the same-origin WebSockets (CSP Level 3).
"""
from __future__ import annotations

import logging

from dash import Dash
from flask import Flask
from flask_talisman import Talisman

logger = logging.getLogger(__name__)


def content_security_policy(script_hashes: list[str]) -> dict[str, str | list[str]]:
    return {
        "default-src": "'self'",
        "script-src": ["'self'", *script_hashes],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }


def init_app(server: Flask, dash_app: Dash) -> Talisman:
    """Call once every Dash callback is registered (the hashes cover the inline scripts known then)."""
    return Talisman(
        server,
        content_security_policy=content_security_policy(list(dash_app.csp_hashes())),
        frame_options="DENY",
        referrer_policy="same-origin",
        force_https=False,              # TLS is the reverse proxy's job; HSTS is sent on https only
        session_cookie_secure=False,    # app.auth decides (STOCKIT_COOKIE_SECURE)
        session_cookie_http_only=True,
        session_cookie_samesite="Lax",
        x_content_type_options=True,
    )
