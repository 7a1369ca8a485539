"""Candlestick figure of one symbol: OHLC with an anchored VWAP line over volume bars."""
from __future__ import annotations

from typing import Optional, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components import theme
from components.format import to_epoch


def merge_open_candle(candles: Sequence[dict], open_candle: Optional[dict]) -> list[dict]:
    """Finalized candles (oldest first) plus the open one when it is newer than the last final one."""
    out = list(candles)
    if open_candle:
        start = to_epoch(open_candle["window_start"])
        if not out or start > to_epoch(out[-1]["window_start"]):
            out.append(dict(open_candle, is_open=True))
    return out


def anchored_vwap(candles: Sequence[dict]) -> list[Optional[float]]:
    """Running VWAP from the first candle shown: Σ(vwap·volume) / Σ volume up to each candle."""
    pv = vol = 0.0
    out: list[Optional[float]] = []
    for c in candles:
        pv += c["vwap"] * c["volume"]
        vol += c["volume"]
        out.append(pv / vol if vol else None)
    return out


def candlestick_figure(candles: Sequence[dict], symbol: str, window_seconds: int = 60,
                       uirevision: Optional[str] = None) -> go.Figure:
    """OHLC + VWAP (top) and buy/sell-coloured volume (bottom); keeps zoom per ``uirevision``."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.76, 0.24], vertical_spacing=0.03)
    layout = theme.base_layout(uirevision=uirevision or f"{symbol}:{window_seconds}")
    fig.update_layout(**layout, xaxis_rangeslider_visible=False, bargap=0.15)
    fig.update_xaxes(**theme.axis(type="date"))
    fig.update_yaxes(**theme.axis(side="right"))
    if not candles:
        fig.add_annotation(text=f"No {window_seconds // 60}-minute candles for {symbol} yet", showarrow=False,
                           xref="paper", yref="paper", x=0.5, y=0.6, font={"color": theme.MUTED, "size": 14})
        fig.update_xaxes(showticklabels=False)
        fig.update_yaxes(showticklabels=False)
        return fig
    x = [c["window_start"] for c in candles]
    fig.add_trace(go.Candlestick(
        x=x, open=[c["open"] for c in candles], high=[c["high"] for c in candles],
        low=[c["low"] for c in candles], close=[c["close"] for c in candles], name=symbol,
        increasing={"line": {"color": theme.UP}, "fillcolor": theme.UP},
        decreasing={"line": {"color": theme.DOWN}, "fillcolor": theme.DOWN}), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=anchored_vwap(candles), name="VWAP", mode="lines",
                             line={"color": theme.ACCENT, "width": 1.6}), row=1, col=1)
    colors = [theme.UP if c["close"] >= c["open"] else theme.DOWN for c in candles]
    fig.add_trace(go.Bar(x=x, y=[c["volume"] for c in candles], name="Volume", marker={"color": colors},
                         opacity=0.7, showlegend=False), row=2, col=1)
    fig.update_yaxes(title_text=None, row=2, col=1, nticks=3)
    return fig
