"""The background worker: imports torch, loads models, decodes images, runs the model and writes exports.

Everything here runs on one QThread (``AnalysisWorker`` is moved to it), so the window never waits for PyTorch.
Requests carry increasing ids: an analysis whose id is no longer the newest is skipped or cancelled between engine
stages (``RequestTracker``), and the window ignores any answer that is not for its newest request.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

from ..errors import LoadCancelled, VitvizError
from ..features import FeatureSet

__all__ = ["RequestTracker", "AnalysisWorker", "ModelSummary", "Shown", "describe_error"]


class RequestTracker:
    """Newest analysis request id, shared by the window (writer) and the worker (reader).

    Plain attribute reads and writes of ints are atomic in CPython, which is all that is needed here.
    """

    def __init__(self) -> None:
        self.latest_analysis = 0
        self.closing = False
        self.cancelled_load = 0  # a model request whose download the user cancelled

    def is_stale(self, request_id: int) -> bool:
        return self.closing or request_id != self.latest_analysis

    def cancel_load(self, request_id: int) -> None:
        """Stop loading model request ``request_id`` (within 0.1 s when it downloads); the loaded model stays.

        Call it directly from the window's thread: the worker thread is busy with the load, so a queued call would
        only arrive once it is over. The worker answers with ``load_cancelled``.
        """
        self.cancelled_load = request_id

    def load_stopped(self, request_id: int) -> bool:
        return self.closing or self.cancelled_load == request_id


@dataclass
class ModelSummary:
    """What the window shows about the loaded model."""

    name: str
    spec: str
    device: str
    image_size: int
    patch_size: int
    layers: int
    heads: int
    num_classes: int
    depth_kind: str | None
    depth_model: str | None
    load_ms: float
    description: str = ""
    # image-text models: the scoring rule ("softmax" or "sigmoid"; "" for a classifier), the labels asked about and
    # their prompt templates
    scoring: str = ""
    labels: list = field(default_factory=list)
    templates: list = field(default_factory=list)
    presets: dict = field(default_factory=dict)  # label lists that suit the model (vitviz-mini-text's vocabulary)
    vocabulary: list = field(default_factory=list)  # the words its tokenizer knows, when it can tell


@dataclass
class Shown:
    """A finished analysis plus the extras the window needs to redraw any layer instantly."""

    result: Any  # vitviz.engine.AnalysisResult (its ``attention`` holds the rollout rows of every layer)
    worker_ms: float = 0.0
    extra_notices: list[str] = field(default_factory=list)
    features: Any = None  # vitviz.features.FeatureSet: head statistics, token norms, PCA (last layer precomputed)
    lens: Any = None  # vitviz.lens.LogitLens, for models with a classifier
    lens_problem: str = ""  # why there is no lens, in one line (the panel says it)


@dataclass
class Preview:
    """An image decoded while no model is loaded: shown alone, without analysis."""

    image: np.ndarray
    source: str
    notices: list[str]


def describe_error(exc: BaseException, doing: str) -> str:
    """A one-line message for the user; unexpected errors also go to stderr with their traceback."""
    from ..errors import VitvizError

    if isinstance(exc, VitvizError):
        return str(exc)
    text = str(exc)
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return f"Out of memory while {doing}: try a smaller image, the CPU device or a smaller model."
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"Unexpected error while {doing}: {type(exc).__name__}" + (f": {first}" if first else "")


class AnalysisWorker(QObject):
    """Lives on the worker thread; the window talks to it only through queued signals."""

    environment_ready = Signal(dict)  # {"devices": [...], "zoo": [(name, summary, task)], "torch": version}
    model_ready = Signal(int, object)  # request id, ModelSummary
    analysis_ready = Signal(int, object)  # request id, Shown
    preview_ready = Signal(int, object)  # request id, Preview (no model loaded)
    export_ready = Signal(int, str, list)  # request id, folder, [file paths]
    failed = Signal(int, str, str)  # request id, kind ("model", "image", "export", "startup"), message
    finished = Signal(int)  # request id: answered, failed or skipped
    download_progress = Signal(int, object, object)  # request id, bytes done, bytes total (pretrained downloads)
    load_cancelled = Signal(int)  # request id: the load stopped on RequestTracker.cancel_load; the old model stays
    evidence_ready = Signal(int, object, object)  # request id, the AnalysisResult, vitviz.explain.Evidence
    query_ready = Signal(int, object, int)  # request id, the AnalysisResult, the patch whose rows are now cached
    map_ready = Signal(int, object)  # request id, the AnalysisResult one of whose maps is now cached
    importance_progress = Signal(int, int, int)  # request id, heads done, heads in all
    importance_ready = Signal(int, object, object)  # request id, the AnalysisResult, vitviz.importance.HeadImportance
    labels_progress = Signal(int, int, int)  # request id, prompts encoded, prompts in all
    # request id, the Shown re-scored (or None), (the Shown it was made from, notices, labels, templates)
    labels_ready = Signal(int, object, object)

    def __init__(self, tracker: RequestTracker, topk: int = 5) -> None:
        super().__init__()
        self.tracker = tracker
        self.topk = topk
        self.engine: Any = None
        self.spec: str | None = None

    @contextmanager
    def _answering(self, request_id: int, kind: str, doing: str) -> Iterator[None]:
        """The frame of every request but a model load: an error becomes one ``failed(request_id, kind, line)``
        (the window keeps running), and ``finished(request_id)`` always follows."""
        try:
            yield
        except BaseException as exc:  # noqa: BLE001 - reported in the window
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            self.failed.emit(request_id, kind, describe_error(exc, doing))
        finally:
            self.finished.emit(request_id)

    # -- startup ---------------------------------------------------------------------------------------------

    @Slot()
    def warm_up(self) -> None:
        """Import torch and the engine, and report which devices and pretrained models exist."""
        info: dict[str, Any] = {"devices": ["auto", "cpu"], "zoo": [], "torch": None}
        try:
            import torch

            from .. import engine  # noqa: F401 - import now, not at the first analysis

            info["torch"] = torch.__version__
            if torch.cuda.is_available():
                info["devices"].append("cuda")
                info["devices"].extend(f"cuda:{i}" for i in range(torch.cuda.device_count()) if torch.cuda.device_count() > 1)
            mps = getattr(torch.backends, "mps", None)
            if mps is not None and mps.is_available():
                info["devices"].append("mps")
        except Exception as exc:  # noqa: BLE001 - a broken torch install must not kill the window
            self.failed.emit(0, "startup", describe_error(exc, "starting PyTorch"))
        try:
            zoo = importlib.import_module("vitviz.models.zoo")
            registry = getattr(zoo, "REGISTRY", {}) or {}
            info["zoo"] = [(str(name), str(getattr(entry, "summary", "") or ""), str(getattr(entry, "task", "") or ""))
                           for name, entry in registry.items()]
        except ImportError:
            pass
        except Exception as exc:  # noqa: BLE001
            print(f"vitviz: the pretrained model list is unavailable ({exc})", file=sys.stderr)
        self.environment_ready.emit(info)

    # -- model -----------------------------------------------------------------------------------------------

    @Slot(int, str, str, object)
    def load_model(self, request_id: int, spec: str, device: str, depth_model: object) -> None:
        try:
            from ..engine import Engine

            def report(done: int, total: int) -> None:  # called every 0.1 s while a file downloads
                if self.tracker.load_stopped(request_id):  # closing, or the user cancelled: stop at once
                    raise LoadCancelled("the model download was cancelled")
                self.download_progress.emit(request_id, int(done), int(total or 0))

            t0 = time.perf_counter()
            engine = Engine(
                spec,
                device=device or "auto",
                depth_model=str(depth_model) if depth_model else None,
                progress=report,
            )
            load_ms = (time.perf_counter() - t0) * 1000.0
            cfg = engine.info.config
            self.engine, self.spec = engine, spec  # the previous model stays if loading failed
            from ..engine import _device_name

            summary = ModelSummary(
                name=engine.info.name,
                spec=spec,
                device=_device_name(engine.device),
                image_size=cfg.image_size,
                patch_size=cfg.patch_size,
                layers=cfg.depth,
                heads=cfg.num_heads,
                num_classes=cfg.num_classes,
                depth_kind=engine.info.depth_kind if engine.model.has_depth else (
                    engine.depth_info.depth_kind if engine.depth_info else None
                ),
                depth_model=engine.depth_info.name if engine.depth_info else None,
                load_ms=load_ms,
                description=engine.info.description,
                scoring=engine.scoring if engine.has_text else "",
                labels=list(engine.info.labels) if engine.has_text else [],
                templates=list(engine.templates) if engine.has_text else [],
                presets=dict(engine.info.presets) if engine.has_text else {},
                vocabulary=list(getattr(engine.info.tokenizer, "vocabulary", [])) if engine.has_text else [],
            )
            self.model_ready.emit(request_id, summary)
        except BaseException as exc:  # noqa: BLE001 - reported in the window, the app keeps running
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            if not isinstance(exc, LoadCancelled):
                self.failed.emit(request_id, "model", describe_error(exc, f"loading the model {Path(spec).name}"))
            elif not self.tracker.closing:
                self.load_cancelled.emit(request_id)
        finally:
            self.finished.emit(request_id)

    # -- analysis --------------------------------------------------------------------------------------------

    @Slot(int, object, object)
    def analyze(self, request_id: int, source: object, ablate: object = ()) -> None:
        """Analyse ``source``; ``ablate``: (layer, head) pairs knocked out (``result.ablated`` lists them)."""
        cancelled = lambda: self.tracker.is_stale(request_id)  # noqa: E731
        with self._answering(request_id, "image", f"analysing {_source_name(source)}"):
            if cancelled():
                return
            t0 = time.perf_counter()
            if self.engine is None:
                self._preview(request_id, source)
                return
            result = self.engine.analyze(self._as_input(source), topk=self.topk, cancelled=cancelled,
                                         keep_display_image=True, features=True, ablate=list(ablate or ()))
            if result is None or cancelled():
                return
            features = None
            if result.attention is not None and result.hidden_states is not None:
                features = FeatureSet.from_result(result, pca_layers=(result.num_layers - 1,))
            if cancelled():
                return
            if isinstance(source, tuple):  # (array, display name) from the clipboard or a test
                result.source = source[1]
            lens, problem = None, self.engine.model.lens_problem
            if result.hidden_states is not None and not problem:
                lens = self.engine.lens(result)
            shown = Shown(result, (time.perf_counter() - t0) * 1000.0, features=features, lens=lens,
                          lens_problem=problem[:1].upper() + problem[1:] + "." if problem else "")
            self.analysis_ready.emit(request_id, shown)

    @Slot(int, object, object)
    def set_labels(self, request_id: int, shown: object, request: object) -> None:
        """Ask the image-text model about new labels (``request`` = (text, templates)) and re-score ``shown`` (the
        displayed analysis) from its image embedding, without a forward pass; a bad list fails and changes nothing."""
        text, templates = request  # type: ignore[misc]
        with self._answering(request_id, "labels", "reading the labels"):
            from ..errors import VitvizError

            if self.engine is None:
                raise VitvizError("load a model first")
            notices = self.engine.set_labels(
                text, templates, progress=lambda done, total: self.labels_progress.emit(request_id, done, total),
                cancelled=lambda: self.tracker.closing)
            rescored = None
            result = getattr(shown, "result", None)
            if result is not None and result.image_embedding is not None and result.model_name == self.engine.name:
                new = self.engine.rescore(result, self.topk)
                lens = self.engine.lens(new) if new.hidden_states is not None else None
                rescored = dataclasses.replace(shown, result=new, lens=lens)
            self.labels_ready.emit(request_id, rescored,
                                   (shown, notices, list(self.engine.info.labels), list(self.engine.templates)))

    def _preview(self, request_id: int, source: object) -> None:
        from ..images import load_image

        if isinstance(source, tuple):
            rgb, name, notices = np.ascontiguousarray(source[0][..., :3]), source[1], []
        else:
            loaded = load_image(str(source))
            rgb, name, notices = np.asarray(loaded.image), loaded.source, loaded.notices
        if not self.tracker.is_stale(request_id):
            self.preview_ready.emit(request_id, Preview(rgb, name, list(notices)))

    @staticmethod
    def _as_input(source: object) -> object:
        if isinstance(source, tuple):
            return np.asarray(source[0])
        return str(source)

    # -- class evidence --------------------------------------------------------------------------------------

    @Slot(int, object, object)
    def explain(self, request_id: int, result: object, targets: object) -> None:
        """Gradients of the ``targets`` classes' logits for a displayed result: one forward plus one backward."""
        with self._answering(request_id, "evidence", "computing the class evidence"):
            if self.engine is not None and not self.tracker.closing:
                targets, discard = targets if isinstance(targets, tuple) else (targets, None)
                self.evidence_ready.emit(request_id, result, self.engine.evidence(result, list(targets), discard))

    # -- a clicked patch -------------------------------------------------------------------------------------

    @Slot(int, object, int)
    def query(self, request_id: int, result: object, patch: int) -> None:
        """Compute (and cache in the result) what ``patch``'s token attends to in every layer, and its rollout."""
        with self._answering(request_id, "query", f"computing the attention of patch #{patch}"):
            if not self.tracker.closing:
                result.attention.query_rows(patch)
                result.attention.query_rollout(patch)
                self.query_ready.emit(request_id, result, patch)

    @Slot(int, object, object)
    def evidence_map(self, request_id: int, result: object, request: object) -> None:
        """Compute (and cache in the result's attention) ``request`` = (evidence, method, layer, head fusion,
        discard ratio): a large model's rollout with other options, a sweep over every layer."""
        evidence, method, layer, fusion, discard = request
        with self._answering(request_id, "query", "computing the rollout"):
            if not self.tracker.closing:
                evidence.map(method, None, layer=layer, head_fusion=fusion, discard_ratio=discard)
                self.map_ready.emit(request_id, result)

    # -- head importance -------------------------------------------------------------------------------------

    @Slot(int, object, object, str)
    def importance(self, request_id: int, result: object, target: object, method: str = "knockout") -> None:
        """Knock out every head of ``result``'s model alone (its knocked-out heads stay out) and measure the
        ``target`` class (None: the top one) and the depth map, progress after each batch of heads; or, with
        ``method="estimate"``, estimate the class drops to first order."""
        with self._answering(request_id, "importance", "ranking the heads"):
            try:
                if self.engine is None or self.tracker.closing:
                    return
                if result.model_name != self.engine.info.name:
                    raise VitvizError("the model changed since this image was analysed: rank the heads again")

                def progress(done: int, total: int) -> None:
                    if self.tracker.closing:
                        raise LoadCancelled("the window is closing")
                    self.importance_progress.emit(request_id, int(done), int(total))

                importance = self.engine.head_importance(result, target, progress=progress, ablate=list(result.ablated),
                                                         method=method)
                self.importance_ready.emit(request_id, result, importance)
            except LoadCancelled:  # the window closed mid-way: nothing to report
                pass

    # -- export ----------------------------------------------------------------------------------------------

    @Slot(int, object, str, dict)
    def export(self, request_id: int, result: object, folder: str, options: dict) -> None:
        with self._answering(request_id, "export", f"exporting to {folder}"):
            from ..explain import GRADIENT_METHODS, Evidence
            from ..export import write_evidence, write_features, write_outputs

            evidence, method, fusion, discard = options.pop("evidence", (None, "attention", "mean", None))
            files = write_outputs(result, Path(folder), **options)
            if getattr(result, "hidden_states", None) is not None:
                files += write_features(result, Path(folder), layer=options.get("layer", -1))
            # the evidence maps of the chosen method, for every class whose gradients are held
            targets = list(evidence.targets) if evidence is not None else []
            if method not in GRADIENT_METHODS or targets:
                files += write_evidence(evidence or Evidence.from_result(result), result, Path(folder), [method],
                                        targets, layer=options.get("layer", -1), cmap=options.get("cmap", "inferno"),
                                        alpha=options.get("alpha", 0.6), head_fusion=fusion, discard_ratio=discard)
            self.export_ready.emit(request_id, folder, [str(f) for f in files])


def _source_name(source: object) -> str:
    if isinstance(source, tuple):
        return str(source[1]) if len(source) > 1 else "the image"
    return Path(str(source)).name or str(source)
