"""Presentation mode's two-up story: while the window compares two models, a second row under the presentation's
pictures shows what model B says, where it looks (at the layer matching the one played above, by relative depth)
and how far it thinks things are."""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from ...compare import match_layer
from ...render import apply_colormap, overlay
from .content import answer_lines, attention_frames, nearness
from .parts import Picture

__all__ = ["PresentationCompare"]


class PresentationCompare(QWidget):
    """The second row of a :class:`~vitviz.app.presentation.PresentationView`, for model B (``state_b``'s result).
    It follows the view's ``layer_changed``; :meth:`set_active` shows it while comparison is on."""

    def __init__(self, view: Any, state_b: Any) -> None:
        super().__init__()
        self.view, self.state_b = view, state_b
        self.active = False
        self._frames: list[np.ndarray] = []
        self.layer_b: int | None = None  # B's layer on screen
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 6, 0, 0)
        grid.setHorizontalSpacing(48)
        words = QVBoxLayout()
        self.heading = QLabel("Two models look at the same picture")
        self.heading.setObjectName("Title")
        self.heading.setWordWrap(True)
        self.answer = QLabel()
        self.answer.setWordWrap(True)
        self.runner = QLabel()
        self.runner.setObjectName("Runner")
        self.runner.setWordWrap(True)
        for label in (self.heading, self.answer, self.runner):
            words.addWidget(label)
        words.addStretch(1)
        self.attention_title, self.depth_title = QLabel(), QLabel()
        self.attention, self.depth = Picture(), Picture()
        grid.addLayout(words, 0, 0, 2, 1)
        for col, (title, picture) in enumerate(((self.attention_title, self.attention),
                                                (self.depth_title, self.depth)), start=1):
            title.setObjectName("Title")
            title.setAlignment(Qt.AlignmentFlag.AlignHCenter)
            view._font(title, "runner")
            grid.addWidget(title, 0, col)
            grid.addWidget(picture, 1, col)
        view._font(self.heading, "runner")
        view._font(self.answer, "title")
        view._font(self.runner, "explain")
        view._apply_fonts()
        for col, stretch in enumerate((5, 7, 5)):  # the presentation's columns: picture, attention, depth
            grid.setColumnStretch(col, stretch)
        grid.setRowStretch(1, 1)
        outer = view.layout()
        outer.insertWidget(outer.count() - 1, self, 1)  # above the footer
        self.hide()
        view.layer_changed.connect(self._follow)
        view.entered.connect(self.refresh)
        state_b.result_changed.connect(lambda _shown: self.refresh())

    def set_active(self, active: bool) -> None:
        """Comparison on (the row shows B) or off (the presentation tells one model's story)."""
        self.active = bool(active)
        self.refresh()

    def refresh(self) -> None:
        """Draw B's row from ``state_b`` (only while the presentation is on screen: it costs the window nothing)."""
        result = self.state_b.result
        self.setVisible(self.active and result is not None)
        if result is None or not self.active or not self.view.active:
            self._frames = []
            return
        answer, runner = answer_lines(result)
        a = self.view.result
        names = f"Above: {getattr(a, 'model_name', 'model A')}. Below: {result.model_name}."
        self.heading.setText(f"Two models look at the same picture. {names}")
        self.answer.setText(answer)
        self.runner.setText(runner)
        image, _scale = result.detail_image()
        grey = np.repeat(np.asarray(image, np.float32).mean(axis=2, keepdims=True), 3, axis=2).astype(np.uint8)
        self._frames = [overlay(grey, f, self.view.cmap, alpha=0.7) for f in attention_frames(result,
                                                                                              self.view.attention_kind)]
        near = nearness(result)
        self.depth.set_image(None if near is None else apply_colormap(near, self.view.depth_cmap))
        self.depth_title.setText("How far away, for model B" if near is not None else "Model B does not guess distances")
        self._follow(self.view.layer)

    def _follow(self, layer: int) -> None:
        """Show B's layer that matches the presentation's ``layer`` by relative depth."""
        self.layer_b = None
        if not self._frames:
            self.attention.set_image(None)
            self.attention_title.setText("Model B does not show where it looks")
            return
        layers_a = max(1, self.view.layer_count)
        lb = self.layer_b = match_layer(min(layer, layers_a - 1), layers_a, len(self._frames))
        self.attention.set_image(self._frames[lb])
        self.attention_title.setText(f"Model B, layer {lb + 1} of {len(self._frames)}")
