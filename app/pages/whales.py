"""Whales (/whales): a card per volume spike (VOLUME_SPIKE alert), newest first, live over /ws/alerts."""
from __future__ import annotations

import dash
import orjson
from dash import Input, Output, State, callback, clientside_callback, dcc, html
from dash_extensions import WebSocket

from app import ids
from app.live_page import ws_url_function
from app.services import Unavailable, current
from components.whales import merge_whales, whale_grid
from pipeline.alert_types import VOLUME_SPIKE

dash.register_page(__name__, path="/whales", name="Whales", title="Stock-IT · Whales", order=2)
KEPT = 60


def load_whales() -> list[dict]:
    """Stored volume spikes plus the speed layer's recent ones (not yet flushed to PostgreSQL)."""
    svc = current()
    try:
        stored = svc.history(lambda h: h.alerts(types=[VOLUME_SPIKE], limit=KEPT))
    except Unavailable:
        stored = []
    try:
        recent = svc.speed(lambda r: r.recent_alerts(200))
    except Unavailable:
        recent = []
    return merge_whales(recent, stored, limit=KEPT)


def _count(whales: list[dict]) -> str:
    return f"{len(whales)} volume spike{'s' if len(whales) != 1 else ''}" + (" (newest first)" if whales else "")


def layout(**_query) -> html.Div:
    whales = load_whales()
    return html.Div([
        WebSocket(id=ids.WH_WS_ALERTS), dcc.Interval(id=ids.WH_WS_WATCHDOG, interval=3000),
        dcc.Interval(id=ids.WH_INTERVAL, interval=15000),
        dcc.Store(id=ids.WH_STORE, data=whales),
        html.Div([
            html.H1("Whale trades", className="page-title"),
            html.Span(_count(whales), id=ids.WH_COUNT, className="hint"),
            html.Span("A card per trade far above its symbol's rolling average size (VOLUME_SPIKE); "
                      "the big number is that multiple.", className="hint"),
        ], className="page-head"),
        html.Div(whale_grid(whales), id=ids.WH_GRID, className="whale-grid"),
    ])


clientside_callback(ws_url_function(f"/ws/alerts?type={VOLUME_SPIKE}"), Output(ids.WH_WS_ALERTS, "url"),
                    Input(ids.WH_WS_WATCHDOG, "n_intervals"), State(ids.WH_WS_ALERTS, "state"),
                    State(ids.WH_WS_ALERTS, "url"))


@callback(Output(ids.WH_GRID, "children"), Output(ids.WH_STORE, "data"), Output(ids.WH_COUNT, "children"),
          Input(ids.WH_WS_ALERTS, "message"), Input(ids.WH_INTERVAL, "n_intervals"), State(ids.WH_STORE, "data"),
          prevent_initial_call=True)
def update(message, _n, kept):
    kept = kept or []
    if dash.ctx.triggered_id == ids.WH_INTERVAL:
        whales = merge_whales(kept, load_whales(), limit=KEPT)
    else:
        try:
            msg = orjson.loads(message["data"])
        except (TypeError, KeyError, orjson.JSONDecodeError):
            return dash.no_update, dash.no_update, dash.no_update
        fresh = msg.get("alerts", []) if msg.get("type") == "snapshot" else [msg["alert"]] \
            if msg.get("type") == "alert" else []
        whales = merge_whales(fresh, kept, limit=KEPT)
    if [w["alert_id"] for w in whales] == [w["alert_id"] for w in kept]:
        return dash.no_update, dash.no_update, dash.no_update
    return whale_grid(whales), whales, _count(whales)
