"""The dark trading theme shared by every figure: colours and a Plotly layout base."""
from __future__ import annotations

from pipeline.alert_types import CRITICAL, HIGH, LOW, MEDIUM

UP = "#16c784"
DOWN = "#ea3943"
ACCENT = "#f0b90b"
ORANGE = "#f97316"
PURPLE = "#a855f7"
BLUE = "#3b82f6"
TEXT = "#d6dde6"
MUTED = "#7d8b99"
GRID = "#1d2733"
PANEL = "#121821"
BACKGROUND = "#0b0f14"
SEVERITY_COLOR = {CRITICAL: DOWN, HIGH: ORANGE, MEDIUM: ACCENT, LOW: MUTED}
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"


def fill(color: str, alpha: float) -> str:
    """A translucent ``rgba(...)`` of a ``#rrggbb`` theme colour (area fills, cell backgrounds)."""
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha:g})"


def base_layout(**overrides) -> dict:
    """Layout defaults of a dark figure; ``overrides`` win."""
    layout = {
        "paper_bgcolor": PANEL,
        "plot_bgcolor": PANEL,
        "font": {"family": FONT, "color": TEXT, "size": 12},
        "margin": {"l": 10, "r": 60, "t": 30, "b": 30},
        "showlegend": True,
        "legend": {"orientation": "h", "x": 0, "y": 1.06, "bgcolor": "rgba(0,0,0,0)", "font": {"size": 11}},
        "hovermode": "x unified",
        "hoverlabel": {"bgcolor": BACKGROUND, "bordercolor": GRID},
    }
    layout.update(overrides)
    return layout


def axis(**overrides) -> dict:
    a = {"gridcolor": GRID, "zerolinecolor": GRID, "linecolor": GRID, "tickfont": {"color": MUTED}}
    a.update(overrides)
    return a


def data_table_style() -> dict:
    """Keyword arguments that give a ``dash_table.DataTable`` the dark theme."""
    return dict(
        style_as_list_view=True, style_table={"overflowX": "auto"},
        style_header={"backgroundColor": PANEL, "color": MUTED, "fontWeight": 600,
                      "borderBottom": f"1px solid {GRID}", "fontSize": "0.72rem",
                      "textTransform": "uppercase"},
        style_cell={"backgroundColor": PANEL, "color": TEXT, "border": f"1px solid {GRID}",
                    "fontSize": "0.8rem", "padding": "4px 8px", "textAlign": "left", "maxWidth": "420px",
                    "overflow": "hidden", "textOverflow": "ellipsis"})
