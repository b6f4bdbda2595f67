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
    outlines one bar. With ``before`` probabilities (e.g. the whole model's, while heads are knocked out), each bar
    shows its change in percentage points beside its percentage, and a faint mark where it was.
    """

    MAX_LABEL_CHARS = 36
    bar_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pg: Any = None
        self._plot: Any = None  # the pyqtgraph PlotWidget, made after the window's first paint (see _build_plot)
        self._labels: list[str] = []
        self._probs: list[float] = []
        self._before: list[float] | None = None
        self._marks: Any = None  # the faint marks of the ``before`` probabilities
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

    def deltas(self) -> list[str]:
        """The change shown beside each bar, top first (e.g. "−12.3 pts"); [] without ``before``."""
        if self._before is None:
            return []
        return [_delta(p, b) for p, b in zip(self._probs, self._before)]

    def _bar_text(self, row: int) -> str:
        text = format_percent(self._probs[row])
        return text if self._before is None else f"{text}  {_delta(self._probs[row], self._before[row])}"

    def show_placeholder(self, text: str) -> None:
        self.set_predictions([])
        if self._plot is not None:
            self._plot.hide()
        self.placeholder.setText(text)
        self.placeholder.show()

    def _elide(self, label: str) -> str:
        return label if len(label) <= self.MAX_LABEL_CHARS else label[: self.MAX_LABEL_CHARS - 1] + "…"

    def set_predictions(self, predictions: Sequence[tuple[str, float]], before: Sequence[float] | None = None) -> None:
        """Show ``predictions`` (label, probability), best first; ``before``: each class's probability to compare
        with (None: no comparison)."""
        self._before = None if before is None or not predictions else [float(b) for b in before]
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
        self._draw_marks(item)
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
            for row, (text, y) in enumerate(zip(self._items[2:], ys)):
                text.setText(self._bar_text(row), color=text_color)
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
            for row, y in enumerate(ys):
                text = pg.TextItem(self._bar_text(row), color=text_color, anchor=(0, 0.5))
                text.setPos(1.02, float(y))
                item.addItem(text)
                self._items.append(text)
        shown = [self._elide(label) for label in self._labels]
        axis_key = (tuple(shown), self.font().key(), text_color.rgba(), self.plot.width(), self._before is None)
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
        widest = "100.0%" if self._before is None else "100.0%  −100.0 pts"
        text = QFontMetrics(font).horizontalAdvance(widest) + 16
        room = text / max(30.0, self.plot.width() - axis.width() - text)  # the text's share of the range beyond 1
        item.setXRange(0.0, 1.0 + min(1.5, max(0.12, room)), padding=0)
        item.setYRange(-0.6, n - 0.4, padding=0)

    def _draw_marks(self, item: Any) -> None:
        """A faint tick where each bar ended before (none without ``before``)."""
        pg = self._pg
        if self._marks is None:
            self._marks = pg.ScatterPlotItem(symbol="|", size=22, pen=pg.mkPen("#5b6470", width=2), brush=None)
            self._marks.setZValue(5)
            item.addItem(self._marks)
        if self._before is None:
            self._marks.setData([], [])
            return
        ys = np.arange(len(self._probs), dtype=float)[::-1]
        self._marks.setData(np.asarray(self._before), ys)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self._labels and self._plot is not None:
            self.set_predictions(list(zip(self._labels, self._probs)), self._before)


def _delta(p: float, before: float) -> str:
    """The change from ``before`` to ``p`` in percentage points, with a true minus sign: "−12.3 pts"."""
    points = (p - before) * 100.0
    return f"{'−' if points < 0 else '+'}{abs(points):.1f} pts"
