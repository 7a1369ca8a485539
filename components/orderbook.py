"""The view of the simulated order book (``app.market.order_book``): asks over bids with size bars."""
from __future__ import annotations

import math

from dash import html

from components.format import fmt_price, fmt_qty


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
