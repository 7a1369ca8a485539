"""The app shell around every page: top bar with navigation and pipeline status, the stale-data banner."""
from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, dcc, html

from app import ids
from app.services import current

NAV = (("Watchlist", "/"), ("Scanner", "/scanner"), ("Whales", "/whales"), ("Alerts", "/alerts"))
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
            dbc.Nav([dbc.NavLink(label, href=href, active="exact", id=f"nav-{label.lower()}") for label, href in NAV],
                    className="gap-1"),
            html.Div(className="spacer"),
            html.A("API docs", href="/docs", className="docs-link", target="_blank"),
            html.Span("connecting…", id=ids.STATUS_PILL, className="status-pill pill-warning"),
        ], className="topbar"),
        html.Div(id=ids.STATUS_BANNER, className="status-banner banner-hidden", role="status"),
        html.Main(dash.page_container, className="content"),
    ])


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
