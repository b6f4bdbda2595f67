"""Widgets of the vitviz window: image canvases with a patch grid, tile grids, colour bars, the prediction chart,
the message bar and the enlarged-map dialog. Pure Qt + numpy (+ pyqtgraph for the chart); no torch."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PySide6.QtCore import QEvent, QLineF, QPointF, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QLinearGradient, QPainter, QPen, QTransform
from PySide6.QtWidgets import (
    QDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSplitter,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

__all__ = [
    "STYLE",
    "ACCENT",
    "HOVER",
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
]

ACCENT = QColor("#1f6feb")  # selection, top prediction
QUERY = QColor("#00d8ff")  # the query patch
HOVER = QColor("#ffcc33")  # the hovered patch
TEXT_MUTED = QColor("#5b6470")
STYLE = """
QFrame#Panel { background: palette(base); border: 1px solid #d5dbe3; border-radius: 8px; }
QLabel#PanelTitle { font-weight: 600; }
QLabel#Muted { color: #5b6470; }
QLabel#ModeChip { border-radius: 9px; padding: 1px 9px; font-weight: 600; }
QToolBar { spacing: 6px; }
"""  # the window's style sheet: panels, titles, muted text, the attention mode chip


def to_qimage(rgb: np.ndarray) -> QImage:
    """A QImage (own copy of the pixels) of an ``[H, W, 3]`` (or ``[H, W]``) uint8 array, in the 32-bit format
    that Qt draws fastest (scaled smoothly about 2.5x faster than 24-bit RGB: every live frame draws ~10)."""
    arr = np.asarray(rgb, dtype=np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    # converting makes a new image with its own pixels, so the QImage does not read arr's memory afterwards
    return QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888).convertToFormat(QImage.Format.Format_RGB32)


def nice_ticks(lo: float, hi: float, max_ticks: int = 6) -> list[float]:
    """Round tick values covering [lo, hi] (1-2-5 steps)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, max_ticks - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(0.0 if abs(v) < step * 1e-9 else v)
        v += step
    return ticks


def format_percent(p: float) -> str:
    """87.3%, 5.2%, 0.21%, <0.01%: enough digits to tell small probabilities apart."""
    if p >= 0.9995:
        return "100%"
    if p >= 0.01:
        return f"{p * 100:.1f}%"
    if p >= 0.0001:
        return f"{p * 100:.2f}%"
    return "<0.01%"


def format_tick(value: float, ticks: Sequence[float]) -> str:
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else abs(value) or 1.0
    decimals = max(0, -int(math.floor(math.log10(step))) + (1 if step / 10 ** math.floor(math.log10(step)) == 2.5 else 0))
    return f"{value:.{min(decimals, 6)}f}"


class ImageCanvas(QWidget):
    """Shows an RGB image scaled to fit (aspect kept), with an optional caption, patch grid and patch marks.

    ``hovered`` sends ``(x, y)`` in image pixels or ``None``; ``clicked`` sends ``(x, y)`` or ``None`` (outside).
    With ``zoomable`` set, the wheel zooms about the mouse (up to ``max_zoom``), a left-drag pans, a double-click
    shows the whole image again, and ``clicked`` fires on release of a press that did not drag.
    """

    hovered = Signal(object)
    clicked = Signal(object)
    geometry_changed = Signal(object)  # the QRectF where the image is drawn

    def __init__(self, parent: QWidget | None = None, caption: str = "", placeholder: str = "") -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setMinimumSize(48, 48)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._rgb: np.ndarray | None = None
        self._qimage: QImage | None = None
        self.caption = caption
        self.placeholder = placeholder
        self.patch_size = 0
        self.grid_visible = False
        self.hover_patch: int | None = None
        self.marked_patch: int | None = None
        self.selected = False
        self.clickable = False
        self.smooth = True
        self.margin = 2
        self.min_grid_step = 5.0  # screen pixels per patch below which the grid is not drawn (it would hide the image)
        self._grid_layer: tuple[tuple, QImage] | None = None  # (geometry, the grid lines drawn once)
        self._caption: tuple[QFont, QFont, int] | None = None  # see _caption_metrics
        self.zoomable = False
        self.max_zoom = 16.0
        self.zoom = 1.0
        self._view_center = (0.5, 0.5)  # image point (fractions of width, height) at the centre of the view
        self._press: tuple[QPointF, tuple[float, float]] | None = None  # left press: position, view centre then
        self._dragging = False

    # -- content ---------------------------------------------------------------------------------------------

    @property
    def rgb(self) -> np.ndarray | None:
        """The image data shown (tests compare it)."""
        return self._rgb

    def set_image(self, rgb: np.ndarray | None) -> None:
        self._rgb = None if rgb is None else np.ascontiguousarray(rgb)
        old = None if self._qimage is None else self._qimage.size()
        self._qimage = None if rgb is None else to_qimage(self._rgb)
        if old != (None if self._qimage is None else self._qimage.size()):
            self.zoom, self._view_center = 1.0, (0.5, 0.5)  # another image size: show all of it
            self.geometry_changed.emit(self.visible_rect())
        self.update()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.geometry_changed.emit(self.visible_rect())

    def set_caption(self, caption: str) -> None:
        if caption != self.caption:
            self.caption = caption
            self.update()

    def set_patch_size(self, patch: int) -> None:
        self.patch_size = int(patch)
        self.update()

    def set_grid_visible(self, visible: bool) -> None:
        self.grid_visible = bool(visible)
        self.update()

    def set_hover_patch(self, index: int | None) -> None:
        if index != self.hover_patch:
            self.hover_patch = index
            self.update()

    def set_marked_patch(self, index: int | None) -> None:
        if index != self.marked_patch:
            self.marked_patch = index
            self.update()

    def set_selected(self, selected: bool) -> None:
        if selected != self.selected:
            self.selected = selected
            self.update()

    def set_clickable(self, clickable: bool) -> None:
        self.clickable = clickable
        self.setCursor(Qt.CursorShape.PointingHandCursor if clickable else Qt.CursorShape.CrossCursor)

    # -- geometry --------------------------------------------------------------------------------------------

    def caption_height(self) -> int:
        return self._caption_metrics()[2] + 4 if self.caption else 0

    def _caption_font(self) -> QFont:
        return self._caption_metrics()[1]

    def _caption_metrics(self) -> tuple[QFont, QFont, int]:
        """(the widget font it was made for, the caption font, its line height), made again only when the widget's
        font changes (the canvases of a live view are painted every frame)."""
        base = self.font()
        if self._caption is None or self._caption[0] != base:
            font = QFont(base)
            font.setPointSizeF(max(7.0, font.pointSizeF() * 0.92))
            self._caption = (QFont(base), font, QFontMetrics(font).height())
        return self._caption

    def fit_rect(self) -> QRectF:
        """Where the whole image is drawn when not zoomed (aspect ratio kept, centred); also the zoomed view's frame."""
        if self._rgb is None:
            return QRectF()
        h, w = self._rgb.shape[:2]
        m = self.margin
        top = self.caption_height()
        aw, ah = max(1, self.width() - 2 * m), max(1, self.height() - top - 2 * m)
        scale = min(aw / w, ah / h)
        dw, dh = w * scale, h * scale
        return QRectF(m + (aw - dw) / 2, top + m + (ah - dh) / 2, dw, dh)

    def image_rect(self) -> QRectF:
        """Where the image is drawn, in widget coordinates: :meth:`fit_rect` enlarged by ``zoom`` about the view
        centre (only the part inside :meth:`fit_rect` is visible)."""
        fit = self.fit_rect()
        if self.zoom <= 1.0 or fit.isEmpty():
            return fit
        dw, dh = fit.width() * self.zoom, fit.height() * self.zoom
        u, v = self._view_center
        return QRectF(fit.center().x() - u * dw, fit.center().y() - v * dh, dw, dh)

    def visible_rect(self) -> QRectF:
        """The part of the widget that shows image pixels."""
        return self.image_rect().intersected(self.fit_rect())

    def set_zoom(self, zoom: float, anchor: QPointF | None = None) -> None:
        """Zoom to ``zoom`` (1 = whole image), keeping the image point under ``anchor`` (widget coordinates) in place."""
        fit = self.fit_rect()
        zoom = min(max(float(zoom), 1.0), self.max_zoom)
        if fit.isEmpty():
            return
        if anchor is not None and self.to_image(anchor) is not None:
            r = self.image_rect()
            fx, fy = (anchor.x() - r.left()) / r.width(), (anchor.y() - r.top()) / r.height()
            u = fx + (fit.center().x() - anchor.x()) / (fit.width() * zoom)
            v = fy + (fit.center().y() - anchor.y()) / (fit.height() * zoom)
        else:
            u, v = self._view_center
        self.zoom = zoom
        self._set_view_center(u, v)

    def reset_zoom(self) -> None:
        self.zoom = 1.0
        self._set_view_center(0.5, 0.5)

    def _set_view_center(self, u: float, v: float) -> None:
        half = 0.5 / self.zoom  # keep the view inside the image
        self._view_center = (min(max(u, half), 1.0 - half), min(max(v, half), 1.0 - half))
        self.geometry_changed.emit(self.visible_rect())
        self.update()

    def to_image(self, pos: QPointF) -> tuple[float, float] | None:
        r = self.image_rect()
        if self._rgb is None or not r.contains(pos) or not self.fit_rect().contains(pos):
            return None
        h, w = self._rgb.shape[:2]
        x = (pos.x() - r.left()) * w / r.width()
        y = (pos.y() - r.top()) * h / r.height()
        return min(max(x, 0.0), w - 1e-3), min(max(y, 0.0), h - 1e-3)

    def patch_rect(self, index: int) -> QRectF:
        r = self.image_rect()
        if self._rgb is None or self.patch_size <= 0:
            return QRectF()
        h, w = self._rgb.shape[:2]
        cols = max(1, w // self.patch_size)
        row, col = divmod(index, cols)
        s = r.width() / w
        p = self.patch_size * s
        return QRectF(r.left() + col * p, r.top() + row * p, p, p)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(320, 320)

    # -- events ----------------------------------------------------------------------------------------------

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._press is not None and self.zoom > 1.0:
            start, (u0, v0) = self._press
            delta = event.position() - start
            if self._dragging or abs(delta.x()) + abs(delta.y()) > 4:
                self._dragging = True
                self.setCursor(Qt.CursorShape.ClosedHandCursor)
                r = self.image_rect()
                self._set_view_center(u0 - delta.x() / r.width(), v0 - delta.y() / r.height())
        self.hovered.emit(self.to_image(event.position()))
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self.zoomable and event.button() == Qt.MouseButton.LeftButton and self._press is not None:
            dragged, self._press, self._dragging = self._dragging, None, False
            self.set_clickable(self.clickable)  # restore the cursor
            if not dragged:
                self.clicked.emit(self.to_image(event.position()))
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        if self.zoomable and event.button() == Qt.MouseButton.LeftButton:
            self.reset_zoom()
            self.hovered.emit(self.to_image(event.position()))
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def wheelEvent(self, event) -> None:  # noqa: N802
        steps = event.angleDelta().y() / 120.0
        if not self.zoomable or self._rgb is None or steps == 0:
            super().wheelEvent(event)
            return
        self.set_zoom(self.zoom * 1.25**steps, event.position())
        self.hovered.emit(self.to_image(event.position()))
        event.accept()

    def leaveEvent(self, event) -> None:  # noqa: N802
        self.hovered.emit(None)
        super().leaveEvent(event)

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton and self.zoomable:
            self._press, self._dragging = (event.position(), self._view_center), False  # click or drag: on release
            event.accept()
            return
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit(self.to_image(event.position()))
            event.accept()
            return
        super().mousePressEvent(event)

    def set_opaque(self, opaque: bool = True) -> None:
        """Paint the whole widget, background included, in the palette's base colour (that of a :class:`Panel`): Qt
        then does not repaint the widgets beneath when the image changes (it matters at live frame rates)."""
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, opaque)
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        if self.testAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent):
            p.fillRect(self.rect(), self.palette().base())
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.smooth)
        if self.caption:
            p.setFont(self._caption_font())
            p.setPen(self.palette().windowText().color() if not self.selected else ACCENT)
            cap = QRectF(self.margin, 0, self.width() - 2 * self.margin, self.caption_height())
            elided = QFontMetrics(p.font()).elidedText(self.caption, Qt.TextElideMode.ElideRight, int(cap.width()))
            p.drawText(cap, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, elided)
        if self._qimage is None:
            if self.placeholder:
                p.setPen(TEXT_MUTED)
                p.drawText(self.rect().adjusted(8, 8, -8, -8), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                           self.placeholder)
            return
        r = self.image_rect()
        if self.zoom > 1.0:
            p.setClipRect(self.fit_rect())
        p.drawImage(r, self._qimage)
        if self.grid_visible and self.patch_size > 0:
            self._draw_grid(p, r)
        if self.hover_patch is not None and self.patch_size > 0:
            hr = self.patch_rect(self.hover_patch)
            p.setPen(QPen(QColor(0, 0, 0, 150), 4))
            p.drawRect(hr)
            p.setPen(QPen(HOVER, 2))
            p.drawRect(hr)
        if self.marked_patch is not None and self.patch_size > 0:
            pr = self.patch_rect(self.marked_patch)
            p.setPen(QPen(QColor(0, 0, 0, 160), 3))
            p.drawRect(pr)
            p.setPen(QPen(QUERY, 2))
            p.drawRect(pr)
        if self.selected:
            p.setPen(QPen(ACCENT, 3))
            p.drawRect(r.adjusted(-1, -1, 1, 1))
        if self.zoom > 1.0:
            p.setClipping(False)
            self._draw_zoom_badge(p)

    def _draw_zoom_badge(self, p: QPainter) -> None:
        fit = self.fit_rect()
        text = f"{self.zoom:.1f}× · double-click: whole map"
        fm = QFontMetrics(p.font())
        box = QRectF(fit.left() + 6, fit.top() + 6, fm.horizontalAdvance(text) + 12, fm.height() + 6)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(0, 0, 0, 150))
        p.drawRoundedRect(box, 4, 4)
        p.setPen(QColor(255, 255, 255))
        p.drawText(box, Qt.AlignmentFlag.AlignCenter, text)

    def _draw_grid(self, p: QPainter, r: QRectF) -> None:
        h, w = self._rgb.shape[:2]
        step = self.patch_size * r.width() / w
        if step < self.min_grid_step:
            return
        nx, ny = int(w // self.patch_size), int(h // self.patch_size)
        xs = [r.left() + i * step for i in range(1, nx)]
        ys = [r.top() + i * step for i in range(1, ny)]
        if self.zoom > 1.0:  # zoomed: the cached layer would be zoom^2 times larger; draw the visible lines directly
            view = self.fit_rect()
            xs = [x for x in xs if view.left() <= x <= view.right()]
            ys = [y for y in ys if view.top() <= y <= view.bottom()]
            top, bottom = max(r.top(), view.top()), min(r.bottom(), view.bottom())
            left, right = max(r.left(), view.left()), min(r.right(), view.right())
            for color, offset in ((QColor(0, 0, 0, 70), 1.0), (QColor(255, 255, 255, 150), 0.0)):
                p.setPen(QPen(color, 1))
                p.drawLines([QLineF(x + offset, top, x + offset, bottom) for x in xs]
                            + [QLineF(left, y + offset, right, y + offset) for y in ys])
            return

        def lines() -> list[tuple[QPen, list[QLineF]]]:
            return [
                (QPen(color, 1), [QLineF(x + offset, r.top(), x + offset, r.bottom()) for x in xs]
                 + [QLineF(r.left(), y + offset, r.right(), y + offset) for y in ys])
                for color, offset in ((QColor(0, 0, 0, 70), 1.0), (QColor(255, 255, 255, 150), 0.0))
            ]

        t = QTransform(p.deviceTransform())  # copies: the painter's state changes below
        p.save()
        p.resetTransform()
        base = QTransform(p.deviceTransform())  # what the paint device adds: high-DPI scale, offset in the window
        inverse, invertible = base.inverted()
        if t.type().value > QTransform.TransformationType.TxScale.value or not invertible:  # rotated, sheared: direct
            p.restore()
            for pen, segments in lines():
                p.setPen(pen)
                p.drawLines(segments)
            return
        # Translucent vertical lines are slow to rasterise (one blended pixel per row) and a layer switch repaints
        # ~10 canvases: draw the lines once into a transparent layer, in device pixels and shifted by a whole number
        # of pixels (so they cover the same pixels), then blit that layer 1:1 on every paint.
        box = t.mapRect(r)
        m = 4  # margin for the line caps
        ox, oy = math.floor(box.left()) - m, math.floor(box.top()) - m
        local = t * QTransform.fromTranslate(-ox, -oy)
        key = (local.m11(), local.m22(), local.dx(), local.dy(), r.left(), r.top(), r.width(), r.height(), step,
               nx, ny)
        if self._grid_layer is None or self._grid_layer[0] != key:
            layer = QImage(math.ceil(box.right()) - ox + m, math.ceil(box.bottom()) - oy + m,
                           QImage.Format.Format_ARGB32_Premultiplied)
            layer.fill(0)
            lp = QPainter(layer)
            lp.setTransform(local)
            for pen, segments in lines():
                lp.setPen(pen)
                lp.drawLines(segments)
            lp.end()
            self._grid_layer = (key, layer)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        p.setTransform(QTransform.fromTranslate(ox, oy) * inverse)  # in device pixels: layer pixel = screen pixel
        p.drawImage(QPointF(0.0, 0.0), self._grid_layer[1])
        p.restore()


class TileGrid(QWidget):
    """A grid of captioned :class:`ImageCanvas` tiles, laid out to make the tiles as large as possible."""

    tile_clicked = Signal(int)
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
            tile.clicked.connect(lambda _pos, i=i: self.tile_clicked.emit(i))
            tile.hovered.connect(lambda pos, i=i: self.tile_hovered.emit(i, pos))
            tile.show()
            self.tiles.append(tile)
        self._relayout()
        self.update()

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


class PredictionChart(QWidget):
    """Top-k class probabilities as a horizontal bar chart (pyqtgraph), best at the top, labels never clipped.

    A click on a bar (or its label) emits ``bar_clicked(row)``, row 0 being the top bar; ``set_selected(row)``
    outlines one bar.
    """

    MAX_LABEL_CHARS = 36
    bar_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        import pyqtgraph as pg

        self._pg = pg
        self._labels: list[str] = []
        self._probs: list[float] = []
        self.selected: int | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.plot = pg.PlotWidget(background=self.palette().base().color())
        self.plot.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.plot.setMinimumHeight(120)
        self.plot.setFrameShape(QFrame.Shape.NoFrame)
        self.plot.setAcceptDrops(False)  # files dropped on the chart go to the window
        item = self.plot.getPlotItem()
        item.hideButtons()
        item.setMenuEnabled(False)
        item.setMouseEnabled(x=False, y=False)
        item.hideAxis("bottom")
        item.getViewBox().setDefaultPadding(0.0)
        axis = item.getAxis("left")
        axis.setStyle(tickLength=0, tickTextOffset=8, autoExpandTextSpace=False)
        axis.setPen(pg.mkPen(None))
        if hasattr(axis, "setTickPen"):
            axis.setTickPen(pg.mkPen(None))
        self.placeholder = QLabel("", self)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setStyleSheet(f"color: {TEXT_MUTED.name()};")
        self.placeholder.setWordWrap(True)
        layout.addWidget(self.plot)
        layout.addWidget(self.placeholder)
        self.placeholder.hide()
        self._items: list[object] = []
        self._axis_key: tuple | None = None  # what the class axis and the ranges were last set up for
        self._outlined: tuple[int, int | None] | None = None  # (bars item, row) whose outline is drawn
        self.plot.scene().sigMouseClicked.connect(self._on_click)

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
        self.plot.hide()
        self.placeholder.setText(text)
        self.placeholder.show()

    def _elide(self, label: str) -> str:
        return label if len(label) <= self.MAX_LABEL_CHARS else label[: self.MAX_LABEL_CHARS - 1] + "…"

    def set_predictions(self, predictions: Sequence[tuple[str, float]]) -> None:
        pg = self._pg
        item = self.plot.getPlotItem()
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
        if self._labels:
            self.set_predictions(list(zip(self._labels, self._probs)))


class MessageBar(QFrame):
    """A non-modal banner at the top of the window: errors, warnings and information, closable."""

    STYLES = {
        "error": ("#fdecea", "#b3261e", "#f4c7c3", "⚠"),
        "warning": ("#fff4e5", "#8a5300", "#f7d9a8", "⚠"),
        "info": ("#e8f1fd", "#174ea6", "#c5d9f7", "ℹ"),
    }

    closed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind = "info"
        self.topic = "info"  # what the message is about, so that a later success can clear it
        self._timer = QTimer(self)  # a child of the bar: never fires after the window is gone
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        self.icon = QLabel(self)
        self.text = QLabel(self)
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        close = QToolButton(self)
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.dismiss)
        layout.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self.text, 1)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_message(self, text: str, kind: str = "error", topic: str | None = None, transient: bool = False) -> None:
        """Show ``text``; ``topic`` (default: ``kind``) names what it is about, for :meth:`dismiss_topics`; a
        transient message goes away by itself after six seconds."""
        bg, fg, border, icon = self.STYLES.get(kind, self.STYLES["info"])
        self.kind, self.topic = kind, topic or kind
        self._timer.stop()
        if transient:
            self._timer.start(6000)
        self.setStyleSheet(
            f"MessageBar {{ background: {bg}; border: 1px solid {border}; border-radius: 6px; }}"
            f"QLabel {{ color: {fg}; background: transparent; }}"
        )
        self.icon.setText(icon)
        self.text.setText(text)
        self.show()

    def message(self) -> str:
        return self.text.text() if self.isVisible() else ""

    def dismiss(self) -> None:
        self.hide()
        self.closed.emit()

    def dismiss_topics(self, *topics: str) -> None:
        """Hide the message if it is about one of ``topics`` (the problem was solved)."""
        if self.isVisible() and self.topic in topics:
            self.dismiss()


class SteadyText(QWidget):
    """A box around a QLabel whose text changes often (every live frame). A bare QLabel asks every layout around it,
    up to the window's, to lay out again on each change (about 10 ms a frame in live mode). In this box the request
    stops here, and goes on only when the label then needs another size. Add the box to a layout instead of the
    label; ``box.label`` is the label."""

    def __init__(self, label: QLabel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = label
        label.setParent(self)
        self.setSizePolicy(label.sizePolicy())
        self._needs = self._size_needs()

    def _size_needs(self) -> tuple:
        """What the enclosing layout uses of the label: its size hints (but not along an Ignored direction), and
        the height it needs at the current width when it wraps."""
        label, policy = self.label, self.label.sizePolicy()
        free_w = policy.horizontalPolicy() == QSizePolicy.Policy.Ignored
        free_h = policy.verticalPolicy() == QSizePolicy.Policy.Ignored
        hints = [(0 if free_w else s.width(), 0 if free_h else s.height())
                 for s in (label.sizeHint(), label.minimumSizeHint())]
        return (*hints, label.heightForWidth(self.width()) if label.hasHeightForWidth() else -1, label.isHidden())

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return self.label.sizeHint()

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return self.label.minimumSizeHint()

    def hasHeightForWidth(self) -> bool:  # noqa: N802 - Qt API
        return self.label.hasHeightForWidth()

    def heightForWidth(self, width: int) -> int:  # noqa: N802 - Qt API
        return self.label.heightForWidth(width)

    def resizeEvent(self, event) -> None:  # noqa: N802
        self.label.setGeometry(self.rect())
        self._needs = self._size_needs()
        super().resizeEvent(event)

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.LayoutRequest:  # the label's text (or font, or visibility) changed
            needs = self._size_needs()
            if needs != self._needs:
                self._needs = needs
                self.updateGeometry()
            return True
        return super().event(event)


class Panel(QFrame):
    """A titled section of the window: a header row (title + optional widgets) above a body."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Panel")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(10, 8, 10, 10)
        outer.setSpacing(6)
        self.header = QHBoxLayout()
        self.header.setSpacing(8)
        self.title = QLabel(title, self)
        self.title.setObjectName("PanelTitle")
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.title.setWordWrap(True)
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.title.setMinimumWidth(80)
        self.header.addWidget(SteadyText(self.title), 1)
        outer.addLayout(self.header)
        self.body = QVBoxLayout()
        self.body.setSpacing(6)
        outer.addLayout(self.body, 1)

    def set_title(self, html: str) -> None:
        self.title.setText(html)

    def add_header_widget(self, widget: QWidget) -> None:
        self.header.addWidget(widget)


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


def splitter(orientation: Qt.Orientation, widgets: Sequence[QWidget], sizes: Sequence[int]) -> QSplitter:
    """A splitter holding ``widgets`` at ``sizes``, whose panes cannot be collapsed to nothing."""
    split = QSplitter(orientation)
    for w in widgets:
        split.addWidget(w)
    split.setSizes(list(sizes))
    split.setChildrenCollapsible(False)
    split.setHandleWidth(8)
    return split


def view_tabs() -> QTabWidget:
    """Tabs holding views that share one place in the window (the tab bar hides while there is only one)."""
    tabs = QTabWidget()
    tabs.setDocumentMode(True)
    tabs.setTabBarAutoHide(True)
    return tabs


def add_view(tabs: QTabWidget, panel: QWidget, title: str) -> QWidget:
    """Add ``panel`` as a tab of ``tabs``; returns it."""
    tabs.addTab(panel, title)
    return panel


def _strip_tags(html: str) -> str:
    import re

    return re.sub(r"<[^>]+>", "", html)
