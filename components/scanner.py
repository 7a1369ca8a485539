"""Scanner views: the table's columns and colours, and the signal rule in words.

The figures themselves (change, VWAP, pressure, signal) come from ``app.market``.
"""
from __future__ import annotations

from dash.dash_table.Format import Format, Group, Scheme, Sign

from app.market import BUY, BUY_PCT, NEUTRAL, SELL, SELL_PCT
from components import theme


def signal_rule_text(window: str = "5m") -> str:
    """The signal rule in words, as the scanner page states it; ``window`` names the change and VWAP
    window (``app.market.signal``)."""
    return (f"BUY: last > {window} VWAP, {window} change > 0, buyers ≥ {BUY_PCT:.0f}% of recent volume; "
            f"SELL: the mirror (last < {window} VWAP, {window} change < 0, buyers ≤ {SELL_PCT:.0f}%); "
            "NEUTRAL otherwise.")


def scanner_columns(window: str = "5m") -> list[dict]:
    """DataTable columns of the scanner, numeric where sorting must be numeric; ``window`` names the change
    and VWAP window."""
    num = {"type": "numeric"}
    price = Format(precision=6, scheme=Scheme.decimal_or_exponent, group=Group.yes)
    return [
        {"id": "symbol", "name": "Symbol", "type": "text"},
        {"id": "last", "name": "Last", **num, "format": price},
        {"id": "change_5m", "name": f"{window} Chg %", **num,
         "format": Format(precision=2, scheme=Scheme.fixed, sign=Sign.positive)},
        {"id": "vwap", "name": f"VWAP ({window})", **num, "format": price},
        {"id": "volume", "name": "Volume", **num,
         "format": Format(precision=4, scheme=Scheme.decimal_si_prefix)},
        {"id": "buy_pct", "name": "Buy %", **num, "format": Format(precision=1, scheme=Scheme.fixed)},
        {"id": "signal", "name": "Signal", "type": "text"},
    ]


def scanner_styles() -> list[dict]:
    """Conditional colours: green/red change and pressure, a badge-like signal cell."""
    return [
        {"if": {"filter_query": "{change_5m} > 0", "column_id": "change_5m"}, "color": theme.UP},
        {"if": {"filter_query": "{change_5m} < 0", "column_id": "change_5m"}, "color": theme.DOWN},
        {"if": {"filter_query": f"{{buy_pct}} >= {BUY_PCT}", "column_id": "buy_pct"}, "color": theme.UP},
        {"if": {"filter_query": f"{{buy_pct}} <= {SELL_PCT}", "column_id": "buy_pct"}, "color": theme.DOWN},
        {"if": {"filter_query": f'{{signal}} = "{BUY}"', "column_id": "signal"},
         "backgroundColor": theme.fill(theme.UP, 0.16), "color": theme.UP, "fontWeight": 700},
        {"if": {"filter_query": f'{{signal}} = "{SELL}"', "column_id": "signal"},
         "backgroundColor": theme.fill(theme.DOWN, 0.16), "color": theme.DOWN, "fontWeight": 700},
        {"if": {"filter_query": f'{{signal}} = "{NEUTRAL}"', "column_id": "signal"}, "color": theme.MUTED},
    ]
