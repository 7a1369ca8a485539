"""Watchlist (/): live prices, candlestick chart with VWAP, volume and switchable indicators (Bollinger,
RSI, MACD), simulated book, tape, alert feed.  The chart shows the live source's candles, or those of a
replayed source chosen beside the symbol (its symbols then fill the symbol selector)."""
from __future__ import annotations

import dash
import orjson
from dash import ALL, ClientsideFunction, Input, Output, Patch, State, callback, clientside_callback, ctx, dcc, html
from dash_extensions import WebSocket

from app import ids
from app.guard import guarded
from app.live_page import ws_url_function
from app.market import merge_open_candle, order_book
from app.services import Unavailable, current
from components.alerts import alert_feed
from components.candles import INDICATOR_TOGGLES, INDICATORS, candlestick_figure, chart_box_class, x_range_change
from components.format import fmt_pct, fmt_price, window_label
from components.orderbook import order_book_table
from components.tape import price_row, sparkline, trade_tape

dash.register_page(__name__, path="/", name="Watchlist", title="Stock-IT · Watchlist", order=0)

ROW_IDS = {"row": ids.WL_ROW, "last": ids.WL_LAST, "change": ids.WL_CHANGE, "spark": ids.WL_SPARK, "ts": ids.WL_TS}
INDICATOR_OPTIONS = [{"label": html.Span(label, title=INDICATORS[key]), "value": key}
                     for key, label in INDICATOR_TOGGLES.items()]
FEED_KEPT = 40
GRAPH_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"], "scrollZoom": True}


def _snapshot(symbols: list[str]) -> tuple[dict, dict]:
    svc = current()
    try:
        prices = svc.speed(lambda r: r.prices())
        series = svc.speed(lambda r: {s: r.series(s, 300) for s in symbols})
    except Exception:  # noqa: BLE001 - Redis down: the banner says so, the page still renders
        prices, series = {}, {}
    return prices, series


def _sources() -> list[str]:
    """The live source first, then every source with stored candles (none while the database is away)."""
    svc = current()
    live = svc.settings.live_source
    try:
        stored = svc.history(lambda h: h.sources())
    except Unavailable:
        stored = []
    return [live] + sorted(set(stored) - {live})


def _rows(symbols: list[str], prices: dict, series: dict, selected: str) -> list:
    return [price_row(s, prices.get(s), sparkline([p for _, p in series.get(s, [])]), ROW_IDS, s == selected)
            for s in symbols]


def window_options(windows: tuple[int, ...]) -> list[dict]:
    """The chart's candle sizes: those the pipeline computes (STOCKIT_WINDOWS)."""
    return [{"label": window_label(w), "value": w} for w in windows]


def layout(**_query) -> html.Div:
    symbols = current().symbols()
    windows = current().settings.window_list
    prices, series = _snapshot(symbols)
    selected = next((s for s in symbols if s in prices), symbols[0] if symbols else "")
    head = prices.get(selected)
    sources = _sources()
    return html.Div([
        WebSocket(id=ids.WL_WS_PRICES), WebSocket(id=ids.WL_WS_ALERTS),
        dcc.Interval(id=ids.WL_WS_WATCHDOG, interval=3000),
        dcc.Interval(id=ids.WL_FAST_INTERVAL, interval=2000),
        dcc.Interval(id=ids.WL_SLOW_INTERVAL, interval=5000),
        dcc.Store(id=ids.WL_FEED_STORE, data=[]),
        dcc.Store(id=ids.WL_PRICE_STORE, data=symbols),
        dcc.Store(id=ids.WL_CHART_DRAWN),
        dcc.Store(id=ids.WL_CHART_RANGE),
        html.Div([
            html.Div(html.Div([
                html.H2("Watchlist", className="panel-title"),
                html.Div(html.Table([
                    html.Thead(html.Tr([html.Th("Symbol"), html.Th("Last", className="r"),
                                        html.Th("Chg %", className="r"), html.Th("Trend"), html.Th("")])),
                    html.Tbody(_rows(symbols, prices, series, selected), id=ids.WL_TABLE),
                ], className="wl-table"), className="panel-scroll"),
            ], className="panel"), className="col-12 col-lg-4"),
            html.Div(html.Div([
                html.Div([
                    dcc.Dropdown(id=ids.WL_SYMBOL, options=symbols, value=selected, clearable=False,
                                 className="symbol-select"),
                    html.Span(fmt_price(head["price"]) if head else "—", id=ids.WL_HEAD_PRICE,
                              className="head-price num"),
                    html.Span(fmt_pct(head["change_pct"]) if head else "", id=ids.WL_HEAD_CHANGE,
                              className="head-change num"),
                    html.Div(className="spacer flex-grow-1"),
                    dcc.Checklist(id=ids.WL_INDICATORS, options=INDICATOR_OPTIONS, value=[], inline=True,
                                  persistence=True, persistence_type="memory", className="window-radio"),
                    dcc.RadioItems(id=ids.WL_WINDOW, options=window_options(windows), value=windows[0], inline=True,
                                   className="window-radio"),
                    # Shown once a replayed source has candles: the chart then shows its candles on request.
                    dcc.Dropdown(id=ids.WL_SOURCE, options=sources, value=sources[0], clearable=False,
                                 className="source-select",
                                 style=None if len(sources) > 1 else {"display": "none"}),
                ], className="chart-head"),
                html.Div(dcc.Graph(id=ids.WL_CHART, className="chart-graph", config=GRAPH_CONFIG,
                                   figure=candlestick_figure([], selected or "—")),
                         id=ids.WL_CHART_BOX, className="chart-box"),
            ], className="panel"), className="col-12 col-lg-8"),
        ], className="row g-2 mb-2"),
        html.Div([
            html.Div(html.Div([
                html.H2(["Order book", html.Span("simulated around last price", className="tag")],
                        className="panel-title"),
                html.Div(id=ids.WL_BOOK, className="panel-scroll"),
            ], className="panel bottom-panel"), className="col-12 col-md-6 col-xl-4"),
            html.Div(html.Div([
                html.H2("Trade tape", className="panel-title"),
                html.Div(id=ids.WL_TAPE, className="panel-scroll"),
            ], className="panel bottom-panel"), className="col-12 col-md-6 col-xl-4"),
            html.Div(html.Div([
                html.H2("Live alerts", className="panel-title"),
                html.Div(alert_feed([]), id=ids.WL_FEED, className="panel-scroll"),
            ], className="panel bottom-panel"), className="col-12 col-xl-4"),
        ], className="row g-2"),
    ])


# --- streams ---------------------------------------------------------------------------------------
for ws_id, path in ((ids.WL_WS_PRICES, "/ws/prices"), (ids.WL_WS_ALERTS, "/ws/alerts")):
    clientside_callback(ws_url_function(path), Output(ws_id, "url"), Input(ids.WL_WS_WATCHDOG, "n_intervals"),
                        State(ws_id, "state"), State(ws_id, "url"))

clientside_callback(
    ClientsideFunction("stockit", "prices"),
    Output({"type": ids.WL_LAST, "symbol": ALL}, "children"),
    Output({"type": ids.WL_LAST, "symbol": ALL}, "className"),
    Output({"type": ids.WL_CHANGE, "symbol": ALL}, "children"),
    Output({"type": ids.WL_CHANGE, "symbol": ALL}, "className"),
    Output({"type": ids.WL_TS, "symbol": ALL}, "children"),
    Output(ids.WL_HEAD_PRICE, "children"), Output(ids.WL_HEAD_CHANGE, "children"),
    Output(ids.WL_HEAD_CHANGE, "className"),
    Input(ids.WL_WS_PRICES, "message"), State(ids.WL_SYMBOL, "value"),
)


# --- selection -------------------------------------------------------------------------------------
@callback(Output(ids.WL_SYMBOL, "value"), Input({"type": ids.WL_ROW, "symbol": ALL}, "n_clicks"),
          prevent_initial_call=True)
def select_row(clicks):
    if not ctx.triggered_id or not any(clicks or []):
        return dash.no_update
    return ctx.triggered_id["symbol"]


@callback(Output({"type": ids.WL_ROW, "symbol": ALL}, "className"), Input(ids.WL_SYMBOL, "value"),
          State({"type": ids.WL_ROW, "symbol": ALL}, "id"))
def mark_selected(selected, row_ids):
    return ["wl-row selected" if r["symbol"] == selected else "wl-row" for r in row_ids]


# --- server-rendered panels ------------------------------------------------------------------------
def _unchanged():
    raise dash.exceptions.PreventUpdate


@callback(Output({"type": ids.WL_SPARK, "symbol": ALL}, "children"),
          Output({"type": ids.WL_SPARK, "symbol": ALL}, "className"),
          Input(ids.WL_SLOW_INTERVAL, "n_intervals"), State({"type": ids.WL_SPARK, "symbol": ALL}, "id"),
          prevent_initial_call=True)
@guarded(lambda exc: _unchanged())  # wildcard outputs take a list each, not no_update: prevent the update
def refresh_sparklines(_n, spark_ids):
    symbols = [i["symbol"] for i in spark_ids]
    series = current().speed(lambda r: {s: r.series(s, 300) for s in symbols})
    sparks, classes = [], []
    for s in symbols:
        pts = [p for _, p in series.get(s, [])]
        sparks.append(sparkline(pts))
        trend = (pts[-1] - pts[0]) if len(pts) > 1 else 0
        classes.append("wl-spark up" if trend > 0 else "wl-spark down" if trend < 0 else "wl-spark")
    return sparks, classes


@callback(Output(ids.WL_TABLE, "children"), Output(ids.WL_PRICE_STORE, "data"),
          Input(ids.WL_SLOW_INTERVAL, "n_intervals"), State(ids.WL_PRICE_STORE, "data"),
          State(ids.WL_SYMBOL, "value"), prevent_initial_call=True)
def add_new_symbols(_n, shown, selected):
    """Re-render the table only when the pipeline has started trading a symbol not listed yet."""
    symbols = current().symbols()
    if symbols == shown:
        return dash.no_update, dash.no_update
    prices, series = _snapshot(symbols)
    return _rows(symbols, prices, series, selected), symbols


@callback(Output(ids.WL_SYMBOL, "options"), Output(ids.WL_SYMBOL, "value", allow_duplicate=True),
          Input(ids.WL_SOURCE, "value"), Input(ids.WL_PRICE_STORE, "data"), State(ids.WL_SYMBOL, "value"),
          prevent_initial_call=True)
@guarded(lambda exc: (dash.no_update, dash.no_update))
def symbol_options(source, live_symbols, selected):
    """The live symbols for the live source; a replayed source's own symbols (with candles) for it."""
    svc = current()
    if source == svc.settings.live_source:
        symbols = live_symbols or []
    else:
        symbols = svc.history(lambda h: h.symbols(source))
    if selected in symbols or not symbols:
        return symbols, dash.no_update
    return symbols, symbols[0]


@callback(Output(ids.WL_CHART, "figure"), Output(ids.WL_CHART_DRAWN, "data"),
          Output(ids.WL_CHART_BOX, "className"), Input(ids.WL_SYMBOL, "value"), Input(ids.WL_WINDOW, "value"),
          Input(ids.WL_INDICATORS, "value"), Input(ids.WL_FAST_INTERVAL, "n_intervals"),
          Input(ids.WL_SOURCE, "value"), State(ids.WL_CHART_DRAWN, "data"), State(ids.WL_CHART_RANGE, "data"))
@guarded(lambda exc: (dash.no_update, dash.no_update, dash.no_update))
def refresh_chart(symbol, window, indicators, _n, source, drawn, zoomed):
    """Draw the chart when what it shows changes; on a refresh of the same chart replace only its traces.

    dcc.Graph keeps the user's zoom and pan in the figure's layout: a whole new figure every refresh
    would reset the view, so a refresh sends a ``Patch`` of ``data`` and leaves the layout alone.
    Switching an indicator changes the panels, so it draws anew, carrying over the time range the
    user zoomed to (the shared time axis is anchored on the bottom panel, which changes).
    """
    if not symbol:
        return dash.no_update, dash.no_update, dash.no_update
    svc = current()
    live = svc.settings.live_source
    source = source or live
    try:
        candles = svc.history(lambda h: h.candles(symbol, window, limit=120, source=source))
    except Exception:  # noqa: BLE001 - history down: still show the open candle
        candles = []
    open_candle = svc.speed(lambda r: r.open_candle(symbol, window)) if source == live else None
    shown = merge_open_candle(candles, open_candle)
    indicators = sorted(indicators or [])
    view = _view(symbol, window, source, live)
    chart = f"{view}:{'candles' if shown else 'empty'}:{','.join(indicators)}"
    same_view = bool(drawn) and chart != drawn and drawn.rsplit(":", 1)[0] == chart.rsplit(":", 1)[0]
    title = symbol if source == live else f"{symbol} · {source}"
    figure = candlestick_figure(shown, title, window, uirevision=view, indicators=indicators,
                                x_range=_zoom_of(zoomed, view) if same_view else None)
    if chart != drawn:
        return figure, chart, chart_box_class(indicators)
    traces = Patch()
    traces["data"] = figure.to_dict()["data"]
    return traces, dash.no_update, dash.no_update


def _view(symbol: str, window: int, source: str, live: str) -> str:
    """What the chart shows: the live source's symbol and window keep the names they had before sources."""
    return f"{symbol}:{window}" if source == live else f"{symbol}:{window}:{source}"


def _zoom_of(zoomed, view: str):
    return zoomed["range"] if zoomed and zoomed.get("view") == view else None


@callback(Output(ids.WL_CHART_RANGE, "data"), Input(ids.WL_CHART, "relayoutData"),
          State(ids.WL_SYMBOL, "value"), State(ids.WL_WINDOW, "value"), State(ids.WL_SOURCE, "value"),
          prevent_initial_call=True)
def remember_zoom(relayout, symbol, window, source):
    """Keep the user's time range of this symbol, window and source apart from other relayout events."""
    change = x_range_change(relayout)
    if change is None:
        return dash.no_update
    live = current().settings.live_source
    return {"view": _view(symbol, window, source or live, live), "range": change or None}


@callback(Output(ids.WL_BOOK, "children"), Output(ids.WL_TAPE, "children"), Input(ids.WL_SYMBOL, "value"),
          Input(ids.WL_FAST_INTERVAL, "n_intervals"))
@guarded(lambda exc: (html.Div("Order book unavailable", className="empty"),
                      html.Div("Trade tape unavailable", className="empty")))
def refresh_book_and_tape(symbol, _n):
    if not symbol:
        return dash.no_update, dash.no_update
    svc = current()
    ticker = svc.speed(lambda r: r.price(symbol))
    trades = svc.speed(lambda r: r.trades(symbol, 50))
    if not ticker:
        book = html.Div(f"No price for {symbol} yet", className="empty")
    else:
        book = order_book_table(order_book(symbol, ticker, trades))
    return book, trade_tape(trades, 40)


@callback(Output(ids.WL_FEED, "children"), Output(ids.WL_FEED_STORE, "data"),
          Input(ids.WL_WS_ALERTS, "message"), State(ids.WL_FEED_STORE, "data"), prevent_initial_call=True)
def feed(message, kept):
    try:
        msg = orjson.loads(message["data"])
    except (TypeError, KeyError, orjson.JSONDecodeError):
        return dash.no_update, dash.no_update
    if msg.get("type") == "snapshot":
        alerts = msg["alerts"]
    elif msg.get("type") == "alert":
        alerts = [msg["alert"]] + [a for a in (kept or []) if a["alert_id"] != msg["alert"]["alert_id"]]
    else:
        return dash.no_update, dash.no_update
    alerts = alerts[:FEED_KEPT]
    return alert_feed(alerts), alerts
