"""A simulated order book around the last price (Stock-IT sees trades, not quotes), and its views.

The book is made up: levels step away from the last price by whole ticks with sizes drawn around
the symbol's typical trade size.  It is deterministic for a given seed, so a caller that seeds it
with the symbol and the last trade time gets a book that changes when the market does.
"""
from __future__ import annotations

import math
import random
import zlib

import plotly.graph_objects as go
from dash import html

from components import theme
from components.format import fmt_price, fmt_qty

SPREAD_BPS = 1.0  # half the simulated spread, in basis points of the price


def tick_size(price: float) -> float:
    """A tick about 1/10,000 of the price, a power of ten: 0.01 for 190, 1 for 60,000, 1e-4 for 1.08."""
    if price <= 0 or not math.isfinite(price):
        raise ValueError(f"price must be positive, got {price!r}")
    return 10.0 ** (math.floor(math.log10(price)) - 4)


def book_seed(symbol: str, ts: float) -> int:
    return zlib.crc32(f"{symbol}|{ts:.3f}".encode())


def simulate_order_book(last_price: float, depth: int = 10, typical_size: float = 1.0, seed: int = 0) -> dict:
    """Bids below and asks above ``last_price``, best first, each ``{price, size, total}``."""
    if depth < 1:
        raise ValueError("depth must be at least 1")
    tick = tick_size(last_price)
    decimals = max(0, -int(math.floor(math.log10(tick))))
    rng = random.Random(seed)
    half = max(tick, last_price * SPREAD_BPS / 10_000)
    best_bid = math.floor((last_price - half) / tick) * tick
    best_ask = math.ceil((last_price + half) / tick) * tick
    size = typical_size if typical_size > 0 else 1.0

    def side(best: float, direction: int) -> list[dict]:
        levels, total, price = [], 0.0, best
        for i in range(depth):
            qty = size * (1.0 + 0.35 * i) * rng.uniform(0.4, 1.6)
            total += qty
            levels.append({"price": round(price, decimals), "size": qty, "total": total})
            price += direction * tick * rng.randint(1, 3)
        return levels

    bids, asks = side(best_bid, -1), side(best_ask, +1)
    return {"simulated": True, "last_price": last_price, "tick_size": tick,
            "mid": round((bids[0]["price"] + asks[0]["price"]) / 2, decimals + 1),
            "spread": round(asks[0]["price"] - bids[0]["price"], decimals), "bids": bids, "asks": asks}


def depth_figure(book: dict, uirevision: str = "book") -> go.Figure:
    """Cumulative depth: bids (green) left of the mid, asks (red) right."""
    fig = go.Figure()
    fig.update_layout(**theme.base_layout(uirevision=uirevision, showlegend=False, hovermode="closest",
                                          margin={"l": 10, "r": 50, "t": 10, "b": 25}))
    fig.update_xaxes(**theme.axis())
    fig.update_yaxes(**theme.axis(side="right"))
    if not book:
        return fig
    for levels, color, fill in ((book["bids"], theme.UP, "rgba(22,199,132,0.18)"),
                                (book["asks"], theme.DOWN, "rgba(234,57,67,0.18)")):
        fig.add_trace(go.Scatter(x=[lv["price"] for lv in levels], y=[lv["total"] for lv in levels],
                                 mode="lines", line={"shape": "hv", "color": color, "width": 1.5},
                                 fill="tozeroy", fillcolor=fill))
    return fig


def order_book_table(book: dict, rows: int = 6) -> html.Table:
    """Asks (highest first) over bids, with a size bar behind each level."""
    if not book:
        return html.Table(className="book-table")
    biggest = max(lv["size"] for lv in book["bids"][:rows] + book["asks"][:rows]) or 1.0

    def row(lv: dict, cls: str) -> html.Tr:
        pct = f"{100 * lv['size'] / biggest:.0f}%"
        return html.Tr([html.Td(fmt_price(lv["price"]), className=f"num {cls}"),
                        html.Td(fmt_qty(lv["size"]), className="num"),
                        html.Td(fmt_qty(lv["total"]), className="num muted")],
                       className=f"book-row {cls}", style={"--fill": pct})

    asks = [row(lv, "ask") for lv in reversed(book["asks"][:rows])]
    bids = [row(lv, "bid") for lv in book["bids"][:rows]]
    decimals = max(0, -int(math.floor(math.log10(book["tick_size"]))))
    mid = html.Tr(html.Td(f"spread {book['spread']:.{decimals}f} · mid {fmt_price(book['mid'])}", colSpan=3,
                          className="book-mid"))
    head = html.Thead(html.Tr([html.Th("Price"), html.Th("Size"), html.Th("Total")]))
    return html.Table([head, html.Tbody(asks + [mid] + bids)], className="book-table")
