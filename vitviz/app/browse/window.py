"""The gallery window: controls for the overlay (layer and head once, for every thumbnail), the sort, the filters
and the search above a list view of thumbnails; a click opens the image in the main window with the run's model."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QModelIndex, QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QHBoxLayout, QLabel, QLineEdit, QListView, QMainWindow,
                               QProgressBar, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from ...gallery import SORTS, THUMBNAIL_PX, Entry, Overlay, Run, RunError, open_run
from ...thumbnails import ThumbnailProcess
from ..widgets.message_bar import MessageBar
from .analyze_job import AnalyzeJob
from .delegate import ThumbnailDelegate
from .list_model import ENTRY_ROLE, GalleryListModel

# The main window (vitviz.app.main_window.MainWindow), named by protocol only: it opens this module, not the reverse
MainWindow = QMainWindow

__all__ = ["BrowseWindow", "open_results", "analyze_folder", "run_browser"]

POLL_MS = 1500  # how often a run still being written is read again


class BrowseWindow(QMainWindow):
    """A run's gallery. ``main_window`` returns the window that opens a clicked image (made on first use).
    Signals: ``image_opened(path)`` once a click has sent an image to the main window; ``job_finished(exit_code)``
    when the analysis it follows (:meth:`attach_job`) has ended and the run is read again."""

    image_opened = Signal(str)
    job_finished = Signal(int)

    def __init__(self, run: Run, main_window: Callable[[], MainWindow] | None = None, size: int = THUMBNAIL_PX,
                 parent: QWidget | None = None, process: ThumbnailProcess | None = None) -> None:
        super().__init__(parent)
        self.run = run
        self._main_window = main_window
        self.model_override: str | None = None  # a model to open images with instead of the run's
        self._last_open: tuple[str, float] = ("", 0.0)
        self.job: AnalyzeJob | None = None
        self.setWindowTitle(f"{run.folder.name} — vitviz results")
        layers = run.layers
        overlay = Overlay(kind="head" if run.available.get("head") else "none", layer=max(0, layers - 1),
                          head=None)
        self.model = GalleryListModel(run, overlay, size, self, sort="confidence",  # least sure first
                                      process=process if process is not None else True)
        self._build(size)
        self._fill_choices()
        self._show_notices()
        self._update_count()
        self._poll = QTimer(self)
        self._poll.timeout.connect(self._reread_if_changed)
        if run.being_written or not run.entries:
            self._poll.start(POLL_MS)
        self.resize(1200, 820)

    # ------------------------------------------------------------------------------------------ building

    def _build(self, size: int) -> None:
        central = QWidget(self)
        outer = QVBoxLayout(central)
        outer.setContentsMargins(8, 6, 8, 4)
        self.banner = MessageBar(central)
        outer.addWidget(self.banner)
        row = QHBoxLayout()
        self.overlay_combo = QComboBox()
        self.overlay_combo.setToolTip("What every thumbnail shows over its image")
        self.layer_spin = QSpinBox()
        self.layer_spin.setToolTip("Layer of the CLS map, for every thumbnail")
        self.head_combo = QComboBox()
        self.head_combo.setToolTip("Head of the CLS map, or the mean of the layer's heads, for every thumbnail")
        self.sort_combo = QComboBox()
        for key, text in SORTS.items():
            self.sort_combo.addItem(text, key)
        self.reverse_box = QCheckBox("reverse")
        self.label_combo = QComboBox()
        self.status_combo = QComboBox()
        for text, key in (("all images", "all"), ("analysed", "ok"), ("failed", "failed")):
            self.status_combo.addItem(text, key)
        self.domain_combo = QComboBox()
        for text, key in (("in and out of domain", "all"), ("in domain", "in"), ("out of domain", "out")):
            self.domain_combo.addItem(text, key)
        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("Search file names")
        self.search_edit.setClearButtonEnabled(True)
        for label, widget in (("Show", self.overlay_combo), ("Layer", self.layer_spin), ("Head", self.head_combo)):
            row.addWidget(QLabel(label))
            row.addWidget(widget)
        row.addSpacing(12)
        row.addWidget(self.search_edit, 1)
        outer.addLayout(row)
        row = QHBoxLayout()
        for label, widget in (("Sort", self.sort_combo), (None, self.reverse_box), ("Show only", self.label_combo),
                              (None, self.status_combo), (None, self.domain_combo)):
            if label:
                row.addWidget(QLabel(label))
            row.addWidget(widget)
        row.addStretch(1)
        self.present_button = QPushButton("Present selection")
        self.present_button.setToolTip("Step through the selected images (else every image shown) full-screen, with "
                                       "the run's model: ← → to step, Escape to leave")
        self.present_button.clicked.connect(self.present_selection)
        row.addWidget(self.present_button)
        outer.addLayout(row)
        self.view = QListView(central)
        # icon mode finds the items in view through a spatial index; list mode with wrapping made Qt build an index
        # (calling the model's rowCount) for thousands of rows per repaint: frames of 100 ms on 10,000 images
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setFlow(QListView.Flow.LeftToRight)
        self.view.setWrapping(True)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setUniformItemSizes(True)
        self.view.setLayoutMode(QListView.LayoutMode.Batched)  # the first screenful is painted before the rest is
        self.view.setBatchSize(200)  # laid out
        self.view.setSelectionMode(QListView.SelectionMode.ExtendedSelection)
        self.view.setVerticalScrollMode(QListView.ScrollMode.ScrollPerPixel)
        self.view.verticalScrollBar().setSingleStep(24)
        self.delegate = ThumbnailDelegate(size, self.view)
        self.view.setItemDelegate(self.delegate)
        self.view.setGridSize(self.delegate.sizeHint(None, QModelIndex()) + QSize(6, 6))  # type: ignore[arg-type]
        self.view.setModel(self.model)
        self.model.overlay_changed.connect(self.view.viewport().update)
        self.view.clicked.connect(self._clicked)
        self.view.activated.connect(self._clicked)
        outer.addWidget(self.view, 1)
        self.setCentralWidget(central)
        self.count_label = QLabel()
        self.statusBar().addWidget(self.count_label, 1)
        self.overlay_combo.currentIndexChanged.connect(self._overlay_changed)
        self.layer_spin.valueChanged.connect(self._overlay_changed)
        self.head_combo.currentIndexChanged.connect(self._overlay_changed)
        self.sort_combo.currentIndexChanged.connect(self._view_changed)
        self.reverse_box.toggled.connect(self._view_changed)
        self.label_combo.currentIndexChanged.connect(self._view_changed)
        self.status_combo.currentIndexChanged.connect(self._view_changed)
        self.domain_combo.currentIndexChanged.connect(self._view_changed)
        self.search_edit.textChanged.connect(self._view_changed)

    def _fill_choices(self) -> None:
        """The overlays, layers, heads and labels this run has (kept as chosen where they still exist)."""
        run = self.run
        blockers = [w.blockSignals(True) for w in (self.overlay_combo, self.layer_spin, self.head_combo,
                                                   self.label_combo)]
        kind = self.overlay_combo.currentData()
        self.overlay_combo.clear()
        choices = [("CLS map of a head", ("head", "")), ("attention rollout", ("rollout", ""))]
        choices += [(f"class evidence: {m}", ("evidence", m)) for m in run.evidence_methods] or [
            ("class evidence", ("evidence", ""))]
        choices += [("depth", ("depth", "")), ("image only", ("none", ""))]
        for text, data in choices:
            self.overlay_combo.addItem(text, data)
            item = self.overlay_combo.model().item(self.overlay_combo.count() - 1)
            if data[0] != "none" and not run.available.get(data[0]):
                item.setEnabled(False)
                item.setToolTip("not written by this run")
        current = self.model.overlay
        wanted = kind or (current.kind, current.method)
        self.overlay_combo.setCurrentIndex(max(0, self.overlay_combo.findData(wanted)))
        self.layer_spin.setRange(0, max(0, run.layers - 1))
        self.layer_spin.setValue(current.layer if current.layer >= 0 else max(0, run.layers + current.layer))
        head = self.head_combo.currentData()
        self.head_combo.clear()
        self.head_combo.addItem("mean", None)
        for h in range(run.heads):
            self.head_combo.addItem(str(h), h)
        self.head_combo.setCurrentIndex(max(0, self.head_combo.findData(head if head is not None else current.head)))
        label = self.label_combo.currentData()
        self.label_combo.clear()
        self.label_combo.addItem("all labels", "")
        for lab in self.model.gallery.labels():
            self.label_combo.addItem(lab, lab)
        self.label_combo.setCurrentIndex(max(0, self.label_combo.findData(label or "")))
        for w, blocked in zip((self.overlay_combo, self.layer_spin, self.head_combo, self.label_combo), blockers):
            w.blockSignals(blocked)
        self._enable_head_controls()

    def _enable_head_controls(self) -> None:
        heads = self.model.overlay.kind == "head"
        self.layer_spin.setEnabled(heads and self.run.layers > 0)
        self.head_combo.setEnabled(heads and self.run.heads > 0)

    # ------------------------------------------------------------------------------------------ choices

    def overlay(self) -> Overlay:
        kind, method = self.overlay_combo.currentData() or ("none", "")
        return Overlay(kind=kind, method=method, layer=self.layer_spin.value(), head=self.head_combo.currentData())

    def set_overlay(self, kind: str = "head", layer: int | None = None, head: int | None = None,
                    method: str = "") -> None:
        """Choose the overlay as the controls do (``head`` None: the mean of the layer's heads)."""
        index = self.overlay_combo.findData((kind, method))
        if index < 0:
            index = next((i for i in range(self.overlay_combo.count())
                          if self.overlay_combo.itemData(i)[0] == kind), -1)
        if index < 0:
            raise ValueError(f"no overlay {kind!r} here")
        for w in (self.overlay_combo, self.layer_spin, self.head_combo):
            w.blockSignals(True)
        self.overlay_combo.setCurrentIndex(index)
        if layer is not None:
            self.layer_spin.setValue(layer if layer >= 0 else self.run.layers + layer)
        self.head_combo.setCurrentIndex(max(0, self.head_combo.findData(head)))
        for w in (self.overlay_combo, self.layer_spin, self.head_combo):
            w.blockSignals(False)
        self._overlay_changed()

    def set_sort(self, key: str, reverse: bool = False) -> None:
        self.sort_combo.setCurrentIndex(self.sort_combo.findData(key))
        self.reverse_box.setChecked(reverse)

    def _overlay_changed(self) -> None:
        self.model.set_overlay(self.overlay())
        self._enable_head_controls()
        self._update_count()

    def _view_changed(self) -> None:
        sort = self.sort_combo.currentData()
        if sort == "disagreement" and not self.run.compared:
            self.banner.show_message("This run has no compare.json: sorting by disagreement needs a run written "
                                     "with vitviz analyze --compare MODEL", "info", topic="sort", transient=True)
        self.model.set_view(sort=sort, descending=self.reverse_box.isChecked(), label=self.label_combo.currentData(),
                            status=self.status_combo.currentData(), domain=self.domain_combo.currentData(),
                            search=self.search_edit.text())
        self._update_count()

    def _update_count(self) -> None:
        counts = self.run.counts()
        shown = len(self.model.gallery)
        parts = [f"{shown:,} of {counts['images']:,} images"]
        if counts["failed"]:
            parts.append(f"{counts['failed']:,} failed")
        if counts["out_of_domain"]:
            parts.append(f"{counts['out_of_domain']:,} out of domain")
        if self.run.model:
            parts.append(f"model {self.run.model}")
        parts.append(self.model.overlay.describe(self.run.layers))
        self.count_label.setText(" · ".join(parts))

    def _show_notices(self) -> None:
        notices = self.run.notices()
        if notices:
            kind = "warning" if self.run.being_written or self.run.from_folders or not self.run.entries else "info"
            self.banner.show_message("\n".join(notices), kind, topic="run")
        else:
            self.banner.dismiss_topics("run")

    def _reread_if_changed(self) -> None:
        if self.run.changed() or not self.run.entries:
            self.reload()

    def reload(self) -> None:
        """Read the run again now (as the timer does while it is being written)."""
        try:
            self.model.reload()
        except RunError as exc:
            self.banner.show_message(str(exc), "error", topic="run")
            return
        had_heads = self.layer_spin.maximum() > 0 or self.model.overlay.kind != "none"
        self._fill_choices()
        self._show_notices()
        self._update_count()
        if not had_heads and self.run.available.get("head"):  # the first maps of a run being written
            self.set_overlay("head", layer=-1)
        if not self.run.being_written and self.run.entries:
            self._poll.stop()

    # ------------------------------------------------------------------------------------------ opening

    def _clicked(self, index: QModelIndex) -> None:
        entry = index.data(ENTRY_ROLE)
        now = time.monotonic()
        if entry is None or (entry.name, now - self._last_open[1] < 0.5) == (self._last_open[0], True):
            return  # a click's own activation (single-click styles) opens once
        self._last_open = (entry.name, now)
        self.open_entry(entry)

    def open_entry(self, entry: Entry) -> str | None:
        """Open ``entry``'s image in the main window with the run's model; returns the file opened (None: a
        message says why not)."""
        if entry.failed:
            self.banner.show_message(f"{entry.name} failed in this run: {entry.error}", "warning", topic="open")
            return None
        path, note = self.run.image_to_open(entry)
        if path is None:
            self.banner.show_message(note, "error", topic="open")
            return None
        if note:
            self.banner.show_message(note, "info", topic="open", transient=True)
        main = self._main_with_model(entry)
        if main is None:
            return None
        main.open_image(str(path))
        main.show()
        main.raise_()
        self.image_opened.emit(str(path))
        return str(path)

    def _main_with_model(self, entry: Entry | None = None) -> MainWindow | None:
        """The main window, with the run's model loaded (or loading)."""
        if self._main_window is None:
            return None
        main = self._main_window()
        model = self.model_override or (entry.model if entry is not None else "") or self.run.model
        shown = main.state.model.name if main.state.model is not None else None
        if model and model != shown and main.picker.canonical(model) != main.session.model_spec:
            main.load_model(model)
        return main

    def selected_entries(self) -> list[Entry]:
        """The selected images in the gallery's order (every image shown when none is selected)."""
        rows = sorted(i.row() for i in self.view.selectionModel().selectedIndexes())
        rows = rows or list(range(self.model.rowCount()))
        return [self.model.gallery.entry(r) for r in rows]

    def present_selection(self) -> list[str]:
        """Presentation mode stepping through the selected images (← →), with the run's model; returns the files."""
        files = []
        for entry in self.selected_entries():
            path, _ = self.run.image_to_open(entry) if not entry.failed else (None, "")
            if path is not None:
                files.append(str(path))
        if not files:
            self.banner.show_message("Nothing to present: the selected images failed or their files are gone",
                                     "warning", topic="open")
            return []
        main = self._main_with_model()
        if main is None:
            return []
        main.present()
        main.presentation.pause_autoplay(status=False)
        main.presentation.set_playlist(files)
        main.presentation.next_image()
        return files

    # ------------------------------------------------------------------------------------------ a run in progress

    def attach_job(self, job: AnalyzeJob) -> None:
        """Follow ``job`` (File → Analyze folder…): a progress bar and a cancel button, the gallery filling in."""
        self.job = job
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, max(1, job.total))
        self.progress_bar.setFormat("%v of %m images")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the analysis; the images written so far stay")
        self.cancel_button.clicked.connect(job.cancel)
        self.statusBar().addPermanentWidget(self.progress_bar)
        self.statusBar().addPermanentWidget(self.cancel_button)
        job.progress.connect(self._job_progress)
        job.finished.connect(self._job_finished)
        self._poll.start(POLL_MS)

    def _job_progress(self, done: int, total: int) -> None:
        self.progress_bar.setMaximum(max(1, total))
        self.progress_bar.setValue(done)

    def _job_finished(self, code: int, message: str) -> None:
        self.run.writing = False
        self.progress_bar.hide()
        self.cancel_button.hide()
        self.reload()
        self.banner.show_message(message, "info" if code in (0, 1) and not self.job.cancelled else "warning",
                                 topic="job")
        self.job_finished.emit(code)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self.job is not None and self.job.running:
            self.job.cancel()  # the run stops as with Ctrl+C: what is written stays
        self._poll.stop()
        self.model.shutdown()
        super().closeEvent(event)


def open_results(folder: str | os.PathLike[str], main: MainWindow) -> BrowseWindow | None:
    """File → Open results…: the gallery of the run in ``folder``, its clicks opening images in ``main``; a folder
    that is not a run is said in ``main``'s banner."""
    try:
        run = open_run(Path(folder))
    except RunError as exc:
        main.show_error(str(exc), topic="results")
        return None
    window = BrowseWindow(run, lambda: main, parent=main)  # a window of its own, closed with the main one
    window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    window.show()
    return window


def analyze_folder(folder: str | os.PathLike[str], out: str | os.PathLike[str], main: MainWindow) -> BrowseWindow:
    """File → Analyze folder…: ``vitviz analyze folder --out out`` in the background with the window's model and
    device, and the gallery of ``out`` filling in as it runs."""
    session = main.session
    job = AnalyzeJob(folder, out, model=session.model_spec, device=session.device, depth_model=session.depth_model)
    job.start()
    run = Run(Path(out), writing=True)
    run.read()
    window = BrowseWindow(run, lambda: main, parent=main)
    window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    job.setParent(window)
    window.attach_job(job)
    window.show()
    return window


def run_browser(run: Run, model: str | None = None, device: str = "auto",
                process: ThumbnailProcess | None = None,
                window_class: Callable[[], QMainWindow] | None = None) -> int:
    """``vitviz browse DIR``: the gallery alone; the main window opens with the first click (``model``: instead
    of the run's own; ``process``: the thumbnail process, started before Qt was imported; ``window_class``: the main
    window's class, given by the caller so that this module does not import the module that imports it). Returns the
    exit status."""
    from .. import create_app, display_problem

    problem = display_problem()
    if problem:
        import sys

        print(f"vitviz: error: {problem}", file=sys.stderr)
        return 2
    app = create_app()
    holder: list[MainWindow] = []

    def main_window() -> MainWindow:
        if not holder:
            assert window_class is not None, "run_browser needs the main window's class"
            holder.append(window_class())
            holder[0].session.device = device or "auto"
        return holder[0]

    window = BrowseWindow(run, main_window, process=process)
    window.model_override = model
    window.show()
    return int(app.exec())
