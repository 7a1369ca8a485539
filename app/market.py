"""Market computations shared by the API and the pages: tickers, movers, breaker states, the candles a
chart shows and their anchored VWAP, the simulated order book, buy/sell pressure, the change over a
window and the scanner's signal.

Pure: data in, plain values out; no Dash, no Redis, no SQL.  The views in ``components/`` draw what
these compute.
"""
from __future__ import annotations

import logging
import math
import random
import zlib
from typing import Iterable, Mapping, Optional, Sequence

import msgspec

from pipeline.breaker import CLOSED, BreakerPolicy, BreakerState, advance
from pipeline.events import iso, parse_iso

logger = logging.getLogger(__name__)
BUY, SELL, NEUTRAL = "BUY", "SELL", "NEUTRAL"
SIGNALS = (BUY, SELL, NEUTRAL)
BUY_PCT = 55.0   # buy share of recent volume at or above which buyers dominate
SELL_PCT = 45.0  # ... at or below which sellers dominate
SCANNER_SECONDS = 300  # the scanner's change and VWAP window when the candle sizes include it
SPREAD_BPS = 1.0  # half the simulated spread, in basis points of the price
CHART_POINTS = 3 * 1440  # candles a history chart shows at most: three days of minutes


def ticker_view(symbol: str, ticker: dict) -> dict:
    """A ticker as the API shows it: its symbol and its event time also as ISO-8601."""
    out = dict(ticker)
    out["symbol"] = symbol
    ts = out.get("ts")
    out["timestamp"] = iso(ts) if isinstance(ts, (int, float)) and ts > 0 else None
    return out


def movers(prices: Mapping[str, dict], limit: int = 5) -> dict:
    """Top gainers and losers by change % and the most active symbols by trade count."""
    rows = [{"symbol": s, "price": t.get("price"), "change_pct": t.get("change_pct", 0.0),
             "volume": t.get("volume", 0.0), "trade_count": t.get("trade_count", 0)} for s, t in prices.items()]
    by_change = sorted(rows, key=lambda r: (-r["change_pct"], r["symbol"]))
    return {
        "gainers": [r for r in by_change if r["change_pct"] > 0][:limit],
        "losers": [r for r in reversed(by_change) if r["change_pct"] < 0][:limit],
        "most_active": sorted(rows, key=lambda r: (-r["trade_count"], r["symbol"]))[:limit],
    }


def breaker_view(raw: Mapping[str, dict], symbols: Iterable[str], now: Optional[float],
                 policy: Optional[BreakerPolicy] = None) -> list[dict]:
    """Every symbol's breaker with timed transitions applied as of ``now`` (absent = CLOSED); ``now`` None:
    as the alerts left it (a replay's breakers, whose alerts are history)."""
    policy = policy or BreakerPolicy()
    out = {}
    for sym in set(symbols) | set(raw):
        data = raw.get(sym)
        try:
            b = msgspec.convert(dict(data, symbol=sym), BreakerState) if data else BreakerState(sym)
        except (msgspec.ValidationError, TypeError):
            out[sym] = {"symbol": sym, "state": str((data or {}).get("state", CLOSED)), "since": None, "trips": 0}
            continue
        if now is not None:
            b = advance(b, now, policy)
        out[sym] = {"symbol": sym, "state": b.state, "since": b.since or None, "trips": b.trips,
                    "since_iso": iso(b.since) if b.since else None, "last_alert_id": b.last_alert_id}
    return [out[s] for s in sorted(out)]


# --- candles as the chart shows them ------------------------------------------------------------------------
def merge_open_candle(candles: Sequence[dict], open_candle: Optional[dict]) -> list[dict]:
    """Finalized candles (oldest first) plus the open one when it is newer than the last final one."""
    out = list(candles)
    if open_candle:
        start = _epoch(open_candle["window_start"])
        if not out or start > _epoch(out[-1]["window_start"]):
            out.append(dict(open_candle, is_open=True))
    return out


def window_for(seconds: float, windows: Sequence[int]) -> int:
    """The smallest of the candle sizes ``windows`` that shows ``seconds`` of history in at most
    ``CHART_POINTS`` candles (the largest when none does)."""
    return next((w for w in sorted(windows) if seconds / w <= CHART_POINTS), max(windows))


def anchored_vwap(candles: Sequence[dict]) -> list[Optional[float]]:
    """Running VWAP from the first candle shown: Σ(vwap·volume) / Σ volume up to each candle."""
    pv = vol = 0.0
    out: list[Optional[float]] = []
    for c in candles:
        pv += c["vwap"] * c["volume"]
        vol += c["volume"]
        out.append(pv / vol if vol else None)
    return out


def _epoch(value) -> float:
    """A candle's time, epoch seconds or ISO-8601 (its wire form), as epoch seconds."""
    return float(value) if isinstance(value, (int, float)) else parse_iso(value.replace("Z", "+00:00"))


# --- the simulated order book (Stock-IT sees trades, not quotes) ----------------------------------------
def tick_size(price: float) -> float:
    """A tick about 1/10,000 of the price, a power of ten: 0.01 for 190, 1 for 60,000, 1e-4 for 1.08."""
    if price <= 0 or not math.isfinite(price):
        raise ValueError(f"price must be positive, got {price!r}")
    return 10.0 ** (math.floor(math.log10(price)) - 4)


def book_seed(symbol: str, ts: float) -> int:
    return zlib.crc32(f"{symbol}|{ts:.3f}".encode())


def simulate_order_book(last_price: float, depth: int = 10, typical_size: float = 1.0, seed: int = 0) -> dict:
    """Bids below and asks above ``last_price``, best first, each ``{price, size, total}``.

    The book is made up: levels step away from the last price by whole ticks with sizes drawn around
    the typical trade size.  It is deterministic for a given seed.
    """
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


def typical_size(trades: Sequence[dict]) -> float:
    """The median quantity of ``trades`` (1.0 when there are none)."""
    sizes = sorted(t["quantity"] for t in trades)
    return sizes[len(sizes) // 2] if sizes else 1.0


def order_book(symbol: str, ticker: dict, trades: Sequence[dict], depth: int = 10) -> dict:
    """The simulated book of ``symbol`` around its last price, sized by its recent ``trades`` and seeded by
    the symbol and its last trade time, so it changes when the market does."""
    return simulate_order_book(ticker["price"], depth, typical_size(trades),
                               seed=book_seed(symbol, ticker.get("ts", 0.0)))


# --- pressure, change and the scanner's signal -------------------------------------------------------------
def scanner_window(windows: Sequence[int]) -> int:
    """The candle size the scanner measures change and VWAP over: 5 minutes, or the configured one nearest."""
    return min(windows, key=lambda w: (abs(w - SCANNER_SECONDS), w))


def change_over(series: Sequence[Sequence[float]], seconds: float = SCANNER_SECONDS) -> Optional[float]:
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
    buy = sum(t["quantity"] for t in trades if t.get("side") == BUY)
    sell = sum(t["quantity"] for t in trades if t.get("side") == SELL)
    total = buy + sell
    return {"trade_count": len(trades), "buy_volume": buy, "sell_volume": sell,
            "buy_pct": buy / total * 100.0 if total else None,
            "pressure": (buy - sell) / total if total else None,
            "dominant_side": dominant_side(buy / total * 100.0 if total else None)}


def dominant_side(buy_pct: Optional[float]) -> str:
    if buy_pct is None:
        return NEUTRAL
    return BUY if buy_pct >= BUY_PCT else SELL if buy_pct <= SELL_PCT else NEUTRAL


def signal(last: Optional[float], vwap: Optional[float], change: Optional[float],
           buy_pct: Optional[float]) -> str:
    """BUY when the last price is above the window's VWAP, the change over the window is positive and buyers
    took at least ``BUY_PCT`` % of the recent volume; SELL in the mirror case; NEUTRAL otherwise or when a
    figure is missing."""
    if None in (last, vwap, change, buy_pct):
        return NEUTRAL
    if last > vwap and change > 0 and buy_pct >= BUY_PCT:
        return BUY
    if last < vwap and change < 0 and buy_pct <= SELL_PCT:
        return SELL
    return NEUTRAL


def scanner_row(symbol: str, ticker: Optional[dict], series: Sequence[Sequence[float]],
                trades: Sequence[dict], candle: Optional[dict], seconds: float = SCANNER_SECONDS) -> dict:
    """One symbol's scanner figures; ``candle`` is the open candle of ``seconds`` (its VWAP), ``trades`` the
    recent tape.  ``change_5m`` is the change over ``seconds`` (five minutes unless configured otherwise)."""
    last = ticker["price"] if ticker else None
    vwap = candle["vwap"] if candle else None
    change = change_over(series, seconds)
    p = pressure(trades)
    return {"id": symbol, "symbol": symbol, "last": last, "change_5m": _round(change, 3),
            "change_day": _round(ticker.get("change_pct"), 3) if ticker else None,
            "vwap": vwap, "volume": ticker["volume"] if ticker else None,
            "buy_pct": _round(p["buy_pct"], 1), "signal": signal(last, vwap, change, p["buy_pct"]),
            "ts": ticker["ts"] if ticker else None}


def _round(v: Optional[float], digits: int) -> Optional[float]:
    return None if v is None else round(v, digits)
