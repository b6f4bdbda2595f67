"""The Depth panel: the predicted depth map with a colour bar; a click enlarges it in its own window. While heads are
knocked out, "show change" draws what the knockout did to the depth (knocked out − whole model) in a diverging
colour map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel

from ...render import COLORMAPS, apply_colormap, colormap_lut, normalize
from ..state import ViewState
from ..widgets import ColorBar, ImageCanvas, MapDialog, Panel, SteadyText
from .common import combo, follow_patches, hover_patch, html, muted, set_combo_text

__all__ = ["DepthPanel"]

UNITS = {"metric": "metres", "relative_inverse": "relative inverse depth", "relative": "relative depth (your model's units)"}


class DepthPanel(Panel):
    def __init__(self, state: ViewState) -> None:
        super().__init__("Depth")
        self.state = state
        self.cmap_combo = combo(COLORMAPS, state.depth_cmap, "Colormap of the depth map")
        self.cmap_combo.currentTextChanged.connect(state.set_depth_colormap)
        self.add_header_widget(self.cmap_combo)
        self.change_box = QCheckBox("show change")
        self.change_box.setToolTip("What the knocked-out heads change: depth without them − depth by the whole model")
        self.change_box.toggled.connect(state.set_depth_change)
        self.change_box.hide()
        self.header.insertWidget(1, self.change_box)
        row = QHBoxLayout()
        self.canvas = ImageCanvas(placeholder="The predicted depth map appears here.")
        self.canvas.set_opaque()
        self.canvas.set_clickable(True)
        self.canvas.hovered.connect(lambda pos: hover_patch(state, pos, "click to enlarge"))
        self.canvas.clicked.connect(lambda _pos: self.open_detail())
        self.bar = ColorBar(Qt.Orientation.Vertical)
        row.addWidget(self.canvas, 1)
        row.addWidget(self.bar)
        self.canvas.geometry_changed.connect(
            lambda r: self.bar.set_span(r.top(), r.bottom()) if r.height() else self.bar.set_span(None))
        self.body.addLayout(row, 1)
        self.info = QLabel("")
        self.info.setObjectName("Muted")
        self.info.setWordWrap(True)
        self.body.addWidget(SteadyText(self.info))
        self.detail = MapDialog(self)  # the depth map enlarged, with the value of the pixel under the mouse

        follow_patches(self.canvas, state)
        state.result_changed.connect(self.refresh)
        state.depth_style_changed.connect(self.refresh)
        state.knockout_changed.connect(self.refresh)

    def change(self) -> np.ndarray | None:
        """Knocked out − whole model, ``[H, W]``, while heads are knocked out (None otherwise)."""
        result, original = self.state.result, self.state.original
        if result is None or original is None or result.depth is None or original.result.depth is None:
            return None
        before = original.result.depth
        return (result.depth - before).astype(np.float32) if before.shape == result.depth.shape else None

    def refresh(self, *_args) -> None:
        """Redraw the map, colour bar and texts from the state."""
        set_combo_text(self.cmap_combo, self.state.depth_cmap)
        result = self.state.result
        if result is None or result.depth is None:
            self.canvas.set_image(None)
            if result is None:
                self.canvas.set_patch_size(0)
            self.canvas.placeholder = ("The predicted depth map appears here." if result is None
                                       else "This model predicts no depth.")
            self.bar.set_scale(None, None, None)
            self.set_title("Depth")
            self.info.setText("")
            self.detail.close()
            return
        change = self.change()
        self.change_box.setVisible(change is not None)
        self.change_box.blockSignals(True)
        self.change_box.setChecked(self.state.depth_change)
        self.change_box.blockSignals(False)
        if change is not None and self.state.depth_change:
            self._draw_change(result, change)
            return
        d = result.depth
        lo, hi = float(np.nanmin(d)), float(np.nanmax(d))
        metric = result.depth_kind == "metric"
        values, lut = normalize(d), colormap_lut(self.state.depth_cmap)
        if metric or result.depth_kind == "relative":  # larger = farther
            values, lut = 1.0 - values, lut[::-1]  # near = bright
        self.canvas.set_image(apply_colormap(values, self.state.depth_cmap))
        self.bar.set_scale(lut, lo, hi, "m" if metric else "")
        self.set_title(f"Depth {muted('· ' + UNITS.get(result.depth_kind or '', 'model units'))}")
        detail = "larger = nearer · " if result.depth_kind == "relative_inverse" else ""
        span = f"nearest {lo:.3g} m, farthest {hi:.3g} m" if metric else f"range {lo:.3g} – {hi:.3g}"
        self.info.setText(f"{detail}{span} · hover for values · click to enlarge")
        self.canvas.set_marked_patch(self.state.query)
        if self.detail.isVisible():
            self._update_detail()

    def _draw_change(self, result, change: np.ndarray) -> None:
        """The knockout's change of the depth, symmetric about 0 (white), nearer blue, farther red."""
        metric = result.depth_kind == "metric"
        top = float(np.nanmax(np.abs(change))) or 1e-6
        self.canvas.set_image(apply_colormap(np.clip(0.5 + change / (2 * top), 0.0, 1.0), "coolwarm"))
        self.bar.set_scale(colormap_lut("coolwarm"), -top, top, "Δ m" if metric else "Δ")
        heads = len(self.state.knocked_out)
        about = f"· {heads} head{'s' * (heads != 1)} knocked out − whole model"
        self.set_title(f"Depth change {muted(about)}")
        unit = " m" if metric else ""
        colours = "red: farther without the heads, blue: nearer" if metric else "red: larger without the heads"
        self.info.setText(f"mean |change| {float(np.nanmean(np.abs(change))):.3g}{unit}, largest {top:.3g}{unit} · "
                          + colours)
        self.canvas.set_marked_patch(self.state.query)
        if self.detail.isVisible():
            self._update_detail()

    def open_detail(self) -> None:
        """Enlarge the depth map in a non-modal window (colour bar, value under the mouse) that follows the view."""
        result = self.state.result
        if result is None or result.depth is None:
            return
        self._update_detail()
        self.detail.show()
        self.detail.raise_()

    def _update_detail(self) -> None:
        result, bar = self.state.result, self.bar
        about = f"· {html(result.depth_model_name or result.model_name)} · {html(Path(result.source).name)}"
        self.detail.set_pixel_content(
            f"{self.title.text()} {muted(about)}",
            self.canvas.rgb, self.change() if self.state.depth_change and self.change() is not None else result.depth,
            bar.lut, bar.lo, bar.hi,
            " m" if result.depth_kind == "metric" else "", bar.title,
        )
