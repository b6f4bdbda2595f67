"""The Attention panel: every head's map of the chosen layer, their mean and the rollout, with the layer slider and
the colour controls; a click enlarges a map in its own window."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QPushButton, QSlider

from ...render import COLORMAPS, colormap_lut, overlay
from ..state import ViewState
from ..widgets import KNOCKED_OUT, PICKED, ColorBar, MapDialog, Panel, TileGrid
from .common import WrappedLabel, combo, set_combo_text
from .knockout_bar import KnockoutButtons
from .layer_slider import LayerSlider
from .threshold import ThresholdControl, apply_threshold

__all__ = ["AttentionPanel"]


class AttentionPanel(Panel):
    def __init__(self, state: ViewState) -> None:
        super().__init__("Attention")
        self.state = state
        self.values: list[np.ndarray] = []  # the raw map of each tile, as drawn
        self.ranges: list[tuple[float, float]] = []  # the value range each tile's colours span
        self.detail_tile: int | None = None

        self.mode_chip = QLabel("CLS")
        self.mode_chip.setObjectName("ModeChip")
        self.header.insertWidget(0, self.mode_chip)
        self.cls_button = QPushButton("Back to CLS  (Esc)")
        self.cls_button.setToolTip("Show the CLS token's attention again")
        self.cls_button.clicked.connect(lambda: state.set_query(None))
        self.cls_button.hide()
        self.add_header_widget(self.cls_button)
        self.knockout_buttons = KnockoutButtons(state)
        self.add_header_widget(self.knockout_buttons)
        # two rows of controls, so that the panel fits a 1280-pixel window: layer and opacity; threshold and colours
        self.body.addLayout(self._build_controls())
        self.threshold = ThresholdControl(state)
        second = QHBoxLayout()
        second.setSpacing(8)
        second.addWidget(self.threshold, 1)
        self.pool_box = QCheckBox("Pooling head")
        self.pool_box.setToolTip("This model has no class token: its scores read a pooled token, made by a learnt "
                                 "query attending to every patch. Checked: that query's attention, per head. "
                                 "Unchecked: the chosen layer's attention each patch receives, averaged over all "
                                 "queries")
        self.pool_box.setChecked(state.pool_view)
        self.pool_box.toggled.connect(state.set_pool_view)
        self.pool_box.hide()
        second.addWidget(self.pool_box)
        second.addWidget(self.cmap_combo)
        second.addWidget(self.norm_combo)
        self.body.addLayout(second)
        self.tiles = TileGrid(placeholder="Attention maps of every head appear here.")
        self.tiles.tile_clicked.connect(self.open_detail)
        self.tiles.tile_ctrl_clicked.connect(self._toggle_head)
        self.tiles.tile_hovered.connect(self._on_tile_hover)
        self.body.addWidget(self.tiles, 1)
        self.legend = ColorBar(Qt.Orientation.Horizontal)
        self.body.addWidget(self.legend)
        hint = WrappedLabel("Click a map to enlarge it · Ctrl-click heads to knock them out · click a patch of the "
                            "input to see what that patch attends "
                            "to · ← → change the layer")
        hint.setObjectName("Muted")
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.body.addWidget(hint)
        self.detail = MapDialog(self)
        self.detail.finished.connect(lambda _r: self._set_detail_tile(None))
        self._clear()

        state.result_changed.connect(self._on_result)
        state.layer_changed.connect(self.refresh)
        state.query_changed.connect(lambda _q: self.refresh())
        state.attention_style_changed.connect(self.refresh)
        state.hover_changed.connect(self._on_hover)
        state.grid_changed.connect(self._on_grid)
        state.head_selection_changed.connect(lambda _h: self._mark_heads())
        state.knockout_changed.connect(lambda _h: self._mark_heads())

    def _build_controls(self) -> QHBoxLayout:
        state = self.state
        controls = QHBoxLayout()
        controls.setSpacing(8)
        self.layer_control = LayerSlider(state)
        self.layer_slider = self.layer_control.slider
        controls.addWidget(self.layer_control, 2)
        controls.addSpacing(10)
        controls.addWidget(QLabel("Opacity"))
        self.alpha_slider = QSlider(Qt.Orientation.Horizontal)
        self.alpha_slider.setRange(0, 100)
        self.alpha_slider.setValue(int(round(state.opacity * 100)))
        self.alpha_slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.alpha_slider.setMinimumWidth(80)
        self.alpha_slider.setMaximumWidth(140)
        self.alpha_slider.setToolTip("Opacity of the attention overlay over the image")
        self.alpha_slider.valueChanged.connect(lambda v: state.set_opacity(v / 100.0))
        controls.addWidget(self.alpha_slider, 1)
        self.alpha_label = QLabel(f"{int(round(state.opacity * 100))}%")
        self.alpha_label.setMinimumWidth(36)
        controls.addWidget(self.alpha_label)
        controls.addSpacing(10)
        self.cmap_combo = combo(COLORMAPS, state.cmap, "Colormap of the attention maps")
        self.cmap_combo.currentTextChanged.connect(state.set_colormap)
        self.norm_combo = QComboBox()
        self.norm_combo.addItem("per head", "head")
        self.norm_combo.addItem("per layer", "layer")
        self.norm_combo.setCurrentIndex(0 if state.normalisation == "head" else 1)
        self.norm_combo.setToolTip("Colour scale: each head's own range, or one range for the whole layer")
        self.norm_combo.currentIndexChanged.connect(lambda i: state.set_normalisation(self.norm_combo.itemData(i)))
        return controls

    # ---------------------------------------------------------------------------------------------- drawing

    def _clear(self) -> None:
        self.tiles.set_count(0)
        self.legend.set_scale(None, None, None)
        self.mode_chip.hide()
        self.cls_button.hide()
        self.set_title("Attention")
        self.values, self.ranges = [], []

    def _on_result(self, shown) -> None:
        if shown is None:
            self._clear()
            return
        result = shown.result
        h, w = result.image.shape[:2]
        self.tiles.set_aspect(w / h)
        self.tiles.set_count(result.num_heads + 2 if result.num_layers else 0)
        if self.detail_tile is not None and self.detail_tile >= len(self.tiles.tiles):
            self.detail.close()
        for canvas in (*self.tiles.tiles, self.detail.canvas):
            canvas.set_patch_size(result.grid.patch_size)
            canvas.set_grid_visible(self.state.grid)
            canvas.set_hover_patch(None)
        self.refresh()


    def _overlay(self, image: np.ndarray, values: np.ndarray, lo: float | np.ndarray,
                 hi: float | np.ndarray) -> np.ndarray:
        """``values`` scaled from [lo, hi] to the colormap, drawn over ``image`` with the current view settings; a
        stack of maps ``[K, h, w]`` with ``lo``, ``hi`` of shape ``[K, 1, 1]`` is drawn in one pass."""
        v01 = np.clip((values - lo) / np.maximum(hi - lo, 1e-12), 0.0, 1.0)
        return overlay(image, v01, self.state.cmap, self.state.opacity, smooth=self.state.smooth)

    def refresh(self, *_args) -> None:
        """Redraw every tile, the legend, the title and the enlarged map from the state."""
        state = self.state
        self._sync_style_controls()
        shown = state.shown
        if shown is None or not self.tiles.tiles or shown.result.num_layers == 0:
            return
        result, layer, query = shown.result, state.layer, state.query
        heads, mean, roll = state.attention_maps()
        if state.normalisation == "layer":
            lo, hi = float(min(heads.min(), mean.min())), float(max(heads.max(), mean.max()))
            ranges = [(lo, hi)] * (len(heads) + 1)
        else:
            ranges = [(float(m.min()), float(m.max())) for m in heads] + [(float(mean.min()), float(mean.max()))]
        ranges.append((float(roll.min()), float(roll.max())))
        values = [*heads, mean, roll]
        lo, hi = (np.array(r, dtype=np.float32)[:, None, None] for r in zip(*ranges))
        maps = np.stack([apply_threshold(v, state.threshold) for v in values])
        for tile, rgb in zip(self.tiles.tiles, self._overlay(result.image, maps, lo, hi)):  # all maps in one pass
            tile.set_image(rgb)
            tile.set_marked_patch(query)
        n = len(heads)
        self._mark_heads()
        self.tiles.tiles[n].set_caption("mean of heads")
        self.tiles.tiles[n + 1].set_caption(f"rollout 0–{layer}")
        self.values, self.ranges = values, ranges

        lut = colormap_lut(state.cmap)
        if state.normalisation == "layer":
            self.legend.set_scale(lut, ranges[0][0], ranges[0][1],
                                  "attention weight (one scale for the layer; rollout: its own)")
        else:
            self.legend.set_scale(lut, None, None, end_labels=("low (each map's min)", "high (each map's max)"))
        self._update_mode(n)
        self._update_detail()

    def _mark_heads(self) -> None:
        """Caption and frame the heads of the layer that are picked for a knockout or knocked out."""
        state = self.state
        if state.shown is None or len(self.tiles.tiles) < 2:
            return
        out = set(state.knocked_out)
        for i, tile in enumerate(self.tiles.tiles[:-2]):
            key = (state.layer, i)
            mark = KNOCKED_OUT if key in out else PICKED if key in state.selected_heads else None
            tile.set_mark(mark)
            tile.set_caption(f"head {i}" + (" · knocked out" if key in out else " · picked" if mark else ""))

    def _toggle_head(self, tile: int) -> None:
        """Ctrl-click on a head's tile: pick it for a knockout, or unpick it."""
        if self.state.shown is not None and tile < len(self.tiles.tiles) - 2:
            self.state.toggle_head_selection(self.state.layer, tile)

    def _sync_style_controls(self) -> None:
        state = self.state
        percent = int(round(state.opacity * 100))
        self.alpha_label.setText(f"{percent}%")
        if self.alpha_slider.value() != percent:
            self.alpha_slider.blockSignals(True)
            self.alpha_slider.setValue(percent)
            self.alpha_slider.blockSignals(False)
        set_combo_text(self.cmap_combo, state.cmap)
        self.norm_combo.blockSignals(True)
        self.norm_combo.setCurrentIndex(0 if state.normalisation == "head" else 1)
        self.norm_combo.blockSignals(False)

    def _update_mode(self, heads: int) -> None:
        state = self.state
        muted = "font-weight:400;color:#5b6470"
        pooled = getattr(state.result, "pool_attention", None) is not None
        self.pool_box.setVisible(pooled)
        if state.query is None and state.shows_pool:
            self.mode_chip.setText("POOL")
            self._chip_style("background: #efe7fc; color: #5a2fb0;")
            self.mode_chip.setToolTip("Showing what the pooled token (the one scored against the labels) attends to")
            self.set_title(f"Attention <span style='{muted}'>· pooling head · what the scored token looks at, "
                           f"{heads} heads · rollout 0–{state.layer}: attention received</span>")
            self.cls_button.hide()
        elif state.query is None and pooled:
            self.mode_chip.setText("RECEIVED")
            self._chip_style("background: #efe7fc; color: #5a2fb0;")
            self.mode_chip.setToolTip("No class token: each patch's attention received from every query, averaged")
            self.set_title(f"Attention <span style='{muted}'>· layer {state.layer} · attention each patch receives "
                           f"(no class token), {heads} heads</span>")
            self.cls_button.hide()
        elif state.query is None:
            self.mode_chip.setText("CLS")
            self._chip_style("background: #e7eefc; color: #1f4fb0;")
            self.mode_chip.setToolTip("Showing what the CLS token attends to")
            self.set_title(f"Attention <span style='{muted}'>· layer {state.layer} · what the class token looks at, "
                           f"{heads} heads</span>")
            self.cls_button.hide()
        else:
            r, c = divmod(state.query, state.result.grid.cols)
            self.mode_chip.setText(f"Patch #{state.query} query")
            self._chip_style("background: #d9f7fb; color: #006a7a;")
            self.mode_chip.setToolTip("Showing what one patch attends to; Esc returns to CLS")
            self.set_title(f"Attention <span style='{muted}'>· layer {state.layer} · what patch #{state.query} "
                           f"(row {r}, col {c}) looks at, {heads} heads</span>")
            self.cls_button.show()
        self.mode_chip.show()

    def _chip_style(self, style: str) -> None:
        """Set the chip's colours when they change (a style sheet re-polishes the chip and relayouts the panel:
        too slow to repeat for every live frame)."""
        if self.mode_chip.styleSheet() != style:
            self.mode_chip.setStyleSheet(style)

    def tile_count(self) -> int:
        """Number of maps shown: one per head, plus the mean over heads and the rollout (0 before a result)."""
        return len(self.tiles.tiles) if self.state.shown is not None else 0

    def tile_name(self, tile: int, short: bool = False) -> str:
        n = len(self.tiles.tiles) - 2
        if tile < n:
            return f"head {tile}"
        if tile == n:
            return "mean" if short else "mean of heads"
        return "rollout" if short else f"rollout 0–{self.state.layer}"

    # ---------------------------------------------------------------------------------------------- enlarged map

    def open_detail(self, tile: int) -> None:
        """Enlarge one tile (head, mean or rollout) in a non-modal window that follows the view."""
        if self.state.shown is None or not 0 <= tile < len(self.tiles.tiles):
            return
        self._set_detail_tile(tile)
        self._update_detail()
        self.detail.show()
        self.detail.raise_()

    def _set_detail_tile(self, tile: int | None) -> None:
        self.detail_tile = tile
        for i, t in enumerate(self.tiles.tiles):
            t.set_selected(i == tile)

    def _update_detail(self) -> None:
        tile, state = self.detail_tile, self.state
        if tile is None or state.shown is None or tile >= len(self.tiles.tiles) or not self.values:
            return
        mode = "CLS → patches" if state.query is None else f"patch #{state.query} → patches"
        lo, hi = self.ranges[tile]
        # Drawn over the sharper copy of the image where there is one, so zooming in shows the photo's detail.
        image, scale = state.result.detail_image()
        self.detail.set_content(
            tile,
            f"Layer {state.layer} · {self.tile_name(tile)} · <span style='color:#1f6feb'>{mode}</span>",
            self._overlay(image, apply_threshold(self.values[tile], state.threshold), lo, hi),
            self.values[tile],
            colormap_lut(state.cmap),
            lo,
            hi,
            state.result.grid.patch_size * scale,
            state.grid,
            state.query,
            "weight",
        )

    # ---------------------------------------------------------------------------------------------- hover

    def _on_hover(self, patch) -> None:
        for tile in self.tiles.tiles:
            tile.set_hover_patch(patch)
        self.detail.canvas.set_hover_patch(patch)

    def _on_grid(self, visible: bool) -> None:
        for canvas in (*self.tiles.tiles, self.detail.canvas):
            canvas.set_grid_visible(visible and self.state.shown is not None)

    def _on_tile_hover(self, tile: int, pos) -> None:
        state = self.state
        patch = state.patch_at(pos)
        state.set_hover(patch)
        if patch is None or not self.values:
            state.status.emit("")
            return
        r, c = divmod(patch, state.result.grid.cols)
        src = "CLS" if state.query is None else f"patch #{state.query}"
        state.status.emit(f"{self.tile_name(tile, short=True)}, layer {state.layer}: {src} → patch #{patch} "
                          f"(row {r}, col {c}) = {float(self.values[tile][r, c]):.4g}  ·  click to enlarge")
