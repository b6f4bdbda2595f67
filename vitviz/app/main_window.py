"""The vitviz main window: the wiring of the panels, menus, toolbar, status bar, worker session and settings.

What is shown lives in :class:`~vitviz.app.state.ViewState`; each panel (:mod:`vitviz.app.panels`) draws from it.
Heavy work runs on the worker thread through :class:`~vitviz.app.session.Session`.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QEvent, QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QGuiApplication, QIcon, QImage, QKeySequence
from PySide6.QtWidgets import QLabel, QMainWindow, QMenu, QToolButton, QVBoxLayout, QWidget

from . import dialogs, paths
from .compare_mode import CompareMode
from .file_menus import RecentFiles, fill_samples_menu
from .heads import HeadTools
from .live_mode import LiveMode
from .model_picker import ModelPicker
from .panels import (
    AttentionPanel, DepthPanel, DetailsPanel, EvidencePanel, FeaturesPanel, HeadAtlasPanel, InputPanel, LensPanel,
    PredictionsPanel,
)
from .panels.common import source_name
from .panels.knockout_bar import heads_text
from .presentation import PresentationView
from .session import Session
from .state import ViewState
from .status_bar import StatusBar
from .view_menu import ViewMenu, make_action
from .widgets import STYLE, MessageBar, add_view, splitter, view_tabs

__all__ = ["MainWindow"]

CHECKPOINT_SUFFIXES = (".json", ".safetensors", ".pt", ".pth", ".bin")


class MainWindow(QMainWindow):
    """The app window. Signals for tests and scripts: ``result_ready(result)`` after a result is displayed,
    ``error_shown(message)``, ``model_ready(summary)``, ``export_finished(folder, files)``, ``busy_changed(bool)``,
    ``preview_shown(preview)``."""

    result_ready = Signal(object)
    error_shown = Signal(str)
    model_ready = Signal(object)
    export_finished = Signal(str, list)
    busy_changed = Signal(bool)
    preview_shown = Signal(object)

    def __init__(self, settings: QSettings | None = None, samples: Path | None = None) -> None:
        super().__init__()
        self.settings = settings if settings is not None else QSettings(
            QSettings.Format.IniFormat, QSettings.Scope.UserScope, "vitviz", "vitviz")
        self.samples_folder = samples
        self.setWindowTitle("vitviz")
        self.setAcceptDrops(True)
        self.drops = dialogs.FileDrops(self)
        self.setStyleSheet(STYLE)
        if (icon := paths.icon_path()) is not None:
            self.setWindowIcon(QIcon(str(icon)))
        self.state = ViewState.from_settings(self.settings, self)
        self.session = Session(self)  # starts the worker thread; its answers arrive once the event loop runs
        self.recent = RecentFiles(self.settings)

        self.center_views, self.side_views = view_tabs(), view_tabs()  # the views beside each other
        self.input_panel = InputPanel(self.state)
        self.predictions_panel = PredictionsPanel(self.state)
        self.attention_panel = add_view(self.center_views, AttentionPanel(self.state), "Attention heads")
        self.features_panel = add_view(self.center_views, FeaturesPanel(self.state), "Features")
        self.atlas_panel = add_view(self.center_views, HeadAtlasPanel(self.state), "Head atlas")
        self.depth_panel = add_view(self.side_views, DepthPanel(self.state), "Depth")
        self.evidence_panel = add_view(self.side_views, EvidencePanel(self.state), "Class evidence")
        self.lens_panel = add_view(self.side_views, LensPanel(self.state), "Logit lens")
        self.details_panel = DetailsPanel(self.state)
        self.presentation = PresentationView.for_window(self)  # full screen, for an audience (F11)
        self.live = LiveMode(self.state, self.session, self)  # camera, video files, the built-in live scene
        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_central()
        self._build_statusbar()
        self.state.result_changed.connect(self._on_result_shown)
        self._connect_session()
        self._connect_picker()
        self.compare = CompareMode(self)  # View → Compare with…: a second model beside this one
        self.view_menu.insertMenu(self.act_present, self.compare.menu)
        self.view_menu.insertAction(self.act_present, self.compare.act_toggle)
        if (geometry := self.settings.value("window/geometry")) is None or not self.restoreGeometry(geometry):
            self.resize(1560, 940)
        self._painted = False
        self._after_paint: list[Callable[[], None]] = [self.session.warm_up]
        self.installEventFilter(self)
        QTimer.singleShot(2000, self.session.warm_up)  # a window never shown (tests, presentation) warms up anyway

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if watched is self and not self._painted and event.type() == QEvent.Type.Paint:
            self._painted = True
            self.removeEventFilter(self)
            QTimer.singleShot(0, self._run_after_paint)  # once this paint is on screen
        return super().eventFilter(watched, event)

    def after_first_paint(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the window has painted (at once if it has): start-up work that takes Python's lock
        (importing torch, loading a model, decoding an image) waits until the window is on screen."""
        if self._painted and not self._after_paint:
            QTimer.singleShot(0, callback)
        else:
            self._after_paint.append(callback)

    def _run_after_paint(self) -> None:
        callbacks, self._after_paint = self._after_paint, []
        for callback in callbacks:
            callback()

    # ------------------------------------------------------------------------------------------------ building

    def _build_actions(self) -> None:
        act = partial(make_action, self)
        self.act_open = act("&Open image…", self._open_dialog, QKeySequence.StandardKey.Open, "Open an image file")
        self.act_paste = act("&Paste image", self.paste_image, QKeySequence.StandardKey.Paste,
                             "Analyse the image (or image file) on the clipboard")
        self.act_checkpoint = act("Open &model file…", self._open_checkpoint_dialog, "Ctrl+Shift+O",
                                  "Load a checkpoint, or your own model: its weights or the Python file that builds "
                                  "it")
        self.act_export_view = act("Export &view as PNG…", self._export_view_dialog, "Ctrl+E",
                                   "Save a picture of the panels as shown")
        self.act_export_maps = act("Export all &maps…", self._export_maps_dialog, "Ctrl+Shift+E",
                                   "Write the input, attention maps, rollout and depth as PNG and NPY files")
        self.act_open_results = act("Open &results…", self._open_results_dialog, "Ctrl+Shift+R",
                                    "Browse the output folder of a vitviz analyze run: every image, one head's map")
        self.act_analyze_folder = act("&Analyze folder…", self._analyze_folder_dialog, None,
                                      "Run vitviz analyze on a folder of images in the background, and browse the run")
        self.act_quit = act("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.act_about = act("&About vitviz", lambda: dialogs.show_about(self))
        self.act_present = act("&Present", lambda: self.present(), "F11",
                               "Full-screen view for an audience: big pictures, plain words (Escape leaves)")

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.act_open)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(lambda: self.recent.fill(self.recent_menu, self.open_image))
        for item in (self.act_paste, self.act_open_results, self.act_analyze_folder, None, self.act_checkpoint, None, self.act_export_view, self.act_export_maps,
                     None, self.act_quit):
            file_menu.addAction(item) if item else file_menu.addSeparator()
        self.recent_menu.aboutToShow.emit()  # filled at once too, for keyboard users and tests
        self.samples_menu = bar.addMenu("&Samples")
        self.samples_menu.aboutToShow.connect(self._fill_samples_menu)
        self._fill_samples_menu()
        self.view_menu = ViewMenu(self.state, self)
        self.view_menu.addSeparator()
        self.view_menu.addAction(self.act_present)
        bar.addMenu(self.view_menu)
        self.heads = HeadTools(self)  # head knockout and importance
        bar.addMenu(self.heads.menu)
        bar.addMenu(self.live.menu)
        self.picker = ModelPicker(self.session, self.act_checkpoint, self)
        bar.addMenu(self.picker.menu)
        bar.addMenu("&Help").addAction(self.act_about)

    def _build_toolbar(self) -> None:
        tb = self.addToolBar("Main")
        tb.setObjectName("MainToolbar")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        tb.addAction(self.act_open)
        samples_button = QToolButton(self)
        samples_button.setText("Samples")
        samples_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(samples_button)
        menu.aboutToShow.connect(lambda: self._fill_samples_menu(menu))
        samples_button.setMenu(menu)
        tb.addWidget(samples_button)
        tb.addAction(self.act_paste)
        tb.addSeparator()
        self.model_combo, self.device_combo = self.picker.model_combo, self.picker.device_combo
        for item in (QLabel("  Model "), self.model_combo, QLabel("  Device "), self.device_combo):
            tb.addWidget(item)
        tb.addSeparator()
        tb.addAction(self.act_export_view)
        tb.addAction(self.act_export_maps)

    def _build_central(self) -> None:
        central = QWidget(self)
        outer = QVBoxLayout(central)
        outer.setContentsMargins(8, 6, 8, 4)
        outer.setSpacing(6)
        self.banner = MessageBar(central)
        outer.addWidget(self.banner)
        left = splitter(Qt.Orientation.Vertical, [self.input_panel, self.predictions_panel], [480, 420])
        right = splitter(Qt.Orientation.Vertical, [self.side_views, self.details_panel], [520, 380])
        self.splitter = splitter(Qt.Orientation.Horizontal, [left, self.center_views, right], [430, 700, 400])
        for i, stretch in enumerate((3, 5, 3)):
            self.splitter.setStretchFactor(i, stretch)
        outer.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

    def _build_statusbar(self) -> None:
        self.status_bar = StatusBar(self.state, self.session, self)
        self.setStatusBar(self.status_bar)
        self.hover_label, self.busy_label = self.status_bar.hover_label, self.status_bar.busy_label
        self.drops.hint.connect(self.hover_label.setText)
        self.status_bar.addPermanentWidget(self.live.readout)
        self.live.message.connect(lambda text, kind: self.show_message(text, kind, topic="live"))
        self.drops.dropped.connect(self._on_drop)
        self.busy_bar, self.timing_label = self.status_bar.busy_bar, self.status_bar.timing_label

    def _connect_session(self) -> None:
        s = self.session
        s.environment_ready.connect(self.picker.set_environment)
        s.model_ready.connect(self._on_model_ready)
        s.analysis_ready.connect(self.state.show)
        s.evidence_ready.connect(self.state.add_evidence)
        self.state.evidence_requested.connect(s.explain)
        self.state.query_requested.connect(s.query)
        self.state.map_requested.connect(s.evidence_map)
        s.map_ready.connect(self.state.map_ready)
        s.query_ready.connect(self.state.query_ready)
        self.state.model_requested.connect(self.picker.choose_model)  # asks before downloading
        self.state.target_changed.connect(  # (while comparing, the panel is on A's side: compare_mode shows it)
            lambda _t: self.side_views.indexOf(self.evidence_panel) >= 0
            and self.side_views.setCurrentWidget(self.evidence_panel))
        s.preview_ready.connect(self._on_preview)
        s.export_ready.connect(self._on_export_ready)
        s.failed.connect(self._on_failed)
        s.labels_ready.connect(self._on_labels_ready)
        self.predictions_panel.labels_requested.connect(
            lambda text, templates: s.set_labels(self.state.shown, text, templates))
        s.load_cancelled.connect(lambda: (self.picker.refresh(), self.show_message(
            "Download cancelled; the current model stays.", "info", transient=True)))
        s.busy_changed.connect(self.busy_changed)

    # -------------------------------------------------------------------------------------------- public API

    @property
    def current_result(self):
        """The :class:`vitviz.engine.AnalysisResult` on display, or None."""
        return self.state.result

    @property
    def current_model(self):
        return self.state.model

    @property
    def is_busy(self) -> bool:
        return self.session.is_busy

    def startup(self, image: str | os.PathLike[str] | None = None, model: str | None = None,
                device: str = "auto", depth_model: str | None = None) -> None:
        """What the app does when it starts: load the requested (or shipped) model and open an image or sample."""
        spec = model or next((str(m.config) for m in paths.shipped_models()), None)
        if spec:
            self.load_model(spec, device, depth_model)
        else:
            self.session.device = device or "auto"
            self.show_message(
                f"The shipped model '{paths.DEFAULT_MODEL}' is not installed (looked in {paths.weights_dir()}). "
                "Choose Model → Open model file… to load one; images open in the meantime without analysis.",
                "warning", topic="no-model")
        image = image if image is not None else paths.default_sample(self.samples_folder)
        if image is not None:
            self.open_image(image)

    def load_model(self, spec: str | os.PathLike[str], device: str | None = None,
                   depth_model: str | None = None) -> int:
        """Load a model on the worker (shipped name, pretrained name or checkpoint path); re-analyses the image."""
        req = self.session.load_model(self.picker.canonical(str(spec)), device, depth_model)
        self.picker.refresh()
        return req

    def present(self, target: str | os.PathLike[str] | None = None) -> None:
        """Presentation mode: full screen, for ``target`` (an image or a folder to cycle through) or what is shown."""
        self.presentation.enter(target)

    def set_depth_model(self, spec: str | None) -> None:
        """Use a separate depth model when the main model has no depth head; reloads the model."""
        self.session.depth_model = spec or None
        if self.session.model_spec:
            self.load_model(self.session.model_spec, depth_model=spec or "")

    def open_image(self, source: Any) -> int:
        """Analyse an image: a file path, an ``[H, W, 3]`` uint8 array, or ``(array, name)``. Returns the request id."""
        if isinstance(source, np.ndarray):
            source = (source, "array")
        elif isinstance(source, QImage):
            source = (dialogs.qimage_to_array(source), "image")
        elif not isinstance(source, tuple):
            source = str(source)
        return self.session.analyze(source)

    def open_path(self, path: str) -> None:
        """Open a file dropped or pasted: an image, or a checkpoint to load as the model."""
        (self.load_model if Path(path).suffix.lower() in CHECKPOINT_SUFFIXES else self.open_image)(str(path))

    def export_view(self, path: str | os.PathLike[str]) -> bool:
        """Save a picture of the panels as shown (PNG)."""
        ok = self.centralWidget().grab().save(str(path), "PNG")
        self.show_message(f"Saved the view to {path}", "info", transient=True) if ok else self.show_error(
            f"Could not write {path}")
        return ok

    def export_maps(self, folder: str | os.PathLike[str]) -> int:
        """Write all maps (PNG) and arrays (NPY) of the current result into ``folder`` on the worker."""
        if self.state.result is None:
            self.show_error("Nothing to export yet: open an image first.")
            return 0
        return self.session.export(self.state.result, str(folder), self.state.export_options())

    def paste_image(self) -> None:
        clipboard = QGuiApplication.clipboard()
        self._open_source(dialogs.mime_source(clipboard.mimeData(), clipboard.image(), "clipboard image"),
                          "The clipboard holds no image (copy an image or an image file first).")

    def _open_source(self, source: Any, otherwise: str = "") -> None:
        if isinstance(source, str):
            self.open_path(source)
        elif source is not None:
            self.open_image(source)
        elif otherwise:
            self.show_error(otherwise)

    def _on_drop(self, source: Any, files: int) -> None:
        self._open_source(source)
        if files > 1:
            self.show_message(f"{files} files dropped; opened {source_name(source)}", "info", transient=True)

    def show_error(self, message: str, topic: str = "error") -> None:
        self.show_message(message, "error", topic=topic)
        self.error_shown.emit(message)

    def show_message(self, message: str, kind: str = "info", transient: bool = False, topic: str | None = None) -> None:
        """Show the non-modal banner; ``topic`` lets a later success clear it (e.g. a good image after a bad one)."""
        self.banner.show_message(message, kind, topic, transient)

    # ------------------------------------------------------------------------------------------- answers

    def _on_model_ready(self, summary) -> None:
        self.picker.remember(summary.spec, summary.name)
        self.state.set_model(summary)
        self.banner.dismiss_topics("no-model", "model")  # solved
        self.model_ready.emit(summary)

    def _on_result_shown(self, shown) -> None:
        if shown is None:
            return
        result = shown.result
        out = f" — knocked out: {heads_text(result.ablated)}" if getattr(result, "ablated", None) else ""
        self.setWindowTitle(f"{source_name(result.source)}{out} — vitviz")
        self.banner.dismiss_topics("image")
        if isinstance(self.session.current_source, str) and result.source == self.session.current_source:
            self.recent.add(self.session.current_source)  # an opened file (not a live frame)
        self.result_ready.emit(result)

    def _on_preview(self, preview) -> None:
        self.state.show_preview(preview)
        self.setWindowTitle(f"{Path(preview.source).name} — vitviz")
        self.preview_shown.emit(preview)

    def _on_export_ready(self, folder: str, files: list) -> None:
        self.show_message(f"Exported {len(files)} files to {folder}", "info", transient=True)
        self.export_finished.emit(folder, files)

    def ask_labels(self, text: str, templates: list[str] | None = None) -> None:
        """Compare the shown picture with the labels in ``text`` (image-text models; the label box's templates by
        default): re-scored on the worker, as the label box does."""
        box = self.predictions_panel.labels
        box.edit.setPlainText(text)
        self.session.set_labels(self.state.shown, text, templates or box.templates())

    def _on_labels_ready(self, shown, info) -> None:
        """An image-text model accepted new labels: the displayed analysis re-scored, the label box and the model's
        details updated, notices (merged repeats, labels cut) shown."""
        old, notices, labels, templates = info
        if self.state.accept_labels(shown, old, labels, templates):  # a newer image came meanwhile: score it too
            self.session.set_labels(self.state.shown, "\n".join(labels), list(templates))
        if notices:
            self.show_message("Labels: " + "; ".join(notices) + ".", "info", transient=True, topic="labels")
        else:
            self.banner.dismiss_topics("labels")

    def _on_failed(self, kind: str, message: str) -> None:
        if kind == "model":  # the previous model, device and depth model stay
            self.picker.refresh()
        elif kind == "query":  # a later click on the same patch asks again
            self.state.pending_query = None
        self.show_error(message, topic=kind if kind in ("image", "model", "labels") else "error")

    # ------------------------------------------------------------------------------------------- events

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt API
        self.drops.drag_enter(event)

    def dragLeaveEvent(self, event) -> None:  # noqa: N802
        self.drops.hint.emit("")

    def dropEvent(self, event) -> None:  # noqa: N802
        self.drops.drop(event)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.sync()
        for dialog in (self.attention_panel.detail, self.depth_panel.detail):
            dialog.close()
        self.live.stop()
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop the worker thread (waits for a running forward pass to reach its next stage)."""
        self.compare.shutdown()
        self.session.shutdown()

    # ------------------------------------------------------------------------------------------- menus & dialogs

    def _connect_picker(self) -> None:
        p = self.picker
        p.model_chosen.connect(self.load_model)
        p.depth_model_chosen.connect(lambda spec: self.set_depth_model(spec or None))
        p.device_chosen.connect(self._set_device)
        p.open_checkpoint.connect(self._open_checkpoint_dialog)

    def _set_device(self, device: str) -> None:
        if device != self.session.device:
            self.session.device = device
            self.picker.refresh()
            if self.session.model_spec:
                self.load_model(self.session.model_spec, device)

    def _fill_samples_menu(self, menu: QMenu | None = None) -> None:
        fill_samples_menu(menu if isinstance(menu, QMenu) else self.samples_menu, self.samples_folder, self.open_image)

    def sample_actions(self) -> list[QAction]:
        self._fill_samples_menu()
        return [a for a in self.samples_menu.actions() if a.isEnabled()]

    def _open_dialog(self) -> None:
        if path := dialogs.ask_image(self, self.settings):
            self.open_image(path)

    def _open_results_dialog(self) -> None:
        if folder := dialogs.ask_folder(self, self.settings, "Open the results of vitviz analyze"):
            self.open_results(folder)

    def open_results(self, folder: str | os.PathLike[str]):
        """The gallery of the ``vitviz analyze`` run in ``folder`` (None, with a message, when it is not one)."""
        from .browse.window import open_results

        return open_results(folder, self)

    def _analyze_folder_dialog(self) -> None:
        if (folder := dialogs.ask_folder(self, self.settings, "Analyze the images in folder")) and (
                out := dialogs.ask_folder(self, self.settings, "Write the results into folder")):
            self.analyze_folder(folder, out)

    def analyze_folder(self, folder: str | os.PathLike[str], out: str | os.PathLike[str]):
        """``vitviz analyze folder --out out`` in the background with this window's model; the run's gallery."""
        from .browse.window import analyze_folder

        return analyze_folder(folder, out, self)

    def _open_checkpoint_dialog(self) -> None:
        if path := dialogs.ask_checkpoint(self, self.settings):
            self.load_model(path)

    def _export_view_dialog(self) -> None:
        stem = Path(self.state.result.source).stem if self.state.result is not None else "vitviz"
        if path := dialogs.ask_png(self, self.settings, "Export view as PNG", f"{stem}-vitviz-layer{self.state.layer}.png"):
            self.export_view(path)

    def _export_maps_dialog(self) -> None:
        if self.state.result is None:
            self.show_error("Nothing to export yet: open an image first.")
        elif folder := dialogs.ask_folder(self, self.settings, "Export all maps into folder"):
            target = Path(folder) / f"{Path(self.state.result.source).stem or 'image'}-vitviz"
            if dialogs.confirm_replace_export(self, target):  # an earlier export of this image is not overwritten
                self.export_maps(str(target))                 # without asking
            else:
                self.show_message(f"Export cancelled: {target} keeps the earlier export", "info", transient=True)
