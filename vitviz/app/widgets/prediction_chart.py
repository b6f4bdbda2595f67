"""The top-k class probabilities as a horizontal bar chart (pyqtgraph)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from PySide6.QtCore import QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import QFrame, QLabel, QSizePolicy, QVBoxLayout, QWidget

from .formatting import format_percent
from .static_plot import static_plot
from .style import ACCENT, TEXT_MUTED

__all__ = ["PredictionChart"]

PLOT_DELAY_MS = 200  # after the window is constructed: it has painted by then


class PredictionChart(QWidget):
    """Top-k class probabilities as a horizontal bar chart (pyqtgraph), best at the top, labels never clipped.

    A click on a bar (or its label) emits ``bar_clicked(row)``, row 0 being the top bar; ``set_selected(row)``
    outlines one bar.
    """

    MAX_LABEL_CHARS = 36
    bar_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pg: Any = None
        self._plot: Any = None  # the pyqtgraph PlotWidget, made after the window's first paint (see _build_plot)
        self._labels: list[str] = []
        self._probs: list[float] = []
        self.selected: int | None = None
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self.setMinimumHeight(120)
        self.placeholder = QLabel("", self)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setStyleSheet(f"color: {TEXT_MUTED.name()};")
        self.placeholder.setWordWrap(True)
        self._layout.addWidget(self.placeholder)
        self.placeholder.hide()
        self._items: list[object] = []
        self._axis_key: tuple | None = None  # what the class axis and the ranges were last set up for
        self._outlined: tuple[int, int | None] | None = None  # (bars item, row) whose outline is drawn
        # Importing pyqtgraph takes 0.3-1 s: the window paints first, the plot follows (or comes at first use).
        QTimer.singleShot(PLOT_DELAY_MS, self, self._build_plot)  # (not after the chart is gone)

    @property
    def plot(self) -> Any:
        """The pyqtgraph PlotWidget (made now if it was not yet)."""
        self._build_plot()
        return self._plot

    def _build_plot(self) -> None:
        if self._plot is not None:
            return
        import pyqtgraph as pg

        self._pg = pg
        plot = static_plot(self)
        plot.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        plot.setMinimumHeight(120)
        plot.setFrameShape(QFrame.Shape.NoFrame)
        item = plot.getPlotItem()
        item.hideAxis("bottom")
        item.getViewBox().setDefaultPadding(0.0)
        axis = item.getAxis("left")
        axis.setStyle(tickLength=0, tickTextOffset=8, autoExpandTextSpace=False)
        axis.setPen(pg.mkPen(None))
        if hasattr(axis, "setTickPen"):
            axis.setTickPen(pg.mkPen(None))
        plot.scene().sigMouseClicked.connect(self._on_click)
        self._layout.insertWidget(0, plot)
        plot.setVisible(not self.placeholder.isVisible())
        self._plot = plot

    def row_at(self, scene_pos) -> int | None:
        """The bar (0 = top) at a scene position of the plot, or None between or beyond the bars."""
        n = len(self._labels)
        y = self.plot.getPlotItem().getViewBox().mapSceneToView(scene_pos).y()
        row = n - 1 - int(round(y))
        return row if n and abs(y - round(y)) <= 0.4 and 0 <= row < n else None

    def bar_center(self, row: int) -> QPointF:
        """Where bar ``row`` is drawn, in the coordinates of ``self.plot.viewport()`` (for clicks in tests)."""
        view = QPointF(min(0.5, max(self._probs[row], 0.02) / 2), float(len(self._labels) - 1 - row))
        scene = self.plot.getPlotItem().getViewBox().mapViewToScene(view)
        return QPointF(self.plot.mapFromScene(scene))

    def _on_click(self, event) -> None:
        row = self.row_at(event.scenePos())
        if row is not None and event.button() == Qt.MouseButton.LeftButton:
            self.bar_clicked.emit(row)

    def set_selected(self, row: int | None) -> None:
        """Outline bar ``row`` (e.g. the class whose evidence is shown); None outlines none."""
        self.selected = row
        if len(self._items) > 1 and self._outlined != (id(self._items[1]), row):  # (not again for every live frame)
            pg = self._pg
            self._items[1].setOpts(pens=[pg.mkPen("#0b2a66", width=2) if i == row else pg.mkPen(None)
                                         for i in range(len(self._labels))])
            self._outlined = (id(self._items[1]), row)

    def labels(self) -> list[str]:
        return list(self._labels)

    def probabilities(self) -> list[float]:
        return list(self._probs)

    def show_placeholder(self, text: str) -> None:
        self.set_predictions([])
        if self._plot is not None:
            self._plot.hide()
        self.placeholder.setText(text)
        self.placeholder.show()

    def _elide(self, label: str) -> str:
        return label if len(label) <= self.MAX_LABEL_CHARS else label[: self.MAX_LABEL_CHARS - 1] + "…"

    def set_predictions(self, predictions: Sequence[tuple[str, float]]) -> None:
        if not predictions and self._plot is None:
            self._labels, self._probs = [], []
            return
        item = self.plot.getPlotItem()
        pg = self._pg
        n = len(predictions)
        if len(self._items) != (n + 2 if n else 0):  # a track, the bars and one label per bar
            for old in self._items:
                item.removeItem(old)
            self._items.clear()
            self._outlined = None
        self._labels = [label for label, _ in predictions]
        self._probs = [float(p) for _, p in predictions]
        if not predictions:
            item.getAxis("left").setTicks([[]])
            self._axis_key = None
            return
        self.placeholder.hide()
        self.plot.show()
        ys = np.arange(n, dtype=float)[::-1]  # best at the top
        probs = np.asarray(self._probs)
        text_color = self.palette().windowText().color()
        if self._items:
            # As many bars as before: update the items in place (creating pyqtgraph items costs more than drawing).
            self._items[1].setOpts(width=probs)
            for text, y, p in zip(self._items[2:], ys, probs):
                text.setText(format_percent(float(p)), color=text_color)
                text.setPos(1.02, float(y))
        else:
            brushes = [pg.mkBrush(ACCENT)] + [pg.mkBrush("#9fb3c8")] * (n - 1)
            track = pg.BarGraphItem(x0=np.zeros(n), y=ys, height=0.66, width=np.ones(n),
                                    brush=pg.mkBrush("#eef1f5"), pen=pg.mkPen(None))
            item.addItem(track)
            self._items.append(track)
            bars = pg.BarGraphItem(x0=np.zeros(n), y=ys, height=0.66, width=probs, brushes=brushes,
                                   pens=[pg.mkPen(None)] * n)
            item.addItem(bars)
            self._items.append(bars)
            self.set_selected(self.selected if self.selected is not None and self.selected < n else None)
            for y, p in zip(ys, probs):
                text = pg.TextItem(format_percent(float(p)), color=text_color, anchor=(0, 0.5))
                text.setPos(1.02, float(y))
                item.addItem(text)
                self._items.append(text)
        shown = [self._elide(label) for label in self._labels]
        axis_key = (tuple(shown), self.font().key(), text_color.rgba(), self.plot.width())
        if axis_key == self._axis_key:  # same classes in the same order (a live frame): the axis and ranges stay
            return
        self._axis_key = axis_key
        axis = item.getAxis("left")
        font = QFont(self.font())
        axis.setStyle(tickFont=font)
        axis.setTextPen(pg.mkPen(text_color))
        axis.setTicks([[(float(y), s) for y, s in zip(ys, shown)], []])
        fm = QFontMetrics(font)
        axis.setWidth(max(fm.horizontalAdvance(s) for s in shown) + 16)
        # room on the right of the bar tracks for the "100.0%" column
        room = (QFontMetrics(font).horizontalAdvance("100.0%") + 16) / max(60.0, self.plot.width() - axis.width())
        item.setXRange(0.0, 1.0 + max(0.12, room), padding=0)
        item.setYRange(-0.6, n - 0.4, padding=0)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self._labels and self._plot is not None:
            self.set_predictions(list(zip(self._labels, self._probs)))
