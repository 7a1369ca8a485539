"""Chart indicators from candle closes — Bollinger bands, RSI, MACD — pure functions.

Each takes the closes oldest first and returns lists of the same length, ``None`` where the
indicator has too little data yet.  Conventions (they differ between charting packages):

- Bollinger (20, 2): middle = simple moving average of 20 closes; bands = middle +- 2 population
  standard deviations (divide by n, as John Bollinger defines it).
- RSI (14), Wilder: changes split into gains and losses; the first average is the simple mean of
  the first 14, then avg = (avg * 13 + current) / 14 (Wilder's smoothing, an EMA with alpha 1/14).
  RSI = 100 - 100 / (1 + avg gain / avg loss): 100 with no losses, 50 when nothing moved.
  First value at index 14.
- MACD (12, 26, 9): EMAs with alpha = 2 / (n + 1), each seeded with the simple mean of its first n
  inputs (the classic TA-Lib convention); MACD = EMA12 - EMA26 (first at index 25); signal = EMA9
  of MACD (first at index 33); histogram = MACD - signal.
"""
from __future__ import annotations

import logging
import math
from typing import Optional, Sequence

logger = logging.getLogger(__name__)

Series = list[Optional[float]]


def sma(values: Sequence[float], period: int) -> Series:
    """Simple moving average of the last ``period`` values."""
    out: Series = [None] * len(values)
    for i in range(period - 1, len(values)):
        out[i] = math.fsum(values[i - period + 1:i + 1]) / period
    return out


def ema(values: Sequence[float], period: int) -> Series:
    """Exponential moving average, alpha = 2 / (period + 1), seeded with the mean of the first ``period``."""
    out: Series = [None] * len(values)
    if len(values) < period:
        return out
    alpha = 2.0 / (period + 1)
    avg = math.fsum(values[:period]) / period
    out[period - 1] = avg
    for i in range(period, len(values)):
        avg += alpha * (values[i] - avg)
        out[i] = avg
    return out


def bollinger(closes: Sequence[float], period: int = 20, width: float = 2.0) -> tuple[Series, Series, Series]:
    """(middle, upper, lower): SMA +- ``width`` population standard deviations of ``period`` closes."""
    middle = sma(closes, period)
    upper: Series = [None] * len(closes)
    lower: Series = [None] * len(closes)
    for i, m in enumerate(middle):
        if m is None:
            continue
        window = closes[i - period + 1:i + 1]
        sd = math.sqrt(math.fsum((c - m) ** 2 for c in window) / period)
        upper[i], lower[i] = m + width * sd, m - width * sd
    return middle, upper, lower


def rsi(closes: Sequence[float], period: int = 14) -> Series:
    """Relative strength index with Wilder's smoothing."""
    out: Series = [None] * len(closes)
    if len(closes) <= period:
        return out
    changes = [closes[i] - closes[i - 1] for i in range(1, len(closes))]
    gain = math.fsum(max(c, 0.0) for c in changes[:period]) / period
    loss = math.fsum(max(-c, 0.0) for c in changes[:period]) / period
    out[period] = _rsi_value(gain, loss)
    for i in range(period, len(changes)):
        c = changes[i]
        gain = (gain * (period - 1) + max(c, 0.0)) / period
        loss = (loss * (period - 1) + max(-c, 0.0)) / period
        out[i + 1] = _rsi_value(gain, loss)
    return out


def _rsi_value(gain: float, loss: float) -> float:
    if loss == 0.0:
        return 50.0 if gain == 0.0 else 100.0
    return 100.0 - 100.0 / (1.0 + gain / loss)


def macd(closes: Sequence[float], fast: int = 12, slow: int = 26, signal: int = 9
         ) -> tuple[Series, Series, Series]:
    """(macd, signal, histogram)."""
    fast_ema, slow_ema = ema(closes, fast), ema(closes, slow)
    line: Series = [f - s if f is not None and s is not None else None for f, s in zip(fast_ema, slow_ema)]
    start = next((i for i, v in enumerate(line) if v is not None), len(line))
    tail = ema([v for v in line[start:]], signal)
    signal_line: Series = [None] * start + tail
    hist: Series = [m - s if m is not None and s is not None else None for m, s in zip(line, signal_line)]
    return line, signal_line, hist
