"""The enlarged-map dialog: one map with a colour bar in real units and the value under the mouse."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from .canvas import ImageCanvas
from .color_bar import ColorBar
from .style import TEXT_MUTED

__all__ = ["ZOOM_HINT", "MapDialog"]

ZOOM_HINT = "Scroll to zoom · drag to pan · double-click for the whole map"


class MapDialog(QDialog):
    """One map enlarged (non-modal), with a colour bar in real units and the value under the mouse."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Attention map")
        self.setModal(False)
        self.resize(640, 600)
        self.tile_index: int | None = None
        self.values: np.ndarray | None = None  # [rows, cols] raw values of the shown map
        self.unit = ""
        layout = QVBoxLayout(self)
        self.title = QLabel(self)
        self.title.setObjectName("PanelTitle")
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.title.setWordWrap(True)
        row = QHBoxLayout()
        self.canvas = ImageCanvas(self)
        self.canvas.smooth = True
        self.canvas.zoomable = True
        self.colorbar = ColorBar(Qt.Orientation.Vertical, self)
        row.addWidget(self.canvas, 1)
        row.addWidget(self.colorbar)
        self.readout = QLabel(ZOOM_HINT, self)
        self.readout.setStyleSheet(f"color: {TEXT_MUTED.name()};")
        layout.addWidget(self.title)
        layout.addLayout(row, 1)
        layout.addWidget(self.readout)
        self.canvas.hovered.connect(self._on_hover)
        self.canvas.geometry_changed.connect(lambda r: self.colorbar.set_span(r.top(), r.bottom()) if r.height() else
                                             self.colorbar.set_span(None))

    def set_content(self, tile_index: int, title: str, rgb: np.ndarray, values: np.ndarray, lut: np.ndarray,
                    lo: float, hi: float, patch_size: int, grid_visible: bool, marked: int | None,
                    scale_title: str) -> None:
        self._show(tile_index, title, rgb, values, "", lut, lo, hi, scale_title)
        self.canvas.set_patch_size(patch_size)
        self.canvas.set_grid_visible(grid_visible)
        self.canvas.set_marked_patch(marked)

    def set_pixel_content(self, title: str, rgb: np.ndarray, values: np.ndarray, lut: np.ndarray, lo: float,
                          hi: float, unit: str, scale_title: str) -> None:
        """Show a per-pixel map (``values`` ``[H, W]`` at ``rgb``'s resolution, e.g. depth); the readout gives the
        value of the pixel under the mouse, followed by ``unit``."""
        self._show(None, title, rgb, values, unit, lut, lo, hi, scale_title)
        self.canvas.set_patch_size(0)
        self.canvas.set_grid_visible(False)
        self.canvas.set_marked_patch(None)

    def _show(self, tile_index: int | None, title: str, rgb: np.ndarray, values: np.ndarray, unit: str,
              lut: np.ndarray, lo: float, hi: float, scale_title: str) -> None:
        self.tile_index, self.values, self.unit = tile_index, values, unit
        self.title.setText(title)
        self.setWindowTitle(f"vitviz — {_strip_tags(title)}")
        self.canvas.set_image(rgb)
        self.colorbar.set_scale(lut, lo, hi, scale_title)

    def _on_hover(self, pos) -> None:
        if pos is not None and self.values is not None and self.canvas.patch_size <= 0:
            h, w = self.values.shape
            x, y = min(int(pos[0]), w - 1), min(int(pos[1]), h - 1)
            self.readout.setText(f"pixel ({x}, {y}): {float(self.values[y, x]):.3g}{self.unit}")
            return
        if pos is None or self.values is None or self.canvas.rgb is None or self.canvas.patch_size <= 0:
            self.readout.setText(ZOOM_HINT)
            self.canvas.set_hover_patch(None)
            return
        p = self.canvas.patch_size
        rows, cols = self.values.shape
        r, c = min(int(pos[1] // p), rows - 1), min(int(pos[0] // p), cols - 1)
        index = r * cols + c
        self.canvas.set_hover_patch(index)
        self.readout.setText(f"patch #{index} (row {r}, col {c}): {self.values[r, c]:.4g}")


def _strip_tags(html: str) -> str:
    import re

    return re.sub(r"<[^>]+>", "", html)
