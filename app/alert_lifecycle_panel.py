"""The alert lifecycle on the Alerts page: the selected alert's notes and history with a note form, the
snoozes in force with a snooze form, and the recent audit trail.  Operators act; viewers see the forms
disabled, with the reason."""
from __future__ import annotations

import time

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, callback, ctx, dcc, html

from app import ids
from app.access import OPERATOR
from app.auth import current_principal, requires
from app.guard import guarded
from app.services import current
from components.lifecycle import DURATIONS, alert_detail, audit_list, snooze_list
from components.format import fmt_time
from pipeline.alert_types import ALERT_KINDS
from pipeline.history.lifecycle import AlertLifecycle
from pipeline.snooze import SnoozeRequestError, check_request

TYPE_OPTIONS = [{"label": k.label, "value": k.name} for k in ALERT_KINDS.values()]
NEEDS_OPERATOR = "Needs the operator or admin role"
SNOOZE_HINT = "Matching alerts are kept, marked snoozed and sent to no webhook"


def _may_act() -> bool:
    who = current_principal()
    return who is not None and who.may(OPERATOR)


def _lifecycle(fn):
    return current().history(lambda h: fn(AlertLifecycle(h)))


def panels(symbols: list[str], sources: list[str]) -> html.Div:
    """The three panels, below the alert table."""
    may = _may_act()
    hint = "" if may else NEEDS_OPERATOR
    return html.Div([
        dcc.Store(id=ids.AL_CHANGED, data=0),
        html.Div([html.H2("Selected alert", className="panel-title"),
                  html.Div(id=ids.AL_DETAIL),
                  dcc.Textarea(id=ids.AL_NOTE_TEXT, placeholder="Write a note on the selected alert…",
                               className="lc-note-text mt-2", disabled=not may, title=hint),
                  html.Div([dbc.Button("Add note", id=ids.AL_NOTE_ADD, size="sm", color="secondary",
                                       outline=True, disabled=not may, title=hint),
                            html.Span(id=ids.AL_NOTE_RESULT, className="lc-result")],
                           className="lc-form mt-1")],
                 className="panel"),
        html.Div([html.H2("Snoozes", className="panel-title"),
                  html.Div([dcc.Dropdown(id=ids.AL_SNOOZE_TYPE, options=TYPE_OPTIONS, placeholder="Any type",
                                         className="filter-dropdown", disabled=not may),
                            dcc.Dropdown(id=ids.AL_SNOOZE_SYMBOL, options=symbols, placeholder="Any symbol",
                                         className="filter-dropdown", disabled=not may),
                            dcc.Dropdown(id=ids.AL_SNOOZE_SOURCE, options=sources, placeholder="Any source",
                                         className="filter-dropdown", disabled=not may),
                            dcc.Dropdown(id=ids.AL_SNOOZE_MINUTES, options=DURATIONS, value=60,
                                         clearable=False, className="filter-dropdown", disabled=not may),
                            dbc.Input(id=ids.AL_SNOOZE_COMMENT, placeholder="Why (shown in the audit trail)",
                                      size="sm", disabled=not may),
                            dbc.Button("Snooze", id=ids.AL_SNOOZE_ADD, size="sm", color="info", outline=True,
                                       disabled=not may, title=hint or SNOOZE_HINT)],
                           className="lc-form"),
                  html.Div(id=ids.AL_SNOOZE_RESULT, className="lc-result"),
                  html.Div(id=ids.AL_SNOOZES)], className="panel"),
        html.Div([html.H2("Audit trail", className="panel-title"), html.Div(id=ids.AL_AUDIT)],
                 className="panel"),
    ], className="lc-grid mb-2")


def _selected(selected_ids) -> str | None:
    return selected_ids[0] if selected_ids and len(selected_ids) == 1 else None


@callback(Output(ids.AL_DETAIL, "children"), Input(ids.AL_TABLE, "selected_row_ids"),
          Input(ids.AL_CHANGED, "data"), Input(ids.AL_INTERVAL, "n_intervals"))
@guarded(lambda exc: html.Div("Unavailable: the database cannot be reached.", className="empty"))
def detail(selected_ids, _changed, _n):
    alert_id = _selected(selected_ids)
    if alert_id is None:
        return alert_detail(None, None, [], [])
    alert = current().history(lambda h: h.alert(alert_id))
    if alert is None:
        return alert_detail(None, None, [], [])

    def read(lc: AlertLifecycle):
        snooze = lc.snooze(alert["snooze_id"]) if alert.get("snooze_id") else None
        return snooze, lc.notes(alert_id), lc.audit(alert_id=alert_id, limit=30)

    return alert_detail(alert, *_lifecycle(read))


@callback(Output(ids.AL_NOTE_RESULT, "children"), Output(ids.AL_NOTE_TEXT, "value"),
          Output(ids.AL_CHANGED, "data", allow_duplicate=True),
          Input(ids.AL_NOTE_ADD, "n_clicks"), State(ids.AL_NOTE_TEXT, "value"),
          State(ids.AL_TABLE, "selected_row_ids"), State(ids.AL_CHANGED, "data"), prevent_initial_call=True)
@requires(OPERATOR, "annotating alerts")
@guarded(lambda exc: ("Could not save the note: the database cannot be reached.", dash.no_update,
                      dash.no_update))
def add_note(_clicks, text, selected_ids, changed):
    alert_id = _selected(selected_ids)
    if alert_id is None:
        return "Tick exactly one alert first.", dash.no_update, dash.no_update
    text = (text or "").strip()
    if not 1 <= len(text) <= 2000:
        return "A note has 1 to 2000 characters.", dash.no_update, dash.no_update
    note = _lifecycle(lambda lc: lc.add_note(alert_id, text, current_principal().name))
    if note is None:
        return "That alert is gone (retention).", dash.no_update, dash.no_update
    return f"Note saved at {fmt_time(time.time())} UTC.", "", (changed or 0) + 1


@callback(Output(ids.AL_SNOOZE_RESULT, "children", allow_duplicate=True),
          Output(ids.AL_CHANGED, "data", allow_duplicate=True), Output(ids.AL_SNOOZE_COMMENT, "value"),
          Input(ids.AL_SNOOZE_ADD, "n_clicks"), State(ids.AL_SNOOZE_TYPE, "value"),
          State(ids.AL_SNOOZE_SYMBOL, "value"), State(ids.AL_SNOOZE_SOURCE, "value"),
          State(ids.AL_SNOOZE_MINUTES, "value"),
          State(ids.AL_SNOOZE_COMMENT, "value"), State(ids.AL_CHANGED, "data"), prevent_initial_call=True)
@requires(OPERATOR, "snoozing alerts")
@guarded(lambda exc: ("Could not snooze: the database cannot be reached.", dash.no_update, dash.no_update))
def snooze(_clicks, alert_type, symbol, source, minutes, comment, changed):
    try:
        req = check_request({"alert_type": alert_type, "symbol": symbol, "source": source,
                             "duration_minutes": minutes, "comment": comment}, time.time())
    except SnoozeRequestError as exc:
        error = html.Span([html.B(exc.field.replace("_", " ")), f": {exc.message}"], className="text-danger")
        return error, dash.no_update, dash.no_update
    made = _lifecycle(lambda lc: lc.create_snooze(req, current_principal().name))
    until = fmt_time(made["ends_at"])
    return f"Snooze #{made['snooze_id']} in force until {until} UTC.", (changed or 0) + 1, ""


@callback(Output(ids.AL_SNOOZE_RESULT, "children", allow_duplicate=True),
          Output(ids.AL_CHANGED, "data", allow_duplicate=True),
          Input({"type": ids.AL_SNOOZE_END, "snooze": ALL}, "n_clicks"), State(ids.AL_CHANGED, "data"),
          prevent_initial_call=True)
@requires(OPERATOR, "ending snoozes")
@guarded(lambda exc: ("Could not end the snooze: the database cannot be reached.", dash.no_update))
def end_snooze(clicks, changed):
    if not ctx.triggered_id or not any(clicks or []):
        return dash.no_update, dash.no_update
    snooze_id = ctx.triggered_id["snooze"]
    _, ended = _lifecycle(lambda lc: lc.delete_snooze(snooze_id, current_principal().name))
    said = f"Snooze #{snooze_id} ended." if ended else f"Snooze #{snooze_id} was over already."
    return said, (changed or 0) + 1


@callback(Output(ids.AL_SNOOZES, "children"), Output(ids.AL_AUDIT, "children"),
          Input(ids.AL_CHANGED, "data"), Input(ids.AL_INTERVAL, "n_intervals"))
@guarded(lambda exc: ([html.Div("Unavailable: the database cannot be reached.", className="empty")],) * 2)
def lifecycle_lists(_changed, _n):
    snoozes, events = _lifecycle(lambda lc: (lc.snoozes("active"), lc.audit(limit=30)))
    buttons = {}
    if _may_act():
        buttons = {s["snooze_id"]: dbc.Button("End", id={"type": ids.AL_SNOOZE_END, "snooze": s["snooze_id"]},
                                              size="sm", color="secondary", outline=True) for s in snoozes}
    return snooze_list(snoozes, buttons), audit_list(events)
