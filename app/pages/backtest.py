"""Backtest (/backtest): what candidate rules would have raised over stored trades, beside what fired.

The form queues a run (``app.backtests``: its own process, never this request); the page polls the run's
progress and, once done, shows the counts by type and symbol, the price timeline with fired and
candidate alerts, the differences and a CSV export.  Running needs the operator role; everyone signed
in sees every run.
"""
from __future__ import annotations

import time

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, dash_table, dcc, html

from app import backtests, ids
from app.access import OPERATOR
from app.auth import current_principal, requires
from app.guard import guarded
from app.market import window_for
from app.services import Unavailable, current
from components import theme
from components.backtest import (counts_table, difference_columns, difference_rows, progress_view,
                                 runs_columns, runs_rows, timeline_figure)
from pipeline.backtest import SpecError, csv_text
from pipeline.events import iso

dash.register_page(__name__, path="/backtest", name="Backtest", title="Stock-IT · Backtest", order=4)

EXAMPLE_RULES = """rulesets:
  tuned:
    price_deviation: {spike_pct: 4, breaker_pct: 10}
    volume_multiple: {volume_multiple: 4}
assign:
  default: tuned
"""
TABLE_STYLE = theme.data_table_style()


def _minute(ts: float) -> str:
    return iso(ts - ts % 60)[:16] + "Z"


def _run_button() -> dbc.Button:
    who = current_principal()
    allowed = who is not None and who.may(OPERATOR)
    why = "Running a backtest needs the operator or admin role (it costs CPU on the pipeline's machines)"
    return dbc.Button("Run backtest", id=ids.BT_RUN, color="warning", size="sm", disabled=not allowed,
                      title="" if allowed else why)


def _sources() -> list[str]:
    """Sources with stored history (none while the database is away: the form still renders)."""
    try:
        return current().history(lambda h: h.sources())
    except Unavailable:
        return []


def _field(label: str, component) -> html.Div:
    return html.Div([html.Label(label, className="filter-label"), component], className="bt-field")


def _form(symbols: list[str], sources: list[str], now: float) -> html.Div:
    times = html.Div([
        _field("Start (UTC)", dbc.Input(id=ids.BT_START, value=_minute(now - 3600), size="sm",
                                        placeholder="2026-01-02T09:30Z or epoch seconds")),
        _field("End (UTC)", dbc.Input(id=ids.BT_END, value=_minute(now + 60), size="sm"))],
        className="bt-row")
    return html.Div([
        html.H2("Candidate", className="panel-title"),
        _field("Symbols", dcc.Dropdown(id=ids.BT_SYMBOLS, options=symbols, value=symbols[:2], multi=True,
                                       className="filter-dropdown bt-symbols")),
        times,
        _field("Source", dcc.Dropdown(id=ids.BT_SOURCE, options=sources, placeholder="All sources",
                                      className="filter-dropdown")),
        _field("Rules (STOCKIT_RULES format: YAML or JSON; empty = the running configuration)",
               dcc.Textarea(id=ids.BT_RULES, value=EXAMPLE_RULES, className="bt-rules", spellCheck=False)),
        html.Div([_run_button(), html.Div(id=ids.BT_MESSAGE, className="bt-message")],
                 className="bt-actions"),
    ], className="panel")


def _runs() -> html.Div:
    return html.Div([
        html.H2("Runs", className="panel-title"),
        dbc.Progress(id=ids.BT_PROGRESS, value=0, label="", striped=True, className="bt-progress mb-1"),
        html.Div(id=ids.BT_STATUS, className="bt-status"),
        dash_table.DataTable(id=ids.BT_RUNS, columns=runs_columns(), data=[], row_selectable="single",
                             selected_rows=[], page_size=8, cell_selectable=False, **TABLE_STYLE),
    ], className="panel")


def _differences(title: str, table_id: str) -> html.Div:
    table = dash_table.DataTable(id=table_id, columns=difference_columns(), data=[], page_size=10,
                                 **TABLE_STYLE)
    return html.Div(html.Div([html.H2(title, className="panel-title"), table], className="panel"),
                    className="col-12 col-xl-6")


def _results() -> html.Div:
    export = dbc.Button("Export CSV", id=ids.BT_EXPORT, color="secondary", size="sm", outline=True)
    chart_symbol = dcc.Dropdown(id=ids.BT_CHART_SYMBOL, clearable=False, className="symbol-select")
    chart = dcc.Graph(id=ids.BT_CHART, config={"displaylogo": False}, figure=timeline_figure([], [], "—"))
    return html.Div([
        html.Div([html.Div([html.H2("Alerts by type and symbol", className="panel-title"), export],
                           className="bt-head"),
                  html.Div(id=ids.BT_COUNTS)], className="panel mb-2"),
        html.Div([html.Div([html.H2("Timeline", className="panel-title"), chart_symbol], className="bt-head"),
                  chart], className="panel mb-2"),
        html.Div([_differences("Only fired: the candidate would not raise them", ids.BT_ONLY_ACTUAL),
                  _differences("Only candidate: they did not fire", ids.BT_ONLY_CANDIDATE)],
                 className="row g-2"),
    ], id=ids.BT_RESULTS, style={"display": "none"})


def layout(**_query) -> html.Div:
    symbols = current().symbols()
    return html.Div([
        dcc.Store(id=ids.BT_RUN_ID), dcc.Store(id=ids.BT_SHOWN), dcc.Download(id=ids.BT_DOWNLOAD),
        dcc.Interval(id=ids.BT_INTERVAL, interval=1000),
        html.Div([html.H1("Backtest", className="page-title"),
                  html.Span("What candidate rules would have raised over stored trades, beside what fired",
                            className="hint")], className="page-head"),
        html.Div([html.Div(_form(symbols, _sources(), time.time()), className="col-12 col-xl-4"),
                  html.Div(_runs(), className="col-12 col-xl-8")], className="row g-2 mb-2"),
        _results(),
    ])


@callback(Output(ids.BT_RUN_ID, "data", allow_duplicate=True), Output(ids.BT_MESSAGE, "children"),
          Input(ids.BT_RUN, "n_clicks"), State(ids.BT_SYMBOLS, "value"), State(ids.BT_START, "value"),
          State(ids.BT_END, "value"), State(ids.BT_SOURCE, "value"), State(ids.BT_RULES, "value"),
          prevent_initial_call=True)
@requires(OPERATOR, "running backtests")
@guarded(lambda exc: (dash.no_update, dbc.Alert("The database cannot be reached: no backtest was queued.",
                                                color="warning", className="py-1 mb-0")))
def run(_clicks, symbols, start, end, source, rules):
    fields = {"symbols": symbols or [], "start": start, "end": end, "source": source, "rules": rules}
    try:
        row = backtests.launch(current(), fields, current_principal().name)
    except SpecError as exc:
        return dash.no_update, dbc.Alert([html.B(exc.field), f": {exc.message}"], color="danger",
                                         className="py-1 mb-0", id="bt-error")
    except backtests.QueueFull as exc:
        return dash.no_update, dbc.Alert(str(exc), color="warning", className="py-1 mb-0", id="bt-error")
    return row["run_id"], dbc.Alert(f"Run {row['run_id']} queued.", color="success", className="py-1 mb-0")


@callback(Output(ids.BT_RUN_ID, "data", allow_duplicate=True), Input(ids.BT_RUNS, "selected_row_ids"),
          prevent_initial_call=True)
def select(selected):
    return selected[0] if selected else dash.no_update


@callback(Output(ids.BT_PROGRESS, "value"), Output(ids.BT_PROGRESS, "label"),
          Output(ids.BT_STATUS, "children"), Output(ids.BT_RUNS, "data"),
          Output(ids.BT_RUNS, "selected_rows"), Output(ids.BT_SHOWN, "data"),
          Input(ids.BT_INTERVAL, "n_intervals"), Input(ids.BT_RUN_ID, "data"), State(ids.BT_SHOWN, "data"))
@guarded(lambda exc: (0, "", "Backtests unavailable: the database cannot be reached.", [], [],
                      dash.no_update))
def poll(_n, run_id, shown):
    svc = current()
    runs = backtests.runs(svc, 20)
    if run_id:
        run_row = next((r for r in runs if r["run_id"] == run_id), None)
    else:
        run_row = runs[0] if runs else None
    if run_id and run_row is None:
        run_row = backtests.run(svc, run_id)
    pct, label, text = progress_view(run_row)
    rows = runs_rows(runs)
    selected = [i for i, r in enumerate(rows) if run_row and r["id"] == run_row["run_id"]]
    now_shown = {"run": run_row["run_id"], "status": run_row["status"]} if run_row else None
    return pct, label, text, rows, selected, (dash.no_update if now_shown == shown else now_shown)


@callback(Output(ids.BT_CHART_SYMBOL, "options"), Output(ids.BT_CHART_SYMBOL, "value"),
          Input(ids.BT_SHOWN, "data"), State(ids.BT_CHART_SYMBOL, "value"))
@guarded(lambda exc: ([], None))
def chart_symbols(shown, current_symbol):
    if not shown or shown["status"] != "done":
        return [], None
    run_row = backtests.run(current(), shown["run"])
    symbols = run_row["spec"]["symbols"]
    with_alerts = [c["symbol"] for c in (run_row["summary"] or {}).get("counts", [])]
    first = next((s for s in symbols if s in with_alerts), symbols[0])
    return symbols, current_symbol if current_symbol in symbols else first


@callback(Output(ids.BT_RESULTS, "style"), Output(ids.BT_COUNTS, "children"), Output(ids.BT_CHART, "figure"),
          Output(ids.BT_ONLY_ACTUAL, "data"), Output(ids.BT_ONLY_CANDIDATE, "data"),
          Input(ids.BT_SHOWN, "data"), Input(ids.BT_CHART_SYMBOL, "value"))
@guarded(lambda exc: ({"display": "none"}, "", dash.no_update, [], []))
def results(shown, symbol):
    if not shown or shown["status"] != "done":
        return {"display": "none"}, "", timeline_figure([], [], "—"), [], []
    svc = current()
    run_row = backtests.run(svc, shown["run"])
    alerts = backtests.alerts(svc, shown["run"])
    spec = run_row["spec"]
    symbol = symbol if symbol in spec["symbols"] else spec["symbols"][0]
    window = window_for(spec["end"] - spec["start"], svc.settings.window_list)
    candles = svc.history(lambda h: h.candles(symbol, window, limit=5000, start=spec["start"],
                                              end=spec["end"]))
    figure = timeline_figure(candles, [a for a in alerts if a["symbol"] == symbol], symbol, window)
    only_actual = [a for a in alerts if a["in_actual"] and not a["in_candidate"]]
    only_candidate = [a for a in alerts if a["in_candidate"] and not a["in_actual"]]
    return ({"display": "block"}, counts_table(run_row["summary"]), figure, difference_rows(only_actual),
            difference_rows(only_candidate))


@callback(Output(ids.BT_DOWNLOAD, "data"), Input(ids.BT_EXPORT, "n_clicks"), State(ids.BT_SHOWN, "data"),
          prevent_initial_call=True)
@guarded(lambda exc: dash.no_update)
def export(_clicks, shown):
    if not shown or shown["status"] != "done":
        return dash.no_update
    rows = backtests.alerts(current(), shown["run"])
    return dcc.send_string(csv_text(rows), f"stockit-backtest-{shown['run']}.csv", type="text/csv")
