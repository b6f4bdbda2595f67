"""The Input panel: the image the model saw, its patch grid, the hovered and the selected (query) patch."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QLabel

from ..state import ViewState
from ..widgets import ImageCanvas, Panel
from .common import hover_patch, html, muted, source_name

__all__ = ["InputPanel"]


class InputPanel(Panel):
    """Hovering a patch publishes it to the state; clicking it selects (or releases) its query attention."""

    def __init__(self, state: ViewState) -> None:
        super().__init__("Input")
        self.state = state
        self.grid_check = QCheckBox("Patch grid")
        self.grid_check.setChecked(state.grid)
        self.grid_check.setToolTip("Show the model's patch grid (G)")
        self.grid_check.toggled.connect(state.set_grid)
        self.add_header_widget(self.grid_check)
        self.canvas = ImageCanvas(placeholder="Open an image (Ctrl+O), drop one here, paste one (Ctrl+V) or "
                                              "pick a sample.")
        self.canvas.set_opaque()
        self.canvas.setCursor(Qt.CursorShape.CrossCursor)
        self.canvas.setToolTip("Hover a patch to see where it is; click it to show its query attention")
        self.canvas.hovered.connect(
            lambda pos: hover_patch(state, pos, "click: show this patch's query attention" if state.result is not None
                                    and state.result.attention is not None
                                    and state.result.attention.answers_queries else ""))
        self.canvas.clicked.connect(lambda pos: state.toggle_query(state.patch_at(pos)))
        self.info = QLabel("")
        self.info.setObjectName("Muted")
        self.info.setWordWrap(True)
        self.notices = QLabel("")
        self.notices.setObjectName("Muted")
        self.notices.setWordWrap(True)
        self.notices.hide()
        self.body.addWidget(self.canvas, 1)
        self.body.addWidget(self.info)
        self.body.addWidget(self.notices)

        state.result_changed.connect(self._on_result)
        state.preview_changed.connect(self._on_preview)
        state.query_changed.connect(self.canvas.set_marked_patch)
        state.hover_changed.connect(self.canvas.set_hover_patch)
        state.grid_changed.connect(self._on_grid)

    def _on_result(self, shown) -> None:
        if shown is None:
            self._clear()
            return
        result = shown.result
        grid = result.grid
        name = source_name(result.source)
        h, w = result.image.shape[:2]
        ow, oh = grid.original_size
        self.set_title(f"Input {muted('· ' + html(name))}")
        self.info.setText(
            f"{w}×{h} px model input" + (f" (from {ow}×{oh})" if (ow, oh) != (w, h) else "")
            + f" · {grid.cols}×{grid.rows} patches of {grid.patch_size} px · click a patch to see what it attends to"
        )
        self.canvas.set_image(result.image)
        self.canvas.set_patch_size(grid.patch_size)
        self.canvas.set_grid_visible(self.state.grid)
        self.canvas.set_marked_patch(self.state.query)
        self.canvas.set_hover_patch(None)
        self._set_notices(result.notices)

    def _on_preview(self, preview) -> None:
        if preview is None:
            return
        self.canvas.set_image(preview.image)
        self.canvas.set_patch_size(0)
        self.set_title(f"Input {muted('· ' + html(Path(preview.source).name) + ' · not analysed (no model loaded)')}")
        self.info.setText(f"{preview.image.shape[1]}×{preview.image.shape[0]} px")
        self._set_notices(preview.notices)

    def _clear(self) -> None:
        self.canvas.set_image(None)
        self.canvas.set_patch_size(0)
        self.set_title("Input")
        self.info.setText("")
        self._set_notices([])

    def _on_grid(self, visible: bool) -> None:
        self.grid_check.blockSignals(True)
        self.grid_check.setChecked(visible)
        self.grid_check.blockSignals(False)
        self.canvas.set_grid_visible(visible and self.state.shown is not None)

    def _set_notices(self, notices: list[str]) -> None:
        if notices:
            self.notices.setText(" · ".join(notices))
            self.notices.setToolTip("\n".join(notices))
            self.notices.show()
        else:
            self.notices.hide()
