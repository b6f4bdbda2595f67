"""The Head atlas: every head of every layer as one point, layer across and mean attention distance (or CLS
attention entropy) up, as in Fig. 7 of the ViT paper; a click picks that layer and head and shows its map enlarged.

Definitions are those of :mod:`vitviz.features`: the mean attention distance of a head is the attention-weighted
distance in input pixels between a patch and the patches it attends to, averaged over patch queries; the entropy is
that of the CLS token's attention over the patches, in nats. Both are computed on the worker with the result.
Once the heads are ranked (Heads → Rank heads by importance), the atlas can plot each head's importance: how much
knocking it out alone lowers the shown class's probability (or, without a classifier, changes the depth map).
Ctrl-click picks heads for a knockout.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout

from ...render import normalize, overlay
from ..state import ViewState
from ..widgets import ACCENT, KNOCKED_OUT, PICKED, ImageCanvas, static_plot
from .common import LazyPanel, muted
from .knockout_bar import KnockoutButtons

__all__ = ["HeadAtlasPanel", "MEASURES"]

ABOUT = {  # the line under the plot, per measure
    "distance": "Each point is one head (hover to name it). Low distance: the head looks at neighbouring patches; "
                "high: across the image. Click a point to pick its layer and head; Ctrl-click to pick it for a "
                "knockout.",
    "entropy": "Each point is one head (hover to name it). Low entropy: the class token looks at a few patches; "
               "high: all over the image. Click a point to pick its layer and head; Ctrl-click to pick it for a "
               "knockout.",
    "importance": "Each point is one head: how many points the shown class's probability drops when that head alone is "
                  "knocked out (above 0: the head helped), measured (Heads → Rank heads by importance) or estimated to "
                  "first order (Heads → Estimate head importance). Ctrl-click points to pick heads, then Knock out.",
}

MEASURES = {"distance": ("Mean attention distance", "pixels"), "entropy": ("CLS attention entropy", "nats"),
            "importance": ("Importance (prob drop)", "pts")}


class HeadAtlasPanel(LazyPanel):
    def __init__(self, state: ViewState) -> None:
        super().__init__("Head atlas")
        self.state = state
        self.measure = "distance"
        self.measure_combo = QComboBox()
        for key, (label, _unit) in MEASURES.items():
            self.measure_combo.addItem(label, key)
        self.measure_combo.setToolTip("Mean attention distance: how far each head looks (local → global). "
                                      "Entropy: how spread out the class token's attention is. Importance: how much "
                                      "knocking the head out lowers the shown class's probability (rank or estimate "
                                      "the heads first: Heads → Rank heads by importance).")
        self.measure_combo.currentIndexChanged.connect(lambda i: self.set_measure(self.measure_combo.itemData(i)))
        self.add_header_widget(self.measure_combo)
        self.add_header_widget(KnockoutButtons(state))
        self.row = QHBoxLayout()
        self.plot = None  # built the first time the atlas is shown (a plot costs a few hundred ms to set up)
        side = QVBoxLayout()
        self.head_canvas = ImageCanvas(placeholder="Click a point to see that head's map.")
        self.head_caption = QLabel("")
        self.head_caption.setObjectName("Muted")
        self.head_caption.setWordWrap(True)
        side.addWidget(self.head_canvas, 1)
        side.addWidget(self.head_caption)
        self.row.addLayout(side, 1)
        self.body.addLayout(self.row, 1)
        self.info = QLabel(ABOUT["distance"])
        self.info.setObjectName("Muted")
        self.info.setWordWrap(True)
        self.body.addWidget(self.info)
        self.points: list[tuple[int, int]] = []  # (layer, head) of each scatter point
        state.result_changed.connect(self.refresh)
        for signal in (state.layer_changed, state.head_changed, state.attention_style_changed,
                       state.head_selection_changed, state.knockout_changed, state.importance_changed):
            signal.connect(self.refresh)

    @property
    def pg(self):  # noqa: ANN201 - the pyqtgraph module, imported when the atlas is first drawn (not at launch)
        import pyqtgraph

        return pyqtgraph

    def _build_plot(self) -> None:
        pg = self.pg
        self.plot = static_plot(self)
        item = self.plot.getPlotItem()
        item.showGrid(x=False, y=True, alpha=0.25)
        item.setLabel("bottom", "layer")
        self.scatter = pg.ScatterPlotItem(hoverable=True, tip=None, size=11, pxMode=True,
                                          hoverBrush=pg.mkBrush(ACCENT), hoverSize=14)
        self.scatter.sigClicked.connect(self._on_clicked)
        self.scatter.sigHovered.connect(self._on_hovered)
        self.reference = pg.InfiniteLine(angle=0, movable=False, pen=pg.mkPen("#8b949e", style=Qt.PenStyle.DashLine),
                                         label="uniform attention", labelOpts={"position": 0.15, "color": "#5b6470"})
        item.addItem(self.reference)
        item.addItem(self.scatter)
        self.row.insertWidget(0, self.plot, 2)

    def set_measure(self, measure: str) -> None:
        if measure in MEASURES:
            self.measure = measure
            self.measure_combo.setCurrentIndex(list(MEASURES).index(measure))
            self.info.setText(ABOUT[measure])
            self.refresh()

    def values(self) -> np.ndarray | None:
        """The plotted measure, ``[layers, heads]``, or None without a result (or, for importance, before the
        heads are ranked)."""
        shown = self.state.shown
        fs = shown.features if shown is not None else None
        if fs is None:
            return None
        if self.measure == "importance":
            imp = self.state.importance
            if imp is None:
                return None
            drop = imp.prob_drop if imp.depth_absrel is None or not np.isnan(imp.prob_drop).all() else imp.depth_absrel
            return np.nan_to_num(drop * 100.0)
        return fs.mean_distance if self.measure == "distance" else fs.cls_entropy

    def unit(self) -> tuple[str, str]:
        """The plotted measure's name and unit."""
        imp = self.state.importance
        if self.measure == "importance" and imp is not None and imp.target_label is None:
            return "Importance (depth change)", "% AbsRel"
        if self.measure == "importance" and imp is not None and imp.estimated:
            return "Importance (prob drop, first-order estimate)", "pts"
        result = self.state.result
        if self.measure == "entropy" and result is not None and not result.num_prefix_tokens:
            return "Entropy of the attention received", "nats"  # no class token (SigLIP): see vitviz.attention
        return MEASURES[self.measure]

    @staticmethod
    def x_of(layer: int, head: int, heads: int) -> float:
        """Where a head's point sits: its layer, spread a little by head so that points of a layer do not overlap."""
        return layer + (head - (heads - 1) / 2) * (0.5 / max(heads, 1))

    def point_position(self, layer: int, head: int) -> QPointF:
        """Where the point of (layer, head) is drawn, in ``self.plot.viewport()`` coordinates (for clicks in tests)."""
        values = self.values()
        view = QPointF(self.x_of(layer, head, values.shape[1]), float(values[layer, head]))
        return QPointF(self.plot.mapFromScene(self.plot.getPlotItem().getViewBox().mapViewToScene(view)))

    def draw(self) -> None:
        if self.plot is None:
            self._build_plot()
        pg, state, values = self.pg, self.state, self.values()
        if values is None:
            self.scatter.clear()
            self.points = []
            self.reference.hide()
            self.head_canvas.set_image(None)
            self.head_caption.setText("")
            rank = " · rank the heads first: Heads → Rank heads by importance (Ctrl+I)"
            self.set_title("Head atlas" + (muted(rank) if self.measure == "importance" and state.shown else ""))
            return
        fs, (layers, heads) = state.shown.features, values.shape
        label, unit = self.unit()
        self.points = [(l, h) for l in range(layers) for h in range(heads)]
        out, selected = set(state.knocked_out), state.selected_heads
        spots = []
        for l, h in self.points:
            current = l == state.layer
            picked = current and h == state.head
            pen = (pg.mkPen("#0b2a66", width=2.5) if picked else pg.mkPen(PICKED, width=3) if (l, h) in selected
                   else pg.mkPen(None))
            spots.append({
                "pos": (self.x_of(l, h, heads), float(values[l, h])), "data": (l, h),
                "brush": pg.mkBrush(KNOCKED_OUT if (l, h) in out else ACCENT if current else "#9fb3c8"),
                "symbol": "x" if (l, h) in out else "o", "pen": pen, "size": 14 if picked or (l, h) in out else 11,
            })
        self.scatter.setData(spots)
        if self.measure == "importance":
            reference, about = 0.0, "no effect"
        elif self.measure == "distance":
            reference, about = fs.uniform_distance, "uniform attention"
        else:
            reference, about = float(np.log(state.result.grid.num_patches)), "uniform attention"
        self.reference.setValue(reference)
        self.reference.label.setFormat(about)
        self.reference.show()
        item = self.plot.getPlotItem()
        item.setLabel("left", f"{label} ({unit})")
        item.getAxis("bottom").setTicks([[(float(l), str(l)) for l in range(layers)]])
        item.setXRange(-0.6, layers - 0.4, padding=0)
        top, bottom = max(float(values.max()), reference), min(float(values.min()), 0.0)
        span = top - bottom
        item.setYRange(bottom - (0.06 * span if bottom < 0 else 0.0), top + 0.08 * span + 1e-6, padding=0)
        slope = np.polyfit(np.repeat(np.arange(layers), heads), values.ravel(), 1)[0] if layers > 1 else 0.0
        trend = "rises" if slope > 0 else "falls"
        about = f"· {label.lower()} of {layers * heads} heads · on average it {trend} by {abs(slope):.2g} {unit} per layer"
        self.set_title(f"Head atlas {muted(about)}")
        self._draw_head()

    def _draw_head(self) -> None:
        state = self.state
        if state.head is None or state.result is None or state.head >= state.result.num_heads:
            self.head_canvas.set_image(None)
            self.head_caption.setText("")
            return
        result, fs, layer, head = state.result, state.shown.features, state.layer, state.head
        m = result.cls_attention[layer][head]
        self.head_canvas.set_image(overlay(result.image, normalize(m), state.cmap, state.opacity, smooth=state.smooth))
        self.head_canvas.set_patch_size(result.grid.patch_size)
        self.head_canvas.set_grid_visible(state.grid)
        imp = state.importance
        drop = "" if imp is None or np.isnan(imp.prob_drop[layer, head]) else (
            f" · knocking it out {'would lower (first-order estimate)' if imp.estimated else 'lowers'} "
            f"{imp.target_label} by {imp.prob_drop[layer, head] * 100:+.1f} pts")
        self.head_caption.setText(f"Layer {layer}, head {head}: CLS attention · mean attention distance "
                                  f"{fs.mean_distance[layer, head]:.1f} px · entropy {fs.cls_entropy[layer, head]:.2f} "
                                  f"nats{drop}")

    def _on_clicked(self, _item, points, event) -> None:
        if len(points):
            ctrl = event is not None and bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
            self.click_head(*points[0].data(), ctrl=ctrl)

    def click_head(self, layer: int, head: int, ctrl: bool = False) -> None:
        """A click on the point of (layer, head): show that head; with Ctrl, pick it for a knockout (or unpick)."""
        if ctrl:
            self.state.toggle_head_selection(layer, head)
            return
        self.state.set_layer(layer)
        self.state.set_head(head)

    def _on_hovered(self, _item, points, _event) -> None:
        if len(points):
            layer, head = points[0].data()
            label, unit = self.unit()
            value = self.values()[layer, head]
            self.state.status.emit(f"layer {layer}, head {head}: {label.lower()} {value:.3g} {unit} · click to "
                                   "show it · Ctrl-click to pick it for a knockout")
