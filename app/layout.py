"""The app shell around every page: top bar with navigation, who is signed in, pipeline status; the banner."""
from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, dcc, html

from app import ids
from app.auth import current_principal
from app.services import current

INDEX = """<!DOCTYPE html>
<html lang="en" data-bs-theme="dark">
    <head>
        {%metas%}
        <title>{%title%}</title>
        {%favicon%}
        {%css%}
    </head>
    <body>
        {%app_entry%}
        <footer>
            {%config%}
            {%scripts%}
            {%renderer%}
        </footer>
    </body>
</html>"""


def shell() -> html.Div:
    return html.Div([
        dcc.Location(id=ids.URL),
        dcc.Interval(id=ids.STATUS_INTERVAL, interval=3000),
        html.Header([
            html.A([html.Span("◆ "), "Stock-IT"], href="/", className="brand"),
            dbc.Nav(navigation(), className="gap-1"),
            html.Div(className="spacer"),
            html.A("API docs", href="/docs", className="docs-link", target="_blank"),
            html.Span("connecting…", id=ids.STATUS_PILL, className="status-pill pill-warning"),
            *signed_in(),
        ], className="topbar"),
        html.Div(id=ids.STATUS_BANNER, className="status-banner banner-hidden", role="status"),
        html.Main(dash.page_container, className="content"),
    ])


def navigation() -> list:
    """A link per registered page (``dash.register_page``), in the pages' order."""
    pages = sorted(dash.page_registry.values(), key=lambda p: (p.get("order") is None, p.get("order") or 0))
    return [dbc.NavLink(p["name"], href=p["relative_path"], active="exact", id=f"nav-{p['name'].lower()}")
            for p in pages]


def signed_in() -> list:
    """Who is signed in and their role, and the sign-out button (a POST form: no cross-site sign-out)."""
    who = current_principal()
    if who is None:
        return []
    chip = html.Span([html.Span(who.name, id=ids.USER_NAME, className="user-name"),
                      html.Span(who.role, id=ids.USER_ROLE, className=f"role-badge role-{who.role}")],
                     className="user-chip", title=f"signed in as {who.name} ({who.role})")
    if who.kind != "session":
        return [chip]
    button = html.Button("Sign out", type="submit", id=ids.SIGN_OUT, className="btn btn-sm sign-out")
    sign_out = html.Form(button, method="POST", action="/logout", className="m-0")
    return [chip, sign_out]


def register_callbacks(app: Dash) -> None:
    @app.callback(Output(ids.STATUS_BANNER, "children"), Output(ids.STATUS_BANNER, "className"),
                  Output(ids.STATUS_PILL, "children"), Output(ids.STATUS_PILL, "className"),
                  Output(ids.STATUS_PILL, "title"),
                  Input(ids.STATUS_INTERVAL, "n_intervals"))
    def show_status(_n):
        status = current().status()
        pill = {"ok": "LIVE", "stale": "STALE", "stopped": "STOPPED", "down": "OFFLINE"}[status.state]
        pill_cls = f"status-pill pill-{status.level}"
        if status.level == "success":
            return "", "status-banner banner-hidden", pill, pill_cls, status.message
        return status.message, f"status-banner banner-{status.level}", pill, pill_cls, status.message
