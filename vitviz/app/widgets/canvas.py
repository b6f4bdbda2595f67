"""The image canvas: an RGB image scaled to fit, with a caption, the patch grid, patch marks, zoom and pan."""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QLineF, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPen, QTransform
from PySide6.QtWidgets import QSizePolicy, QWidget

from .qimage import to_qimage
from .style import ACCENT, HOVER, QUERY, TEXT_MUTED

__all__ = ["ImageCanvas"]


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
        self.mark: QColor | None = None  # a frame of this colour round the image (e.g. a head picked or knocked out)
        self.click_modifiers = Qt.KeyboardModifier.NoModifier  # the keyboard modifiers of the last click
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

    def set_mark(self, color: QColor | None) -> None:
        """Frame the image in ``color`` (None: no frame)."""
        if color != self.mark:
            self.mark = color
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
                self.click_modifiers = event.modifiers()
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
            self.click_modifiers = event.modifiers()
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
        if self.mark is not None:
            p.setPen(QPen(self.mark, 5, Qt.PenStyle.DashLine))
            p.drawRect(r.adjusted(2, 2, -2, -2))
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
