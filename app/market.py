"""Views over speed-layer data shared by the API and the pages: tickers, movers, breaker states."""
from __future__ import annotations

from typing import Iterable, Mapping, Optional

import msgspec

from pipeline.breaker import CLOSED, BreakerPolicy, BreakerState, advance
from pipeline.events import iso


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
