"""Data quality (/quality): the latency of each stage (event -> processor -> Redis -> browser), late trades
per source and symbol, dead-lettered records with their reasons, and gaps in ``sequence`` per exchange.

The browser stage is measured here (and on the watchlist) from the /ws/prices ticks, in the page's
script (``assets/stockit.js``), and reported back to the server, which keeps it for everyone.
"""
from __future__ import annotations

import time

import dash
from dash import (ClientsideFunction, Input, Output, State, callback, clientside_callback, dash_table, dcc,
                  html)
from dash_extensions import WebSocket

from app import ids, quality
from app.guard import guarded
from app.live_page import ws_url_function
from app.services import current
from components import theme
from components.format import fmt_time
from components.quality import (dead_letter_chart, dead_letter_rows, gaps_table, late_chart, late_table,
                                latency_figures)
from pipeline.history.quality import WINDOWS_MINUTES

dash.register_page(__name__, path="/quality", name="Quality", title="Stock-IT · Data quality", order=5)

WINDOW_LABEL = {15: "15m", 60: "1h", 240: "4h", 1440: "1d"}
DQ_WS, DQ_WS_WATCHDOG, DQ_WS_SINK = "dq-ws", "dq-ws-watchdog", "dq-ws-sink"
SMALL = {"displayModeBar": False}
DEAD_COLUMNS = [{"id": k, "name": n} for k, n in (
    ("time", "Failed (UTC)"), ("kind", "Kind"), ("reason", "Reason"), ("where", "Topic[partition]@offset"),
    ("value", "Record"))]


def layout(**_query) -> html.Div:
    return html.Div([
        WebSocket(id=DQ_WS), dcc.Interval(id=DQ_WS_WATCHDOG, interval=3000), dcc.Store(id=DQ_WS_SINK),
        dcc.Interval(id=ids.DQ_INTERVAL, interval=5000),
        html.Div([html.H1("Data quality", className="page-title"),
                  dcc.RadioItems(id=ids.DQ_WINDOW, options=[{"label": WINDOW_LABEL[m], "value": m}
                                                            for m in WINDOWS_MINUTES],
                                 value=60, inline=True, className="window-radio"),
                  html.Span(id=ids.DQ_UPDATED, className="hint")], className="page-head"),
        html.Div([html.H2("Latency by stage (p50; the processor's last minute, browsers' last 5 minutes)",
                          className="panel-title"),
                  html.Div(latency_figures(None), id=ids.DQ_LATENCY, className="dq-figures")],
                 className="panel mb-2"),
        html.Div([
            html.Div(html.Div([html.H2("Late trades (stored, not folded into candles)",
                                       className="panel-title"),
                               dcc.Graph(id=ids.DQ_LATE_CHART, config=SMALL, figure=late_chart([])),
                               html.Div(id=ids.DQ_LATE, className="panel-scroll")], className="panel"),
                     className="col-12 col-xl-6"),
            html.Div(html.Div([html.H2("Sequence gaps per exchange", className="panel-title"),
                               html.Div(id=ids.DQ_GAPS)], className="panel"), className="col-12 col-xl-6"),
        ], className="row g-2 mb-2"),
        html.Div([html.H2(["Dead letters", html.Span(id=ids.DQ_DEAD, className="tag")],
                          className="panel-title"),
                  dcc.Graph(id=ids.DQ_DEAD_CHART, config=SMALL, figure=dead_letter_chart([])),
                  dash_table.DataTable(id=ids.DQ_DEAD_TABLE, data=[], page_size=10, columns=DEAD_COLUMNS,
                                       **theme.data_table_style())],
                 className="panel"),
    ])


clientside_callback(ws_url_function("/ws/prices"), Output(DQ_WS, "url"), Input(DQ_WS_WATCHDOG, "n_intervals"),
                    State(DQ_WS, "state"), State(DQ_WS, "url"))
clientside_callback(ClientsideFunction("stockit", "measureLatency"), Output(DQ_WS_SINK, "data"),
                    Input(DQ_WS, "message"))


@callback(Output(ids.DQ_LATENCY, "children"), Output(ids.DQ_LATE, "children"),
          Output(ids.DQ_LATE_CHART, "figure"), Output(ids.DQ_GAPS, "children"),
          Output(ids.DQ_DEAD, "children"), Output(ids.DQ_DEAD_CHART, "figure"),
          Output(ids.DQ_DEAD_TABLE, "data"), Output(ids.DQ_UPDATED, "children"),
          Input(ids.DQ_WINDOW, "value"), Input(ids.DQ_INTERVAL, "n_intervals"))
@guarded(lambda exc: (dash.no_update,) * 7 + ("Unavailable: the database cannot be reached.",))
def refresh(minutes, _n):
    report = quality.report(current(), minutes if minutes in WINDOWS_MINUTES else 60)
    dead = report["dead_letters"]
    totals = " · ".join(f"{t['kind']} {t['count']}" for t in dead["totals"]) or "none"
    return (latency_figures(report["latency"]), late_table(report["late"]), late_chart(report["late_series"]),
            gaps_table(report["sequence_gaps"]), f"  {totals}", dead_letter_chart(dead["series"]),
            dead_letter_rows(dead["recent"]), f"updated {fmt_time(time.time())} UTC")
