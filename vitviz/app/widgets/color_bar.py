"""A colour scale with tick labels, vertical or horizontal."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFontMetrics, QLinearGradient, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from .formatting import format_tick, nice_ticks
from .style import TEXT_MUTED

__all__ = ["ColorBar"]


class ColorBar(QWidget):
    """A colour scale with tick labels: vertical (beside a map) or horizontal (under a grid of maps)."""

    def __init__(self, orientation: Qt.Orientation = Qt.Orientation.Vertical, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.orientation = orientation
        self.lut: np.ndarray | None = None
        self._stops: tuple[np.ndarray, list] | None = None  # (lut, gradient stops) of the last colormap drawn
        self.lo: float | None = None
        self.hi: float | None = None
        self.title = ""
        self.end_labels = ("low", "high")
        self.bar = 12
        self.span: tuple[float, float] | None = None  # (top, bottom) of the bar, e.g. to match an image beside it
        if orientation == Qt.Orientation.Vertical:
            self.setFixedWidth(78)
            self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)
        else:
            self.setFixedHeight(34)
            self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_scale(self, lut: np.ndarray | None, lo: float | None, hi: float | None, title: str = "",
                  end_labels: tuple[str, str] = ("low", "high")) -> None:
        same_lut = lut is self.lut or (lut is not None and self.lut is not None and np.array_equal(lut, self.lut))
        if same_lut and (lo, hi, title, tuple(end_labels)) == (self.lo, self.hi, self.title, tuple(self.end_labels)):
            return  # unchanged (the legend of a live view, frame after frame): nothing to repaint
        self.lut, self.lo, self.hi, self.title, self.end_labels = lut, lo, hi, title, end_labels
        if self.orientation == Qt.Orientation.Vertical:
            fm = QFontMetrics(self.font())
            labels = self._labels()
            widest = max([fm.horizontalAdvance(t) for _, t in labels] + [0])
            self.setFixedWidth(max(56, self.bar + 10 + widest + 6))
        self.update()

    def set_span(self, top: float | None, bottom: float | None = None) -> None:
        span = None if top is None or bottom is None or bottom - top < 40 else (float(top), float(bottom))
        if span != self.span:
            self.span = span
            self.update()

    def _labels(self) -> list[tuple[float, str]]:
        """(position 0..1 along the bar, text)."""
        if self.lo is None or self.hi is None:
            return [(0.0, self.end_labels[0]), (1.0, self.end_labels[1])]
        if self.hi <= self.lo:
            return [(0.5, f"{self.lo:.3g}")]
        ticks = nice_ticks(self.lo, self.hi, 6 if self.orientation == Qt.Orientation.Vertical else 5)
        return [((t - self.lo) / (self.hi - self.lo), format_tick(t, ticks)) for t in ticks]

    def _gradient(self, start: QPointF, stop: QPointF) -> QLinearGradient:
        lut = self.lut if self.lut is not None else np.stack([np.arange(256)] * 3, 1)
        if self._stops is None or not (self._stops[0] is lut or np.array_equal(self._stops[0], lut)):
            # the stops of a colormap, made once (not for every live frame)
            stops = [(i / 255, QColor(*[int(c) for c in lut[i]])) for i in range(0, 256, 15)]
            self._stops = (lut, stops + [(1.0, QColor(*[int(c) for c in lut[255]]))])
        g = QLinearGradient(start, stop)
        g.setStops(self._stops[1])
        return g

    def paintEvent(self, event) -> None:  # noqa: N802
        if self.lut is None:
            return
        p = QPainter(self)
        fm = QFontMetrics(self.font())
        text_color = self.palette().windowText().color()
        labels = self._labels()
        if self.orientation == Qt.Orientation.Vertical:
            top = fm.height() + 8 if self.title else fm.height() // 2 + 2
            bottom = self.height() - fm.height() // 2 - 2
            if self.span is not None:
                top = max(top, self.span[0])
                bottom = min(bottom, self.span[1])
            bar = QRectF(2, top, self.bar, max(4, bottom - top))
            p.fillRect(bar, self._gradient(bar.bottomLeft(), bar.topLeft()))
            p.setPen(QPen(QColor(0, 0, 0, 90), 1))
            p.drawRect(bar)
            p.setPen(text_color)
            if self.title:
                p.drawText(QRectF(0, top - fm.height() - 6, self.width(), fm.height() + 4), Qt.AlignmentFlag.AlignLeft,
                           self.title)
            for pos, text in labels:
                y = bar.bottom() - pos * bar.height()
                p.drawLine(QPointF(bar.right(), y), QPointF(bar.right() + 4, y))
                p.drawText(QRectF(bar.right() + 7, y - fm.height() / 2, self.width(), fm.height()),
                           Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, text)
        elif self.lo is None or self.hi is None:  # words at the two ends: each inside the bar's span, never overlapping
            bar = QRectF(2, 2, max(4, self.width() - 4), self.bar)
            p.fillRect(bar, self._gradient(bar.topLeft(), bar.topRight()))
            p.setPen(QPen(QColor(0, 0, 0, 90), 1))
            p.drawRect(bar)
            p.setPen(text_color)
            half = max(10, int(bar.width() - 12) // 2)
            row = QRectF(bar.left(), bar.bottom() + 3, bar.width(), fm.height())
            low, high = (fm.elidedText(t, Qt.TextElideMode.ElideRight, half) for t in self.end_labels)
            p.drawText(row, Qt.AlignmentFlag.AlignLeft, low)
            p.drawText(row, Qt.AlignmentFlag.AlignRight, high)
            if low != self.end_labels[0] or high != self.end_labels[1]:
                self.setToolTip(f"{self.end_labels[0]} … {self.end_labels[1]}")  # the whole words, when cut short
        else:
            lw = max(fm.horizontalAdvance(labels[0][1]), fm.horizontalAdvance(labels[-1][1])) // 2 + 2
            bar = QRectF(lw, 2, max(4, self.width() - 2 * lw), self.bar)
            p.fillRect(bar, self._gradient(bar.topLeft(), bar.topRight()))
            p.setPen(QPen(QColor(0, 0, 0, 90), 1))
            p.drawRect(bar)
            p.setPen(text_color)
            for pos, text in labels:
                x = bar.left() + pos * bar.width()
                p.drawLine(QPointF(x, bar.bottom()), QPointF(x, bar.bottom() + 3))
                tw = fm.horizontalAdvance(text)
                p.drawText(QRectF(x - tw / 2 - 1, bar.bottom() + 3, tw + 2, fm.height()), Qt.AlignmentFlag.AlignCenter,
                           text)
            if self.title:
                p.setPen(TEXT_MUTED)
                p.drawText(QRectF(bar.left(), bar.bottom() + 3, bar.width(), fm.height()),
                           Qt.AlignmentFlag.AlignHCenter, self.title)
