"""Candlestick figure of one symbol: OHLC with an anchored VWAP line over volume bars, and the
indicators the user switched on: Bollinger bands on the price panel, RSI and MACD panels below.
The figures drawn come from ``app.market`` and ``pipeline.indicators``."""
from __future__ import annotations

from typing import Collection, Optional, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components import theme
from app.market import anchored_vwap
from components.format import window_words
from pipeline.indicators import bollinger, macd, rsi

BOLLINGER, RSI, MACD = "bollinger", "rsi", "macd"
INDICATORS = {BOLLINGER: "Bollinger (20, 2σ)", RSI: "RSI (14)", MACD: "MACD (12, 26, 9)"}  # legend names
INDICATOR_TOGGLES = {BOLLINGER: "BB", RSI: "RSI", MACD: "MACD"}  # short labels of the switches
PANELS = (RSI, MACD)  # indicators drawn in a panel of their own, in this order
RSI_LEVELS = (30.0, 70.0)


def x_range_change(relayout: Optional[dict]) -> Optional[list]:
    """What a dcc.Graph ``relayoutData`` event did to the time axis: the range zoomed or panned to,
    ``[]`` for back to the whole range, None when it did not touch the time axis."""
    for key, value in (relayout or {}).items():
        if not key.startswith("xaxis"):
            continue
        if key.endswith(".autorange"):
            return []
        if key.endswith(".range") and isinstance(value, list) and len(value) == 2:
            return value
        if key.endswith(".range[0]") and relayout.get(key[:-3] + "[1]") is not None:
            return [value, relayout[key[:-3] + "[1]"]]
    return None


def candlestick_figure(candles: Sequence[dict], symbol: str, window_seconds: int = 60,
                       uirevision: Optional[str] = None, indicators: Collection[str] = (),
                       x_range: Optional[list] = None) -> go.Figure:
    """OHLC + VWAP (top), buy/sell-coloured volume, then a panel per indicator switched on; keeps zoom
    per ``uirevision``, or shows ``x_range`` when given."""
    panels = [p for p in PANELS if p in indicators]
    heights = [0.76, 0.24] if not panels else [0.56, 0.14] + [0.30 / len(panels)] * len(panels)
    fig = make_subplots(rows=len(heights), cols=1, shared_xaxes=True, row_heights=heights,
                        vertical_spacing=0.03)
    layout = theme.base_layout(uirevision=uirevision or f"{symbol}:{window_seconds}")
    fig.update_layout(**layout, xaxis_rangeslider_visible=False, bargap=0.15)
    fig.update_xaxes(**theme.axis(type="date"))
    fig.update_yaxes(**theme.axis(side="right"))
    if not candles:
        fig.add_annotation(text=f"No {window_words(window_seconds)} candles for {symbol} yet",
                           showarrow=False, xref="paper", yref="paper", x=0.5, y=0.6,
                           font={"color": theme.MUTED, "size": 14})
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
    if x_range:
        fig.update_xaxes(range=x_range)
    closes = [c["close"] for c in candles]
    if BOLLINGER in indicators:
        _add_bollinger(fig, x, closes)
    for row, panel in enumerate(panels, start=3):
        (_add_rsi if panel == RSI else _add_macd)(fig, x, closes, row)
    return fig


def chart_box_class(indicators: Collection[str]) -> str:
    """CSS class of the chart's container: taller when indicator panels are shown."""
    return "chart-box with-panels" if any(p in indicators for p in PANELS) else "chart-box"


def _add_bollinger(fig: go.Figure, x: list, closes: list[float]) -> None:
    middle, upper, lower = bollinger(closes)
    band = {"color": theme.BLUE, "width": 1}
    fig.add_trace(go.Scatter(x=x, y=upper, name="BB upper", mode="lines", line=band, legendgroup="bb",
                             showlegend=False), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=lower, name="BB lower", mode="lines", line=band, legendgroup="bb",
                             fill="tonexty", fillcolor=theme.fill(theme.BLUE, 0.06), showlegend=False),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=middle, name=INDICATORS[BOLLINGER], mode="lines", legendgroup="bb",
                             line={"color": theme.BLUE, "width": 1, "dash": "dot"}), row=1, col=1)


def _add_rsi(fig: go.Figure, x: list, closes: list[float], row: int) -> None:
    fig.add_trace(go.Scatter(x=x, y=rsi(closes), name=INDICATORS[RSI], mode="lines",
                             line={"color": theme.TEXT, "width": 1.2}), row=row, col=1)
    for level in RSI_LEVELS:
        fig.add_hline(y=level, row=row, col=1, line={"color": theme.MUTED, "width": 1, "dash": "dot"})
    fig.update_yaxes(range=[0, 100], tickvals=list(RSI_LEVELS), row=row, col=1)


def _add_macd(fig: go.Figure, x: list, closes: list[float], row: int) -> None:
    line, signal, hist = macd(closes)
    fig.add_trace(go.Bar(x=x, y=hist, name="MACD histogram", showlegend=False, opacity=0.6,
                         marker={"color": [theme.UP if (h or 0) >= 0 else theme.DOWN for h in hist]}),
                  row=row, col=1)
    fig.add_trace(go.Scatter(x=x, y=line, name=INDICATORS[MACD], mode="lines",
                             line={"color": theme.BLUE, "width": 1.2}), row=row, col=1)
    fig.add_trace(go.Scatter(x=x, y=signal, name="MACD signal", mode="lines", showlegend=False,
                             line={"color": theme.ACCENT, "width": 1}), row=row, col=1)
    fig.update_yaxes(nticks=3, row=row, col=1)
