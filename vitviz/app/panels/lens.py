"""The Logit lens panel: what the model would answer at every layer (vitviz.lens), as a plot of the top classes'
probability by layer, and the chosen class's probability from every patch token at the chosen layer."""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtWidgets import QWidget

from ...render import colormap_lut, overlay
from ..state import ViewState
from ..widgets import static_plot
from .common import LazyPanel, html, muted
from .layer_slider import LayerSlider

__all__ = ["LensPanel", "lens_sentence"]

LINE_COLORS = ("#1f6feb", "#d1242f", "#2da44e", "#bf8700", "#8250df", "#57606a")


def lens_sentence(lens: Any) -> str:
    """The lens in words: what the model thinks at the first layer where another class led, and from which layer on
    it gives its final answer (e.g. "at layer 1 it thinks sphere; from layer 4 on, capsule")."""
    top = lens.cls_probabilities.argmax(axis=1)
    final = int(lens.classes[0])
    since = lens.first_layer_of(final)
    name = dict(zip(lens.classes.tolist(), lens.labels))
    label = lambda i: name.get(int(i), f"class {int(i)}").replace("_", " ")  # noqa: E731
    if since is None:
        return f"Its final answer, {label(final)}, is never its top class before the last layer."
    if since == 0:
        return f"From the first layer on, its top class is {label(final)}."
    before = int(top[since - 1])
    return (f"At layer {since - 1} it thinks {html(label(before))} "
            f"({lens.cls_probabilities[since - 1, before]:.0%}); from layer {since} on, {html(label(final))}.")


class LensPanel(LazyPanel):
    def __init__(self, state: ViewState) -> None:
        super().__init__("Logit lens")
        self.state = state
        self.values: np.ndarray | None = None
        self.plot: Any = None  # pyqtgraph, made when first drawn (not at launch)
        self._plot_slot = QWidget()
        self._plot_slot.setMinimumHeight(150)
        self.body.addWidget(self._plot_slot, 1)
        self.body.addWidget(LayerSlider(state))
        self.add_map(state, "The logit lens appears here.")
        for signal in (state.result_changed, state.layer_changed, state.target_changed, state.attention_style_changed):
            signal.connect(self.refresh)

    def _build_plot(self) -> None:
        import pyqtgraph as pg
        from PySide6.QtWidgets import QVBoxLayout

        self.plot = static_plot(self)
        item = self.plot.getPlotItem()
        item.setLabel("bottom", "layer")
        item.setLabel("left", "probability")
        # the legend in three columns above the curves: the y axis runs to 1.45 with ticks up to 1 only
        item.setYRange(0.0, 1.45, padding=0.0)
        item.getAxis("left").setTicks([[(v, f"{v:g}") for v in (0.0, 0.25, 0.5, 0.75, 1.0)], []])
        self.plot_legend = item.addLegend(offset=(8, 2), labelTextSize="9pt", colCount=3,
                                          labelTextColor=self.palette().windowText().color())
        self.layer_line = pg.InfiniteLine(angle=90, pen=pg.mkPen("#888888", width=1, style=pg.QtCore.Qt.DashLine))
        layout = QVBoxLayout(self._plot_slot)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)

    def draw(self) -> None:
        state = self.state
        shown = state.shown
        lens = getattr(shown, "lens", None) if shown is not None else None
        if lens is None:
            self.values = None
            self.canvas.set_image(None)
            self.canvas.placeholder = ("The logit lens appears here." if shown is None
                                       else getattr(shown, "lens_problem", "")
                                       or "The logit lens needs a model with a classifier.")
            self.legend.set_scale(None, None, None)
            self.set_title("Logit lens")
            self.info.setText("")
            if self.plot is not None:
                self.plot.getPlotItem().clear()
            return
        if self.plot is None:
            self._build_plot()
        self._draw_plot(lens, state.layer)
        result, layer = shown.result, state.layer
        target = state.target_class
        where = np.nonzero(lens.classes == target)[0] if target is not None else []
        k = int(where[0]) if len(where) else 0
        name = lens.labels[k].replace("_", " ")
        values = lens.patch_map(layer)[:, :, k]
        self.values = values
        hi = float(values.max()) or 1.0
        self.canvas.set_marked_patch(state.query)
        self.canvas.set_image(overlay(result.image, values / hi, state.cmap, state.opacity, smooth=state.smooth))
        self.legend.set_scale(colormap_lut(state.cmap), None, None,
                              end_labels=("0", f"{hi:.1%}: p({name}) from one patch token"))
        self.set_title(f"Logit lens {muted(f'· layer {layer} · {html(name)} from each patch token')}")
        note = "" if len(where) or target is None else (
            f" (the chosen class is not among the top {len(lens.classes)}: showing {html(name)})")
        self.info.setText(lens_sentence(lens) + " The map: the probability of the class from each patch token at "
                          "this layer, through the final norm and classifier." + note)

    def _draw_plot(self, lens: Any, layer: int) -> None:
        import pyqtgraph as pg

        item = self.plot.getPlotItem()
        item.clear()
        self.plot_legend.clear()
        layers = np.arange(lens.num_layers)
        for i, (cls, name) in enumerate(zip(lens.classes.tolist(), lens.labels)):
            item.plot(layers, lens.cls_probabilities[:, cls], name=name.replace("_", " "),
                      pen=pg.mkPen(LINE_COLORS[i % len(LINE_COLORS)], width=2.5 if i == 0 else 1.5),
                      symbol="o", symbolSize=5, symbolBrush=LINE_COLORS[i % len(LINE_COLORS)])
        self.layer_line.setValue(layer)
        item.addItem(self.layer_line)
        item.setXRange(-0.3, lens.num_layers - 0.7, padding=0)

    def describe(self, patch: int, row: int, col: int) -> str:
        return f"Logit lens, layer {self.state.layer}: patch #{patch} (row {row}, col {col}) gives " \
               f"{float(self.values[row, col]):.1%}"
