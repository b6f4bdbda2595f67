"""The window's side of the worker thread: numbered requests (load a model, analyse an image, export), which one
is newest, what is still pending, and which model, device and depth model are loaded.

Only the answer to the newest request of each kind is passed on, so a slow old analysis can never replace a newer
one on screen. Nothing here draws.
"""

from __future__ import annotations

import gc
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal

from .panels.common import source_name
from .worker import AnalysisWorker, ModelSummary, Preview, RequestTracker, Shown

__all__ = ["Session", "collect_garbage_on_the_ui_thread"]

_collector: Any = None


def collect_garbage_on_the_ui_thread() -> None:
    """Turn Python's automatic cyclic garbage collection off and collect on a timer of this (the UI) thread instead.

    Otherwise a collection starts in whichever thread allocates at the wrong moment, typically the worker building a
    model, and frees the widgets of a closed window or dialog there: shiboken then deletes them on the UI thread in
    the middle of whatever it is doing, which was seen to deadlock or abort ("pure virtual method called").
    pyqtgraph's ``GarbageCollector`` does this (per generation, when its count passes Python's threshold).
    """
    global _collector
    if _collector is None:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        _collector = GarbageCollector(interval=0.5)
    gc.disable()


class Session(QObject):
    """Owns the worker thread. Signals carry only answers to the newest request:

    ``environment_ready(info)``, ``model_ready(summary)``, ``analysis_ready(shown)``, ``preview_ready(preview)``,
    ``export_ready(folder, files)``, ``failed(kind, message)`` (kind: "model", "image", "export", "startup"),
    ``busy_changed(busy)``, ``activity(text)`` (what it is busy with), ``download_progress(done, total)``,
    ``load_cancelled()`` (the user stopped a download; the previous model stays), ``evidence_ready(result,
    evidence)`` (class-evidence gradients for a result), ``query_ready(result, patch)`` (a clicked patch's
    attention rows, now cached in the result), ``importance_progress(done, total)`` and ``importance_ready(result,
    importance)`` (head importance, :mod:`vitviz.importance`).
    """

    environment_ready = Signal(dict)
    model_ready = Signal(object)
    analysis_ready = Signal(object)
    preview_ready = Signal(object)
    export_ready = Signal(str, list)
    failed = Signal(str, str)
    busy_changed = Signal(bool)
    activity = Signal(str)
    download_progress = Signal(object, object)
    load_cancelled = Signal()
    evidence_ready = Signal(object, object)
    query_ready = Signal(object, int)
    map_ready = Signal(object)
    importance_progress = Signal(int, int)
    importance_ready = Signal(object, object)
    analysis_requested = Signal(object, object)  # (source, knocked-out heads): a new analysis was asked for
    labels_ready = Signal(object, object)  # (the re-scored Shown or None, (old Shown, notices, labels, templates))

    # requests to the worker (queued across threads)
    _req_warm_up = Signal()
    _req_model = Signal(int, str, str, object)
    _req_analyze = Signal(int, object, object)
    _req_export = Signal(int, object, str, dict)
    _req_explain = Signal(int, object, object)
    _req_query = Signal(int, object, int)
    _req_map = Signal(int, object, object)
    _req_importance = Signal(int, object, object, str)
    _req_labels = Signal(int, object, object)

    def __init__(self, parent: QObject | None = None, thread: QThread | None = None) -> None:
        """``thread``: run the worker on this (another session's) thread instead of a thread of its own."""
        super().__init__(parent)
        self._seq = 0
        self.tracker = RequestTracker()
        self.pending: set[int] = set()
        self.latest_model_req = 0
        self.latest_image_req = 0
        self.latest_importance_req = 0
        self.latest_labels_req = 0
        self.model_spec: str | None = None  # of the loaded model
        self.device = "auto"  # asked for (the loaded model's, unless a load is pending)
        self.depth_model: str | None = None
        self.loaded_options: tuple[str, str | None] = ("auto", None)  # (device, depth model) of the loaded model
        self._model_requests: dict[int, tuple[str, str | None]] = {}  # request id -> (device, depth model)
        self._doing: dict[int, str] = {}  # pending request id -> what the window says it is doing
        self.current_source: Any = None  # source of the displayed result
        self.requested_source: Any = None  # source of the newest analysis request
        self._busy = False

        self._owns_thread = thread is None
        collect_garbage_on_the_ui_thread()  # before there is a second thread to collect in
        self.thread = QThread(self) if thread is None else thread
        if thread is None:
            self.thread.setObjectName("vitviz-worker")
        self.worker = AnalysisWorker(self.tracker)
        self.worker.moveToThread(self.thread)
        self.thread.finished.connect(self.worker.deleteLater)
        self._req_warm_up.connect(self.worker.warm_up)
        self._req_model.connect(self.worker.load_model)
        self._req_analyze.connect(self.worker.analyze)
        self._req_export.connect(self.worker.export)
        self._req_explain.connect(self.worker.explain)
        self._req_query.connect(self.worker.query)
        self._req_map.connect(self.worker.evidence_map)
        self._req_importance.connect(self.worker.importance)
        self._req_labels.connect(self.worker.set_labels)
        self.worker.environment_ready.connect(self.environment_ready)
        self.worker.model_ready.connect(self._on_model_ready)
        self.worker.analysis_ready.connect(self._on_analysis_ready)
        self.worker.preview_ready.connect(self._on_preview_ready)
        self.worker.export_ready.connect(self._on_export_ready)
        self.worker.failed.connect(self._on_failed)
        self.worker.finished.connect(self._finish)
        self.worker.download_progress.connect(self._on_download_progress)
        self.worker.load_cancelled.connect(self._on_load_cancelled)
        self.worker.evidence_ready.connect(self._on_evidence_ready)
        self.worker.query_ready.connect(self._on_query_ready)
        self.worker.map_ready.connect(self._on_map_ready)
        self.worker.importance_progress.connect(self._on_importance_progress)
        self.worker.importance_ready.connect(self._on_importance_ready)
        self.worker.labels_progress.connect(self._on_labels_progress)
        self.worker.labels_ready.connect(self._on_labels_ready)
        if self._owns_thread:
            self.thread.start()
        self._warming = False

    def warm_up(self) -> None:
        """Let the worker import torch and report the devices and pretrained models (once). The window calls it
        after its first paint: the import holds Python's lock for seconds, and the window should paint first."""
        if not self._warming:
            self._warming = True
            self._req_warm_up.emit()

    @property
    def is_busy(self) -> bool:
        return bool(self.pending)

    def _next(self, doing: str) -> int:
        """A new request id, pending until its answer; ``doing`` is shown while it is the newest pending one."""
        self._seq += 1
        self.pending.add(self._seq)
        self._doing[self._seq] = doing
        return self._seq

    # ---------------------------------------------------------------------------------------------- requests

    def load_model(self, spec: str, device: str | None = None, depth_model: str | None = None) -> int:
        """Load ``spec`` on the worker; ``depth_model`` "" removes the extra depth model, None keeps it."""
        if device:
            self.device = device
        if depth_model is not None:
            self.depth_model = depth_model or None
        req = self.latest_model_req = self._next("Loading model…")
        self._model_requests[req] = (self.device, self.depth_model)
        self._update_busy()
        self._req_model.emit(req, spec, self.device, self.depth_model)
        return req

    def analyze(self, source: Any, ablate: Any = ()) -> int:
        """Analyse ``source`` (a path or ``(array, name)``) with the heads ``ablate`` ((layer, head) pairs)
        knocked out; older analyses are cancelled between stages."""
        ablate = [tuple(pair) for pair in ablate]
        doing = (f"Knocking out {len(ablate)} head{'s' * (len(ablate) != 1)}…" if ablate
                 else f"Analysing {source_name(source)}…")
        req = self.latest_image_req = self._next(doing)
        self.tracker.latest_analysis = req
        self.requested_source = source
        self._update_busy()
        self._req_analyze.emit(req, source, ablate)
        self.analysis_requested.emit(source, ablate)
        return req

    def supersede_analysis(self) -> None:
        """Drop the pending analyses (their answers are ignored, a running one is cancelled between stages): what
        is shown now stays, e.g. the whole model's analysis brought back by "Restore the model"."""
        self._seq += 1
        self.latest_image_req = self.tracker.latest_analysis = self._seq
        self.requested_source = self.current_source

    def importance(self, result: Any, target: int | None, method: str = "knockout") -> int:
        """Rank every head of a displayed ``result`` by what knocking it out alone does to class ``target`` (None:
        the top one), measured or estimated (``method``), on the worker; progress comes as ``importance_progress``."""
        doing = "Estimating" if method == "estimate" else "Ranking the heads by"
        req = self.latest_importance_req = self._next(f"{doing} importance…")
        self._update_busy()
        self._req_importance.emit(req, result, target, method)
        return req

    def set_labels(self, shown: Any, text: str, templates: list[str]) -> int:
        """Ask the image-text model about the labels in ``text`` (comma- or line-separated) through ``templates``,
        and re-score the displayed ``shown`` (None: nothing shown yet) on the worker."""
        req = self.latest_labels_req = self._next("Reading the labels…")
        self._update_busy()
        self._req_labels.emit(req, shown, (text, list(templates)))
        return req

    def _on_labels_progress(self, req: int, done: int, total: int) -> None:
        if req == self.latest_labels_req and req in self.pending:
            self._doing[req] = f"Reading the labels… {done:,} of {total:,}"
            self._update_busy()

    def _on_labels_ready(self, req: int, shown: Any, info: Any) -> None:
        self._finish(req)
        if req == self.latest_labels_req:
            self.labels_ready.emit(shown, info)

    def export(self, result: Any, folder: str, options: dict) -> int:
        req = self._next("Exporting…")
        self._update_busy()
        self._req_export.emit(req, result, folder, options)
        return req

    def explain(self, result: Any, request: Any) -> int:
        """Compute the class evidence of ``request`` = (targets, grad-rollout's discard ratio or None), or a list
        of targets, for a displayed ``result`` on the worker."""
        targets, discard = request if isinstance(request, tuple) else (request, None)
        req = self._next("Computing class evidence…")
        self._update_busy()
        self._req_explain.emit(req, result, (list(targets), discard))
        return req

    def query(self, result: Any, patch: int) -> int:
        """Compute what ``patch`` attends to in a displayed ``result`` on the worker (a large model's rows are
        recomputed from its queries and keys)."""
        req = self._next(f"Computing the attention of patch #{patch}…")
        self._update_busy()
        self._req_query.emit(req, result, int(patch))
        return req

    def evidence_map(self, result: Any, request: Any) -> int:
        """Compute (and cache) a map of a displayed ``result`` on the worker: ``request`` = (evidence, method, layer,
        head fusion, discard ratio), as :meth:`vitviz.explain.Evidence.map` takes them."""
        req = self._next("Computing the rollout…")
        self._update_busy()
        self._req_map.emit(req, result, request)
        return req

    def cancel_load(self) -> None:
        """Stop the model download in progress (within 0.1 s); the loaded model stays."""
        self.tracker.cancel_load(self.latest_model_req)  # directly: the worker thread is busy downloading

    def shutdown(self) -> None:
        """Stop the worker thread (waits for a running forward pass to reach its next stage)."""
        self.tracker.closing = True
        if self._owns_thread and self.thread.isRunning():
            self.thread.quit()
            self.thread.wait(30000)

    # ---------------------------------------------------------------------------------------------- answers

    def _finish(self, req: int) -> None:
        self.pending.discard(req)
        self._doing.pop(req, None)
        self._update_busy()

    def _update_busy(self) -> None:
        busy = bool(self.pending)
        if busy:  # a model load first (nothing else runs before it), else the newest request
            self.activity.emit(self._doing[self.latest_model_req if self.latest_model_req in self.pending
                                           else max(self.pending)])
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)

    def _on_model_ready(self, req: int, summary: ModelSummary) -> None:
        self._finish(req)
        if req != self.latest_model_req:
            return
        self.model_spec = summary.spec
        self.loaded_options = self._model_requests.pop(req, self.loaded_options)
        self.model_ready.emit(summary)
        source = self.requested_source if self.requested_source is not None else self.current_source
        if source is not None and self.latest_image_req < req:
            self.analyze(source)  # show the image through the new model

    def _on_analysis_ready(self, req: int, shown: Shown) -> None:
        self._finish(req)
        if req == self.latest_image_req:  # never show a superseded result
            self.current_source = self.requested_source
            self.analysis_ready.emit(shown)

    def _on_preview_ready(self, req: int, preview: Preview) -> None:
        self._finish(req)
        if req == self.latest_image_req:
            self.current_source = self.requested_source
            self.preview_ready.emit(preview)

    def _on_export_ready(self, req: int, folder: str, files: list) -> None:
        self._finish(req)
        self.export_ready.emit(folder, files)

    def _on_download_progress(self, req: int, done: int, total: int) -> None:
        if req == self.latest_model_req:
            self.download_progress.emit(done, total)

    def _on_evidence_ready(self, req: int, result: Any, evidence: Any) -> None:
        self._finish(req)
        self.evidence_ready.emit(result, evidence)

    def _on_query_ready(self, req: int, result: Any, patch: int) -> None:
        self._finish(req)
        self.query_ready.emit(result, patch)

    def _on_map_ready(self, req: int, result: Any) -> None:
        self._finish(req)
        self.map_ready.emit(result)

    def _on_importance_progress(self, req: int, done: int, total: int) -> None:
        if req == self.latest_importance_req:
            self.importance_progress.emit(done, total)

    def _on_importance_ready(self, req: int, result: Any, importance: Any) -> None:
        self._finish(req)
        if req == self.latest_importance_req:
            self.importance_ready.emit(result, importance)

    def _on_load_cancelled(self, req: int) -> None:
        self._finish(req)
        if req == self.latest_model_req:
            self._model_requests.pop(req, None)
            self.device, self.depth_model = self.loaded_options  # back to what is still loaded
            self.load_cancelled.emit()

    def _on_failed(self, req: int, kind: str, message: str) -> None:
        self._finish(req)
        if kind == "image":
            if req != self.latest_image_req:
                return  # an older request failed after a newer one was made: nothing to tell
            self.requested_source = self.current_source  # keep what is shown
        elif kind == "model":
            if req != self.latest_model_req:
                return
            self._model_requests.pop(req, None)
            self.device, self.depth_model = self.loaded_options  # back to what is still loaded
        self.failed.emit(kind, message)
