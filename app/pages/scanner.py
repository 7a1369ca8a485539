"""Scanner (/scanner): every symbol's last, 5-minute change, VWAP, volume, buy/sell pressure and signal.

Five minutes unless ``STOCKIT_WINDOWS`` lacks them: then the configured candle size nearest to five minutes.
"""
from __future__ import annotations

import time

import dash
from dash import Input, Output, callback, dash_table, dcc, html

from app import ids
from app.guard import guarded
from app.market import BUY, NEUTRAL, SELL, scanner_row, scanner_window
from app.services import current
from components import theme
from components.format import fmt_time, window_label
from components.scanner import scanner_columns, scanner_styles, signal_rule_text

dash.register_page(__name__, path="/scanner", name="Scanner", title="Stock-IT · Scanner", order=1)

SIGNALS = [{"label": "All", "value": "ALL"}, {"label": "Buy", "value": BUY}, {"label": "Sell", "value": SELL},
           {"label": "Neutral", "value": NEUTRAL}]


def scan_rows() -> list[dict]:
    svc = current()
    symbols = svc.symbols()
    window = scanner_window(svc.settings.window_list)
    data = svc.speed(lambda r: r.scan(symbols, trades_limit=100, series_limit=600, candle_seconds=window))
    return [scanner_row(s, d["ticker"], d["series"], d["trades"], d["candle"], window)
            for s, d in data.items() if d["ticker"] is not None]


def layout(**_query) -> html.Div:
    window = window_label(scanner_window(current().settings.window_list))
    return html.Div([
        dcc.Interval(id=ids.SC_INTERVAL, interval=2000),
        html.Div([
            html.H1("Scanner", className="page-title"),
            dcc.RadioItems(id=ids.SC_SIGNAL_FILTER, options=SIGNALS, value="ALL", inline=True,
                           className="window-radio"),
            html.Span(f"Signal — {signal_rule_text(window)} Sort by a header; filter in the row below it "
                      "(e.g. > 0).", id=ids.SC_RULE, className="hint"),
            html.Span(id=ids.SC_UPDATED, className="hint ms-auto num"),
        ], className="page-head"),
        html.Div(dash_table.DataTable(
            id=ids.SC_TABLE, columns=scanner_columns(window), data=[], sort_action="native", sort_mode="single",
            filter_action="native", filter_options={"case": "insensitive", "placeholder_text": "filter…"},
            page_action="none", row_selectable=False, cell_selectable=False,
            style_as_list_view=True, style_table={"overflowX": "auto"},
            style_header={"backgroundColor": theme.PANEL, "color": theme.MUTED, "fontWeight": 600,
                          "borderBottom": f"1px solid {theme.GRID}", "textTransform": "uppercase",
                          "fontSize": "0.72rem"},
            style_filter={"backgroundColor": theme.BACKGROUND, "color": theme.TEXT},
            style_cell={"backgroundColor": theme.PANEL, "color": theme.TEXT, "border": f"1px solid {theme.GRID}",
                        "fontFamily": "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace",
                        "fontSize": "0.85rem", "padding": "6px 10px", "minWidth": "80px"},
            style_cell_conditional=[{"if": {"column_id": "symbol"}, "textAlign": "left", "fontWeight": 700,
                                     "fontFamily": theme.FONT},
                                    {"if": {"column_id": "signal"}, "textAlign": "center"}],
            style_data_conditional=scanner_styles(),
        ), className="panel"),
    ])


@callback(Output(ids.SC_TABLE, "data"), Output(ids.SC_UPDATED, "children"),
          Input(ids.SC_INTERVAL, "n_intervals"), Input(ids.SC_SIGNAL_FILTER, "value"))
@guarded(lambda exc: ([], "live data unavailable"))
def refresh(_n, signal):
    rows = scan_rows()
    if signal and signal != "ALL":
        rows = [r for r in rows if r["signal"] == signal]
    return rows, f"updated {fmt_time(time.time())} UTC"
