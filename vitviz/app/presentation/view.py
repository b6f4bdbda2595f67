"""The full-screen presentation view: the answer, the three parts of the story, the layer animation and autoplay."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PySide6.QtCore import QRect, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QLineEdit, QSizePolicy, QVBoxLayout, QWidget

from ...render import apply_colormap, overlay
from .. import paths
from .content import (answer_lines, attention_frames, explanations, lens_guess, nearness, plain_text, short_reason,
                      source_name)
from .parts import Part
from .theme import FONT_PX, REFERENCE_SIZE, STYLE

__all__ = ["PresentationView", "LAYER_MS", "LAST_LAYER_MS", "CAPTION_MS", "DEFAULT_INTERVAL_S"]

LAYER_MS = 1000  # the attention map rests this long on each layer
LAST_LAYER_MS = 3000  # ... and longer on the last one before playing again
CAPTION_MS = 8000  # an error or "skipped" caption stays this long
DEFAULT_INTERVAL_S = 12.0  # autoplay: seconds per image


class PresentationView(QWidget):
    """The full-screen presentation. Feed it results with :meth:`show_result` and errors with :meth:`show_error`;
    it asks for images through ``analyze(path)``. Keys: ``?`` explanations, Space play/pause, ←/→ images,
    Escape (or F11) leaves. While autoplaying, any click or key pauses."""

    entered = Signal()
    left = Signal()
    layer_changed = Signal(int)
    image_requested = Signal(str)
    labels_asked = Signal(str)  # image-text models: the words typed in the "Ask it" line

    def __init__(
        self,
        analyze: Callable[[str], Any],
        parent: QWidget | None = None,
        settings: QSettings | None = None,
        attention: str = "mean",
        cmap: str = "viridis",
        depth_cmap: str = "cividis",
    ) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setObjectName("PresentationView")
        self.setWindowTitle("vitviz — presentation")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet(STYLE)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._analyze = analyze
        self.settings = settings
        # the logit lens (vitviz.lens.LogitLens) of a shown result, when known: the layer playback says what the
        # model would answer at each layer ("at layer 3 it thinks sphere")
        self.lens_of: Callable[[Any], Any] | None = None
        self.attention_kind = attention if attention in ("mean", "rollout") else "mean"
        self.cmap = cmap
        self.depth_cmap = depth_cmap
        self._scale = 1.0
        self._explain = False  # plain-language captions on ("?")
        self._font_roles: list[tuple[QLabel, str]] = []
        self._result: Any = None
        self._frames: list[np.ndarray] = []
        self._layer = 0
        self._playlist: list[Path] = []
        self._index = -1
        self._awaiting: str | None = None
        self._failures = 0
        self._autoplay = False
        self._active = False
        self._host: QWidget | None = None
        self._host_geometry: QRect | None = None
        self._host_state = Qt.WindowState.WindowNoState
        self._entry_source: str | None = None
        self._changed_image = False
        interval = DEFAULT_INTERVAL_S
        if settings is not None:
            try:
                interval = float(settings.value("presentation/seconds_per_image", DEFAULT_INTERVAL_S))
            except (TypeError, ValueError):
                interval = DEFAULT_INTERVAL_S

        self.layer_timer = QTimer(self)  # plays the attention map through the layers
        self.layer_timer.setSingleShot(True)
        self.layer_timer.timeout.connect(self.advance_layer)
        self.autoplay_timer = QTimer(self)  # moves to the next image
        self.autoplay_timer.setSingleShot(True)
        self.autoplay_timer.timeout.connect(self.next_image)
        self.caption_timer = QTimer(self)
        self.caption_timer.setSingleShot(True)
        self.caption_timer.timeout.connect(lambda: self._set_status(self._idle_status()))
        self.autoplay_timer.setInterval(int(max(2.0, interval) * 1000))
        self._build()
        self._apply_fonts()

    # ------------------------------------------------------------------------------------------------ building

    def _font(self, label: QLabel, role: str) -> None:
        self._font_roles.append((label, role))

    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(56, 36, 56, 24)
        outer.setSpacing(14)
        self.answer_label = QLabel()
        self.answer_label.setObjectName("Answer")
        self.answer_label.setWordWrap(True)
        self._font(self.answer_label, "answer")
        self.runner_label = QLabel()
        self.runner_label.setObjectName("Runner")
        self.runner_label.setWordWrap(True)
        self._font(self.runner_label, "runner")
        self.wrong_label = QLabel()
        self.wrong_label.setObjectName("Explain")
        self.wrong_label.setWordWrap(True)
        self._font(self.wrong_label, "explain")
        self.wrong_label.hide()
        outer.addWidget(self.answer_label)
        outer.addWidget(self.runner_label)
        outer.addWidget(self.wrong_label)
        outer.addSpacing(10)

        parts = QGridLayout()
        parts.setHorizontalSpacing(48)
        self.image_part = Part(self._font)
        self.attention_part = Part(self._font, ("a little", "a lot", self.cmap))
        self.depth_part = Part(self._font, ("far", "near", self.depth_cmap))
        for col, part in enumerate(self.parts):
            part.on_resize = self._relayout_parts
            parts.addWidget(part, 0, col)
            parts.setColumnStretch(col, 7 if part is self.attention_part else 5)  # the attention map is the largest
        outer.addLayout(parts, 1)

        footer = QHBoxLayout()
        footer.setSpacing(24)
        self.status_label = QLabel()
        self.status_label.setObjectName("Status")
        self._font(self.status_label, "status")
        self.status_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.keys_label = QLabel()
        self.keys_label.setObjectName("Keys")
        self._font(self.keys_label, "keys")
        self.ask_line = QLineEdit()  # image-text models: the presenter types the words to compare with
        self.ask_line.setObjectName("Ask")
        self.ask_line.setPlaceholderText("Ask it: type words, comma-separated, then Enter")
        self.ask_line.setToolTip("The picture is compared with these words (Esc leaves the line)")
        self._font(self.ask_line, "status")
        self.ask_line.returnPressed.connect(self._ask)
        self.ask_line.hide()
        footer.addWidget(self.ask_line, 1)
        footer.addWidget(self.status_label, 1)
        footer.addWidget(self.keys_label)
        outer.addLayout(footer)
        self._show_empty()
        self._update_keys()

    def _apply_fonts(self) -> None:
        for label, role in self._font_roles:
            font = QFont(label.font())
            font.setPixelSize(max(1, round(FONT_PX[role] * self._scale)))
            font.setWeight(QFont.Weight.Bold if role in ("answer", "title") else QFont.Weight.Normal)
            label.setFont(font)

    def _relayout_parts(self) -> None:
        """Lay the parts out with one height budget, so that their pictures and explanations line up."""
        limit = min(part.room() for part in self.parts)
        for part in self.parts:
            part.height_limit = limit
            part.relayout()

    def resizeEvent(self, event) -> None:  # noqa: N802
        scale = min(self.width() / REFERENCE_SIZE[0], self.height() / REFERENCE_SIZE[1])
        scale = min(3.0, max(0.5, scale))
        if abs(scale - self._scale) > 1e-3:
            self._scale = scale
            self._apply_fonts()
        super().resizeEvent(event)

    def text_pixel_sizes(self) -> dict[str, int]:
        """Pixel size of every visible text on screen, by label (this view paints no text itself)."""
        sizes: dict[str, int] = {}
        for i, label in enumerate(self.findChildren(QLabel)):
            if label.isVisibleTo(self) and label.text():
                sizes[f"{label.objectName() or 'label'}#{i}: {label.text()[:40]}"] = label.font().pixelSize()
        return sizes

    # ------------------------------------------------------------------------------------------- public API

    @classmethod
    def for_window(cls, window: Any, **options: Any) -> "PresentationView":
        """A presentation bound to the main window: it analyses images with ``window.open_image``, shows each
        ``window.result_ready`` result and each ``window.error_shown`` message, and hides/restores the window."""
        view = cls(window.open_image, parent=window, settings=getattr(window, "settings", None), **options)
        window.result_ready.connect(view.show_result)
        window.error_shown.connect(view.show_error)
        view.lens_of = lambda result: (window.state.shown.lens if window.state.shown is not None
                                       and window.state.shown.result is result else None)
        view.labels_asked.connect(window.ask_labels)
        view._host = window
        return view

    @property
    def parts(self) -> tuple[Part, Part, Part]:
        """The image, attention and depth parts, left to right."""
        return (self.image_part, self.attention_part, self.depth_part)

    @property
    def active(self) -> bool:
        return self._active

    @property
    def result(self) -> Any:
        return self._result

    @property
    def layer(self) -> int:
        return self._layer

    @property
    def layer_count(self) -> int:
        return len(self._frames)

    @property
    def autoplaying(self) -> bool:
        return self._autoplay

    @property
    def explanations_visible(self) -> bool:
        return self._explain

    @property
    def interval_s(self) -> float:
        return self.autoplay_timer.interval() / 1000.0

    @property
    def playlist(self) -> list[Path]:
        return list(self._playlist)

    def answer_text(self) -> str:
        """The answer line as plain text."""
        return plain_text(self.answer_label.text())

    def runner_text(self) -> str:
        return plain_text(self.runner_label.text())

    def caption_text(self) -> str:
        """The attention map's caption, e.g. ``Layer 3 of 6: where the model looks``."""
        return self.attention_part.title.text()

    def status_text(self) -> str:
        return self.status_label.text()

    def set_interval(self, seconds: float) -> None:
        """Autoplay: seconds per image (at least 2); stored in the settings."""
        seconds = max(2.0, float(seconds))
        self.autoplay_timer.setInterval(int(seconds * 1000))
        if self.settings is not None:
            self.settings.setValue("presentation/seconds_per_image", seconds)

    def enter(self, target: str | os.PathLike[str] | None = None, autoplay: bool | None = None) -> None:
        """Go full-screen. ``target``: an image to show, or a folder to cycle through (autoplay); None shows the
        window's current result, or cycles through the sample images when there is none."""
        host = self._host
        if not self._active:
            self._active = True
            self._changed_image = False
            current = getattr(host, "current_result", None) if host is not None else None
            self._entry_source = current.source if current is not None and isinstance(current.source, str) else None
            if host is not None:
                self._host_geometry = host.geometry()
                self._host_state = host.windowState()
                screen = host.screen()
                if screen is not None:
                    self.setGeometry(screen.geometry())
                host.hide()
            self.showFullScreen()
            self.raise_()
            self.activateWindow()
            self.setFocus()
            if current is not None:
                self._display(current)
                self._set_status(self._idle_status())
            else:
                self._show_empty()
            self.entered.emit()
        path = Path(target) if target not in (None, "") else None
        if path is not None and path.is_dir():
            self.set_playlist(paths.sample_images(path))
            if not self._playlist:
                self._set_status(f"No pictures in {path.name or path}", caption=True)
                return
            self._index = -1
            self.next_image()
            if autoplay is not False:
                self.start_autoplay()
        elif path is not None:
            self._playlist = []
            self._request(str(path))
            if autoplay:
                self.start_autoplay()
        elif self._result is None and (getattr(host, "current_result", None) if host is not None else None) is None:
            folder = getattr(host, "samples_folder", None)
            self.set_playlist(paths.sample_images(folder))
            if self._playlist:
                start = paths.default_sample(folder)  # a scene the shipped model knows comes first
                self._index = self._playlist.index(start) - 1 if start in self._playlist else -1
                self.next_image()
                if autoplay is not False:
                    self.start_autoplay()
        elif autoplay:
            self.start_autoplay()

    def leave(self) -> None:
        """Back to the normal window, as it was (its geometry, state and, when it changed, its image)."""
        if not self._active:
            return
        self._active = False
        self.pause_autoplay(status=False)
        self.layer_timer.stop()
        self.caption_timer.stop()
        self._awaiting = None
        self.hide()
        host = self._host
        if host is not None:
            host.setWindowState(self._host_state)
            if self._host_geometry is not None and self._host_state == Qt.WindowState.WindowNoState:
                host.setGeometry(self._host_geometry)
            host.show()  # also when the app started in presentation mode and the window was never shown
            host.activateWindow()
            if self._changed_image and self._entry_source and Path(self._entry_source).is_file():
                self._analyze(self._entry_source)  # the window shows again what it showed before
        self.left.emit()

    def set_playlist(self, images: Sequence[str | os.PathLike[str]]) -> None:
        """The images autoplay cycles through (and ←/→ step through)."""
        self._playlist = [Path(p) for p in images]
        self._index = -1
        self._failures = 0

    def start_autoplay(self) -> None:
        """Cycle through the playlist (the samples when it is empty), one image every :attr:`interval_s`."""
        self._ensure_playlist()
        if not self._playlist:
            self._set_status("No pictures to play", caption=True)
            return
        self._autoplay = True
        self._failures = 0
        if self._awaiting is None:
            self.autoplay_timer.start()
        self._set_status(self._idle_status())
        self._update_keys()

    def _ensure_playlist(self) -> None:
        """Without a playlist: the current image's folder (when it holds other images), else the samples."""
        if self._playlist:
            return
        source = getattr(self._result, "source", None)
        folder = Path(source).parent if isinstance(source, str) and Path(source).is_file() else None
        images = paths.sample_images(folder) if folder is not None else []
        if len(images) < 2:
            images = paths.sample_images(getattr(self._host, "samples_folder", None))
        self.set_playlist(images)
        if isinstance(source, str) and Path(source) in self._playlist:
            self._index = self._playlist.index(Path(source))

    def pause_autoplay(self, status: bool = True) -> None:
        was = self._autoplay
        self._autoplay = False
        self.autoplay_timer.stop()
        if was and status:
            self._set_status(self._idle_status())
        self._update_keys()

    def next_image(self, step: int = 1) -> None:
        """Show the next (``step=-1``: previous) image of the playlist, looping."""
        if not self._playlist:
            return
        self._index = (self._index + step) % len(self._playlist)
        self._request(str(self._playlist[self._index]))

    def toggle_explanations(self, visible: bool | None = None) -> None:
        """Show or hide the plain-language captions on every part."""
        self._explain = not self._explain if visible is None else bool(visible)
        show = self._explain and self._result is not None
        self.wrong_label.setVisible(show)
        for part in self.parts:
            part.explain.setVisible(show and bool(part.explain.text()))
        self._relayout_parts()
        self._update_keys()

    def set_layer(self, layer: int) -> None:
        """Show the attention after ``layer`` (0-based)."""
        if not self._frames:
            return
        self._layer = max(0, min(len(self._frames) - 1, int(layer)))
        self.attention_part.picture.set_image(self._frames[self._layer])
        title = f"Layer {self._layer + 1} of {len(self._frames)}: where the model looks"
        guess = lens_guess(self.lens_of(self._result) if self.lens_of else None, self._layer,
                           list(getattr(self._result, "labels", None) or []))
        self.attention_part.title.setText(title + (f" — here {guess}" if guess else ""))
        self.layer_changed.emit(self._layer)

    def advance_layer(self) -> None:
        """The next layer (after the last: the first again), then wait before the next step."""
        if not self._frames:
            return
        self.set_layer((self._layer + 1) % len(self._frames))
        self._schedule_layer()

    # ------------------------------------------------------------------------------------------- results

    def show_result(self, result: Any) -> None:
        """Show a new analysis result (ignored while the presentation is not on screen)."""
        if not self._active:
            return
        if self._awaiting is not None:
            # the window shows only the newest request's result: this is ours, or one that superseded it
            self._awaiting = None
            self._failures = 0
        self._changed_image = self._changed_image or getattr(result, "source", None) != self._entry_source
        self._display(result)
        self._set_status(self._idle_status(), keep_caption=True)
        if self._autoplay and self._awaiting is None:
            self.autoplay_timer.start()

    def show_error(self, message: str) -> None:
        """An error becomes a one-line caption; the previous image stays. Autoplay skips the image."""
        if not self._active:
            return
        line = " ".join(str(message).split())
        failed = self._awaiting
        self._awaiting = None
        if failed is not None:
            self._failures += 1
            self._set_status(f"Skipped {Path(failed).name}: {short_reason(line, failed)}", caption=True)
            if self._autoplay:
                if self._failures >= len(self._playlist):
                    self.pause_autoplay(status=False)
                    self._set_status("None of these pictures could be shown", caption=True)
                else:
                    QTimer.singleShot(0, self.next_image)
        else:
            self._set_status(line, caption=True)

    # ------------------------------------------------------------------------------------------- internals

    def _request(self, path: str) -> None:
        self._awaiting = path
        self.autoplay_timer.stop()
        self._set_status(f"Looking at {Path(path).name}…", keep_caption=True)
        self.image_requested.emit(path)
        self._analyze(path)

    def _show_empty(self) -> None:
        self._result = None
        self._frames = []
        self.layer_timer.stop()
        self.answer_label.setText("Pick a picture to begin")
        self.runner_label.setText("")
        for part in self.parts:
            part.picture.set_image(None)
            part.explain.setText("")
        self.image_part.caption.setText("")
        self.image_part.title.setText("The picture")
        self.attention_part.title.setText("Where the model looks")
        self.depth_part.title.setText("How far away things are")
        self.toggle_explanations(self._explain)

    def _ask(self) -> None:
        text = self.ask_line.text().strip()
        if text:
            self._set_status("Comparing the picture with your words…", keep_caption=True)
            self.labels_asked.emit(text)
        self.setFocus()  # the keys work again

    def _display(self, result: Any) -> None:
        self._result = result
        self.ask_line.setVisible(getattr(result, "image_embedding", None) is not None)
        answer, runner = answer_lines(result)
        self.answer_label.setText(answer)
        self.runner_label.setText(runner)
        self.runner_label.setVisible(bool(runner))
        texts = explanations(result)
        self.wrong_label.setText(texts["wrong"])
        image, _scale = result.detail_image() if hasattr(result, "detail_image") else (result.image, 1)
        grid = result.grid
        self.image_part.title.setText(f"The picture in {grid.num_patches} patches")
        self.image_part.picture.set_image(image, (grid.rows, grid.cols))
        self.image_part.caption.setText(source_name(result.source))
        self.image_part.explain.setText(texts["patch"])

        frames = attention_frames(result, self.attention_kind)
        # over a grey copy of the image, so that the colours read as attention and nothing else
        grey = np.repeat(np.asarray(image, np.float32).mean(axis=2, keepdims=True), 3, axis=2).astype(np.uint8)
        self._frames = [overlay(grey, f, self.cmap, alpha=0.7) for f in frames]
        self.attention_part.explain.setText(texts["attention"])
        self.attention_part.set_missing(None if self._frames else "This model does not show where it looks.")
        self.layer_timer.stop()
        if self._frames:
            self.set_layer(0)
            self._schedule_layer()
        else:
            self.attention_part.title.setText("Where the model looks")

        near = nearness(result)
        self.depth_part.title.setText("How far away things are")
        self.depth_part.explain.setText(texts["depth"])
        if near is None:
            self.depth_part.picture.set_image(None)
            self.depth_part.set_missing("This model does not guess distances.")
        else:
            self.depth_part.picture.set_image(apply_colormap(near, self.depth_cmap))
            self.depth_part.set_missing(None)
        self.toggle_explanations(self.explanations_visible)

    def _schedule_layer(self) -> None:
        last = self._layer == len(self._frames) - 1
        self.layer_timer.start(LAST_LAYER_MS if last else LAYER_MS)

    def _idle_status(self) -> str:
        if self._autoplay and self._playlist:
            return f"Playing {len(self._playlist)} pictures, {self.interval_s:.0f} s each · click to pause"
        return ""

    def _set_status(self, text: str, caption: bool = False, keep_caption: bool = False) -> None:
        """Set the footer line; a ``caption`` (error, skipped image) stays for a while unless replaced by another."""
        if keep_caption and self.caption_timer.isActive():
            return
        if caption:
            self.caption_timer.start(CAPTION_MS)
        else:
            self.caption_timer.stop()
        self.status_label.setObjectName("Status" if caption else "Source")
        self.status_label.style().unpolish(self.status_label)
        self.status_label.style().polish(self.status_label)
        self.status_label.setText(text)

    def _update_keys(self) -> None:
        play = "pause" if self._autoplay else "play"
        self.keys_label.setText(f"?  explain    Space  {play}    ← →  pictures    Esc  back")

    # ------------------------------------------------------------------------------------------- events

    def keyPressEvent(self, event) -> None:  # noqa: N802
        key = event.key()
        if self.ask_line.hasFocus():  # typing words: Esc leaves the line, not the presentation
            if key == Qt.Key.Key_Escape:
                self.setFocus()
            return
        playing = self._autoplay
        if playing and key != Qt.Key.Key_Space:
            self.pause_autoplay()  # any key pauses the kiosk (and still does what it does)
        if key in (Qt.Key.Key_Escape, Qt.Key.Key_F11):
            self.leave()
        elif key == Qt.Key.Key_Question or event.text() == "?" or key == Qt.Key.Key_F1:
            self.toggle_explanations()
        elif key == Qt.Key.Key_Space:
            if playing:
                self.pause_autoplay()
            else:
                self.start_autoplay()
        elif key in (Qt.Key.Key_Right, Qt.Key.Key_PageDown):
            self._step_image(1)
        elif key in (Qt.Key.Key_Left, Qt.Key.Key_PageUp):
            self._step_image(-1)
        elif not playing:
            super().keyPressEvent(event)

    def _step_image(self, step: int) -> None:
        self._ensure_playlist()
        self.next_image(step)

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if self._autoplay:
            self.pause_autoplay()
        super().mousePressEvent(event)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.leave()  # closing the presentation returns to the window rather than leaving the app without it
        super().closeEvent(event)
