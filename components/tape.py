"""Trade tape (time and sales) and the watchlist's price rows with sparklines."""
from __future__ import annotations

from typing import Optional, Sequence

from dash import html

from components.format import fmt_pct, fmt_price, fmt_qty, fmt_time

SPARK_CHARS = "▁▂▃▄▅▆▇█"


def sparkline(prices: Sequence[float], width: int = 16) -> str:
    """A text sparkline of the last ``width`` samples (evenly spaced) of ``prices``."""
    if len(prices) < 2:
        return ""
    step = max(1, len(prices) // width)
    pts = list(prices[::-1][::step][:width])[::-1]
    lo, hi = min(pts), max(pts)
    if hi == lo:
        return SPARK_CHARS[3] * len(pts)
    scale = (len(SPARK_CHARS) - 1) / (hi - lo)
    return "".join(SPARK_CHARS[int(round((p - lo) * scale))] for p in pts)


def trade_tape(trades: Sequence[dict], limit: int = 25) -> html.Table:
    """Newest trade first: time, side, price, size."""
    head = html.Thead(html.Tr([html.Th("Time"), html.Th("Side"), html.Th("Price"), html.Th("Size")]))
    if not trades:
        return html.Table([head, html.Tbody(html.Tr(html.Td("No trades yet", colSpan=4, className="empty")))],
                          className="tape-table")
    rows = []
    for t in trades[:limit]:
        cls = "up" if t["side"] == "BUY" else "down"
        rows.append(html.Tr([html.Td(fmt_time(t["timestamp"]), className="num muted"),
                             html.Td(t["side"], className=cls),
                             html.Td(fmt_price(t["price"]), className=f"num {cls}"),
                             html.Td(fmt_qty(t["quantity"]), className="num")]))
    return html.Table([head, html.Tbody(rows)], className="tape-table")


def price_row(symbol: str, ticker: Optional[dict], spark: str, ids: dict, selected: bool = False) -> html.Tr:
    """One watchlist row; ``ids`` maps column -> pattern id type so live updates can target cells."""
    price = fmt_price(ticker["price"]) if ticker else "—"
    change = ticker.get("change_pct") if ticker else None
    cls = "up" if (change or 0) > 0 else "down" if (change or 0) < 0 else ""
    return html.Tr([
        html.Td(symbol, className="wl-symbol"),
        html.Td(price, id={"type": ids["last"], "symbol": symbol}, className="num wl-last"),
        html.Td(fmt_pct(change), id={"type": ids["change"], "symbol": symbol},
                className=f"num wl-change {cls}"),
        html.Td(spark, id={"type": ids["spark"], "symbol": symbol}, className=f"wl-spark {cls}"),
        html.Td(str(ticker["ts"]) if ticker else "", id={"type": ids["ts"], "symbol": symbol},
                className="wl-ts"),
    ], id={"type": ids["row"], "symbol": symbol}, className="wl-row selected" if selected else "wl-row")
