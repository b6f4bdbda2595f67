"""What the user is looking at, as one evented model: the panels read it and redraw when it signals a change.

A panel changes the view only by calling a ``set_*`` method here; it never calls another panel. Every setter emits
its signal only when the value really changed, so panels can listen freely without loops.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QSettings, Signal

from ..render import COLORMAPS
from .worker import ModelSummary, Preview, Shown

__all__ = ["ViewState", "NORMALISATIONS"]

NORMALISATIONS = ("head", "layer")
# the view settings that persist between sessions: attribute -> (QSettings key, default)
SAVED = {"cmap": ("view/cmap", "inferno"), "depth_cmap": ("view/depth_cmap", "turbo"), "opacity": ("view/opacity", 0.6),
         "normalisation": ("view/normalise", "head"), "grid": ("view/grid", True), "smooth": ("view/smooth", True)}


class ViewState(QObject):
    """The displayed result and every view setting; signals tell the panels what changed.

    Signals:
        result_changed(shown): a new :class:`~vitviz.app.worker.Shown` (or None: nothing analysed).
        preview_changed(preview): an image shown without analysis (no model loaded), or None.
        model_changed(summary): the loaded model's :class:`~vitviz.app.worker.ModelSummary`.
        layer_changed(layer), query_changed(patch or None), hover_changed(patch or None).
        attention_style_changed(): colormap, opacity, normalisation or smoothing of the attention maps.
        depth_style_changed(): the depth colormap.
        grid_changed(visible): the patch grid overlay.
        head_changed(head or None): the head picked for a closer look (e.g. in the head atlas).
        target_changed(class index or None): the class whose evidence is shown (None: the top prediction).
        evidence_changed(): new class evidence for the displayed result, or another method or method option.
        evidence_requested(result, (targets, discard ratio)): a view needs the gradients of these classes (the window asks the
            worker; :meth:`add_evidence` brings the answer).
        query_requested(result, patch): a clicked patch's rows must be computed first (a large model keeps only
            queries and keys; the window asks the worker and :meth:`query_ready` brings the answer).
        map_requested(result, (evidence, method, layer, head fusion, discard ratio)): a rollout with other options
            than the kept rows, for a large model, is computed on the worker; :meth:`map_ready` brings the answer.
        model_requested(spec): a view offers another model (e.g. a photo model for a photo); the window loads it.
        status(text): a one-line description for the status bar (hover readouts).
        head_selection_changed(heads): the set of (layer, head) picked for a knockout (Ctrl-click on a head).
        knockout_requested(heads): re-analyse the shown image with these heads knocked out (the window asks the
            worker; the answer comes back through :meth:`show` with ``result.ablated`` set).
        knockout_changed(heads): the heads knocked out in the displayed result ([]: the whole model).
        model_restored(): :meth:`restore_model` brought back the whole model's analysis (pending knockouts are moot).
        importance_requested(result, target class or None, method): rank every head of ``result`` by what knocking
            it out alone does, measured ("knockout") or estimated to first order ("estimate") (the window asks the
            worker; :meth:`set_importance` brings the answer).
        importance_changed(): head importance arrived for the displayed result.

    While heads are knocked out, ``original`` is the un-ablated :class:`~vitviz.app.worker.Shown` of the same image
    (kept, not recomputed: :meth:`restore_model` shows it again).

    ``threshold``, when not None, is the DINO-style view of every map: only the smallest set of patches that holds
    that fraction of the map's mass is shown (it changes with ``attention_style_changed`` and ``evidence_changed``).
    """

    result_changed = Signal(object)
    preview_changed = Signal(object)
    model_changed = Signal(object)
    layer_changed = Signal(int)
    query_changed = Signal(object)
    hover_changed = Signal(object)
    attention_style_changed = Signal()
    depth_style_changed = Signal()
    grid_changed = Signal(bool)
    head_changed = Signal(object)
    target_changed = Signal(object)
    evidence_changed = Signal()
    evidence_requested = Signal(object, object)
    query_requested = Signal(object, int)
    map_requested = Signal(object, object)
    model_requested = Signal(str)
    status = Signal(str)
    head_selection_changed = Signal(object)
    knockout_requested = Signal(object)
    knockout_changed = Signal(object)
    model_restored = Signal()
    importance_requested = Signal(object, object, str)
    importance_changed = Signal()

    def __init__(self, parent: QObject | None = None, *, cmap: str = "inferno", depth_cmap: str = "turbo",
                 opacity: float = 0.6, normalisation: str = "head", grid: bool = True, smooth: bool = True) -> None:
        super().__init__(parent)
        self.shown: Shown | None = None
        self.preview: Preview | None = None
        self.model: ModelSummary | None = None
        self.layer = 0
        self.query: int | None = None
        self.pending_query: int | None = None  # a clicked patch whose rows the worker is computing
        self._map_asked: tuple | None = None  # (result id, options) of the map the worker is computing
        self.hover: int | None = None
        self.head: int | None = None
        self.target: int | None = None  # class whose evidence is shown; None: the top prediction
        self.method = "relevance"  # class-evidence method (vitviz.explain.METHODS)
        self.head_fusion = "mean"  # rollout options
        self.discard_ratio: float | None = None  # None: the method's default (vitviz.explain.DEFAULT_DISCARD)
        self.threshold: float | None = None  # DINO-style mass threshold view of every map; None: off
        self.evidence: Any = None  # vitviz.explain.Evidence of the displayed result, with the gradients held so far
        self.selected_heads: frozenset[tuple[int, int]] = frozenset()  # (layer, head) picked for a knockout
        self.knocked_out: list[tuple[int, int]] = []  # heads knocked out in the displayed result
        self.original: Shown | None = None  # the un-ablated analysis of the shown image while heads are knocked out
        self.depth_change = False  # the Depth view shows the knockout's change instead of the depth
        # models that pool with attention (SigLIP, no CLS token): the head tiles show the pooling probe's attention
        # (True) or the chosen layer's attention each patch receives (False)
        self.pool_view = True
        self._importance: tuple[Any, Any] | None = None  # (result, vitviz.importance.HeadImportance)
        self.cmap = cmap if cmap in COLORMAPS else "inferno"
        self.depth_cmap = depth_cmap if depth_cmap in COLORMAPS else "turbo"
        self.opacity = float(min(1.0, max(0.0, opacity)))
        self.normalisation = normalisation if normalisation in NORMALISATIONS else "head"
        self.grid = bool(grid)
        self.smooth = bool(smooth)

    @classmethod
    def from_settings(cls, settings: QSettings, parent: QObject | None = None) -> "ViewState":
        """A state with the view settings saved in ``settings`` (unreadable values fall back to the defaults);
        later changes are saved there as they happen."""
        state = cls(parent, **{name: _read(settings, key, default) for name, (key, default) in SAVED.items()})

        def save(*_args) -> None:
            for name, (key, _default) in SAVED.items():
                settings.setValue(key, getattr(state, name))

        for signal in (state.attention_style_changed, state.depth_style_changed, state.grid_changed):
            signal.connect(save)
        return state

    # ------------------------------------------------------------------------------------------------ reading

    @property
    def result(self) -> Any:
        """The displayed :class:`vitviz.engine.AnalysisResult`, or None."""
        return self.shown.result if self.shown is not None else None

    @property
    def num_layers(self) -> int:
        result = self.result
        return result.num_layers if result is not None else 0

    def attention_maps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(heads ``[H, rows, cols]``, their mean, the rollout up to the layer) for the current layer and query."""
        shown = self.shown
        assert shown is not None
        result = shown.result
        layer, q = self.layer, self.query
        prefix = result.num_prefix_tokens
        rows, cols = result.grid.rows, result.grid.cols
        attention = result.attention
        if q is None:
            maps = result.cls_attention[layer] if not self.shows_pool else result.pool_attention
            roll = attention.rollout_rows[layer] if attention is not None else None
        else:
            maps, roll = attention.query_rows(q)[layer], attention.query_rollout(q)[layer]
        roll = np.zeros((rows, cols), np.float32) if roll is None else roll[prefix:].reshape(rows, cols)
        maps = np.asarray(maps, np.float32)
        return maps, maps.mean(axis=0), roll.astype(np.float32)

    def export_options(self) -> dict[str, Any]:
        """How the displayed maps are drawn, for exporting them as shown (see ``AnalysisWorker.export``)."""
        return {"layer": self.layer, "cmap": self.cmap, "depth_cmap": self.depth_cmap, "alpha": self.opacity,
                "evidence": (self.evidence, self.method, self.head_fusion, self.discard_ratio)}

    # ------------------------------------------------------------------------------------------------ results

    def show(self, shown: Shown) -> None:
        """Display a finished analysis; keeps the layer and query where they still make sense."""
        previous_shown, previous = self.shown, self.result
        result = shown.result
        self.shown, self.preview = shown, None
        knocked = list(getattr(result, "ablated", None) or [])
        if not knocked:
            self.original = None
        elif (self.original is None and previous is not None and not getattr(previous, "ablated", None)
              and previous.source == result.source):
            self.original = previous_shown  # the whole model's view of this image, for restoring and comparing
        knockout_changed, self.knocked_out = knocked != self.knocked_out, knocked
        model = self.model
        if model is not None and result.model_name == model.name and result.device != model.device:
            # the engine moved the model (a GPU out-of-memory fallback to the CPU): the details follow it
            self.model = dataclasses.replace(model, device=result.device)
            self.model_changed.emit(self.model)
        if previous is None or previous.grid.num_patches != result.grid.num_patches:
            self.query = None
        self.pending_query = None
        if self.query is not None and (result.attention is None or not result.attention.answers_queries):
            self.query = None
        elif self.query is not None and not result.attention.has_query(self.query):
            self.pending_query = self.query  # the same patch of the new image: asked for below, CLS meanwhile
            self.query = None
        if previous is None or previous.num_layers != result.num_layers:
            self.layer = result.num_layers - 1  # start on the last layer
        if previous is None or previous.num_heads != result.num_heads:
            self.head = None
        if previous is None or (previous.num_layers, previous.num_heads) != (result.num_layers, result.num_heads):
            self.selected_heads = frozenset()
        if previous is None or previous.labels != result.labels:
            self.target = None
        self.evidence = None  # gradients belong to one image: asked for again when a view needs them
        self.layer = min(self.layer, max(0, result.num_layers - 1))
        self.hover = None
        self.result_changed.emit(shown)
        if knockout_changed:
            self.knockout_changed.emit(list(knocked))
        if self.pending_query is not None:
            self.query_requested.emit(result, self.pending_query)

    # ------------------------------------------------------------------------------------------------ heads

    def toggle_head_selection(self, layer: int, head: int) -> None:
        """Pick (layer, head) for a knockout, or unpick it when it is picked."""
        result = self.result
        if result is None or not (0 <= layer < result.num_layers and 0 <= head < result.num_heads):
            return
        self.selected_heads = self.selected_heads ^ {(int(layer), int(head))}
        self.head_selection_changed.emit(self.selected_heads)

    def clear_head_selection(self) -> None:
        if self.selected_heads:
            self.selected_heads = frozenset()
            self.head_selection_changed.emit(self.selected_heads)

    def request_knockout(self, heads: Any = None) -> None:
        """Re-analyse the shown image without ``heads`` (default: the picked ones)."""
        heads = sorted(self.selected_heads if heads is None else {(int(l), int(h)) for l, h in heads})
        if self.shown is not None and heads:
            self.knockout_requested.emit(heads)

    def restore_model(self) -> bool:
        """Show the whole model's analysis of the image again (the one kept while heads were knocked out) and
        forget the picked heads; False when no heads are knocked out."""
        if self.original is None:
            return False
        self.show(self.original)
        self.clear_head_selection()
        self.model_restored.emit()
        return True

    def set_depth_change(self, on: bool) -> None:
        """Show the knockout's change of the depth map (knocked out − whole model) instead of the depth."""
        if bool(on) != self.depth_change:
            self.depth_change = bool(on)
            self.depth_style_changed.emit()

    @property
    def importance(self) -> Any:
        """The :class:`vitviz.importance.HeadImportance` of the displayed result, or None (not ranked yet)."""
        held = self._importance
        return held[1] if held is not None and held[0] is self.result and self.result is not None else None

    def request_importance(self, method: str = "knockout") -> None:
        """Rank the heads of the displayed result for the shown class by ``method`` (one of
        :data:`vitviz.importance.METHODS`; the worker computes it)."""
        if self.result is not None:
            self.importance_requested.emit(self.result, self.target_class, method)

    def set_importance(self, result: Any, importance: Any) -> None:
        """Head importance computed for ``result`` (kept with it: restoring the model brings it back)."""
        self._importance = (result, importance)
        if result is self.result:
            self.importance_changed.emit()

    # ------------------------------------------------------------------------------------------------ evidence

    @property
    def target_class(self) -> int | None:
        """The class whose evidence is shown: the chosen one, else the top prediction (None: no classifier)."""
        result = self.result
        if result is None or not result.predictions:
            return None
        return self.target if self.target is not None else result.predictions[0].index

    def set_target(self, index: int | None) -> None:
        """Show the evidence for class ``index`` (None: the top prediction)."""
        result = self.result
        if index is not None and (result is None or not 0 <= index < len(result.labels)):
            return
        if index != self.target:
            self.target = index
            self.target_changed.emit(index)
            self.evidence_changed.emit()

    def set_method(self, method: str) -> None:
        """The class-evidence method (one of :data:`vitviz.explain.METHODS`)."""
        from ..explain import METHODS

        if method in METHODS and method != self.method:
            self.method = method
            self.evidence_changed.emit()

    def set_rollout_options(self, head_fusion: str, discard_ratio: float | None) -> None:
        """Head fusion (mean, max, min) and discard ratio (None: the method's default) of the rollout methods."""
        if head_fusion in ("mean", "max", "min") and (head_fusion, discard_ratio) != (self.head_fusion,
                                                                                         self.discard_ratio):
            self.head_fusion, self.discard_ratio = head_fusion, discard_ratio
            self.evidence_changed.emit()

    def set_threshold(self, fraction: float | None) -> None:
        """Show only the patches holding ``fraction`` of each map's mass (None: whole maps)."""
        fraction = None if fraction is None else float(min(1.0, max(0.01, fraction)))
        if fraction != self.threshold:
            self.threshold = fraction
            self.attention_style_changed.emit()
            self.evidence_changed.emit()

    def add_evidence(self, result: Any, evidence: Any) -> None:
        """Gradients computed for ``result``: kept (merged with those held) if it is still the displayed one."""
        if result is not self.result:
            return
        self.evidence = evidence if self.evidence is None else self.evidence.merged(evidence)
        self.evidence_changed.emit()

    def request_evidence(self, targets: list[int], discard_ratio: float | None = None) -> None:
        """Ask for the gradients of ``targets`` (a large model's maps are computed for grad-rollout's
        ``discard_ratio``; None: its default)."""
        self.evidence_requested.emit(self.result, (list(targets), discard_ratio))

    def request_map(self, evidence: Any, method: str, layer: int | None, head_fusion: str,
                    discard_ratio: float | None) -> None:
        """Ask the worker for ``evidence``'s map of ``method`` with these options (once per result and options)."""
        request = (method, layer, head_fusion, discard_ratio)
        if (id(self.result), request) != self._map_asked:
            self._map_asked = (id(self.result), request)
            self.map_requested.emit(self.result, (evidence, *request))

    def map_ready(self, result: Any) -> None:
        """The worker cached a map of ``result``: draw it if that result is still shown."""
        if result is self.result:
            self._map_asked = None
            self.evidence_changed.emit()

    def show_preview(self, preview: Preview) -> None:
        """Show an image that could not be analysed because no model is loaded."""
        self.shown, self.preview, self.query, self.hover = None, preview, None, None
        self.original, knocked, self.knocked_out = None, self.knocked_out, []
        if knocked:
            self.knockout_changed.emit([])
        self.result_changed.emit(None)
        self.preview_changed.emit(preview)

    def accept_labels(self, shown: Shown | None, old: Shown | None, labels: list[str], templates: list[str]) -> bool:
        """An image-text model now asks about ``labels``: the model's details follow, and ``shown`` (``old`` re-scored)
        is displayed if ``old`` still is. True when the displayed result (a newer image) still needs re-scoring."""
        if self.model is not None:
            self.set_model(dataclasses.replace(self.model, labels=list(labels), templates=list(templates)))
        if shown is not None and self.shown is old:
            self.show(shown)
            return False
        result = self.result
        return (result is not None and getattr(result, "image_embedding", None) is not None
                and list(result.labels) != list(labels))

    def set_model(self, summary: ModelSummary | None) -> None:
        self.model = summary
        self.model_changed.emit(summary)

    # ------------------------------------------------------------------------------------------------ navigation

    def set_layer(self, layer: int) -> None:
        """Show ``layer`` (negative counts from the end), clamped to the result's layers."""
        n = self.num_layers
        if n == 0:
            return
        layer = int(layer) + (n if layer < 0 else 0)
        layer = max(0, min(n - 1, layer))
        if layer != self.layer:
            self.layer = layer
            self.layer_changed.emit(layer)

    def step_layer(self, delta: int) -> None:
        """The next (``delta`` > 0) or previous layer; stays at the first or last one."""
        self.set_layer(max(0, self.layer + delta))

    def set_query(self, patch: int | None) -> None:
        """Show what ``patch``'s query attends to (all heads); None returns to the CLS token."""
        result = self.result
        if patch is not None and (result is None or result.attention is None or not result.attention.answers_queries
                                  or not 0 <= patch < result.grid.num_patches):
            return
        if patch is not None and not result.attention.has_query(patch):
            if patch != self.pending_query:
                self.pending_query = patch
                self.query_requested.emit(result, patch)
            return
        self.pending_query = None
        if patch != self.query:
            self.query = patch
            self.query_changed.emit(patch)

    def query_ready(self, result: Any, patch: int) -> None:
        """The worker computed ``patch``'s rows for ``result``: show them if that is still what was asked for."""
        if result is self.result and patch == self.pending_query:
            self.set_query(patch)

    def toggle_query(self, patch: int | None) -> None:
        """A click on a patch: select it, or return to CLS when it is already selected."""
        if patch is not None:
            self.set_query(None if patch == self.query else patch)

    def set_head(self, head: int | None) -> None:
        """Pick one head of the current layer for a closer look (None: no head picked)."""
        if head != self.head:
            self.head = head
            self.head_changed.emit(head)

    def set_hover(self, patch: int | None) -> None:
        if patch != self.hover:
            self.hover = patch
            self.hover_changed.emit(patch)

    def patch_at(self, pos: tuple[float, float] | None) -> int | None:
        """The patch under input-image pixel ``pos`` of the displayed result, or None."""
        result = self.result
        return None if pos is None or result is None else result.grid.patch_at(*pos)

    # ------------------------------------------------------------------------------------------------ style

    def set_colormap(self, name: str) -> None:
        if name in COLORMAPS and name != self.cmap:
            self.cmap = name
            self.attention_style_changed.emit()

    def set_opacity(self, alpha: float) -> None:
        alpha = float(min(1.0, max(0.0, alpha)))
        if alpha != self.opacity:
            self.opacity = alpha
            self.attention_style_changed.emit()

    def set_normalisation(self, mode: str) -> None:
        if mode in NORMALISATIONS and mode != self.normalisation:
            self.normalisation = mode
            self.attention_style_changed.emit()

    @property
    def shows_pool(self) -> bool:
        """Whether the head tiles show the pooling probe's attention (a model without a CLS token, no patch
        clicked, the pooling view chosen)."""
        result = self.result
        return (self.pool_view and self.query is None and result is not None
                and getattr(result, "pool_attention", None) is not None)

    def set_pool_view(self, on: bool) -> None:
        if bool(on) != self.pool_view:
            self.pool_view = bool(on)
            self.attention_style_changed.emit()

    def set_smooth(self, smooth: bool) -> None:
        if bool(smooth) != self.smooth:
            self.smooth = bool(smooth)
            self.attention_style_changed.emit()

    def set_depth_colormap(self, name: str) -> None:
        if name in COLORMAPS and name != self.depth_cmap:
            self.depth_cmap = name
            self.depth_style_changed.emit()

    def set_grid(self, visible: bool) -> None:
        if bool(visible) != self.grid:
            self.grid = bool(visible)
            self.grid_changed.emit(self.grid)


def _read(settings: QSettings, key: str, default: Any) -> Any:
    value, kind = settings.value(key, default), type(default)
    try:
        if kind is bool:
            return value.lower() in ("1", "true", "yes") if isinstance(value, str) else bool(value)
        return kind(value)
    except (TypeError, ValueError):
        return default
