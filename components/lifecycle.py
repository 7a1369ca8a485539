"""Alert lifecycle views: the selected alert's snooze state, notes and history, the snoozes in force and the
audit trail — data in, Dash components out."""
from __future__ import annotations

from typing import Optional, Sequence

import dash_bootstrap_components as dbc
from dash import html

from components.format import fmt_time
from pipeline.alert_types import TYPE_LABEL

ACTION_LABEL = {"ack": "acknowledged", "snooze_create": "snoozed", "snooze_delete": "ended snooze",
                "snooze_expire": "snooze expired", "note": "noted"}
DURATIONS = [{"label": "15 minutes", "value": 15}, {"label": "1 hour", "value": 60},
             {"label": "4 hours", "value": 240}, {"label": "1 day", "value": 1440}]


def snooze_matchers(s: dict) -> str:
    """'Volume spike on BTC-USD' / 'any alert on TSLA' / 'Price spike' ..."""
    what = TYPE_LABEL.get(s["alert_type"], s["alert_type"]) if s.get("alert_type") else "any alert"
    where = [f"on {s['symbol']}"] if s.get("symbol") else []
    where += [f"from {s['source']}"] if s.get("source") else []
    return " ".join([what, *where])


def snooze_item(s: dict, end_button=None) -> html.Div:
    kept = s.get("snoozed", 0)
    return html.Div([
        end_button or "",
        html.Div([html.Span(f"#{s['snooze_id']}", className="lc-badge"), snooze_matchers(s)]),
        html.Div(s["comment"]),
        html.Div(f"by {s['created_by']} · until {fmt_time(s['ends_at'], with_date=True)} UTC · "
                 f"{kept} alert{'s' if kept != 1 else ''} kept back", className="lc-meta"),
    ], className="lc-item snooze-item", id=f"snooze-{s['snooze_id']}")


def snooze_list(snoozes: Sequence[dict], end_buttons: Optional[dict] = None) -> list:
    if not snoozes:
        return [html.Div("No snoozes in force.", className="empty")]
    return [snooze_item(s, (end_buttons or {}).get(s["snooze_id"])) for s in snoozes]


def audit_item(e: dict) -> html.Div:
    target = f"alert {e['alert_id'][:10]}…" if e.get("alert_id") else f"snooze #{e['snooze_id']}" \
        if e.get("snooze_id") else ""
    return html.Div([
        html.Div([html.B(e["actor"]), f" {ACTION_LABEL.get(e['action'], e['action'])} ", target]),
        html.Div(e.get("detail") or "", className="lc-detail"),
        html.Div(f"{fmt_time(e['at'], with_date=True)} UTC", className="lc-meta"),
    ], className=f"lc-item audit-item audit-{e['action']}")


def audit_list(events: Sequence[dict], empty: str = "Nobody has done anything yet.") -> list:
    return [audit_item(e) for e in events] if events else [html.Div(empty, className="empty")]


def note_item(n: dict) -> html.Div:
    when = fmt_time(n["created_at"], with_date=True)
    return html.Div([html.Div(n["body"]), html.Div(f"{n['author']} · {when} UTC", className="lc-meta")],
                    className="lc-item note-item")


def alert_detail(alert: Optional[dict], snooze: Optional[dict], notes: Sequence[dict],
                 events: Sequence[dict]) -> list:
    """The selected alert: what it is, its snooze state, its notes and its history."""
    if alert is None:
        return [html.Div("Tick one alert in the table to see its notes and history.", className="empty")]
    state = alert.get("status") or "new"
    if state == "snoozed" and snooze is not None:
        state_line = dbc.Badge(f"snoozed by #{snooze['snooze_id']}: {snooze['comment']}", color="info",
                               className="me-1", id="detail-snoozed")
    else:
        state_line = dbc.Badge(state, color="secondary", className="me-1")
    ack = ""
    if alert.get("acknowledged"):
        ack = dbc.Badge(f"acknowledged by {alert['acknowledged_by']}", color="success")
    return [
        html.Div([html.B(f"{alert['symbol']} · {TYPE_LABEL.get(alert['alert_type'], alert['alert_type'])}"),
                  html.Span(f"  {fmt_time(alert['timestamp'], with_date=True)} UTC", className="lc-meta")]),
        html.Div(alert.get("message", ""), className="lc-detail mb-1"),
        html.Div([state_line, ack], className="mb-1"),
        html.H3("Notes", className="panel-title mt-2"),
        *([note_item(n) for n in notes] or [html.Div("No notes.", className="empty")]),
        html.H3("History", className="panel-title mt-2"),
        *audit_list(events, "No one has acted on it yet."),
    ]
