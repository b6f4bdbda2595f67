"""The Features panel: what the patch tokens themselves hold at the chosen layer, from the same forward pass.

- PCA colours: the first three principal components of the patch tokens as red, green and blue (DINOv2's picture),
  optionally over the foreground only (see :func:`vitviz.features.pca_rgb`).
- Similarity: the cosine similarity of the selected patch's token to every patch token (click a patch).
- Token norms: the L2 norm of every patch token, with the prefix tokens (CLS, registers) listed beside it.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout

from ...render import colormap_lut, overlay, overlay_rgb
from ..state import ViewState
from .common import LazyPanel, muted
from .layer_slider import LayerSlider

__all__ = ["FeaturesPanel", "MODES"]

MODES = {"pca": "PCA colours", "similarity": "Patch similarity", "norms": "Token norms"}
SCALINGS = {"minmax": "min–max", "percentile": "2–98 percentile"}


class FeaturesPanel(LazyPanel):
    def __init__(self, state: ViewState) -> None:
        super().__init__("Features")
        self.state = state
        self.mode = "pca"
        self.values: np.ndarray | None = None  # the drawn map: [rows, cols] or [rows, cols, 3]
        self.mode_combo = QComboBox()
        for key, label in MODES.items():
            self.mode_combo.addItem(label, key)
        self.mode_combo.setToolTip("What to show about the patch tokens of the chosen layer")
        self.mode_combo.currentIndexChanged.connect(lambda i: self.set_mode(self.mode_combo.itemData(i)))
        self.add_header_widget(self.mode_combo)
        controls = QHBoxLayout()
        controls.addWidget(LayerSlider(state), 2)
        self.foreground = QCheckBox("Foreground only")
        self.foreground.setToolTip("PCA over the patches whose first component is above its mean (DINOv2's trick "
                                   "to drop the background); the rest is black")
        self.foreground.toggled.connect(lambda _on: self.refresh())
        controls.addWidget(self.foreground)
        self.scaling = QComboBox()
        for key, label in SCALINGS.items():
            self.scaling.addItem(label, key)
        self.scaling.setToolTip("How each component is scaled to 0–1: its full range, or its 2nd–98th percentile "
                                "(robust to a few extreme patches)")
        self.scaling.currentIndexChanged.connect(lambda _i: self.refresh())
        controls.addWidget(self.scaling)
        self.body.addLayout(controls)
        self.add_map(state, "Patch features appear here.")

        for signal in (state.result_changed, state.layer_changed, state.query_changed, state.attention_style_changed):
            signal.connect(self.refresh)

    def set_mode(self, mode: str) -> None:
        if mode in MODES:
            self.mode = mode
            self.mode_combo.setCurrentIndex(list(MODES).index(mode))
            self.refresh()

    def draw(self) -> None:
        """Redraw the map for the state's layer and query; a hidden panel only notes that it must redraw."""
        state, pca = self.state, self.mode == "pca"
        self.foreground.setVisible(pca)
        self.scaling.setVisible(pca)
        shown = state.shown
        fs = shown.features if shown is not None else None
        if fs is None:
            self.canvas.set_image(None)
            self.canvas.placeholder = ("Patch features appear here." if shown is None
                                       else "This result holds no patch features: the model has no module that "
                                       "holds one block alone, whose output they would be."
                                       if shown.result.hidden_states is None
                                       else "This result holds no patch features.")
            self.legend.set_scale(None, None, None)
            self.set_title("Features")
            self.info.setText("")
            return
        result, layer = shown.result, state.layer
        self.canvas.set_marked_patch(state.query)
        if pca:
            self._draw_pca(fs, result, layer)
        elif self.mode == "similarity":
            self._draw_similarity(fs, result, layer)
        else:
            self._draw_norms(fs, result, layer)

    def _draw_pca(self, fs, result, layer: int) -> None:
        rgb = fs.pca(layer, self.foreground.isChecked(), self.scaling.currentData())
        self.values = rgb
        self.canvas.set_image(overlay_rgb(result.image, rgb, max(self.state.opacity, 0.5), smooth=False))
        self.legend.set_scale(None, None, None)
        self.set_title(f"Features {muted(f'· layer {layer} · first three principal components of the patch tokens')}")
        self.info.setText("Red, green and blue are the three main directions in which this layer's patch tokens "
                          "differ; patches of one colour hold similar features. Opacity at least 50 %.")

    def _draw_similarity(self, fs, result, layer: int) -> None:
        q = self.state.query
        if q is None:
            self.values = None
            self.canvas.set_image(result.image)
            self.legend.set_scale(None, None, None)
            self.set_title(f"Features {muted(f'· layer {layer} · patch similarity')}")
            self.info.setText("Click a patch (here or on the input) to see which patch tokens are like it.")
            return
        sim = fs.similarity(layer, q)
        self.values = sim
        self.canvas.set_image(overlay(result.image, (sim + 1.0) / 2.0, self.state.cmap, self.state.opacity,
                                      smooth=self.state.smooth))
        self.legend.set_scale(colormap_lut(self.state.cmap), None, None,
                              end_labels=("−1: opposite", "cosine similarity to the selected patch: 1, the same"))
        self.set_title(f"Features {muted(f'· layer {layer} · tokens like patch #{q}')}")
        self.info.setText(f"Most similar other patch: {float(np.sort(sim.ravel())[-2]):.2f} · least similar: "
                          f"{float(sim.min()):.2f} · click another patch to compare, Esc to clear")

    def _draw_norms(self, fs, result, layer: int) -> None:
        prefix = result.num_prefix_tokens
        norms = fs.token_norms[layer]
        patch = norms[prefix:].reshape(result.grid.rows, result.grid.cols)
        self.values = patch
        lo, hi = float(patch.min()), float(patch.max())
        self.canvas.set_image(overlay(result.image, (patch - lo) / max(hi - lo, 1e-12), self.state.cmap,
                                      self.state.opacity, smooth=False))
        self.legend.set_scale(colormap_lut(self.state.cmap), None, None,
                              end_labels=(f"norm {lo:.3g}", f"L2 norm of the patch token: {hi:.3g}"))
        names = ["CLS"] + [f"register {i}" for i in range(prefix - 1)]
        listed = " · ".join(f"{n} {v:.1f}" for n, v in zip(names, norms[:prefix]))
        self.set_title(f"Features {muted(f'· layer {layer} · token norms')}")
        self.info.setText(f"Prefix tokens: {listed} · patch tokens: median {float(np.median(patch)):.1f}, "
                          f"max {hi:.1f} (patches far above the rest are the high-norm tokens of the registers paper)")

    def describe(self, patch: int, row: int, col: int) -> str:
        v = self.values[row, col]
        text = f"RGB {v[0]:.2f} {v[1]:.2f} {v[2]:.2f}" if np.ndim(v) else f"{float(v):.3g}"
        return f"{MODES[self.mode]}, layer {self.state.layer}: patch #{patch} (row {row}, col {col}) = {text}"
