"""The window's live mode: the Live menu, the frame-rate readout, and every live frame with its own result shown
through the :class:`~vitviz.app.state.ViewState`, so all the panels follow the stream.

The stream itself (capture thread, analysis thread, one-slot buffers, recording) is
:class:`vitviz.app.live.LiveController`; this class only binds it to the window.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QFileDialog, QLabel, QMenu, QWidget

from ..live import list_cameras, live_extra_available
from ..live.sources import INSTALL_HINT
from ..render import resize_map
from .live import LiveController, qimage_to_rgb
from .session import Session
from .state import ViewState
from .view_menu import make_action
from .worker import Preview

__all__ = ["LiveMode"]

VIDEO_FILTER = "Videos and animations (*.mp4 *.webm *.mov *.mkv *.avi *.gif *.webp);;All files (*)"


class LiveMode(QObject):
    """Signals: ``message(text, kind)`` for the window's banner (errors from the source or the recorder)."""

    message = Signal(str, str)

    def __init__(self, state: ViewState, session: Session, window: QWidget,
                 grab: Callable[[], object] | None = None) -> None:
        super().__init__(window)
        self.state, self.window = state, window
        self.grab = grab or (lambda: window.centralWidget().grab().toImage())
        self.controller = LiveController(lambda: session.worker.engine, parent=self)
        self.ground_truth = False  # show the built-in scene's exact depth instead of the prediction
        self.readout = QLabel("")
        self.readout.setObjectName("Muted")
        self.readout.hide()
        self.menu = QMenu("&Live", window)
        self._build_menu()
        c = self.controller
        c.frame_ready.connect(self._on_frame)
        c.stats_changed.connect(lambda stats: self.readout.setText("Live: " + stats.text()))
        c.error.connect(lambda text, _fatal: self.message.emit(text, "error"))
        c.running_changed.connect(self._on_running)
        c.frozen_changed.connect(lambda frozen: self.act_freeze.setChecked(frozen))
        c.recording_changed.connect(self._on_recording)

    def _build_menu(self) -> None:
        act, menu, c = (lambda *a, **k: make_action(self.window, *a, **k)), self.menu, self.controller
        menu.addAction(act("Built-in &scene", lambda: self.start("scene"), None,
                           "The shipped model's own world, animated: works offline, with the exact depth"))
        self.act_video = act("&Video file…", self._open_video, None, "Play a video, GIF or WebP file live")
        menu.addAction(self.act_video)
        self.camera_menu = menu.addMenu("&Camera")
        self.camera_menu.aboutToShow.connect(self._fill_cameras)
        menu.aboutToShow.connect(self._say_what_to_install)  # importing PyAV takes a while: not at start-up
        menu.addSeparator()
        self.act_freeze = act("&Freeze", c.toggle_freeze, "Space",
                              "Freeze the current frame with its result (every still-image tool works on it)",
                              checkable=True)
        self.act_back = act("Step &back", lambda: c.step(-1), QKeySequence(","), "The previous frame (frozen)")
        self.act_forward = act("Step f&orward", lambda: c.step(1), QKeySequence("."), "The next frame (frozen)")
        self.act_record = act("&Record…", self._toggle_recording, "Ctrl+R",
                              "Record what the window shows as MP4 (or GIF) at the live frame rate", checkable=True)
        self.act_smooth = act("S&moothing", lambda on: c.set_smoothing(0.3 if on else None), None,
                              "Average the maps over recent frames (exponential moving average)", checkable=True)
        self.act_truth = act("Show &ground-truth depth", self._set_ground_truth, None,
                             "The built-in scene's exact depth instead of the predicted one", checkable=True)
        self.act_stop = act("S&top", self.stop, None, "Stop the live mode (the last frame and result stay)")
        for a in (self.act_freeze, self.act_back, self.act_forward, None, self.act_record, self.act_smooth,
                  self.act_truth, None, self.act_stop):
            menu.addAction(a) if a else menu.addSeparator()
        self._on_running(False)

    # ---------------------------------------------------------------------------------------------- control

    def start(self, source: str) -> None:
        """Start streaming ``source`` (``scene``, a video file, ``camera:N``...); errors go to the banner."""
        self.controller.start(source)

    def stop(self) -> bool:
        """Stop every live thread (within a second); the last frame and its result stay on screen."""
        return self.controller.stop()

    def _open_video(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Play a video file live", str(Path.home()), VIDEO_FILTER)
        if path:
            self.start(path)

    def _say_what_to_install(self) -> None:
        """Without the live extra, the video and camera entries say which extra to install."""
        extra = live_extra_available()
        needs = "" if extra else f"  (needs {INSTALL_HINT})"
        self.act_video.setText("&Video file…" + needs)
        self.camera_menu.setTitle("&Camera" + needs)
        self.camera_menu.setEnabled(extra)

    def _fill_cameras(self) -> None:
        self.camera_menu.clear()
        cameras = list_cameras()
        for cam in cameras:
            self.camera_menu.addAction(cam.name, lambda d=cam.device: self.start(d))
        if not cameras:
            self.camera_menu.addAction("No camera found").setEnabled(False)

    def _toggle_recording(self, on: bool) -> None:
        if not on:
            self.controller.stop_recording()
            return
        path, _ = QFileDialog.getSaveFileName(self.window, "Record the live view", str(Path.home() / "vitviz-live.mp4"),
                                              "MP4 video (*.mp4);;Animated GIF (*.gif)")
        if not path or not self.controller.start_recording(path, grab=lambda: qimage_to_rgb(self.grab())):
            self.act_record.setChecked(False)

    def _set_ground_truth(self, on: bool) -> None:
        self.ground_truth = on
        if self.controller.last is not None:
            self._on_frame(*self.controller.last)

    # ---------------------------------------------------------------------------------------------- answers

    def _on_frame(self, frame, shown) -> None:
        if shown is None:  # no model loaded: the frame alone
            self.state.show_preview(Preview(frame.image, frame.source, []))
            return
        if self.ground_truth and frame.depth is not None:
            depth = resize_map(frame.depth, shown.result.image.shape[:2], smooth=False)
            result = dataclasses.replace(shown.result, depth=depth, depth_kind="metric",
                                         depth_model_name="ground truth (exact scene depth)")
            shown = dataclasses.replace(shown, result=result)
        self.state.show(shown)

    def _on_running(self, running: bool) -> None:
        self.readout.setVisible(running)
        for a in (self.act_freeze, self.act_back, self.act_forward, self.act_record, self.act_stop):
            a.setEnabled(running)
        if not running:
            self.act_freeze.setChecked(False)

    def _on_recording(self, recording: bool, path: str) -> None:
        self.act_record.setChecked(recording)
        if not recording and path:
            self.message.emit(f"Recorded the live view to {path}", "info")
