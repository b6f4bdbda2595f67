"""A pyqtgraph plot for showing rather than exploring (the prediction bars, the head atlas, the logit lens)."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QWidget

__all__ = ["static_plot"]


def static_plot(owner: QWidget) -> Any:
    """A ``pyqtgraph.PlotWidget`` on ``owner``'s background without buttons, context menu, mouse pan or zoom, and
    refusing drops (files dropped on it go to the window). Imports pyqtgraph (0.3-1 s the first time)."""
    import pyqtgraph as pg

    plot = pg.PlotWidget(background=owner.palette().base().color())
    plot.setAcceptDrops(False)
    item = plot.getPlotItem()
    item.hideButtons()
    item.setMenuEnabled(False)
    item.setMouseEnabled(x=False, y=False)
    return plot
