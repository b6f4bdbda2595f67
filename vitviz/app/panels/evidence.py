"""The Class evidence panel: which patches made the model choose a class, by the chosen method.

``attention`` and ``rollout`` come from the analysis itself; ``grad-rollout`` and ``relevance`` need the gradients
of the class's logit, which the worker computes for the top five classes at once (one forward, one batched
backward) when this panel is first shown for an image, and for any other class when it is chosen. Switching class
among those held, or method, redraws with numpy only (:meth:`vitviz.explain.Evidence.map`).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QHBoxLayout

from ...errors import VitvizError
from ...explain import DEFAULT_DISCARD, GRADIENT_METHODS, Evidence, mass_threshold_mask
from ...render import colormap_lut, overlay
from ..state import ViewState
from ..widgets import format_percent
from .common import LazyPanel, html, muted
from .threshold import ThresholdControl, apply_threshold

__all__ = ["EvidencePanel", "METHOD_NAMES"]

METHOD_NAMES = {"relevance": "Chefer relevance", "grad-rollout": "Gradient-weighted rollout",
                "rollout": "Attention rollout", "attention": "CLS attention (this layer)"}
TOP = 5  # classes whose gradients are computed together when the panel first needs them


class EvidencePanel(LazyPanel):
    def __init__(self, state: ViewState) -> None:
        super().__init__("Class evidence")
        self.state = state
        self.values: np.ndarray | None = None  # the drawn map [rows, cols], summing to 1
        self.class_combo = QComboBox()
        self.class_combo.setToolTip("The class to explain (or click a bar of the predictions)")
        self.class_combo.setMinimumContentsLength(14)
        self.class_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.class_combo.activated.connect(lambda i: state.set_target(self.class_combo.itemData(i)))
        self.add_header_widget(self.class_combo)
        controls = QHBoxLayout()
        self.method_combo = QComboBox()
        for key, label in METHOD_NAMES.items():
            self.method_combo.addItem(label, key)
        self.method_combo.setToolTip("Relevance (Chefer et al. 2021) and gradient-weighted rollout are specific to "
                                     "the class; CLS attention and rollout are the same for every class")
        self.method_combo.currentIndexChanged.connect(lambda i: state.set_method(self.method_combo.itemData(i)))
        controls.addWidget(self.method_combo)
        self.fusion_combo = QComboBox()
        self.fusion_combo.addItems(["mean", "max", "min"])
        self.fusion_combo.setToolTip("How the heads of a layer are combined in the rollout")
        self.discard = QDoubleSpinBox()
        self.discard.setRange(0.0, 0.99)
        self.discard.setSingleStep(0.05)
        self.discard.setPrefix("discard ")
        self.discard.setToolTip("Share of the weakest attention links dropped in each layer of the rollout")
        self.fusion_combo.currentTextChanged.connect(self._rollout_options)
        self.discard.valueChanged.connect(self._rollout_options)
        controls.addWidget(self.fusion_combo)
        controls.addWidget(self.discard)
        controls.addStretch(1)
        self.body.addLayout(controls)
        self.body.addWidget(ThresholdControl(state))
        self.add_map(state, "Which patches made the model choose a class appears here.")
        self._asked: set[tuple[int, int, float | None]] = set()  # (result id, class, discard) asked of the worker

        state.result_changed.connect(self._on_result)
        for signal in (state.evidence_changed, state.layer_changed, state.attention_style_changed):
            signal.connect(self.refresh)

    def _rollout_options(self, *_args) -> None:
        discard = self.discard.value()
        default = DEFAULT_DISCARD.get(self.state.method)
        self.state.set_rollout_options(self.fusion_combo.currentText(),
                                       None if default is not None and abs(discard - default) < 1e-9 else discard)

    def _on_result(self, shown) -> None:
        self.class_combo.clear()
        if shown is not None:
            result = shown.result
            if result.probabilities is not None:
                for i in np.argsort(-result.probabilities, kind="stable"):
                    self.class_combo.addItem(f"{result.labels[i]}  {format_percent(float(result.probabilities[i]))}",
                                             int(i))
        self.class_combo.setEnabled(self.class_combo.count() > 0)
        self.refresh()

    def draw(self) -> None:
        """Redraw from the state; asks for missing gradients (only while visible: they cost a backward pass)."""
        state = self.state
        self._sync_controls()
        result = state.result
        if result is None or result.attention is None:
            self.values = None
            self.canvas.set_image(None)
            self.legend.set_scale(None, None, None)
            self.set_title("Class evidence")
            self.info.setText("")
            return
        method, target = state.method, state.target_class
        gradient = method in GRADIENT_METHODS
        if gradient and target is None:
            self._show_message(result, "Class evidence needs a classifier: this model has none. CLS attention and "
                                       "rollout still show where it looks.")
            return
        evidence = state.evidence
        if gradient and (evidence is None or not evidence.has(target, method, state.discard_ratio)):
            self._ask(result, target)
            self._show_message(result, f"Computing the evidence for “{result.labels[target]}” (one forward and one "
                                       "backward pass on the worker)…")
            return
        source = evidence if evidence is not None else Evidence.from_result(result)
        layer = state.layer if method == "attention" else None
        if not source.map_is_cheap(method, layer, state.head_fusion, state.discard_ratio):
            state.request_map(source, method, layer, state.head_fusion, state.discard_ratio)
            self._show_message(result, f"Computing the rollout ({state.head_fusion} of the heads"
                                       f"{'' if not state.discard_ratio else f', {state.discard_ratio:.0%} discarded'})"
                                       " on the worker: a sweep over every layer's attention…")
            return
        try:
            values = source.map(method, target, layer=layer, head_fusion=state.head_fusion,
                                discard_ratio=state.discard_ratio)
        except VitvizError as exc:
            self._show_message(result, str(exc))
            return
        self.values = values
        shown = apply_threshold(values, state.threshold)
        hi = float(values.max()) or 1.0
        self.canvas.set_image(overlay(result.image, shown / hi, state.cmap, state.opacity, smooth=state.smooth))
        self.canvas.set_marked_patch(state.query)
        self.legend.set_scale(colormap_lut(state.cmap), None, None,
                              end_labels=("0 % of the evidence", f"{hi:.1%} of the evidence in one patch"))
        what = METHOD_NAMES[method] + (f", layer {state.layer}" if method == "attention" else "")
        if target is not None:
            p = float(result.probabilities[target])
            title = f"Evidence for <span style='color:#1f6feb'>{html(result.labels[target])}</span> "
            self.set_title(title + muted(f"{format_percent(p)} · {what}"))
        else:
            self.set_title(f"Where the model looks {muted('· ' + what)}")
        kept = ""
        if state.threshold is not None:
            n = int(mass_threshold_mask(values, state.threshold).sum())
            kept = f" Shown: the {n} of {values.size} patches that hold {state.threshold:.0%} of it."
        specific = "specific to this class" if gradient else "the same for every class"
        self.info.setText(f"{specific.capitalize()}; brighter patches count more."
                          + (f" Gradients: {evidence.timings.get('forward_backward', 0):.0f} ms."
                             if gradient and evidence is not None else "") + kept)

    def _show_message(self, result, text: str) -> None:
        self.values = None
        self.canvas.set_image(result.image)
        self.legend.set_scale(None, None, None)
        self.set_title("Class evidence")
        self.info.setText(text)

    def _ask(self, result, target: int) -> None:
        """Ask the worker for the gradients of the top classes (and ``target``), each class once per result."""
        top = [int(i) for i in np.argsort(-result.probabilities, kind="stable")[:TOP]]
        discard = self.state.discard_ratio if self.state.method == "grad-rollout" else None
        wanted = [c for c in dict.fromkeys([target, *top]) if (id(result), c, discard) not in self._asked]
        if target in wanted:
            self._asked.update((id(result), c, discard) for c in wanted)
            self.state.request_evidence(wanted, discard)

    def _sync_controls(self) -> None:
        state = self.state
        for box, value in ((self.method_combo, list(METHOD_NAMES).index(state.method)),
                           (self.fusion_combo, ["mean", "max", "min"].index(state.head_fusion))):
            box.blockSignals(True)
            box.setCurrentIndex(value)
            box.blockSignals(False)
        rollout = state.method in ("rollout", "grad-rollout")
        self.fusion_combo.setVisible(state.method == "rollout")
        self.discard.setVisible(rollout)
        self.discard.blockSignals(True)
        self.discard.setValue(state.discard_ratio if state.discard_ratio is not None
                              else DEFAULT_DISCARD.get(state.method, 0.0))
        self.discard.blockSignals(False)
        target = state.target_class
        index = self.class_combo.findData(target) if target is not None else -1
        if index >= 0:
            self.class_combo.setCurrentIndex(index)

    def describe(self, patch: int, row: int, col: int) -> str:
        return (f"{METHOD_NAMES[self.state.method]}: patch #{patch} (row {row}, col {col}) holds "
                f"{100 * float(self.values[row, col]):.2f} % of the evidence")
