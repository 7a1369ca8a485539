"""Data-quality views: stage latency figures, late trades, dead letters and sequence gaps as tables and small
charts — data in, Dash components or figures out."""
from __future__ import annotations

from typing import Optional, Sequence

import plotly.graph_objects as go
from dash import html

from components import theme
from components.format import fmt_time
from pipeline.events import BAD_JSON, BAD_TIMESTAMP, INVALID_FIELD, TOMBSTONE, TOO_LARGE

STAGES = (("event_to_processor", "Event → processor", "trade time to the processor folding it in"),
          ("processor_to_redis", "Processor → Redis", "a batch consumed to its effects in Redis"),
          ("event_to_browser", "Event → browser", "trade time to a page showing the tick"),
          ("web_to_browser", "Web → browser", "the web server's send to the page"))
MINUTE_BAR = 50_000  # bar width on a date axis (milliseconds): a minute's bar, a gap between
KIND_COLOR = {BAD_JSON: theme.DOWN, INVALID_FIELD: theme.ORANGE, BAD_TIMESTAMP: theme.ACCENT,
              TOO_LARGE: theme.BLUE, TOMBSTONE: theme.MUTED, "database_rejected": theme.PURPLE}


def fmt_seconds(value: Optional[float]) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"


def latency_figures(latency: Optional[dict]) -> list:
    """A figure per stage: p50, and p95 / max / samples below."""
    out = []
    for key, label, meaning in STAGES:
        s = (latency or {}).get(key) or {"n": 0, "p50": None, "p95": None, "max": None}
        out.append(html.Div([html.Div(label, className="dq-stage", title=meaning),
                             html.Div(fmt_seconds(s["p50"]), className="dq-value num", id=f"dq-p50-{key}"),
                             html.Div(f"p95 {fmt_seconds(s['p95'])} · max {fmt_seconds(s['max'])} · "
                                      f"{s['n']} samples", className="dq-sub")], className="dq-figure"))
    return out


def _table(head: Sequence[str], rows: list, table_id: str, empty: str) -> html.Table:
    body = rows or [html.Tr(html.Td(empty, colSpan=len(head), className="empty"))]
    heads = [html.Th(h, className="r" if i > 1 else "") for i, h in enumerate(head)]
    return html.Table([html.Thead(html.Tr(heads)), html.Tbody(body)], className="bt-table", id=table_id)


def late_table(rows: Sequence[dict]) -> html.Table:
    return _table(("Source", "Symbol", "Trades", "Late", "Late %"), [
        html.Tr([html.Td(r["source"] or "—"), html.Td(r["symbol"]),
                 html.Td(f"{r['trades']:,}", className="r num"),
                 html.Td(r["late"], className="r num" + (" down" if r["late"] else "")),
                 html.Td(f"{r['late_pct']:.2f}", className="r num")]) for r in rows],
        "dq-late-table", "No trades in this window.")


def gaps_table(gaps: dict) -> html.Div:
    rows = [html.Tr([html.Td(r["exchange"] or "—"), html.Td(f"{r['first']}–{r['last']}"),
                     html.Td(f"{r['trades']:,}", className="r num"),
                     html.Td(r["gaps"], className="r num" + (" down" if r["gaps"] else "")),
                     html.Td(f"{r['missing']:,}", className="r num"),
                     html.Td(f"{r['missing_pct']:.2f}", className="r num"),
                     html.Td(r["repeated"], className="r num")]) for r in gaps["exchanges"]]
    largest = [html.Div(f"{g['exchange']}: {g['missing']} missing before #{g['sequence']} ({g['symbol']}, "
                        f"{fmt_time(g['ts'], with_date=True)} UTC)", className="lc-item")
               for g in gaps["largest"][:8]]
    return html.Div([
        _table(("Exchange", "Sequence range", "Trades", "Gaps", "Missing", "Missing %", "Repeated"), rows,
               "dq-gaps-table", "No trades with a sequence number in this window."),
        html.H3("Largest gaps", className="panel-title mt-2"),
        *(largest or [html.Div("No gaps.", className="empty")])])


def dead_letter_rows(recent: Sequence[dict]) -> list[dict]:
    return [{"time": fmt_time(r["failed_at"], with_date=True), "kind": r["kind"], "reason": r["reason"],
             "where": r["topic"] if r["partition"] is None
             else f"{r['topic']}[{r['partition']}]@{r['offset']}",
             "value": r["value"]} for r in recent]


def _small(title: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(**theme.base_layout(height=170, margin={"l": 10, "r": 40, "t": 10, "b": 25},
                                          showlegend=True, barmode="stack"))
    fig.update_xaxes(**theme.axis(type="date"))
    fig.update_yaxes(**theme.axis(side="right", nticks=4))
    fig.update_layout(title=None, meta=title)
    return fig


def late_chart(series: Sequence[dict]) -> go.Figure:
    fig = _small("late trades per minute")
    fig.add_trace(go.Bar(x=[p["minute"] for p in series], y=[p["late"] for p in series], name="late trades",
                         marker={"color": theme.DOWN}, width=MINUTE_BAR))
    return fig


def dead_letter_chart(series: Sequence[dict]) -> go.Figure:
    fig = _small("dead letters per minute")
    for kind in sorted({p["kind"] for p in series}):
        points = [p for p in series if p["kind"] == kind]
        fig.add_trace(go.Bar(x=[p["minute"] for p in points], y=[p["count"] for p in points], name=kind,
                             marker={"color": KIND_COLOR.get(kind, theme.MUTED)}, width=MINUTE_BAR))
    return fig
