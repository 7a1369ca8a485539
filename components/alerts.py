"""Alert views: severity badge, live feed item, history table rows, CSV export, breaker states."""
from __future__ import annotations

import csv
import io
from typing import Iterable, Sequence

from dash import html

from components import theme
from components.format import fmt_pct, fmt_price, fmt_time
from pipeline.alert_types import (ALERT_KINDS, ALERT_SEVERITIES, ALERT_TYPES, MULTIPLE, SEVERITY_LABEL,
                                  SIGMAS, TYPE_LABEL)
from pipeline.breaker import CLOSED, HALF_OPEN, OPEN

CSV_FIELDS = ("alert_id", "timestamp", "severity", "alert_type", "symbol", "source", "price", "reference",
              "deviation", "side", "quantity", "message", "status", "delivery_status", "acknowledged",
              "acknowledged_at", "acknowledged_by", "snooze_id", "notes")
BREAKER_LABEL = {CLOSED: "Closed", HALF_OPEN: "Half-open", OPEN: "Open"}
SEVERITY_OPTIONS = [{"label": SEVERITY_LABEL[s], "value": s} for s in ALERT_SEVERITIES]
TYPE_OPTIONS = [{"label": TYPE_LABEL[t], "value": t} for t in ALERT_TYPES]


def severity_badge(severity: str) -> html.Span:
    return html.Span(SEVERITY_LABEL.get(severity, severity.title()), className=f"sev sev-{severity.lower()}")


def deviation_text(alert: dict) -> str:
    """'+7.31% vs avg' for price alerts, '4.2x avg size' for volume spikes, '+8.4σ' for z-scores."""
    kind = ALERT_KINDS.get(alert["alert_type"])
    unit = kind.deviation_unit if kind else None
    if unit == MULTIPLE:
        return f"{alert['deviation']:.1f}x avg size"
    if unit == SIGMAS:
        return f"{alert['deviation']:+.1f}σ"
    return f"{fmt_pct(alert['deviation'])} vs avg"


def alert_feed_item(alert: dict) -> html.Div:
    """One compact line of the live alert feed."""
    return html.Div([
        severity_badge(alert["severity"]),
        html.Span(alert["symbol"], className="feed-symbol"),
        html.Span(TYPE_LABEL.get(alert["alert_type"], alert["alert_type"]), className="feed-type"),
        html.Span(fmt_price(alert["price"]), className="num"),
        html.Span(deviation_text(alert), className="feed-dev"),
        html.Span(fmt_time(alert["timestamp"]), className="muted num feed-time"),
    ], className=f"feed-item sev-border-{alert['severity'].lower()}", title=alert.get("message", ""))


def alert_feed(alerts: Sequence[dict], limit: int = 30) -> list:
    if not alerts:
        return [html.Div("No alerts yet. They appear here the moment the pipeline raises one.",
                         className="empty")]
    return [alert_feed_item(a) for a in alerts[:limit]]


def alert_table_rows(alerts: Iterable[dict]) -> list[dict]:
    """DataTable rows (``id`` = alert id so selections survive refreshes)."""
    rows = []
    for a in alerts:
        rows.append({
            "id": a["alert_id"], "alert_id": a["alert_id"], "time": fmt_time(a["timestamp"], with_date=True),
            "severity": SEVERITY_LABEL.get(a["severity"], a["severity"]),
            "type": TYPE_LABEL.get(a["alert_type"], a["alert_type"]),
            "symbol": a["symbol"], "source": a.get("source", ""), "price": fmt_price(a["price"]),
            "deviation": deviation_text(a), "message": a.get("message", ""), "status": a.get("status") or "",
            "notes": a.get("notes") or "",
            "ack": "✓ " + (a.get("acknowledged_by") or "") if a.get("acknowledged") else "",
        })
    return rows


def severity_cell_styles(column: str = "severity") -> list[dict]:
    """DataTable conditional styles: the severity column (showing labels) in each severity's colour."""
    return [{"if": {"filter_query": f'{{{column}}} = "{SEVERITY_LABEL[s]}"', "column_id": column},
             "color": theme.SEVERITY_COLOR[s], "fontWeight": 700} for s in ALERT_SEVERITIES]


def alert_table_columns() -> list[dict]:
    return [{"id": k, "name": n} for k, n in (
        ("time", "Time (UTC)"), ("severity", "Severity"), ("type", "Type"), ("symbol", "Symbol"),
        ("source", "Source"), ("price", "Price"), ("deviation", "Deviation"), ("message", "Message"),
        ("status", "Status"), ("notes", "Notes"), ("ack", "Acknowledged"))]


def alerts_csv(alerts: Iterable[dict]) -> str:
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for a in alerts:
        w.writerow({k: a.get(k) for k in CSV_FIELDS})
    return out.getvalue()


def breaker_panel(breakers: Sequence[dict]) -> list:
    """A chip per symbol: state, trips and since when."""
    if not breakers:
        return [html.Div("No symbols yet.", className="empty")]
    chips = []
    for b in breakers:
        state = b.get("state", CLOSED)
        trips = b.get("trips", 0)
        detail = f"{trips} trip{'' if trips == 1 else 's'}"
        if state != CLOSED and b.get("since"):
            detail += f" · since {fmt_time(b['since'])}"
        chips.append(html.Div([html.Span(b["symbol"], className="chip-symbol"),
                               html.Span(BREAKER_LABEL.get(state, state), className="chip-state"),
                               html.Span(detail, className="chip-detail muted")],
                              className=f"breaker-chip breaker-{state.lower().replace('_', '-')}",
                              id=f"breaker-{b['symbol']}"))
    return chips
