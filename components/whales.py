"""Whale cards: one per VOLUME_SPIKE alert — symbol, size against the average, side, price, time."""
from __future__ import annotations

from typing import Sequence

from dash import html

from components.format import fmt_price, fmt_qty, fmt_time
from pipeline.alert_types import VOLUME_SPIKE


def whale_card(alert: dict) -> html.Div:
    side = (alert.get("side") or "").upper()
    side_cls = {"BUY": "up", "SELL": "down"}.get(side, "muted")
    notional = alert["price"] * alert.get("quantity", 0.0)
    stats = (("Size", fmt_qty(alert.get("quantity"))), ("Avg", fmt_qty(alert.get("reference"))),
             ("Price", fmt_price(alert["price"])), ("Notional", fmt_qty(notional)))
    return html.Div([
        html.Div([html.Span(alert["symbol"], className="whale-symbol"),
                  html.Span(side or "—", className=f"whale-side {side_cls}")], className="whale-head"),
        html.Div(f"{alert['deviation']:.1f}×", className="whale-multiple",
                 title="size vs rolling average size"),
        html.Div("size vs average", className="whale-caption muted"),
        html.Div([html.Div([html.Span(label, className="muted"), html.Span(value, className="num")])
                  for label, value in stats],
                 className="whale-stats"),
        html.Div(fmt_time(alert["timestamp"], with_date=True) + " UTC", className="whale-time muted num"),
    ], className=f"whale-card whale-{side_cls}", id={"type": "whale-card", "alert": alert["alert_id"]})


def merge_whales(*sources: Sequence[dict], limit: int = 60) -> list[dict]:
    """VOLUME_SPIKE alerts of all sources, one per alert id, newest first."""
    seen: dict[str, dict] = {}
    for source in sources:
        for a in source:
            if a.get("alert_type") == VOLUME_SPIKE:
                seen.setdefault(a["alert_id"], a)
    return sorted(seen.values(), key=lambda a: (a["timestamp"], a["alert_id"]), reverse=True)[:limit]


def whale_grid(whales: Sequence[dict]) -> list:
    if not whales:
        return [html.Div("No volume spikes yet. A card appears here for every trade far above its "
                         "symbol's usual size.", className="empty")]
    return [whale_card(a) for a in whales]
