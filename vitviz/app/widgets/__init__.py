"""Widgets of the vitviz window: image canvases with a patch grid, tile grids, colour bars, the prediction chart,
the message bar and the enlarged-map dialog, one widget (or family of helpers) per module. Pure Qt + numpy
(+ pyqtgraph for the chart); no torch."""

from __future__ import annotations

from .canvas import ImageCanvas
from .color_bar import ColorBar
from .formatting import format_percent, format_tick, nice_ticks
from .layout import add_view, splitter, view_tabs
from .map_dialog import MapDialog
from .message_bar import MessageBar
from .panel import Panel
from .prediction_chart import PredictionChart
from .qimage import to_qimage
from .static_plot import static_plot
from .steady_text import SteadyText
from .style import ACCENT, HOVER, KNOCKED_OUT, PICKED, STYLE
from .tile_grid import TileGrid

__all__ = [
    "STYLE",
    "ACCENT",
    "HOVER",
    "PICKED",
    "KNOCKED_OUT",
    "SteadyText",
    "to_qimage",
    "nice_ticks",
    "format_tick",
    "format_percent",
    "ImageCanvas",
    "TileGrid",
    "ColorBar",
    "PredictionChart",
    "MessageBar",
    "Panel",
    "MapDialog",
    "splitter",
    "view_tabs",
    "add_view",
    "static_plot",
]
