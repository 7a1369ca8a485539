"""Alerts (/alerts): history from PostgreSQL with filters (a replay's alerts by their source), acknowledge,
CSV export; notes, snoozes and the audit trail (``app.alert_lifecycle_panel``); breaker states (the live
source's, or the selected source's as its alerts left them)."""
from __future__ import annotations

import time

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, dash_table, dcc, html

from app import alert_lifecycle_panel, ids
from app.access import OPERATOR
from app.auth import current_principal, requires
from app.guard import guarded
from app.services import Unavailable, current
from components import theme
from components.alerts import (SEVERITY_OPTIONS, TYPE_OPTIONS, alert_table_columns, alert_table_rows,
                               alerts_csv, breaker_panel, severity_cell_styles)
from components.format import fmt_time
from app import market
from pipeline.breaker import BreakerPolicy

dash.register_page(__name__, path="/alerts", name="Alerts", title="Stock-IT · Alerts", order=3)

LIMIT = 500
FILTERS = (Input(ids.AL_SEVERITY, "value"), Input(ids.AL_TYPE, "value"), Input(ids.AL_SYMBOL, "value"),
           Input(ids.AL_UNACKED, "value"), Input(ids.AL_SOURCE, "value"))


def query(severities, types, symbol, unacked, source) -> list[dict]:
    return current().history(lambda h: h.alerts(unacked_only=bool(unacked), severities=severities or [],
                                                types=types or [], symbol=symbol or None, limit=LIMIT,
                                                source=source or None))


def source_options() -> list[str]:
    """The live source first, then every source with stored history (none when the database is away)."""
    svc = current()
    live = svc.settings.live_source
    try:
        stored = svc.history(lambda h: h.sources())
    except Unavailable:  # the table callback shows the outage; the filter still renders
        stored = []
    return [live] + sorted(set(stored) - {live})


def _ack_button() -> dbc.Button:
    """Operators and admins acknowledge; a viewer sees why the button is disabled."""
    who = current_principal()
    allowed = who is not None and who.may(OPERATOR)
    return dbc.Button("Acknowledge selected", id=ids.AL_ACK, color="warning", size="sm", outline=True,
                      disabled=not allowed,
                      title="" if allowed else "Acknowledging needs the operator or admin role")


def layout(**_query) -> html.Div:
    symbols = current().symbols()
    sources = source_options()
    return html.Div([
        dcc.Interval(id=ids.AL_INTERVAL, interval=5000),
        dcc.Download(id=ids.AL_DOWNLOAD),
        html.Div([html.H1("Alerts", className="page-title"), html.Span(id=ids.AL_COUNT, className="hint")],
                 className="page-head"),
        html.Div([
            html.Div([html.Span("Severity", className="filter-label"),
                      dbc.Checklist(id=ids.AL_SEVERITY, options=SEVERITY_OPTIONS,
                                    value=[o["value"] for o in SEVERITY_OPTIONS], inline=True)]),
            dcc.Dropdown(id=ids.AL_TYPE, options=TYPE_OPTIONS, multi=True, placeholder="All types",
                         className="filter-dropdown"),
            dcc.Dropdown(id=ids.AL_SYMBOL, options=symbols, placeholder="All symbols", className="filter-dropdown"),
            dcc.Dropdown(id=ids.AL_SOURCE, options=sources, placeholder="All sources",
                         className="filter-dropdown"),
            dbc.Switch(id=ids.AL_UNACKED, label="Unacknowledged only", value=False),
            _ack_button(),
            dbc.Button("Export CSV", id=ids.AL_EXPORT, color="secondary", size="sm", outline=True),
            html.Span(id=ids.AL_ACK_RESULT, className="ack-result"),
        ], className="filters"),
        html.Div(dash_table.DataTable(
            id=ids.AL_TABLE, columns=alert_table_columns(), data=[], row_selectable="multi", selected_rows=[],
            sort_action="native", page_action="native", page_size=15, cell_selectable=False,
            style_as_list_view=True, style_table={"overflowX": "auto"},
            style_header={"backgroundColor": theme.PANEL, "color": theme.MUTED, "fontWeight": 600,
                          "borderBottom": f"1px solid {theme.GRID}", "fontSize": "0.72rem",
                          "textTransform": "uppercase"},
            style_cell={"backgroundColor": theme.PANEL, "color": theme.TEXT, "border": f"1px solid {theme.GRID}",
                        "fontSize": "0.82rem", "padding": "5px 8px", "textAlign": "left",
                        "maxWidth": "380px", "overflow": "hidden", "textOverflow": "ellipsis"},
            style_data_conditional=[
                *severity_cell_styles(),
                {"if": {"filter_query": '{ack} != ""'}, "color": theme.MUTED},
            ],
            tooltip_duration=None,
        ), className="panel mb-2"),
        alert_lifecycle_panel.panels(symbols, sources),
        html.Div([html.H2("Circuit breakers", className="panel-title"),
                  html.Div(id=ids.AL_BREAKERS, className="breaker-grid")], className="panel"),
    ])


@callback(Output(ids.AL_TABLE, "data"), Output(ids.AL_TABLE, "selected_rows"), Output(ids.AL_COUNT, "children"),
          *FILTERS, Input(ids.AL_INTERVAL, "n_intervals"), Input(ids.AL_ACK_RESULT, "children"),
          Input(ids.AL_CHANGED, "data"), State(ids.AL_TABLE, "selected_row_ids"))
@guarded(lambda exc: ([], [], "Alert history unavailable: the database cannot be reached."))
def refresh(severities, types, symbol, unacked, source, _n, _ack, _changed, selected_ids):
    rows = alert_table_rows(query(severities, types, symbol, unacked, source))
    keep = set(selected_ids or [])
    selected = [i for i, r in enumerate(rows) if r["id"] in keep]
    unacked_count = sum(1 for r in rows if not r["ack"])
    more = f" (newest {LIMIT})" if len(rows) >= LIMIT else ""
    return rows, selected, f"{len(rows)} alerts{more} · {unacked_count} unacknowledged"


@callback(Output(ids.AL_ACK_RESULT, "children"), Input(ids.AL_ACK, "n_clicks"),
          State(ids.AL_TABLE, "selected_row_ids"), prevent_initial_call=True)
@requires(OPERATOR, "acknowledging alerts")
@guarded(lambda exc: "Could not acknowledge: the database cannot be reached.")
def acknowledge(_clicks, selected_ids):
    if not selected_ids:
        return "Select alerts first (tick the boxes on the left)."
    svc, by = current(), current_principal().name
    done = sum(1 for alert_id in selected_ids
               if svc.history(lambda h, a=alert_id: h.acknowledge(a, by)) is not None)
    return f"Acknowledged {done} alert{'s' if done != 1 else ''} at {fmt_time(time.time())} UTC."


@callback(Output(ids.AL_DOWNLOAD, "data"), Input(ids.AL_EXPORT, "n_clicks"),
          *[State(i.component_id, i.component_property) for i in FILTERS], prevent_initial_call=True)
@guarded(lambda exc: dash.no_update)
def export(_clicks, severities, types, symbol, unacked, source):
    alerts = query(severities, types, symbol, unacked, source)
    return dcc.send_string(alerts_csv(alerts), f"stockit-alerts-{time.strftime('%Y%m%d-%H%M%S')}.csv",
                           type="text/csv")


@callback(Output(ids.AL_BREAKERS, "children"), Input(ids.AL_INTERVAL, "n_intervals"),
          Input(ids.AL_SOURCE, "value"))
@guarded(lambda exc: html.Div("Breaker states unavailable: Redis cannot be reached.", className="empty"))
def breakers(_n, source):
    svc = current()
    s = svc.settings
    live = (source or s.live_source) == s.live_source
    raw = svc.speed(lambda r: r.breakers(source or s.live_source))
    # A replay's breakers as its alerts left them: the wall clock is not their time.
    rows = market.breaker_view(raw, svc.symbols() if live else (), time.time() if live else None,
                               BreakerPolicy(s.breaker_open_seconds, s.breaker_probation_seconds))
    return breaker_panel(rows)
