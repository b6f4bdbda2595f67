"""The parts of the presentation's story: a fitted picture with its patch grid, a colour ramp, and a titled column."""

from __future__ import annotations

from typing import Callable

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QImage, QLinearGradient, QPainter, QPen
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QWidget

from ...render import colormap_lut
from ..widgets.qimage import to_qimage

__all__ = ["Picture", "GradientBar", "Part"]


class Picture(QWidget):
    """An image fitted into the widget (aspect kept, centred), optionally with the patch grid drawn over it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image: QImage | None = None
        self._grid: tuple[int, int] | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 160)

    def set_image(self, rgb: np.ndarray | None, grid: tuple[int, int] | None = None) -> None:
        self._image = None if rgb is None else to_qimage(rgb)
        self._grid = grid
        self.update()

    def image(self) -> QImage | None:
        return self._image

    def target_rect(self) -> QRectF:
        if self._image is None or self._image.isNull():
            return QRectF()
        w, h = self._image.width(), self._image.height()
        scale = min(self.width() / w, self.height() / h)
        tw, th = w * scale, h * scale
        return QRectF((self.width() - tw) / 2, (self.height() - th) / 2, tw, th)

    def paintEvent(self, event) -> None:  # noqa: N802
        if self._image is None:
            return
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        rect = self.target_rect()
        painter.drawImage(rect, self._image)
        if self._grid:
            rows, cols = self._grid
            pen = QPen(QColor(255, 255, 255, 150))
            pen.setWidthF(max(1.0, rect.width() / 600))
            painter.setPen(pen)
            for c in range(1, cols):
                x = rect.left() + rect.width() * c / cols
                painter.drawLine(x, rect.top(), x, rect.bottom())
            for r in range(1, rows):
                y = rect.top() + rect.height() * r / rows
                painter.drawLine(rect.left(), y, rect.right(), y)
        painter.end()


class GradientBar(QWidget):
    """A horizontal colour ramp (no text; the words at its ends are labels beside it)."""

    def __init__(self, cmap: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cmap = cmap
        self.setFixedHeight(22)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_cmap(self, cmap: str) -> None:
        self.cmap = cmap
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802
        lut = colormap_lut(self.cmap)
        gradient = QLinearGradient(0, 0, self.width(), 0)
        for i in range(0, 256, 15):
            gradient.setColorAt(i / 255, QColor(*(int(v) for v in lut[i])))
        gradient.setColorAt(1.0, QColor(*(int(v) for v in lut[255])))
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(gradient)
        painter.drawRoundedRect(QRectF(self.rect()), 6, 6)
        painter.end()


class Part(QWidget):
    """One part of the story, in one column: a title, a picture (or a note instead of it) right under it, an optional
    colour scale with words at its ends right under the picture, and a plain-language explanation below. The picture
    takes the largest size that leaves room for the rest; the titles of all parts share the top line."""

    GAP = 12

    def __init__(self, fonts: Callable[[QLabel, str], None], scale: tuple[str, str, str] | None = None) -> None:
        super().__init__()
        self.height_limit: int | None = None  # set by the view so that all pictures share one height budget
        self.on_resize: Callable[[], None] | None = None
        self.title = QLabel(self)
        self.title.setObjectName("Title")
        self.title.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.title.setWordWrap(True)
        fonts(self.title, "title")
        self.picture = Picture(self)
        self.note = QLabel(self)  # a message instead of the picture (e.g. "this model does not guess distances")
        self.note.setObjectName("Runner")
        self.note.setWordWrap(True)
        self.note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        fonts(self.note, "runner")
        self.note.hide()
        self.bar: GradientBar | None = None
        self.scale_row = QWidget(self)
        if scale is not None:
            low, high, cmap = scale
            row = QHBoxLayout(self.scale_row)
            row.setContentsMargins(0, 0, 0, 0)
            row.setSpacing(14)
            self.low, self.high = QLabel(low), QLabel(high)
            for label in (self.low, self.high):
                label.setObjectName("Scale")
                fonts(label, "scale")
            self.bar = GradientBar(cmap)
            row.addWidget(self.low)
            row.addWidget(self.bar, 1)
            row.addWidget(self.high)
        else:  # a caption under the picture (its file name), on the scales' line
            row = QHBoxLayout(self.scale_row)
            row.setContentsMargins(0, 0, 0, 0)
            self.caption = QLabel()
            self.caption.setObjectName("Scale")
            self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            fonts(self.caption, "scale")
            row.addWidget(self.caption)
        self.explain = QLabel(self)
        self.explain.setObjectName("Explain")
        self.explain.setWordWrap(True)
        self.explain.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        fonts(self.explain, "explain")
        self.explain.hide()
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_missing(self, text: str | None) -> None:
        """Show ``text`` instead of the picture (None: show the picture)."""
        self.note.setText(text or "")
        self.note.setVisible(bool(text))
        self.picture.setVisible(not text)
        self.scale_row.setVisible(not text)
        self.relayout()

    def minimumSizeHint(self):  # noqa: N802
        return self.picture.minimumSize()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self.on_resize is not None:
            self.on_resize()
        else:
            self.relayout()

    def _heights(self) -> tuple[int, int, int]:
        w = self.width()
        title_h = max(0, self.title.heightForWidth(w)) if self.title.text() else 0
        scale_h = self.scale_row.sizeHint().height() if not self.scale_row.isHidden() else 0
        explain_h = max(0, self.explain.heightForWidth(w)) if not self.explain.isHidden() else 0
        return title_h, scale_h, explain_h

    def room(self) -> int:
        """The height left for the picture."""
        title_h, scale_h, explain_h = self._heights()
        return self.height() - sum(v + self.GAP for v in (title_h, scale_h, explain_h) if v)

    def relayout(self) -> None:
        """Place the children: title on top, the picture as large as fits, its scale and explanation below."""
        w, gap = self.width(), self.GAP
        title_h, scale_h, explain_h = self._heights()
        self.title.setGeometry(0, 0, w, title_h)
        y = title_h + gap if title_h else 0
        room = self.room() if self.height_limit is None else min(self.room(), self.height_limit)
        image = self.picture.image()
        aspect = image.width() / image.height() if image is not None and image.height() else 1.0
        pw = max(1, int(min(w, max(1, room) * aspect)))
        ph = max(1, int(pw / aspect))
        x = (w - pw) // 2
        self.picture.setGeometry(x, y, pw, ph)
        self.note.setGeometry(0, y, w, ph)
        y += ph + gap
        if scale_h:
            self.scale_row.setGeometry(x, y, pw, scale_h)
            y += scale_h + gap
        if explain_h:
            self.explain.setGeometry(0, y, w, explain_h)
