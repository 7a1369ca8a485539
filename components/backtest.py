"""Backtest views: the counts by type and symbol, the price timeline with fired and candidate alerts, the
differences, the runs list and the progress line — data in, Dash components or figures out."""
from __future__ import annotations

from typing import Optional, Sequence

import plotly.graph_objects as go
from dash import html

from components import theme
from components.format import fmt_price, fmt_time, window_label
from pipeline.alert_types import TYPE_LABEL

DIFFERENCE_LABEL = {"both": "Both", "only_actual": "Only fired", "only_candidate": "Only candidate"}
STATUS_LABEL = {"queued": "Queued", "running": "Running", "done": "Done", "failed": "Failed"}


def difference_of(row: dict) -> str:
    return "both" if row["in_actual"] and row["in_candidate"] else "only_actual" if row["in_actual"] \
        else "only_candidate"


def counts_table(summary: Optional[dict]) -> html.Table:
    """Alerts by type and symbol: fired, candidate, both — with a total line."""
    counts = (summary or {}).get("counts") or []
    head = html.Thead(html.Tr([html.Th("Type"), html.Th("Symbol"), html.Th("Fired", className="r"),
                               html.Th("Candidate", className="r"), html.Th("Both", className="r"),
                               html.Th("Change", className="r")]))
    rows = []
    for r in counts:
        change = r["candidate"] - r["actual"]
        rows.append(html.Tr([html.Td(TYPE_LABEL.get(r["alert_type"], r["alert_type"])), html.Td(r["symbol"]),
                             html.Td(r["actual"], className="r num"),
                             html.Td(r["candidate"], className="r num"),
                             html.Td(r["both"], className="r num"),
                             html.Td(f"{change:+d}", className="r num " + ("up" if change > 0 else
                                                                          "down" if change < 0 else ""))],
                            className="bt-count-row"))
    if not rows:
        rows = [html.Tr(html.Td("No alerts on either side.", colSpan=6, className="empty"))]
    else:
        rows.append(html.Tr([html.Td("Total"), html.Td(""),
                             html.Td(summary["actual"], className="r num"),
                             html.Td(summary["candidate"], className="r num"),
                             html.Td(summary["matched"], className="r num"),
                             html.Td(f"{summary['candidate'] - summary['actual']:+d}", className="r num")],
                            className="bt-total-row"))
    return html.Table([head, html.Tbody(rows)], className="bt-table", id="bt-counts-table")


def summary_line(run: dict) -> str:
    s = run.get("summary") or {}
    if run["status"] != "done":
        return ""
    return (f"{s['trades']:,} trades in {s['seconds']:.2f}s · {s['actual']} fired · {s['candidate']} "
            f"with the candidate rules · {s['matched']} in both · {s['only_in_actual']} only fired · "
            f"{s['only_in_candidate']} only candidate")


def progress_view(run: Optional[dict]) -> tuple[float, str, str]:
    """(percent, label, status text) of a run's progress bar."""
    if run is None:
        return 0.0, "", "No backtest yet: fill in the form and run one."
    total, done, status = run.get("total_trades"), run.get("done_trades") or 0, run["status"]
    pct = round(100.0 * run.get("progress", 0.0), 1)
    label = f"{pct:.0f}%"
    if status == "queued":
        text = f"Run {run['run_id']} is queued: it starts when a backtest slot is free."
    elif status == "running":
        text = f"Run {run['run_id']}: {done:,} of {total or 0:,} trades" if total is not None \
            else f"Run {run['run_id']}: counting the trades…"
    elif status == "done":
        text = f"Run {run['run_id']} done. " + summary_line(run)
    else:
        text = f"Run {run['run_id']} failed: {run.get('error') or 'unknown error'}"
    return pct, label, text


def runs_rows(runs: Sequence[dict]) -> list[dict]:
    """DataTable rows of the recent runs (``id`` = run id, for selection)."""
    out = []
    for r in runs:
        spec, s = r["spec"], r.get("summary") or {}
        out.append({"id": r["run_id"], "run": r["run_id"], "by": r["requested_by"],
                    "symbols": ", ".join(spec["symbols"]), "range": f"{fmt_time(spec['start'], True)} → "
                                                                    f"{fmt_time(spec['end'], True)}",
                    "rules": "candidate" if spec.get("rules") else "running config",
                    "status": STATUS_LABEL.get(r["status"], r["status"]),
                    "alerts": f"{s['actual']} → {s['candidate']}" if s else ""})
    return out


def runs_columns() -> list[dict]:
    return [{"id": k, "name": n} for k, n in (
        ("run", "Run"), ("by", "By"), ("symbols", "Symbols"), ("range", "Range (UTC)"), ("rules", "Rules"),
        ("status", "Status"), ("alerts", "Fired → candidate"))]


def difference_rows(alerts: Sequence[dict]) -> list[dict]:
    return [{"time": fmt_time(a["timestamp"], with_date=True),
             "type": TYPE_LABEL.get(a["alert_type"], a["alert_type"]), "symbol": a["symbol"],
             "price": fmt_price(a["price"]), "message": a["message"], "alert_id": a["alert_id"]}
            for a in alerts]


def difference_columns() -> list[dict]:
    return [{"id": k, "name": n} for k, n in (("time", "Time (UTC)"), ("type", "Type"), ("symbol", "Symbol"),
                                                ("price", "Price"), ("message", "Message"))]


def timeline_figure(candles: Sequence[dict], alerts: Sequence[dict], symbol: str,
                    window_seconds: int = 60) -> go.Figure:
    """Closing prices of ``symbol`` with a marker per alert: fired ones circled, candidate ones crossed — an
    alert on both sides is circled and crossed; hover says which."""
    fig = go.Figure()
    fig.update_layout(**theme.base_layout(uirevision=f"bt:{symbol}", height=360))
    fig.update_xaxes(**theme.axis(type="date"))
    fig.update_yaxes(**theme.axis(side="right"))
    if candles:
        fig.add_trace(go.Scatter(x=[c["window_start"] for c in candles], y=[c["close"] for c in candles],
                                 mode="lines", name=f"{symbol} close ({window_label(window_seconds)})",
                                 line={"color": theme.TEXT, "width": 1.2}))
    for name, keep, marker in (
            ("Fired (actual)", lambda a: a["in_actual"],
             {"symbol": "circle-open", "size": 14, "color": theme.ACCENT, "line": {"width": 2}}),
            ("Candidate", lambda a: a["in_candidate"],
             {"symbol": "x-thin-open", "size": 10, "color": theme.BLUE, "line": {"width": 2}})):
        side = [a for a in alerts if keep(a)]
        fig.add_trace(go.Scatter(
            x=[a["timestamp"] for a in side], y=[a["price"] for a in side], mode="markers", name=name,
            marker=marker, customdata=[[TYPE_LABEL.get(a["alert_type"], a["alert_type"]),
                                        DIFFERENCE_LABEL[difference_of(a)]] for a in side],
            hovertemplate="%{customdata[0]} · %{customdata[1]}<br>%{y}<extra></extra>"))
    if not candles and not alerts:
        fig.add_annotation(text=f"No candles or alerts for {symbol} in this range", showarrow=False,
                           xref="paper", yref="paper", x=0.5, y=0.5, font={"color": theme.MUTED, "size": 14})
    return fig
