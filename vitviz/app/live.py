"""The live mode's Qt side: :class:`LiveController` runs a source through the engine and hands the window
(frame, result) pairs, one at a time, so the panels always show the result that belongs to the frame they show.

Threads: the capture thread (:class:`vitviz.live.CaptureThread`) decodes into a one-slot buffer; the controller's
analysis thread takes the newest frame whenever the engine is free, analyses it and passes the pair to the UI thread
once the UI has taken the previous pair (at most one pair waits for the UI: a slow window never builds a queue). The UI
thread only bookkeeps and emits :attr:`LiveController.frame_ready`.
"""

from __future__ import annotations

import collections
import gc
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtGui import QImage

from ..live import (CaptureThread, DomainWindow, Frame, FrameSource, LatestFrame, LiveSourceError, Recorder,
                    ema_result, open_source)
from .worker import Shown, describe_error

__all__ = ["LiveController", "LiveStats", "SourceInfo", "qimage_to_rgb"]

STATS_INTERVAL_MS = 500
FPS_WINDOW_S = 2.0  # fps and latency are measured over the frames shown in the last two seconds
STOP_TIMEOUT_S = 1.0
QUIT_TIMEOUT_S = 10.0  # when the app quits, how long to wait for a frame's analysis to finish


@dataclass
class SourceInfo:
    """What the window needs to know about an opened source (for the transport controls and the title)."""

    name: str
    kind: str  # "scene", "video", "animation" or "camera"
    fps: float
    frame_count: int | None
    seekable: bool


@dataclass
class LiveStats:
    """The on-screen readout."""

    fps: float  # frames shown per second (each with its result)
    latency_ms: float  # median time from capture to the frame and its result handed to the panels
    engine_ms: float  # median of the engine's own time per frame
    dropped: int  # frames captured but never analysed (the engine was busy with a newer one)
    damaged: int  # frames the decoder could not read
    shown: int  # frames shown since the start
    source_fps: float  # the source's own frame rate
    frozen: bool
    recording: bool

    def text(self) -> str:
        """One line for a status bar: ``12.3 fps · model 41 ms · latency 60 ms · 17 dropped``."""
        parts = [f"{self.fps:.1f} fps", f"model {self.engine_ms:.0f} ms", f"latency {self.latency_ms:.0f} ms",
                 f"{self.dropped} dropped"]
        if self.damaged:
            parts.append(f"{self.damaged} damaged")
        if self.frozen:
            parts.append("frozen")
        if self.recording:
            parts.append("● rec")
        return " · ".join(parts)


def _yield_to_ui() -> None:
    """Lower this thread's scheduling priority (Linux; elsewhere nothing): when the cores are all busy, the UI
    thread, which draws every frame, then goes first and the window does not stall while the engine computes."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)  # a thread id: this thread only
        except OSError:
            pass


def qimage_to_rgb(image: QImage) -> np.ndarray:
    """A QImage (e.g. ``widget.grab().toImage()``) as a uint8 [H, W, 3] array (copied)."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    h, w, stride = image.height(), image.width(), image.bytesPerLine()
    buf = np.frombuffer(image.constBits(), dtype=np.uint8, count=h * stride).reshape(h, stride)
    return buf[:, : w * 3].reshape(h, w, 3).copy()


class LiveController(QObject):
    """Plays one live source through the engine. Create it once in the window, ``start(source)``, ``stop()``.

    ``engine_provider()`` returns the engine to use for the next frame (e.g. ``lambda: worker.engine``), or None while
    no model is loaded (frames are then shown without a result). The engine's own lock keeps a still-image analysis
    and a live frame from running at the same time.
    """

    frame_ready = Signal(object, object)  # Frame, Shown | None: show them together
    stats_changed = Signal(object)  # LiveStats, twice a second while running
    error = Signal(str, bool)  # one-line message for a banner; True when the source stopped (the last frame stays)
    source_opened = Signal(object)  # SourceInfo
    ended = Signal()  # a file reached its end (only without looping)
    running_changed = Signal(bool)
    frozen_changed = Signal(bool)
    recording_changed = Signal(bool, str)  # recording?, the file path (on stop: the finished file, or "")

    _delivered = Signal(int, object, object)  # internal: generation, Frame, Shown | None (analysis -> UI thread)
    _opened = Signal(int, object)  # internal: generation, SourceInfo
    _failed = Signal(int, str, bool)  # internal: generation, message, fatal
    _ended = Signal(int)  # internal: generation

    def __init__(self, engine_provider: Callable[[], Any], topk: int = 5, loop: bool = True,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine_provider = engine_provider
        self.topk = topk
        self.loop = loop
        self.smoothing: float | None = None  # EMA weight of the newest frame in (0, 1); None: off
        self.last: tuple[Frame, Shown | None] | None = None  # the pair shown last (kept on errors and when frozen)
        self.source_info: SourceInfo | None = None
        self._generation = 0
        self._slot: LatestFrame | None = None
        self._capture: CaptureThread | None = None
        self._analysis: threading.Thread | None = None
        self._lingering: list[threading.Thread] = []  # threads of earlier runs that outlived stop()'s timeout
        self._stop = threading.Event()
        self._ui_free = threading.Event()
        self._frozen = False
        self._stepping = False  # a step or seek asked for while frozen: its frame is analysed and shown
        self._expect: tuple[str, int] = ("seq", 0)  # which frame the step or seek asked for (see _expected)
        self._recorder: Recorder | None = None
        self._record_grab: Callable[[], np.ndarray] | None = None
        self._shown_times: collections.deque[float] = collections.deque()
        self._latencies: collections.deque[tuple[float, float]] = collections.deque()
        self._engine_ms: collections.deque[tuple[float, float]] = collections.deque()
        self.shown_count = 0
        self._froze_gc = False
        self._delivered.connect(self._on_delivered)
        self._opened.connect(self._on_opened)
        self._failed.connect(self._on_failed)
        self._ended.connect(lambda gen: gen == self._generation and self.ended.emit())
        self._timer = QTimer(self)
        self._timer.setInterval(STATS_INTERVAL_MS)
        self._timer.timeout.connect(self._emit_stats)
        from PySide6.QtCore import QCoreApplication

        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.finish)

    # -- starting and stopping ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._capture is not None

    @property
    def frozen(self) -> bool:
        return self._frozen

    def start(self, source: str | Path | FrameSource) -> None:
        """Stop whatever runs and start ``source`` (a spec for :func:`vitviz.live.open_source` or a source object).
        Opening happens on the capture thread: failures arrive as :attr:`error` with ``fatal`` True."""
        self.stop()
        try:
            src = source if isinstance(source, FrameSource) else open_source(source)
        except LiveSourceError as exc:
            self.error.emit(str(exc), True)
            return
        self._generation += 1
        gen = self._generation
        self._stop = threading.Event()
        self._ui_free = threading.Event()
        self._ui_free.set()
        self._slot = LatestFrame()
        self._frozen = False
        self._shown_times.clear()
        self._latencies.clear()
        self._engine_ms.clear()
        self.shown_count = 0
        self._capture = CaptureThread(
            src, self._slot, loop=self.loop,
            on_error=lambda message, fatal: self._failed.emit(gen, message, fatal),
            on_open=lambda s: self._opened.emit(gen, SourceInfo(s.name, s.kind, s.fps, s.frame_count, s.seekable)),
            on_end=lambda: self._ended.emit(gen),
        )
        self._analysis = threading.Thread(target=self._analyse_loop, args=(gen, self._slot, self._stop),
                                          name="vitviz-live-analysis", daemon=True)
        self._capture.start()
        self._analysis.start()
        self._timer.start()
        # Python's full garbage collections scan every object the app has made (~220k: about 200 ms, with the GIL
        # held, which stalls the window); while live, they scan only what was made since it started.
        gc.freeze()
        self._froze_gc = True
        self.running_changed.emit(True)

    @Slot()
    def stop(self, timeout: float = STOP_TIMEOUT_S) -> bool:
        """Stop the source and both threads (and a recording); True when every thread ended within ``timeout``."""
        if self._capture is None:
            return True
        self._generation += 1  # anything still on its way from the old threads is ignored
        self._stop.set()
        self._ui_free.set()
        capture, analysis, slot = self._capture, self._analysis, self._slot
        capture.stop()
        if slot is not None:
            slot.close()
        deadline = time.perf_counter() + timeout
        capture.join(max(0.0, deadline - time.perf_counter()))
        if analysis is not None:
            analysis.join(max(0.0, deadline - time.perf_counter()))
        ended = not capture.is_alive() and not (analysis is not None and analysis.is_alive())
        self._lingering += [t for t in (capture, analysis) if t is not None and t.is_alive()]
        self._capture = self._analysis = self._slot = None
        self._timer.stop()
        if self._froze_gc:  # the objects from before the live mode are collectable again
            gc.unfreeze()
            self._froze_gc = False
        if self._recorder is not None:
            self.stop_recording()
        if self._frozen:
            self._frozen = False
            self.frozen_changed.emit(False)
        self.running_changed.emit(False)
        return ended

    @Slot()
    def finish(self, timeout: float = QUIT_TIMEOUT_S) -> bool:
        """Stop, then wait up to ``timeout`` for threads that :meth:`stop` left running (a frame's analysis cannot be
        cancelled mid-way): the app calls this when it quits, since a process that exits while a thread is inside
        PyTorch or FFmpeg can abort. True when none is left."""
        self.stop()
        deadline = time.perf_counter() + timeout
        for thread in self._lingering:
            thread.join(max(0.0, deadline - time.perf_counter()))
        self._lingering = [t for t in self._lingering if t.is_alive()]
        return not self._lingering

    # -- transport ------------------------------------------------------------------------------------------

    def freeze(self) -> None:
        """Hold the frame shown now with its full result (``last``); the source pauses until :meth:`resume`."""
        if self._frozen or self._capture is None:
            return
        self._frozen = True
        self._capture.pause()
        if self._slot is not None:
            self._slot.clear()
        self.frozen_changed.emit(True)

    def resume(self) -> None:
        if not self._frozen or self._capture is None:
            return
        self._frozen = False
        if self._slot is not None:
            self._slot.clear()
        self._capture.play()
        self.frozen_changed.emit(False)

    def toggle_freeze(self) -> None:
        """The Freeze key: freeze, or resume when frozen."""
        self.resume() if self._frozen else self.freeze()

    def pause(self) -> None:
        """Pause playback of a file (the same as freeze; a camera keeps being read so resuming shows a fresh frame)."""
        self.freeze()

    def play(self) -> None:
        self.resume()

    def step(self, delta: int = 1) -> None:
        """Show the next (``delta`` > 0) or previous frame of a file, with its result; stays frozen."""
        if self._capture is None:
            return
        if not self._frozen:
            self.freeze()
        self._stepping = True
        self._expect = ("seq", getattr(self._capture, "next_seq", 0))  # a frame captured after this request
        self._capture.step(delta)

    def seek(self, index: int) -> None:
        """Continue from frame ``index`` of a file (shown with its result also while frozen)."""
        if self._capture is not None:
            self._stepping = self._frozen
            self._expect = ("index", int(index))
            self._capture.seek(index)

    def set_smoothing(self, alpha: float | None) -> None:
        """Temporal smoothing of the maps: the newest frame's weight in (0, 1) (e.g. 0.3), or None / 1 for off."""
        self.smoothing = alpha if alpha is not None and 0.0 < alpha < 1.0 else None

    # -- recording ------------------------------------------------------------------------------------------

    @property
    def recording(self) -> bool:
        return self._recorder is not None

    def start_recording(self, path: str | Path, grab: Callable[[], np.ndarray] | None = None) -> bool:
        """Record every frame shown from now on to ``path`` (.mp4 or .gif) at the live rate. ``grab()`` returns
        what to record as uint8 [H, W, 3] (e.g. ``lambda: qimage_to_rgb(window.grab().toImage())``), called on the
        UI thread right after each :attr:`frame_ready`; without it the source frames are recorded."""
        self.stop_recording()
        fps = self.source_info.fps if self.source_info else 25.0
        try:
            self._recorder = Recorder(path, fps_hint=fps)
        except LiveSourceError as exc:
            self.error.emit(str(exc), False)
            return False
        self._record_grab = grab
        self.recording_changed.emit(True, str(path))
        return True

    def stop_recording(self) -> Path | None:
        """Finish the file; returns its path (None and an :attr:`error` when it failed or was empty)."""
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            return None
        try:
            path: Path | None = recorder.close()
        except LiveSourceError as exc:
            self.error.emit(str(exc), False)
            path = None
        self.recording_changed.emit(False, str(path) if path else "")
        return path

    # -- the analysis thread --------------------------------------------------------------------------------

    def _analyse_loop(self, gen: int, slot: LatestFrame, stop: threading.Event) -> None:
        _yield_to_ui()
        previous = None  # the last smoothed result
        domain = DomainWindow()  # the out-of-domain note follows a few frames, not each one
        failures = 0
        while not stop.is_set():
            if self._frozen and not self._stepping:
                stop.wait(0.05)
                continue
            frame = slot.take(timeout=0.1)
            if frame is None or stop.is_set():
                continue
            shown = None
            engine = self.engine_provider()
            if engine is not None:
                t0 = time.perf_counter()
                try:
                    result = engine.analyze(frame.image, topk=self.topk, cancelled=stop.is_set,
                                            keep_display_image=True, traced=True)
                except Exception as exc:  # noqa: BLE001 - reported; the live mode goes on with the next frame
                    failures += 1
                    if failures == 1 or failures % 50 == 0:
                        self._failed.emit(gen, describe_error(exc, f"analysing frame {frame.index}"), False)
                    stop.wait(0.2)
                    continue
                if result is None:
                    continue
                failures = 0
                engine_ms = (time.perf_counter() - t0) * 1000.0
                result.source = f"{frame.source} · frame {frame.index}"
                if result.domain is not None:
                    result.domain = domain.update(result.domain)
                alpha = self.smoothing
                if alpha is not None:
                    result = ema_result(previous, result, alpha)
                    previous = result
                else:
                    previous = None
                shown = Shown(result, engine_ms)
            # Hand over only once the UI has taken the previous pair: at most one pair waits for the UI while the
            # engine works on the next frame, so a slow window never builds a queue and the engine never waits idle.
            while not self._ui_free.wait(0.1):
                if stop.is_set():
                    return
            if stop.is_set():
                return
            self._ui_free.clear()
            self._delivered.emit(gen, frame, shown)

    # -- UI thread ------------------------------------------------------------------------------------------

    @Slot(int, object, object)
    def _on_delivered(self, gen: int, frame: Frame, shown: Shown | None) -> None:
        try:
            if gen != self._generation:
                return
            if self._frozen and (not self._stepping or not self._expected(frame)):
                return  # analysed while freezing, or before the step / seek asked for: the frozen pair stays
            self._stepping = False
            self.last = (frame, shown)
            self.frame_ready.emit(frame, shown)
            now = time.perf_counter()
            self.shown_count += 1
            self._shown_times.append(now)
            self._latencies.append((now, (now - frame.captured) * 1000.0))
            if shown is not None:
                self._engine_ms.append((now, shown.worker_ms))
            if self._recorder is not None:
                try:
                    rgb = self._record_grab() if self._record_grab is not None else frame.image
                    self._recorder.add(rgb, now)
                except Exception as exc:  # noqa: BLE001 - a failed grab ends the recording, not the live mode
                    self.error.emit(describe_error(exc, "recording"), False)
                    self.stop_recording()
        finally:
            if gen == self._generation:
                # Free for the next pair once this one is painted: a zero timer fires after the event loop has
                # handled the update requests just posted. (Freeing at once let a second pair be taken before the
                # paint: drawn for nothing, and the window stalled twice as long.)
                QTimer.singleShot(0, lambda: gen == self._generation and self._ui_free.set())

    def _expected(self, frame: Frame) -> bool:
        """Whether ``frame`` is the one the last step or seek asked for (not one analysed before it)."""
        kind, value = self._expect
        return frame.index == value if kind == "index" else frame.seq >= value

    @Slot(int, object)
    def _on_opened(self, gen: int, info: SourceInfo) -> None:
        if gen == self._generation:
            self.source_info = info
            self.source_opened.emit(info)

    @Slot(int, str, bool)
    def _on_failed(self, gen: int, message: str, fatal: bool) -> None:
        if gen == self._generation:
            self.error.emit(message, fatal)

    def stats(self) -> LiveStats:
        """The readout now (also emitted as :attr:`stats_changed` twice a second while running)."""
        now = time.perf_counter()
        for q in (self._latencies, self._engine_ms):
            while q and now - q[0][0] > FPS_WINDOW_S:
                q.popleft()
        while self._shown_times and now - self._shown_times[0] > FPS_WINDOW_S:
            self._shown_times.popleft()
        times = self._shown_times
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
        slot, capture = self._slot, self._capture
        return LiveStats(
            fps=fps,
            latency_ms=float(np.median([v for _, v in self._latencies])) if self._latencies else 0.0,
            engine_ms=float(np.median([v for _, v in self._engine_ms])) if self._engine_ms else 0.0,
            dropped=slot.dropped if slot is not None else 0,
            damaged=capture.corrupt if capture is not None else 0,
            shown=self.shown_count,
            source_fps=self.source_info.fps if self.source_info else 0.0,
            frozen=self._frozen,
            recording=self._recorder is not None,
        )

    @Slot()
    def _emit_stats(self) -> None:
        self.stats_changed.emit(self.stats())
