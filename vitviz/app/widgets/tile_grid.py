"""A grid of captioned image canvases, laid out to make the tiles as large as possible."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from .canvas import ImageCanvas
from .style import TEXT_MUTED

__all__ = ["TileGrid"]


class TileGrid(QWidget):
    """A grid of captioned :class:`ImageCanvas` tiles, laid out to make the tiles as large as possible."""

    tile_clicked = Signal(int)
    tile_ctrl_clicked = Signal(int)  # a click with Ctrl (Cmd on macOS) held
    tile_hovered = Signal(int, object)  # tile index, (x, y) image pixel or None

    def __init__(self, parent: QWidget | None = None, placeholder: str = "") -> None:
        super().__init__(parent)
        self.tiles: list[ImageCanvas] = []
        self.spacing = 8
        self.placeholder = placeholder
        self._aspect = 1.0
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(200, 160)

    def set_count(self, count: int) -> None:
        while len(self.tiles) > count:
            self.tiles.pop().deleteLater()
        while len(self.tiles) < count:
            i = len(self.tiles)
            tile = ImageCanvas(self)
            tile.set_opaque()
            tile.set_clickable(True)
            tile.min_grid_step = 14.0
            tile.clicked.connect(lambda _pos, i=i: self._on_click(i))
            tile.hovered.connect(lambda pos, i=i: self.tile_hovered.emit(i, pos))
            tile.show()
            self.tiles.append(tile)
        self._relayout()
        self.update()

    def _on_click(self, i: int) -> None:
        ctrl = bool(self.tiles[i].click_modifiers & Qt.KeyboardModifier.ControlModifier)
        (self.tile_ctrl_clicked if ctrl else self.tile_clicked).emit(i)

    def set_aspect(self, aspect: float) -> None:
        self._aspect = max(0.05, float(aspect))
        self._relayout()

    def columns(self) -> int:
        return self._layout()[0]

    def _layout(self) -> tuple[int, float, float]:
        n = len(self.tiles)
        if n == 0:
            return 0, 0.0, 0.0
        cap = self.tiles[0].caption_height() + 2 * self.tiles[0].margin
        best = (1, 0.0, 0.0)
        for cols in range(1, n + 1):
            rows = math.ceil(n / cols)
            tw = (self.width() - (cols - 1) * self.spacing) / cols
            th = (self.height() - (rows - 1) * self.spacing) / rows
            img_w = min(tw - 4, (th - cap) * self._aspect)
            if img_w > best[1] + 0.5:
                best = (cols, img_w, img_w / self._aspect + cap)
        return best

    def _relayout(self) -> None:
        n = len(self.tiles)
        if not n:
            return
        cols, img_w, tile_h = self._layout()
        tile_w = img_w + 4
        rows = math.ceil(n / cols)
        total_w = cols * tile_w + (cols - 1) * self.spacing
        total_h = rows * tile_h + (rows - 1) * self.spacing
        x0 = (self.width() - total_w) / 2
        y0 = max(0.0, (self.height() - total_h) / 2)
        for i, tile in enumerate(self.tiles):
            r, c = divmod(i, cols)
            tile.setGeometry(int(x0 + c * (tile_w + self.spacing)), int(y0 + r * (tile_h + self.spacing)),
                             int(tile_w), int(tile_h))

    def resizeEvent(self, event) -> None:  # noqa: N802
        self._relayout()
        super().resizeEvent(event)

    def paintEvent(self, event) -> None:  # noqa: N802
        if not self.tiles and self.placeholder:
            p = QPainter(self)
            p.setPen(TEXT_MUTED)
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder)
