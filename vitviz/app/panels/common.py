"""Small text and widget helpers shared by the panels and the window."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QComboBox, QLabel

from ..state import ViewState
from ..widgets import ColorBar, ImageCanvas, Panel, SteadyText

MUTED = "#5b6470"


class WrappedLabel(QLabel):
    """A word-wrapped label that claims the height its text needs at its width: Qt's layouts do not always honour a
    label's height-for-width, and the out-of-domain note was cut off in a 1280-pixel window."""

    def __init__(self, text: str = "") -> None:
        super().__init__(text)
        self.setWordWrap(True)

    def needed_height(self, width: int) -> int:
        """The height the text needs at ``width`` (not QLabel.heightForWidth, which never goes below the height
        this label has claimed)."""
        margins = self.contentsMargins()
        doc = QTextDocument()
        doc.setDocumentMargin(0)
        doc.setDefaultFont(self.font())
        doc.setHtml(self.text()) if self.textFormat() == Qt.TextFormat.RichText or "<" in self.text() \
            else doc.setPlainText(self.text())
        doc.setTextWidth(max(1, width - margins.left() - margins.right() - 2 * max(0, self.margin())))
        return int(math.ceil(doc.size().height())) + margins.top() + margins.bottom() + 2 * max(0, self.margin())

    def _claim_height(self) -> None:
        needed = self.needed_height(self.width()) if self.text() else 0
        if needed != self.minimumHeight() or needed != self.maximumHeight():
            self.setFixedHeight(needed)  # neither cut off nor stretched beyond its text

    def hasHeightForWidth(self) -> bool:  # noqa: N802 - Qt's name
        return False  # the layout goes by the fixed height this label claims, not by a height-for-width of its own

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        super().setText(text)
        self._claim_height()

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._claim_height()


def html(text: Any) -> str:
    """``text`` escaped for a Qt rich-text label."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def muted(text: str) -> str:
    """A title suffix in the muted, regular-weight style."""
    return f"<span style='font-weight:400;color:{MUTED}'>{text}</span>"


def source_name(source: Any) -> str:
    """The file name of an image source (a path, or ``(array, name)``)."""
    if source is None:
        return ""
    if isinstance(source, tuple):
        return str(source[1])
    s = str(source)
    return Path(s).name or s


def describe_patch(grid: Any, patch: int) -> str:
    """Where a patch is: index, row/column, pixel box in the model input (and in the original when resized)."""
    r, c = divmod(patch, grid.cols)
    x0, y0, x1, y1 = grid.patch_box(patch)
    ow, oh = grid.original_size
    h, w = grid.input_size
    sx, sy = ow / w, oh / h
    text = f"patch #{patch}  (row {r}, col {c})  ·  pixels x {x0}–{x1}, y {y0}–{y1} of the {w}×{h} input"
    if (ow, oh) != (w, h):
        text += f"  (≈ x {x0 * sx:.0f}–{x1 * sx:.0f}, y {y0 * sy:.0f}–{y1 * sy:.0f} in the {ow}×{oh} original)"
    return text


def depth_text(result: Any, pos: tuple[float, float]) -> str:
    """The status-bar readout of the depth at input pixel ``pos`` ("" when the result has no depth)."""
    if result.depth is None or not result.depth_kind:
        return ""
    d = result.depth
    value = float(d[min(int(pos[1]), d.shape[0] - 1), min(int(pos[0]), d.shape[1] - 1)])
    return f"  ·  depth {value:.3g}{' m' if result.depth_kind == 'metric' else ''}"


def combo(items: Iterable[str], current: str, tip: str) -> QComboBox:
    """A combo box of ``items`` showing ``current``."""
    box = QComboBox()
    box.addItems(list(items))
    set_combo_text(box, current)
    box.setToolTip(tip)
    return box


def set_combo_text(box: QComboBox, text: str) -> None:
    """Select ``text`` without emitting the box's signals."""
    i = box.findText(text)
    if i >= 0 and i != box.currentIndex():
        box.blockSignals(True)
        box.setCurrentIndex(i)
        box.blockSignals(False)


class LazyPanel(Panel):
    """A panel that shares its place with others (a tab): it draws only while visible, and when shown again after
    changes it missed. Subclasses implement :meth:`draw` and connect state signals to :meth:`refresh`."""

    def __init__(self, title: str) -> None:
        super().__init__(title)
        self._stale = True

    def add_map(self, state: ViewState, placeholder: str) -> None:
        """The body's map over the image (``canvas``: a click selects a patch's query, the grid and hovered patch
        follow the state), a horizontal colour bar (``legend``) and a line of explanation (``info``)."""
        self.canvas = ImageCanvas(placeholder=placeholder)
        self.canvas.set_opaque()
        self.canvas.setCursor(Qt.CursorShape.CrossCursor)
        self.canvas.hovered.connect(self._on_hover)
        self.canvas.clicked.connect(lambda pos: state.toggle_query(state.patch_at(pos)))
        follow_patches(self.canvas, state)
        self.legend = ColorBar(Qt.Orientation.Horizontal)
        self.info = QLabel("")
        self.info.setObjectName("Muted")
        self.info.setWordWrap(True)
        self.body.addWidget(self.canvas, 1)
        self.body.addWidget(self.legend)
        self.body.addWidget(SteadyText(self.info))

    def draw(self) -> None:
        raise NotImplementedError

    def describe(self, patch: int, row: int, col: int) -> str:
        """The status-bar text for the patch under the mouse on the map (``self.values`` is drawn)."""
        raise NotImplementedError

    def _on_hover(self, pos) -> None:
        state = self.state
        patch = state.patch_at(pos)
        state.set_hover(patch)
        if patch is None or getattr(self, "values", None) is None:
            state.status.emit("")
            return
        state.status.emit(self.describe(patch, *divmod(patch, state.result.grid.cols)))

    def refresh(self, *_args) -> None:
        if not self.isVisible():
            self._stale = True
            return
        self._stale = False
        self.draw()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        if self._stale:
            self.refresh()


def follow_patches(canvas: ImageCanvas, state: ViewState) -> None:
    """Make a map canvas follow the state: its result's patch grid (when shown), the hovered and selected patch."""

    def on_result(shown) -> None:
        if shown is not None:
            canvas.set_patch_size(shown.result.grid.patch_size)
            canvas.set_grid_visible(state.grid)
            canvas.set_hover_patch(None)

    state.result_changed.connect(on_result)
    state.hover_changed.connect(canvas.set_hover_patch)
    state.query_changed.connect(canvas.set_marked_patch)
    state.grid_changed.connect(lambda visible: canvas.set_grid_visible(visible and state.shown is not None))


def hover_patch(state: ViewState, pos: Any, hint: str = "") -> None:
    """The mouse is over input pixel ``pos`` of a map: publish the patch, and describe it (and the depth there)."""
    patch = state.patch_at(pos)
    state.set_hover(patch)
    if patch is None:
        state.status.emit("")
        return
    result = state.result
    state.status.emit(describe_patch(result.grid, patch) + depth_text(result, pos) + (f"  ·  {hint}" if hint else ""))
