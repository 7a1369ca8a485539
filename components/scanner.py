"""Scanner figures per symbol — 5-minute change, buy/sell pressure, VWAP — and the signal they give.

Signal rule (documented in the page too): BUY when the last price is above the 5-minute VWAP, the
5-minute change is positive and buyers took at least ``BUY_PCT`` % of the recent volume; SELL in the
mirror case; NEUTRAL otherwise or when a figure is missing.
"""
from __future__ import annotations

from typing import Optional, Sequence

BUY, SELL, NEUTRAL = "BUY", "SELL", "NEUTRAL"
BUY_PCT = 55.0   # buy share of recent volume at or above which buyers dominate
SELL_PCT = 45.0  # ... at or below which sellers dominate
CHANGE_SECONDS = 300


def signal_rule_text() -> str:
    """The signal rule in words, as the scanner page states it."""
    return (f"BUY: last > 5m VWAP, 5m change > 0, buyers ≥ {BUY_PCT:.0f}% of recent volume; SELL: the mirror "
            f"(last < 5m VWAP, 5m change < 0, buyers ≤ {SELL_PCT:.0f}%); NEUTRAL otherwise.")


def change_over(series: Sequence[Sequence[float]], seconds: float = CHANGE_SECONDS) -> Optional[float]:
    """Percent change from the price ``seconds`` before the newest point of ``[ts, price]`` (oldest first).

    Uses the newest point at or before that time, or the oldest point when the series is shorter.
    Measured on event time, so replayed history gives the same figure as live data.
    """
    if len(series) < 2:
        return None
    last_ts, last = series[-1][0], series[-1][1]
    target = last_ts - seconds
    base = series[0][1]
    for ts, price in series:
        if ts > target:
            break
        base = price
    return (last - base) / base * 100.0 if base else None


def pressure(trades: Sequence[dict]) -> dict:
    """Buy and sell volume of ``trades``; ``pressure`` is (buy − sell) / total in [−1, 1]."""
    buy = sum(t["quantity"] for t in trades if t.get("side") == "BUY")
    sell = sum(t["quantity"] for t in trades if t.get("side") == "SELL")
    total = buy + sell
    return {"trade_count": len(trades), "buy_volume": buy, "sell_volume": sell,
            "buy_pct": buy / total * 100.0 if total else None,
            "pressure": (buy - sell) / total if total else None,
            "dominant_side": dominant_side(buy / total * 100.0 if total else None)}


def dominant_side(buy_pct: Optional[float]) -> str:
    if buy_pct is None:
        return NEUTRAL
    return BUY if buy_pct >= BUY_PCT else SELL if buy_pct <= SELL_PCT else NEUTRAL


def signal(last: Optional[float], vwap: Optional[float], change_5m: Optional[float],
           buy_pct: Optional[float]) -> str:
    if None in (last, vwap, change_5m, buy_pct):
        return NEUTRAL
    if last > vwap and change_5m > 0 and buy_pct >= BUY_PCT:
        return BUY
    if last < vwap and change_5m < 0 and buy_pct <= SELL_PCT:
        return SELL
    return NEUTRAL


def scanner_row(symbol: str, ticker: Optional[dict], series: Sequence[Sequence[float]], trades: Sequence[dict],
                candle: Optional[dict]) -> dict:
    """One table row; ``candle`` is the open 5-minute candle (its VWAP), ``trades`` the recent tape."""
    last = ticker["price"] if ticker else None
    vwap = candle["vwap"] if candle else None
    change = change_over(series)
    p = pressure(trades)
    return {"id": symbol, "symbol": symbol, "last": last, "change_5m": _round(change, 3),
            "change_day": _round(ticker.get("change_pct"), 3) if ticker else None,
            "vwap": vwap, "volume": ticker["volume"] if ticker else None,
            "buy_pct": _round(p["buy_pct"], 1), "signal": signal(last, vwap, change, p["buy_pct"]),
            "ts": ticker["ts"] if ticker else None}


def _round(v: Optional[float], digits: int) -> Optional[float]:
    return None if v is None else round(v, digits)


def scanner_columns() -> list[dict]:
    """DataTable columns of the scanner, numeric where sorting must be numeric."""
    from dash.dash_table.Format import Format, Group, Scheme, Sign

    num = {"type": "numeric"}
    price = Format(precision=6, scheme=Scheme.decimal_or_exponent, group=Group.yes)
    return [
        {"id": "symbol", "name": "Symbol", "type": "text"},
        {"id": "last", "name": "Last", **num, "format": price},
        {"id": "change_5m", "name": "5m Chg %", **num,
         "format": Format(precision=2, scheme=Scheme.fixed, sign=Sign.positive)},
        {"id": "vwap", "name": "VWAP (5m)", **num, "format": price},
        {"id": "volume", "name": "Volume", **num, "format": Format(precision=4, scheme=Scheme.decimal_si_prefix)},
        {"id": "buy_pct", "name": "Buy %", **num, "format": Format(precision=1, scheme=Scheme.fixed)},
        {"id": "signal", "name": "Signal", "type": "text"},
    ]


def scanner_styles() -> list[dict]:
    """Conditional colours: green/red change and pressure, a badge-like signal cell."""
    from components import theme

    return [
        {"if": {"filter_query": "{change_5m} > 0", "column_id": "change_5m"}, "color": theme.UP},
        {"if": {"filter_query": "{change_5m} < 0", "column_id": "change_5m"}, "color": theme.DOWN},
        {"if": {"filter_query": f"{{buy_pct}} >= {BUY_PCT}", "column_id": "buy_pct"}, "color": theme.UP},
        {"if": {"filter_query": f"{{buy_pct}} <= {SELL_PCT}", "column_id": "buy_pct"}, "color": theme.DOWN},
        {"if": {"filter_query": '{signal} = "BUY"', "column_id": "signal"},
         "backgroundColor": "rgba(22,199,132,0.16)", "color": theme.UP, "fontWeight": 700},
        {"if": {"filter_query": '{signal} = "SELL"', "column_id": "signal"},
         "backgroundColor": "rgba(234,57,67,0.16)", "color": theme.DOWN, "fontWeight": 700},
        {"if": {"filter_query": '{signal} = "NEUTRAL"', "column_id": "signal"}, "color": theme.MUTED},
    ]
