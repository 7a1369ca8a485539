"""Number and time formatting for prices, sizes and percentages as traders read them."""
from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Optional, Union

UTC = timezone.utc


def price_decimals(price: float) -> int:
    """Decimals that show a price's ticks: 2 for 190.12, 4 for 1.0843, 6 for 0.006712."""
    p = abs(price or 0.0)
    if not math.isfinite(p) or p == 0 or p >= 10:
        return 2
    if p >= 1:
        return 4
    return min(10, 3 - int(math.floor(math.log10(p))))


def fmt_price(price: Optional[float]) -> str:
    if price is None:
        return "—"
    return f"{price:,.{price_decimals(price)}f}"


def fmt_qty(qty: Optional[float]) -> str:
    if qty is None:
        return "—"
    if abs(qty) >= 1e9:
        return f"{qty / 1e9:.2f}B"
    if abs(qty) >= 1e6:
        return f"{qty / 1e6:.2f}M"
    if abs(qty) >= 1e4:
        return f"{qty / 1e3:.1f}K"
    if qty == int(qty):
        return f"{int(qty):,}"
    return f"{qty:.4g}" if abs(qty) < 1 else f"{qty:,.2f}"


def fmt_pct(pct: Optional[float], signed: bool = True) -> str:
    if pct is None:
        return "—"
    return f"{pct:+.2f}%" if signed else f"{pct:.2f}%"


def to_epoch(value: Union[str, float, int, None]) -> Optional[float]:
    """ISO-8601 string or epoch seconds -> epoch seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def fmt_time(value: Union[str, float, None], with_date: bool = False) -> str:
    """UTC wall time of an ISO string or epoch seconds: 14:03:27 (or 2026-11-23 14:03:27)."""
    ts = to_epoch(value)
    if ts is None:
        return "—"
    dt = datetime.fromtimestamp(ts, UTC)
    return dt.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")


_UNITS = ((3600, "h", "hour"), (60, "m", "minute"), (1, "s", "second"))  # the largest that divides it


def _unit(seconds: int) -> tuple[int, str, str]:
    return next(unit for unit in _UNITS if seconds % unit[0] == 0)


def window_label(seconds: int) -> str:
    """A candle size as traders write it: 30s, 1m, 5m, 15m, 1h."""
    size, short, _ = _unit(seconds)
    return f"{seconds // size}{short}"


def window_words(seconds: int) -> str:
    """A candle size in words, as an adjective: 30-second, 1-minute, 15-minute, 1-hour."""
    size, _, word = _unit(seconds)
    return f"{seconds // size}-{word}"
