"""The vitviz main window: input image with its patch grid, predictions, per-head attention and depth, side by side.

Heavy work (importing torch, loading models, decoding images, inference, exports) happens on the worker thread
(:mod:`vitviz.app.worker`); this module only draws. Requests carry increasing ids and only the answer to the newest
one is ever shown.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSettings, QSize, Qt, QThread, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QGuiApplication, QIcon, QImage, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .. import __version__
from ..render import COLORMAPS, apply_colormap, colormap_lut, normalize, overlay
from . import paths
from .widgets import ColorBar, ImageCanvas, MapDialog, MessageBar, Panel, PredictionChart, TileGrid, format_percent
from .presentation import PresentationView  # presentation mode (issue 21)
from .worker import AnalysisWorker, ModelSummary, Preview, RequestTracker, Shown

__all__ = ["MainWindow"]

OPEN_CHECKPOINT = "__open_checkpoint__"
MAX_RECENT = 10
IMAGE_FILTER = "Images (" + " ".join(f"*{s}" for s in paths.IMAGE_SUFFIXES) + ");;All files (*)"
CHECKPOINT_FILTER = "vitviz checkpoints (*.json *.safetensors *.pt *.pth *.bin);;All files (*)"

STYLE = """
QFrame#Panel { background: palette(base); border: 1px solid #d5dbe3; border-radius: 8px; }
QLabel#PanelTitle { font-weight: 600; }
QLabel#Muted { color: #5b6470; }
QLabel#ModeChip { border-radius: 9px; padding: 1px 9px; font-weight: 600; }
QToolBar { spacing: 6px; }
"""


class MainWindow(QMainWindow):
    """The app window. Signals for tests and scripts: ``result_ready(result)`` after a result is displayed,
    ``error_shown(message)``, ``model_ready(summary)``, ``export_finished(folder, files)``, ``busy_changed(bool)``."""

    result_ready = Signal(object)
    error_shown = Signal(str)
    model_ready = Signal(object)
    export_finished = Signal(str, list)
    busy_changed = Signal(bool)
    preview_shown = Signal(object)

    # requests to the worker (queued across threads)
    _req_warm_up = Signal()
    _req_model = Signal(int, str, str, object)
    _req_analyze = Signal(int, object)
    _req_export = Signal(int, object, str, dict)

    def __init__(self, settings: QSettings | None = None, samples: Path | None = None) -> None:
        super().__init__()
        self.settings = settings if settings is not None else QSettings(
            QSettings.Format.IniFormat, QSettings.Scope.UserScope, "vitviz", "vitviz"
        )
        self.samples_folder = samples
        self.setWindowTitle("vitviz")
        self.setAcceptDrops(True)
        icon = paths.icon_path()
        if icon is not None:
            self.setWindowIcon(QIcon(str(icon)))

        # state
        self._seq = 0
        self._tracker = RequestTracker()
        self._pending: set[int] = set()
        self._latest_model_req = 0
        self._latest_image_req = 0
        self._latest_export_req = 0
        self._shown: Shown | None = None
        self._preview: Preview | None = None
        self._model: ModelSummary | None = None
        self._model_spec: str | None = None
        self._depth_model: str | None = None
        self._device = "auto"
        self._current_source: Any = None  # source of the displayed result
        self._requested_source: Any = None  # source of the newest analysis request
        self._layer = 0
        self._query: int | None = None
        self._hover: int | None = None
        self._detail_tile: int | None = None
        self._tile_values: list[np.ndarray] = []
        self._tile_ranges: list[tuple[float, float]] = []
        self._custom_models: list[str] = []
        self._spec_names: dict[str, str] = {}  # checkpoint path -> model name, once loaded
        self._model_requests: dict[int, tuple[str, str | None]] = {}  # request id -> (device, depth model)
        self._loaded_options: tuple[str, str | None] = ("auto", None)  # (device, depth model) of the loaded model
        self._zoo: list[tuple[str, str, str]] = []  # (name, summary, task) of the pretrained models
        self._devices = ["auto", "cpu"]
        self._banner_topic: str | None = None  # what the banner is about: "no-model", "model", "image", ...
        self._busy = False

        s = self.settings
        self._alpha = _setting_float(s, "view/opacity", 0.6)
        self._cmap = _setting_choice(s, "view/cmap", "inferno", COLORMAPS)
        self._depth_cmap = _setting_choice(s, "view/depth_cmap", "turbo", COLORMAPS)
        self._norm = _setting_choice(s, "view/normalise", "head", ("head", "layer"))
        self._grid = _setting_bool(s, "view/grid", True)
        self._smooth = _setting_bool(s, "view/smooth", True)

        self.setStyleSheet(STYLE)
        self._banner_timer = QTimer(self)
        self._banner_timer.setSingleShot(True)
        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_central()
        self._build_statusbar()
        self.detail = MapDialog(self)
        self.detail.finished.connect(lambda _r: self._set_detail_tile(None))
        self.depth_detail = MapDialog(self)  # the depth map enlarged, with the value of the pixel under the mouse
        self.presentation = PresentationView.for_window(self)  # presentation mode (issue 21)
        self._start_worker()
        self._apply_empty_state()
        geometry = s.value("window/geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1560, 940)

    # ------------------------------------------------------------------------------------------------ building

    def _build_actions(self) -> None:
        def action(text: str, slot, shortcut=None, tip: str = "", checkable: bool = False) -> QAction:
            a = QAction(text, self)
            if shortcut is not None:
                a.setShortcuts(shortcut if isinstance(shortcut, list) else [QKeySequence(shortcut)])
            if tip:
                a.setStatusTip(tip)
                a.setToolTip(tip)
            a.setCheckable(checkable)
            a.triggered.connect(slot)
            self.addAction(a)
            return a

        self.act_open = action("&Open image…", self._open_dialog, QKeySequence.StandardKey.Open, "Open an image file")
        self.act_paste = action("&Paste image", self.paste_image, QKeySequence.StandardKey.Paste,
                                "Analyse the image (or image file) on the clipboard")
        self.act_checkpoint = action("Open &checkpoint…", self._open_checkpoint_dialog, "Ctrl+Shift+O",
                                     "Load a vitviz checkpoint (.json + .safetensors) from disk")
        self.act_export_view = action("Export &view as PNG…", self._export_view_dialog, "Ctrl+E",
                                      "Save a picture of the panels as shown")
        self.act_export_maps = action("Export all &maps…", self._export_maps_dialog, "Ctrl+Shift+E",
                                      "Write the input, attention maps, rollout and depth as PNG and NPY files")
        self.act_quit = action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.act_prev_layer = action("&Previous layer", lambda: self.step_layer(-1), [QKeySequence("Left")],
                                     "Show the previous layer")
        self.act_next_layer = action("&Next layer", lambda: self.step_layer(1), [QKeySequence("Right")],
                                     "Show the next layer")
        self.act_first_layer = action("&First layer", lambda: self.set_layer(0), "Home")
        self.act_last_layer = action("&Last layer", lambda: self.set_layer(-1), "End")
        self.act_cls = action("Back to &CLS attention", self.clear_query, "Escape",
                              "Show the CLS token's attention again instead of a patch query")
        self.act_grid = action("Show patch &grid", self.set_grid_visible, "G", "Draw the model's patch grid",
                               checkable=True)
        self.act_grid.setChecked(self._grid)
        self.act_smooth = action("&Smooth attention maps", self._set_smooth, None,
                                 "Interpolate attention between patch centres (off: one flat block per patch)",
                                 checkable=True)
        self.act_smooth.setChecked(self._smooth)
        self.norm_group = QActionGroup(self)
        self.act_norm_head = action("Normalise per &head", lambda: self.set_normalisation("head"), None,
                                    "Scale every head's map to its own range", checkable=True)
        self.act_norm_layer = action("Normalise per &layer", lambda: self.set_normalisation("layer"), None,
                                     "One colour scale for all heads of the layer (compare heads)", checkable=True)
        for a in (self.act_norm_head, self.act_norm_layer):
            self.norm_group.addAction(a)
        (self.act_norm_head if self._norm == "head" else self.act_norm_layer).setChecked(True)
        self.act_about = action("&About vitviz", self._about)
        self.act_present = action("&Present", lambda: self.present(), "F11",  # presentation mode (issue 21)
                                  "Full-screen view for an audience: big pictures, plain words (Escape leaves)")

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.act_open)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addAction(self.act_paste)
        file_menu.addSeparator()
        file_menu.addAction(self.act_checkpoint)
        file_menu.addSeparator()
        file_menu.addAction(self.act_export_view)
        file_menu.addAction(self.act_export_maps)
        file_menu.addSeparator()
        file_menu.addAction(self.act_quit)
        # Filled at once too, so that tests and keyboard users find the entries without opening the menus.
        self._fill_recent_menu()

        self.samples_menu = bar.addMenu("&Samples")
        self.samples_menu.aboutToShow.connect(self._fill_samples_menu)
        self._fill_samples_menu()

        view = bar.addMenu("&View")
        for a in (self.act_prev_layer, self.act_next_layer, self.act_first_layer, self.act_last_layer):
            view.addAction(a)
        view.addSeparator()
        view.addAction(self.act_cls)
        view.addSeparator()
        view.addAction(self.act_grid)
        view.addAction(self.act_smooth)
        view.addSeparator()
        view.addAction(self.act_norm_head)
        view.addAction(self.act_norm_layer)
        view.addSeparator()
        view.addAction(self.act_present)  # presentation mode (issue 21)

        self.model_menu = bar.addMenu("&Model")
        self.model_menu.aboutToShow.connect(self._fill_model_menu)

        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.act_about)

    def _build_toolbar(self) -> None:
        tb = self.addToolBar("Main")
        tb.setObjectName("MainToolbar")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        tb.addAction(self.act_open)
        samples_button = QToolButton(self)
        samples_button.setText("Samples")
        samples_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.samples_button_menu = QMenu(samples_button)
        self.samples_button_menu.aboutToShow.connect(lambda: self._fill_samples_menu(self.samples_button_menu))
        samples_button.setMenu(self.samples_button_menu)
        tb.addWidget(samples_button)
        tb.addAction(self.act_paste)
        tb.addSeparator()
        tb.addWidget(_spaced_label("Model"))
        self.model_combo = QComboBox(self)
        self.model_combo.setMinimumContentsLength(18)
        self.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_combo.setToolTip("Model to run: shipped models, pretrained models, or a checkpoint on disk")
        self.model_combo.activated.connect(self._on_model_combo)
        tb.addWidget(self.model_combo)
        tb.addWidget(_spaced_label("Device"))
        self.device_combo = QComboBox(self)
        self.device_combo.setToolTip("Where the model runs: auto picks a GPU when there is one")
        self.device_combo.addItems(self._devices)
        self.device_combo.activated.connect(self._on_device_combo)
        tb.addWidget(self.device_combo)
        tb.addSeparator()
        tb.addAction(self.act_export_view)
        tb.addAction(self.act_export_maps)
        self._fill_model_combo()

    def _build_central(self) -> None:
        central = QWidget(self)
        outer = QVBoxLayout(central)
        outer.setContentsMargins(8, 6, 8, 4)
        outer.setSpacing(6)
        self.banner = MessageBar(central)
        self._banner_timer.timeout.connect(self.banner.dismiss)
        outer.addWidget(self.banner)

        # -- input --
        self.input_panel = Panel("Input")
        self.grid_check = QCheckBox("Patch grid")
        self.grid_check.setChecked(self._grid)
        self.grid_check.setToolTip("Show the model's patch grid (G)")
        self.grid_check.toggled.connect(self.set_grid_visible)
        self.input_panel.add_header_widget(self.grid_check)
        self.input_canvas = ImageCanvas(placeholder="Open an image (Ctrl+O), drop one here, paste one (Ctrl+V) or "
                                                    "pick a sample.")
        self.input_canvas.setCursor(Qt.CursorShape.CrossCursor)
        self.input_canvas.setToolTip("Hover a patch to see where it is; click it to show its query attention")
        self.input_canvas.hovered.connect(lambda pos: self._on_hover_pixel(pos, "input"))
        self.input_canvas.clicked.connect(self._on_input_clicked)
        self.notices_label = QLabel("")
        self.notices_label.setObjectName("Muted")
        self.notices_label.setWordWrap(True)
        self.notices_label.hide()
        self.input_info = QLabel("")
        self.input_info.setObjectName("Muted")
        self.input_info.setWordWrap(True)
        self.input_panel.body.addWidget(self.input_canvas, 1)
        self.input_panel.body.addWidget(self.input_info)
        self.input_panel.body.addWidget(self.notices_label)

        # -- predictions --
        self.pred_panel = Panel("Predictions")
        self.chart = PredictionChart()
        self.pred_panel.body.addWidget(self.chart, 1)

        # -- attention --
        self.att_panel = Panel("Attention")
        self.mode_chip = QLabel("CLS")
        self.mode_chip.setObjectName("ModeChip")
        self.att_panel.header.insertWidget(0, self.mode_chip)
        self.cls_button = QPushButton("Back to CLS  (Esc)")
        self.cls_button.setToolTip("Show the CLS token's attention again")
        self.cls_button.clicked.connect(self.clear_query)
        self.cls_button.hide()
        self.att_panel.add_header_widget(self.cls_button)

        controls = QHBoxLayout()
        controls.setSpacing(8)
        controls.addWidget(QLabel("Layer"))
        self.layer_slider = QSlider(Qt.Orientation.Horizontal)
        self.layer_slider.setRange(0, 0)
        self.layer_slider.setPageStep(1)
        self.layer_slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.layer_slider.setTickInterval(1)
        self.layer_slider.setToolTip("Transformer block whose attention is shown (← → keys; 0 is the first)")
        self.layer_slider.valueChanged.connect(self._on_layer_slider)
        self.layer_slider.setMinimumWidth(110)
        controls.addWidget(self.layer_slider, 2)
        self.layer_label = QLabel("–")
        self.layer_label.setMinimumWidth(60)
        controls.addWidget(self.layer_label)
        controls.addSpacing(10)
        controls.addWidget(QLabel("Opacity"))
        self.alpha_slider = QSlider(Qt.Orientation.Horizontal)
        self.alpha_slider.setRange(0, 100)
        self.alpha_slider.setValue(int(round(self._alpha * 100)))
        self.alpha_slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.alpha_slider.setMinimumWidth(80)
        self.alpha_slider.setMaximumWidth(140)
        self.alpha_slider.setToolTip("Opacity of the attention overlay over the image")
        self.alpha_slider.valueChanged.connect(lambda v: self.set_opacity(v / 100.0))
        controls.addWidget(self.alpha_slider, 1)
        self.alpha_label = QLabel(f"{int(round(self._alpha * 100))}%")
        self.alpha_label.setMinimumWidth(36)
        controls.addWidget(self.alpha_label)
        controls.addSpacing(10)
        self.cmap_combo = _combo(COLORMAPS, self._cmap, "Colormap of the attention maps")
        self.cmap_combo.currentTextChanged.connect(self.set_colormap)
        controls.addWidget(self.cmap_combo)
        self.norm_combo = QComboBox()
        self.norm_combo.addItem("per head", "head")
        self.norm_combo.addItem("per layer", "layer")
        self.norm_combo.setCurrentIndex(0 if self._norm == "head" else 1)
        self.norm_combo.setToolTip("Colour scale: each head's own range, or one range for the whole layer")
        self.norm_combo.currentIndexChanged.connect(lambda i: self.set_normalisation(self.norm_combo.itemData(i)))
        controls.addWidget(self.norm_combo)
        self.att_panel.body.addLayout(controls)
        self.tiles = TileGrid(placeholder="Attention maps of every head appear here.")
        self.tiles.tile_clicked.connect(self.open_detail)
        self.tiles.tile_hovered.connect(self._on_tile_hover)
        self.att_panel.body.addWidget(self.tiles, 1)
        self.att_legend = ColorBar(Qt.Orientation.Horizontal)
        self.att_panel.body.addWidget(self.att_legend)
        self.att_hint = QLabel("Click a map to enlarge it · click a patch of the input to see what that patch "
                               "attends to · ← → change the layer")
        self.att_hint.setObjectName("Muted")
        self.att_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.att_panel.body.addWidget(self.att_hint)

        # -- depth --
        self.depth_panel = Panel("Depth")
        self.depth_cmap_combo = _combo(COLORMAPS, self._depth_cmap, "Colormap of the depth map")
        self.depth_cmap_combo.currentTextChanged.connect(self.set_depth_colormap)
        self.depth_panel.add_header_widget(self.depth_cmap_combo)
        depth_row = QHBoxLayout()
        self.depth_canvas = ImageCanvas(placeholder="The predicted depth map appears here.")
        self.depth_canvas.set_clickable(True)
        self.depth_canvas.hovered.connect(lambda pos: self._on_hover_pixel(pos, "depth"))
        self.depth_canvas.clicked.connect(lambda _pos: self.open_depth_detail())
        self.depth_bar = ColorBar(Qt.Orientation.Vertical)
        depth_row.addWidget(self.depth_canvas, 1)
        depth_row.addWidget(self.depth_bar)
        self.depth_canvas.geometry_changed.connect(
            lambda r: self.depth_bar.set_span(r.top(), r.bottom()) if r.height() else self.depth_bar.set_span(None)
        )
        self.depth_panel.body.addLayout(depth_row, 1)
        self.depth_info = QLabel("")
        self.depth_info.setObjectName("Muted")
        self.depth_info.setWordWrap(True)
        self.depth_panel.body.addWidget(self.depth_info)

        # -- details --
        self.info_panel = Panel("Details")
        self.info_label = QLabel("")
        self.info_label.setTextFormat(Qt.TextFormat.RichText)
        self.info_label.setWordWrap(True)
        self.info_label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.info_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.info_panel.body.addWidget(self.info_label, 1)

        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.input_panel)
        left.addWidget(self.pred_panel)
        left.setSizes([560, 340])
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.depth_panel)
        right.addWidget(self.info_panel)
        right.setSizes([520, 380])
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.att_panel)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 5)
        self.splitter.setStretchFactor(2, 3)
        self.splitter.setSizes([430, 700, 400])
        for sp in (left, right, self.splitter):
            sp.setChildrenCollapsible(False)
            sp.setHandleWidth(8)
        outer.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

    def _build_statusbar(self) -> None:
        sb = self.statusBar()
        self.hover_label = QLabel("")
        self.hover_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        sb.addWidget(self.hover_label, 1)
        self.busy_label = QLabel("")
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)
        self.busy_bar.setMaximumSize(QSize(120, 14))
        self.busy_bar.setTextVisible(False)
        self.timing_label = QLabel("")
        self.timing_label.setObjectName("Muted")
        sb.addPermanentWidget(self.busy_label)
        sb.addPermanentWidget(self.busy_bar)
        sb.addPermanentWidget(self.timing_label)
        self.busy_label.hide()
        self.busy_bar.hide()

    def _start_worker(self) -> None:
        self._thread = QThread(self)
        self._thread.setObjectName("vitviz-worker")
        self._worker = AnalysisWorker(self._tracker)
        self._worker.moveToThread(self._thread)
        self._thread.finished.connect(self._worker.deleteLater)
        self._req_warm_up.connect(self._worker.warm_up)
        self._req_model.connect(self._worker.load_model)
        self._req_analyze.connect(self._worker.analyze)
        self._req_export.connect(self._worker.export)
        self._worker.environment_ready.connect(self._on_environment)
        self._worker.model_ready.connect(self._on_model_ready)
        self._worker.analysis_ready.connect(self._on_analysis_ready)
        self._worker.preview_ready.connect(self._on_preview_ready)
        self._worker.export_ready.connect(self._on_export_ready)
        self._worker.failed.connect(self._on_failed)
        self._worker.finished.connect(self._on_request_finished)
        self._worker.download_progress.connect(self._on_download_progress)
        self._thread.start()
        self._req_warm_up.emit()

    # -------------------------------------------------------------------------------------------- public API

    @property
    def current_result(self):
        """The :class:`vitviz.engine.AnalysisResult` on display, or None."""
        return self._shown.result if self._shown is not None else None

    @property
    def current_model(self) -> ModelSummary | None:
        return self._model

    @property
    def layer(self) -> int:
        return self._layer

    @property
    def query_patch(self) -> int | None:
        """The patch whose query attention is shown, or None for CLS attention."""
        return self._query

    @property
    def is_busy(self) -> bool:
        return bool(self._pending)

    def attention_mode(self) -> str:
        """``"cls"`` or ``"query:<patch>"``."""
        return "cls" if self._query is None else f"query:{self._query}"

    def mode_text(self) -> str:
        return self.mode_chip.text()

    def bar_labels(self) -> list[str]:
        return self.chart.labels()

    def head_view_count(self) -> int:
        """Number of attention tiles shown: one per head, plus the mean over heads and the rollout."""
        return len(self.tiles.tiles) if self._shown is not None else 0

    def head_view_image(self, index: int) -> np.ndarray | None:
        return self.tiles.tiles[index].rgb

    def head_view_caption(self, index: int) -> str:
        return self.tiles.tiles[index].caption

    def shown_image(self) -> np.ndarray | None:
        return self.input_canvas.rgb

    def banner_text(self) -> str:
        return self.banner.message()

    def startup(self, image: str | os.PathLike[str] | None = None, model: str | None = None,
                device: str = "auto", depth_model: str | None = None) -> None:
        """What the app does when it starts: load the requested (or shipped) model and open an image or sample."""
        spec = model
        if not spec:
            shipped = paths.shipped_models()
            if shipped:
                spec = str(shipped[0].config)
            else:
                self.show_message(
                    f"The shipped model '{paths.DEFAULT_MODEL}' is not installed (looked in {paths.weights_dir()}). "
                    "Choose Model → Open checkpoint… to load one; images open in the meantime without analysis.",
                    "warning",
                    topic="no-model",
                )
        if spec:
            self.load_model(spec, device, depth_model)
        else:
            self._device = device or "auto"
        if image is None:
            image = paths.default_sample(self.samples_folder)
        if image is not None:
            self.open_image(image)

    def load_model(self, spec: str | os.PathLike[str], device: str | None = None,
                   depth_model: str | None = None) -> int:
        """Load a model on the worker (shipped name, pretrained name or checkpoint path); re-analyses the image."""
        spec = str(spec)
        for shipped in paths.shipped_models():
            if spec == shipped.name:
                spec = str(shipped.config)  # one entry per shipped model in the model list
        if device:
            self._device = device
        if depth_model is not None:
            self._depth_model = depth_model or None
        req = self._next_request()
        self._latest_model_req = req
        self._pending.add(req)
        self._update_busy()
        self._model_requests[req] = (self._device, self._depth_model)
        _set_combo_text(self.device_combo, self._device)
        self._req_model.emit(req, spec, self._device, self._depth_model)
        return req  # the image is analysed again once the model is ready (see _on_model_ready)

    def open_image(self, source: Any) -> int:
        """Analyse an image: a file path, an ``[H, W, 3]`` uint8 array, or ``(array, name)``. Returns the request id."""
        if isinstance(source, np.ndarray):
            source = (source, "array")
        elif isinstance(source, QImage):
            source = (_qimage_to_array(source), "image")
        elif not isinstance(source, tuple):
            source = str(source)
        return self._analyze(source)

    def present(self, target: str | os.PathLike[str] | None = None) -> None:
        """Presentation mode (issue 21): full-screen; ``target`` an image or a folder to cycle through."""
        self.presentation.enter(target)

    def leave_presentation(self) -> None:
        self.presentation.leave()

    def set_layer(self, layer: int) -> None:
        """Show layer ``layer`` (negative counts from the end); no re-run of the model."""
        n = self.layer_slider.maximum() + 1
        if layer < 0:
            layer += n
        self.layer_slider.setValue(max(0, min(n - 1, int(layer))))

    def step_layer(self, delta: int) -> None:
        self.set_layer(self.layer_slider.value() + delta)

    def select_patch(self, patch: int | None) -> None:
        """Show the attention of ``patch``'s query (all heads) instead of CLS; None returns to CLS."""
        result = self.current_result
        if patch is not None and (result is None or not 0 <= patch < result.grid.num_patches
                                  or result.attentions is None):
            return
        self._query = patch
        self._refresh_attention()

    def clear_query(self) -> None:
        if self._query is not None:
            self.select_patch(None)

    def set_grid_visible(self, visible: bool) -> None:
        self._grid = bool(visible)
        for w in (self.grid_check, self.act_grid):
            w.blockSignals(True)
            w.setChecked(self._grid)
            w.blockSignals(False)
        for canvas in self._canvases():
            canvas.set_grid_visible(self._grid and self._has_grid())
        self.settings.setValue("view/grid", self._grid)

    def set_opacity(self, alpha: float) -> None:
        self._alpha = float(min(1.0, max(0.0, alpha)))
        self.alpha_label.setText(f"{int(round(self._alpha * 100))}%")
        if self.alpha_slider.value() != int(round(self._alpha * 100)):
            self.alpha_slider.blockSignals(True)
            self.alpha_slider.setValue(int(round(self._alpha * 100)))
            self.alpha_slider.blockSignals(False)
        self.settings.setValue("view/opacity", self._alpha)
        self._refresh_attention()

    def set_colormap(self, name: str) -> None:
        if name in COLORMAPS:
            self._cmap = name
            _set_combo_text(self.cmap_combo, name)
            self.settings.setValue("view/cmap", name)
            self._refresh_attention()

    def set_depth_colormap(self, name: str) -> None:
        if name in COLORMAPS:
            self._depth_cmap = name
            _set_combo_text(self.depth_cmap_combo, name)
            self.settings.setValue("view/depth_cmap", name)
            self._refresh_depth()

    def set_normalisation(self, mode: str) -> None:
        if mode not in ("head", "layer"):
            return
        self._norm = mode
        self.norm_combo.blockSignals(True)
        self.norm_combo.setCurrentIndex(0 if mode == "head" else 1)
        self.norm_combo.blockSignals(False)
        (self.act_norm_head if mode == "head" else self.act_norm_layer).setChecked(True)
        self.settings.setValue("view/normalise", mode)
        self._refresh_attention()

    def _set_smooth(self, smooth: bool) -> None:
        self._smooth = bool(smooth)
        self.settings.setValue("view/smooth", self._smooth)
        self._refresh_attention()

    def open_detail(self, tile: int) -> None:
        """Enlarge one attention tile (head, mean or rollout) in a non-modal window that follows the view."""
        if self._shown is None or not 0 <= tile < len(self.tiles.tiles):
            return
        self._set_detail_tile(tile)
        self._update_detail()
        self.detail.show()
        self.detail.raise_()

    def open_depth_detail(self) -> None:
        """Enlarge the depth map in a non-modal window (colour bar, value under the mouse) that follows the view."""
        result = self.current_result
        if result is None or result.depth is None:
            return
        self._update_depth_detail()
        self.depth_detail.show()
        self.depth_detail.raise_()

    def export_view(self, path: str | os.PathLike[str]) -> bool:
        """Save a picture of the panels as shown (PNG)."""
        pixmap = self.centralWidget().grab()
        ok = pixmap.save(str(path), "PNG")
        if ok:
            self.show_message(f"Saved the view to {path}", "info", transient=True)
        else:
            self.show_error(f"Could not write {path}")
        return ok

    def export_maps(self, folder: str | os.PathLike[str]) -> int:
        """Write all maps (PNG) and arrays (NPY) of the current result into ``folder`` on the worker."""
        result = self.current_result
        if result is None:
            self.show_error("Nothing to export yet: open an image first.")
            return 0
        req = self._next_request()
        self._latest_export_req = req
        self._pending.add(req)
        self._update_busy()
        options = {"layer": self._layer, "cmap": self._cmap, "depth_cmap": self._depth_cmap, "alpha": self._alpha}
        self._req_export.emit(req, result, str(folder), options)
        return req

    def paste_image(self) -> None:
        mime = QGuiApplication.clipboard().mimeData()
        if mime is None:
            self.show_error("The clipboard is empty.")
            return
        if mime.hasUrls():
            files = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
            if files:
                self.open_path(files[0])
                return
        if mime.hasImage():
            image = QGuiApplication.clipboard().image()
            if not image.isNull():
                self.open_image((_qimage_to_array(image), "clipboard image"))
                return
        text = mime.text().strip() if mime.hasText() else ""
        if text and len(text) < 4096 and Path(text).expanduser().is_file():
            self.open_path(str(Path(text).expanduser()))
            return
        self.show_error("The clipboard holds no image (copy an image or an image file first).")

    def open_path(self, path: str) -> None:
        """Open a file dropped or pasted: an image, or a checkpoint (.json / .safetensors) to load as the model."""
        p = Path(path)
        if p.suffix.lower() in (".json", ".safetensors", ".pt", ".pth", ".bin"):
            self.load_model(str(p))
        else:
            self.open_image(str(p))

    def show_error(self, message: str, topic: str = "error") -> None:
        self.show_message(message, "error", topic=topic)
        self.error_shown.emit(message)

    def show_message(self, message: str, kind: str = "info", transient: bool = False, topic: str | None = None) -> None:
        """Show the non-modal banner; ``topic`` lets a later success clear it (e.g. a good image after a bad one)."""
        self.banner.show_message(message, kind)
        self._banner_topic = topic or kind
        self._banner_timer.stop()
        if transient:
            self._banner_timer.start(6000)  # a child of the window: never fires after the window is gone

    def _dismiss_banner(self, *topics: str) -> None:
        if self.banner.isVisible() and self._banner_topic in topics:
            self.banner.dismiss()

    # ------------------------------------------------------------------------------------------- requests

    def _next_request(self) -> int:
        self._seq += 1
        return self._seq

    def _analyze(self, source: Any) -> int:
        req = self._next_request()
        self._latest_image_req = req
        self._tracker.latest_analysis = req  # older analyses now see cancelled() == True
        self._requested_source = source
        self._pending.add(req)
        self._update_busy()
        self._req_analyze.emit(req, source)
        return req

    def _update_busy(self) -> None:
        busy = bool(self._pending)
        if busy:
            if self._latest_model_req in self._pending:
                text = "Loading model…"
            elif self._latest_image_req in self._pending:
                text = f"Analysing {_source_name(self._requested_source)}…"
            else:
                text = "Exporting…"
            self.busy_label.setText(text)
        self.busy_label.setVisible(busy)
        self.busy_bar.setVisible(busy)
        if not busy:
            self.busy_bar.setRange(0, 0)  # back to the indeterminate bar after a download
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)

    def _on_request_finished(self, req: int) -> None:
        self._pending.discard(req)
        self._update_busy()

    def _on_environment(self, info: dict) -> None:
        self._devices = list(info.get("devices") or ["auto", "cpu"])
        current = self._device
        self.device_combo.blockSignals(True)
        self.device_combo.clear()
        self.device_combo.addItems(self._devices)
        if current not in self._devices:
            self.device_combo.addItem(current)
        _set_combo_text(self.device_combo, current)
        self.device_combo.blockSignals(False)
        self._zoo = list(info.get("zoo") or [])
        self._fill_model_combo()

    def _on_model_ready(self, req: int, summary: ModelSummary) -> None:
        self._on_request_finished(req)  # answered: not busy with it any more
        if req != self._latest_model_req:
            return
        self._model = summary
        self._model_spec = summary.spec
        self._loaded_options = self._model_requests.pop(req, self._loaded_options)
        self._spec_names[summary.spec] = summary.name
        if summary.spec not in self._known_specs():
            self._custom_models.append(summary.spec)
        self._fill_model_combo()
        self._update_info()
        if self._shown is None and self._preview is None:
            self.timing_label.setText(f"{summary.name} on {summary.device} · loaded in {summary.load_ms:.0f} ms")
        self._dismiss_banner("no-model", "model")  # solved
        self.model_ready.emit(summary)
        source = self._requested_source if self._requested_source is not None else self._current_source
        if source is not None and self._latest_image_req < req:
            self._analyze(source)  # show the image through the new model

    def _on_analysis_ready(self, req: int, shown: Shown) -> None:
        self._on_request_finished(req)  # answered: not busy with it any more
        if req != self._latest_image_req:
            return  # superseded: never show a stale result
        previous = self.current_result
        self._shown = shown
        self._preview = None
        self._current_source = self._requested_source
        result = shown.result
        if self._model is not None and result.model_name == self._model.name and result.device != self._model.device:
            # the engine moved the model (a GPU out-of-memory fallback to the CPU): the details follow it
            self._model = dataclasses.replace(self._model, device=result.device)
        if previous is None or previous.grid.num_patches != result.grid.num_patches:
            self._query = None
        if previous is None or previous.num_layers != result.num_layers:
            self._layer = result.num_layers - 1  # start on the last layer
        self._layer = min(self._layer, max(0, result.num_layers - 1))
        self._dismiss_banner("image")
        self._display_result()
        if isinstance(self._current_source, str):
            self._add_recent(self._current_source)
        self.result_ready.emit(result)

    def _on_preview_ready(self, req: int, preview: Preview) -> None:
        self._on_request_finished(req)  # answered: not busy with it any more
        if req != self._latest_image_req:
            return
        self._preview = preview
        self._shown = None
        self._current_source = self._requested_source
        self._query = None
        self._apply_empty_state()
        self.input_canvas.set_image(preview.image)
        self.input_panel.set_title(f"Input <span style='font-weight:400;color:#5b6470'>· {_html(Path(preview.source).name)}"
                                   f" · not analysed (no model loaded)</span>")
        self.input_info.setText(f"{preview.image.shape[1]}×{preview.image.shape[0]} px")
        self._set_notices(preview.notices)
        self.setWindowTitle(f"{Path(preview.source).name} — vitviz")
        self.preview_shown.emit(preview)

    def _on_export_ready(self, req: int, folder: str, files: list) -> None:
        self._on_request_finished(req)  # answered: not busy with it any more
        self.show_message(f"Exported {len(files)} files to {folder}", "info", transient=True)
        self.export_finished.emit(folder, files)

    def _on_download_progress(self, req: int, done: int, total: int) -> None:
        """A pretrained model is being downloaded: a determinate bar and the size in the status bar."""
        if req != self._latest_model_req:
            return
        mb = 1024 * 1024
        if total > 0:
            self.busy_bar.setRange(0, 1000)
            self.busy_bar.setValue(int(1000 * min(done, total) / total))
            self.busy_label.setText(f"Downloading model… {done / mb:.0f} of {total / mb:.0f} MB")
        else:
            self.busy_label.setText(f"Downloading model… {done / mb:.0f} MB")
        self.busy_label.setVisible(True)
        self.busy_bar.setVisible(True)

    def _on_failed(self, req: int, kind: str, message: str) -> None:
        self._on_request_finished(req)  # answered: not busy with it any more
        if kind == "image":
            if req != self._latest_image_req:
                return  # an older request failed after a newer one was made: nothing to tell
            self._requested_source = self._current_source  # keep what is shown
            self.show_error(message, topic="image")
        elif kind == "model":
            if req != self._latest_model_req:
                return
            # back to the model, device and depth model that are still loaded
            self._model_requests.pop(req, None)
            self._device, self._depth_model = self._loaded_options
            _set_combo_text(self.device_combo, self._device)
            self._fill_model_combo()
            self.show_error(message, topic="model")
        else:
            self.show_error(message)

    # ------------------------------------------------------------------------------------------- display

    def _canvases(self) -> list[ImageCanvas]:
        return [self.input_canvas, self.depth_canvas, self.detail.canvas, *self.tiles.tiles]

    def _has_grid(self) -> bool:
        return self._shown is not None

    def _apply_empty_state(self) -> None:
        self.input_canvas.set_image(None)
        self.input_canvas.set_patch_size(0)
        self.depth_canvas.set_image(None)
        self.depth_bar.set_scale(None, None, None)
        self.tiles.set_count(0)
        self.att_legend.set_scale(None, None, None)
        self.chart.show_placeholder("Class predictions appear here.")
        self.layer_slider.setEnabled(False)
        self.mode_chip.hide()
        self.cls_button.hide()
        self.att_panel.set_title("Attention")
        self.pred_panel.set_title("Predictions")
        self.input_panel.set_title("Input")
        self.input_info.setText("")
        self.depth_panel.set_title("Depth")
        self.depth_info.setText("")
        self._set_notices([])
        self._update_info()

    def _display_result(self) -> None:
        result = self.current_result
        grid = result.grid
        name = _source_name(result.source)
        self.setWindowTitle(f"{name} — vitviz")
        h, w = result.image.shape[:2]
        self.input_panel.set_title(f"Input <span style='font-weight:400;color:#5b6470'>· {_html(name)}</span>")
        ow, oh = grid.original_size
        self.input_info.setText(
            f"{w}×{h} px model input" + (f" (from {ow}×{oh})" if (ow, oh) != (w, h) else "")
            + f" · {grid.cols}×{grid.rows} patches of {grid.patch_size} px · click a patch to see what it attends to"
        )
        self.input_canvas.set_image(result.image)
        for canvas in self._canvases():
            canvas.set_patch_size(grid.patch_size)
            canvas.set_grid_visible(self._grid)
        self._set_notices(result.notices)

        # predictions
        if result.predictions:
            self.chart.set_predictions([(p.label, p.probability) for p in result.predictions])
            top = result.predictions[0]
            self.pred_panel.set_title(
                f"Prediction: <span style='color:#1f6feb'>{_html(top.label)}</span> "
                f"<span style='font-weight:400'>{format_percent(top.probability)}</span>"
                f"<span style='font-weight:400;color:#5b6470'> · top {len(result.predictions)} of "
                f"{len(result.labels)} classes</span>"
            )
        else:
            self.chart.show_placeholder("This model has no classification head.")
            self.pred_panel.set_title("Predictions")

        # attention
        layers = result.num_layers
        self.layer_slider.blockSignals(True)
        self.layer_slider.setRange(0, max(0, layers - 1))
        self.layer_slider.setValue(self._layer)
        self.layer_slider.blockSignals(False)
        self.layer_slider.setEnabled(layers > 1)
        self.tiles.set_aspect(w / h)
        self.tiles.set_count(result.num_heads + 2 if layers else 0)
        if self._detail_tile is not None and self._detail_tile >= len(self.tiles.tiles):
            self.detail.close()
        for canvas in self.tiles.tiles:
            canvas.set_patch_size(grid.patch_size)
            canvas.set_grid_visible(self._grid)
            canvas.set_hover_patch(None)
        self._refresh_attention()
        self._refresh_depth()
        self._update_info()
        self._update_timings()

    def _set_notices(self, notices: list[str]) -> None:
        if notices:
            self.notices_label.setText("ⓘ " + " · ".join(notices))
            self.notices_label.setToolTip("\n".join(notices))
            self.notices_label.show()
        else:
            self.notices_label.hide()

    def _attention_maps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(heads [H, r, c], mean [r, c], rollout [r, c]) of the current layer and mode."""
        shown = self._shown
        result = shown.result
        layer, q = self._layer, self._query
        prefix = result.num_prefix_tokens
        rows, cols = result.grid.rows, result.grid.cols
        if q is None:
            maps = result.cls_attention[layer]
            token = 0
        else:
            maps = result.query_attention(layer, q)
            token = prefix + q
        if shown.rollouts is not None:
            roll = shown.rollouts[layer][token, prefix:].reshape(rows, cols)
        else:
            roll = np.zeros((rows, cols), np.float32)
        return np.asarray(maps, np.float32), maps.mean(axis=0).astype(np.float32), roll.astype(np.float32)

    def _overlay(self, image: np.ndarray, values: np.ndarray, lo: float, hi: float) -> np.ndarray:
        """``values`` scaled from [lo, hi] to the colormap, drawn over ``image`` with the current view settings."""
        v01 = np.clip((values - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
        return overlay(image, v01, self._cmap, self._alpha, smooth=self._smooth)

    def _refresh_attention(self) -> None:
        shown = self._shown
        if shown is None or not self.tiles.tiles or shown.result.num_layers == 0:
            return
        result = shown.result
        layers = result.num_layers
        self.layer_label.setText(f"{self._layer}  of 0–{layers - 1}")
        heads, mean, roll = self._attention_maps()
        if self._norm == "layer":
            lo = float(min(heads.min(), mean.min()))
            hi = float(max(heads.max(), mean.max()))
            ranges = [(lo, hi)] * (len(heads) + 1)
        else:
            ranges = [(float(m.min()), float(m.max())) for m in heads] + [(float(mean.min()), float(mean.max()))]
        ranges.append((float(roll.min()), float(roll.max())))
        values = [*heads, mean, roll]
        image = result.image
        for i, (tile, v, (lo, hi)) in enumerate(zip(self.tiles.tiles, values, ranges)):
            tile.set_image(self._overlay(image, v, lo, hi))
            tile.set_marked_patch(self._query)
        n = len(heads)
        for i in range(n):
            self.tiles.tiles[i].set_caption(f"head {i}")
        self.tiles.tiles[n].set_caption("mean of heads")
        self.tiles.tiles[n + 1].set_caption(f"rollout 0–{self._layer}")
        self._tile_values, self._tile_ranges = values, ranges

        lut = colormap_lut(self._cmap)
        if self._norm == "layer":
            self.att_legend.set_scale(lut, ranges[0][0], ranges[0][1], "attention weight (one scale for the layer; "
                                                                      "rollout: its own)")
        else:
            self.att_legend.set_scale(lut, None, None, end_labels=("low (each map's min)", "high (each map's max)"))

        grid = result.grid
        if self._query is None:
            self.mode_chip.setText("CLS")
            self.mode_chip.setStyleSheet("background: #e7eefc; color: #1f4fb0;")
            self.mode_chip.setToolTip("Showing what the CLS token attends to")
            self.att_panel.set_title(f"Attention <span style='font-weight:400;color:#5b6470'>· layer {self._layer} · "
                                     f"what the class token looks at, {n} heads</span>")
            self.cls_button.hide()
        else:
            r, c = divmod(self._query, grid.cols)
            self.mode_chip.setText(f"Patch #{self._query} query")
            self.mode_chip.setStyleSheet("background: #d9f7fb; color: #006a7a;")
            self.mode_chip.setToolTip("Showing what one patch attends to; Esc returns to CLS")
            self.att_panel.set_title(f"Attention <span style='font-weight:400;color:#5b6470'>· layer {self._layer} · "
                                     f"what patch #{self._query} (row {r}, col {c}) looks at, {n} heads</span>")
            self.cls_button.show()
        self.mode_chip.show()
        self.input_canvas.set_marked_patch(self._query)
        self.depth_canvas.set_marked_patch(self._query)
        self._update_detail()

    def _refresh_depth(self) -> None:
        result = self.current_result
        if result is None:
            return
        if result.depth is None:
            self.depth_canvas.set_image(None)
            self.depth_canvas.placeholder = "This model predicts no depth."
            self.depth_bar.set_scale(None, None, None)
            self.depth_panel.set_title("Depth")
            self.depth_info.setText("")
            self.depth_detail.close()
            return
        d = result.depth
        lo, hi = float(np.nanmin(d)), float(np.nanmax(d))
        metric = result.depth_kind == "metric"
        values = normalize(d)
        lut = colormap_lut(self._depth_cmap)
        if metric:
            values = 1.0 - values  # near = bright
            lut = lut[::-1]
        self.depth_canvas.set_image(apply_colormap(values, self._depth_cmap))
        unit = "metres" if metric else ("relative inverse depth" if result.depth_kind == "relative_inverse"
                                        else "model units")
        self.depth_bar.set_scale(lut, lo, hi, "m" if metric else "")
        detail = "larger = nearer" if result.depth_kind == "relative_inverse" else ""
        self.depth_panel.set_title(f"Depth <span style='font-weight:400;color:#5b6470'>· {unit}</span>")
        self.depth_info.setText(f"{detail + ' · ' if detail else ''}"
                                + (f"nearest {lo:.3g} m, farthest {hi:.3g} m" if metric else f"range {lo:.3g} – {hi:.3g}")
                                + " · hover for values · click to enlarge")
        self.depth_canvas.set_marked_patch(self._query)
        if self.depth_detail.isVisible():
            self._update_depth_detail()

    def _update_depth_detail(self) -> None:
        """Show the current depth map in the enlarged window, coloured as in the panel."""
        result, bar = self.current_result, self.depth_bar
        self.depth_detail.set_pixel_content(
            f"{self.depth_panel.title.text()} <span style='font-weight:400;color:#5b6470'>· "
            f"{_html(result.depth_model_name or result.model_name)} · {_html(Path(result.source).name)}</span>",
            self.depth_canvas.rgb,
            result.depth,
            bar.lut,
            bar.lo,
            bar.hi,
            " m" if result.depth_kind == "metric" else "",
            bar.title,
        )

    def _update_detail(self) -> None:
        tile = self._detail_tile
        if tile is None or self._shown is None or tile >= len(self.tiles.tiles) or not self._tile_values:
            return
        n = len(self.tiles.tiles) - 2
        what = f"head {tile}" if tile < n else ("mean of heads" if tile == n else f"rollout 0–{self._layer}")
        mode = "CLS → patches" if self._query is None else f"patch #{self._query} → patches"
        lo, hi = self._tile_ranges[tile]
        # Drawn over the sharper copy of the image where there is one, so zooming in shows the photo's detail.
        image, scale = self.current_result.detail_image()
        self.detail.set_content(
            tile,
            f"Layer {self._layer} · {what} · <span style='color:#1f6feb'>{mode}</span>",
            self._overlay(image, self._tile_values[tile], lo, hi),
            self._tile_values[tile],
            colormap_lut(self._cmap),
            lo,
            hi,
            self.current_result.grid.patch_size * scale,
            self._grid,
            self._query,
            "weight",
        )

    def _set_detail_tile(self, tile: int | None) -> None:
        self._detail_tile = tile
        for i, t in enumerate(self.tiles.tiles):
            t.set_selected(i == tile)

    def _update_info(self) -> None:
        rows: list[tuple[str, str]] = []
        m = self._model
        if m is not None:
            rows.append(("Model", f"<b>{_html(m.name)}</b>" + (f" — {_html(m.description)}" if m.description else "")))
            rows.append(("Architecture", f"ViT, {m.layers} layers × {m.heads} heads, patch {m.patch_size} px, "
                                         f"trained at {m.image_size} px"))
            rows.append(("Outputs", f"{m.num_classes} classes" if m.num_classes else "no classifier"))
            depth = {"metric": "metric depth (m)", "relative_inverse": "relative inverse depth"}.get(
                m.depth_kind or "", "no depth")
            rows[-1] = ("Outputs", rows[-1][1] + f", {depth}" + (f" from {_html(m.depth_model)}" if m.depth_model else ""))
            rows.append(("Device", _html(m.device)))
            rows.append(("Model load", f"{m.load_ms:.0f} ms"))
        else:
            rows.append(("Model", "<i>none loaded</i>"))
        result = self.current_result
        if result is not None:
            ow, oh = result.grid.original_size
            h, w = result.image.shape[:2]
            rows.append(("Image", f"{_html(_source_name(result.source))}"))
            rows.append(("Size", f"{ow}×{oh} px → {w}×{h} px model input"))
            t = result.timings
            stages = " · ".join(f"{k} {v:.0f}" for k, v in t.items() if k != "total")
            rows.append(("Ran on", _html(result.device)))
            rows.append(("Timings", f"<b>{t.get('total', 0):.0f} ms</b> ({stages} ms)"))
        html = "<table cellspacing='0' cellpadding='2'>" + "".join(
            f"<tr><td style='color:#5b6470;padding-right:10px' valign='top'>{k}</td><td>{v}</td></tr>" for k, v in rows
        ) + "</table>"
        self.info_label.setText(html)

    def _update_timings(self) -> None:
        result = self.current_result
        if result is None:
            return
        t = result.timings
        self.timing_label.setText(
            f"{result.model_name} on {result.device} · forward {t.get('forward', 0):.0f} ms · "
            f"total {t.get('total', 0):.0f} ms"
        )
        self.timing_label.setToolTip("\n".join(f"{k}: {v:.1f} ms" for k, v in t.items()))

    # ------------------------------------------------------------------------------------------- events

    def _on_layer_slider(self, value: int) -> None:
        self._layer = int(value)
        self._refresh_attention()

    def _on_input_clicked(self, pos) -> None:
        result = self.current_result
        if pos is None or result is None:
            return
        patch = result.grid.patch_at(*pos)
        if patch is None:
            return
        self.select_patch(None if patch == self._query else patch)

    def _patch_text(self, patch: int) -> str:
        grid = self.current_result.grid
        r, c = divmod(patch, grid.cols)
        x0, y0, x1, y1 = grid.patch_box(patch)
        ow, oh = grid.original_size
        h, w = grid.input_size
        sx, sy = ow / w, oh / h
        text = f"patch #{patch}  (row {r}, col {c})  ·  pixels x {x0}–{x1}, y {y0}–{y1} of the {w}×{h} input"
        if (ow, oh) != (w, h):
            text += f"  (≈ x {x0 * sx:.0f}–{x1 * sx:.0f}, y {y0 * sy:.0f}–{y1 * sy:.0f} in the {ow}×{oh} original)"
        return text

    def _set_hover(self, patch: int | None) -> None:
        self._hover = patch
        for canvas in self._canvases():
            canvas.set_hover_patch(patch)

    def _on_hover_pixel(self, pos, where: str) -> None:
        result = self.current_result
        patch = None if (pos is None or result is None) else result.grid.patch_at(*pos)
        self._set_hover(patch)
        if patch is None:
            self.hover_label.setText("")
            return
        text = self._patch_text(patch)
        if result.depth is not None:
            d = float(result.depth[min(int(pos[1]), result.depth.shape[0] - 1), min(int(pos[0]), result.depth.shape[1] - 1)])
            unit = " m" if result.depth_kind == "metric" else ""
            text += f"  ·  depth {d:.3g}{unit}" if where == "depth" or result.depth_kind else ""
        if where == "input" and result.attentions is not None:
            text += "  ·  click: show this patch's query attention"
        elif where == "depth":
            text += "  ·  click to enlarge"
        self.hover_label.setText(text)

    def _on_tile_hover(self, tile: int, pos) -> None:
        result = self.current_result
        patch = None if (pos is None or result is None) else result.grid.patch_at(*pos)
        self._set_hover(patch)
        if patch is None or not self._tile_values:
            self.hover_label.setText("")
            return
        r, c = divmod(patch, result.grid.cols)
        n = len(self.tiles.tiles) - 2
        what = f"head {tile}" if tile < n else ("mean" if tile == n else "rollout")
        src = "CLS" if self._query is None else f"patch #{self._query}"
        self.hover_label.setText(f"{what}, layer {self._layer}: {src} → patch #{patch} (row {r}, col {c}) = "
                                 f"{float(self._tile_values[tile][r, c]):.4g}  ·  click to enlarge")

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() in (Qt.Key.Key_Up, Qt.Key.Key_PageUp):
            self.step_layer(1)
        elif event.key() in (Qt.Key.Key_Down, Qt.Key.Key_PageDown):
            self.step_layer(-1)
        else:
            super().keyPressEvent(event)

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        mime = event.mimeData()
        if (mime.hasUrls() and any(u.isLocalFile() for u in mime.urls())) or mime.hasImage():
            event.acceptProposedAction()
            self.hover_label.setText("Drop to open")
        else:
            event.ignore()

    def dragLeaveEvent(self, event) -> None:  # noqa: N802
        self.hover_label.setText("")

    def dropEvent(self, event) -> None:  # noqa: N802
        mime = event.mimeData()
        files = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()] if mime.hasUrls() else []
        if files:
            self.open_path(files[0])
            if len(files) > 1:
                self.show_message(f"{len(files)} files dropped; opened {Path(files[0]).name}", "info", transient=True)
        elif mime.hasImage():
            image = mime.imageData()
            if isinstance(image, QImage) and not image.isNull():
                self.open_image((_qimage_to_array(image), "dropped image"))
        event.acceptProposedAction()
        self.hover_label.setText("")

    def closeEvent(self, event) -> None:  # noqa: N802
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.sync()
        self.detail.close()
        self.depth_detail.close()
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop the worker thread (waits for a running forward pass to reach its next stage)."""
        self._tracker.closing = True
        if self._thread.isRunning():
            self._thread.quit()
            self._thread.wait(30000)

    # ------------------------------------------------------------------------------------------- menus & dialogs

    def _known_specs(self) -> list[str]:
        return [spec for _, spec, _ in self._model_entries()]

    def _model_entries(self) -> list[tuple[str, str, str]]:
        """(label, spec, tooltip) of every model the UI offers."""
        entries = [(f"{m.name}", str(m.config), m.description or str(m.config)) for m in paths.shipped_models()]
        entries += [(f"{name}  (pretrained)", name, summary or name) for name, summary, _task in self._zoo]
        known = {spec for _, spec, _ in entries}
        for spec in self._custom_models:
            if spec not in known:
                entries.append((self._spec_names.get(spec) or Path(spec).name, spec, spec))
        return entries

    def _fill_model_combo(self) -> None:
        combo = self.model_combo
        combo.blockSignals(True)
        combo.clear()
        current = -1
        for label, spec, tip in self._model_entries():
            combo.addItem(label, spec)
            combo.setItemData(combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
            if spec == self._model_spec:
                current = combo.count() - 1
        if current < 0:
            combo.insertItem(0, "— no model —", None)
            current = 0
        combo.insertSeparator(combo.count())
        combo.addItem("Open checkpoint…", OPEN_CHECKPOINT)
        combo.setCurrentIndex(current)
        combo.blockSignals(False)

    def _fill_model_menu(self) -> None:
        menu = self.model_menu
        menu.clear()
        group = QActionGroup(menu)
        for label, spec, tip in self._model_entries():
            a = menu.addAction(label)
            a.setCheckable(True)
            a.setChecked(spec == self._model_spec)
            a.setToolTip(tip)
            a.triggered.connect(lambda _=False, s=spec: self.load_model(s))
            group.addAction(a)
        if not self._model_entries():
            a = menu.addAction(f"No shipped model in {paths.weights_dir()}")
            a.setEnabled(False)
        menu.addSeparator()
        menu.addAction(self.act_checkpoint)
        depth_menu = menu.addMenu("Extra &depth model")
        depth_menu.setToolTipsVisible(True)
        zgroup = QActionGroup(depth_menu)
        for label, spec, tip in self._depth_entries():
            a = depth_menu.addAction(label)
            a.setCheckable(True)
            a.setChecked(spec == (self._depth_model or ""))
            a.setToolTip(tip)
            a.triggered.connect(lambda _=False, s=spec: self.set_depth_model(s or None))
            zgroup.addAction(a)
        device_menu = menu.addMenu("Device")
        dgroup = QActionGroup(device_menu)
        for dev in self._devices:
            a = device_menu.addAction(dev)
            a.setCheckable(True)
            a.setChecked(dev == self._device)
            a.triggered.connect(lambda _=False, d=dev: self._set_device(d))
            dgroup.addAction(a)

    def _depth_entries(self) -> list[tuple[str, str, str]]:
        """(label, spec, tooltip) of the depth models that can complete a classifier without a depth head."""
        entries = [("None (the model's own depth head, if any)", "", "Depth only from the main model")]
        entries += [(m.name, str(m.config), m.description or str(m.config)) for m in paths.shipped_models() if m.has_depth]
        entries += [(f"{name}  (pretrained)", name, summary) for name, summary, task in self._zoo if task == "depth"]
        if self._depth_model and self._depth_model not in [spec for _, spec, _ in entries]:
            entries.append((Path(self._depth_model).name, self._depth_model, self._depth_model))
        return entries

    def set_depth_model(self, spec: str | None) -> None:
        """Use a separate depth model when the main model has no depth head; reloads the model."""
        self._depth_model = spec or None
        if self._model_spec:
            self.load_model(self._model_spec, depth_model=spec or "")

    def _on_model_combo(self, index: int) -> None:
        spec = self.model_combo.itemData(index)
        if spec == OPEN_CHECKPOINT:
            self._fill_model_combo()
            self._open_checkpoint_dialog()
        elif spec and spec != self._model_spec:
            self.load_model(spec)

    def _on_device_combo(self, index: int) -> None:
        self._set_device(self.device_combo.itemText(index))

    def _set_device(self, device: str) -> None:
        if device == self._device:
            return
        self._device = device
        _set_combo_text(self.device_combo, device)
        if self._model_spec:
            self.load_model(self._model_spec, device)

    def _fill_recent_menu(self) -> None:
        menu = self.recent_menu
        menu.clear()
        recent = self.recent_files()
        for path in recent:
            a = menu.addAction(Path(path).name)
            a.setToolTip(path)
            a.setStatusTip(path)
            a.triggered.connect(lambda _=False, p=path: self.open_image(p))
        if not recent:
            menu.addAction("No recent images").setEnabled(False)
        else:
            menu.addSeparator()
            menu.addAction("Clear list", self._clear_recent)

    def recent_files(self) -> list[str]:
        value = self.settings.value("recent_files", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])][:MAX_RECENT]

    def _add_recent(self, path: str) -> None:
        path = str(Path(path).resolve())
        recent = [p for p in self.recent_files() if p != path]
        self.settings.setValue("recent_files", [path, *recent][:MAX_RECENT])

    def _clear_recent(self) -> None:
        self.settings.setValue("recent_files", [])

    def _fill_samples_menu(self, menu: QMenu | None = None) -> None:
        menu = menu if isinstance(menu, QMenu) else self.samples_menu
        menu.clear()
        samples = paths.sample_images(self.samples_folder)
        for path in samples:
            a = menu.addAction(paths.sample_label(path))
            a.setToolTip(str(path))
            a.triggered.connect(lambda _=False, p=str(path): self.open_image(p))
        if not samples:
            folder = self.samples_folder or paths.samples_dir()
            menu.addAction(f"No sample images in {folder}").setEnabled(False)

    def sample_actions(self) -> list[QAction]:
        self._fill_samples_menu()
        return [a for a in self.samples_menu.actions() if a.isEnabled()]

    def _last_dir(self) -> str:
        return str(self.settings.value("paths/last_dir", str(Path.home())))

    def _open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open image", self._last_dir(), IMAGE_FILTER)
        if path:
            self.settings.setValue("paths/last_dir", str(Path(path).parent))
            self.open_image(path)

    def _open_checkpoint_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open checkpoint", str(self.settings.value(
            "paths/checkpoint_dir", str(paths.weights_dir()))), CHECKPOINT_FILTER)
        if path:
            self.settings.setValue("paths/checkpoint_dir", str(Path(path).parent))
            self.load_model(path)

    def _export_view_dialog(self) -> None:
        result = self.current_result
        stem = Path(result.source).stem if result is not None else "vitviz"
        default = str(Path(self._last_dir()) / f"{stem}-vitviz-layer{self._layer}.png")
        path, _ = QFileDialog.getSaveFileName(self, "Export view as PNG", default, "PNG images (*.png)")
        if path:
            if not path.lower().endswith(".png"):
                path += ".png"
            self.settings.setValue("paths/last_dir", str(Path(path).parent))
            self.export_view(path)

    def _export_maps_dialog(self) -> None:
        result = self.current_result
        if result is None:
            self.show_error("Nothing to export yet: open an image first.")
            return
        folder = QFileDialog.getExistingDirectory(self, "Export all maps into folder", self._last_dir())
        if folder:
            self.settings.setValue("paths/last_dir", folder)
            stem = Path(result.source).stem or "image"
            self.export_maps(str(Path(folder) / f"{stem}-vitviz"))

    def _about(self) -> None:
        QMessageBox.about(
            self,
            "About vitviz",
            f"<h3>vitviz {__version__}</h3><p>Look inside Vision Transformers: class predictions, the attention of "
            "every head and the predicted depth, side by side.</p>"
            "<p><b>Keys</b>: ← → layer · Home/End first/last layer · Esc back to CLS attention · G patch grid · "
            "Ctrl+O open · Ctrl+V paste · Ctrl+E export view</p>",
        )


# ---------------------------------------------------------------------------------------------------- helpers


def _qimage_to_array(image: QImage) -> np.ndarray:
    img = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    buf = np.frombuffer(img.constBits(), np.uint8, count=bpl * h).reshape(h, bpl)
    return buf[:, : w * 3].reshape(h, w, 3).copy()


def _source_name(source: Any) -> str:
    if source is None:
        return ""
    if isinstance(source, tuple):
        return str(source[1])
    s = str(source)
    return Path(s).name or s


def _html(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _spaced_label(text: str) -> QLabel:
    label = QLabel(f"  {text} ")
    return label


def _combo(items, current: str, tip: str) -> QComboBox:
    combo = QComboBox()
    combo.addItems(list(items))
    _set_combo_text(combo, current)
    combo.setToolTip(tip)
    return combo


def _set_combo_text(combo: QComboBox, text: str) -> None:
    i = combo.findText(text)
    if i >= 0 and i != combo.currentIndex():
        combo.blockSignals(True)
        combo.setCurrentIndex(i)
        combo.blockSignals(False)


def _setting_float(s: QSettings, key: str, default: float) -> float:
    try:
        return float(s.value(key, default))
    except (TypeError, ValueError):
        return default


def _setting_bool(s: QSettings, key: str, default: bool) -> bool:
    v = s.value(key, default)
    if isinstance(v, str):
        return v.lower() in ("1", "true", "yes")
    return bool(v)


def _setting_choice(s: QSettings, key: str, default: str, choices) -> str:
    v = str(s.value(key, default))
    return v if v in choices else default
