"""The DINO-style threshold control: show only the patches that hold a chosen share of each map's mass."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSlider, QWidget

from ...explain import mass_threshold_mask
from ..state import ViewState

__all__ = ["ThresholdControl", "apply_threshold", "DEFAULT_FRACTION"]

DEFAULT_FRACTION = 0.6


def apply_threshold(values: np.ndarray, fraction: float | None) -> np.ndarray:
    """``values`` with every patch outside the smallest set holding ``fraction`` of the mass set to the minimum."""
    if fraction is None:
        return values
    return np.where(mass_threshold_mask(values, fraction), values, values.min())


class ThresholdControl(QWidget):
    """"[x] Keep 60 % of the mass [----o--]", bound to ``ViewState.threshold``."""

    def __init__(self, state: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.check = QCheckBox("Only the patches holding")
        self.check.setToolTip("Show only the smallest set of patches that holds this share of each map's mass "
                              "(DINO's threshold view)")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(5, 95)
        self.slider.setSingleStep(5)
        self.slider.setValue(int(round((state.threshold or DEFAULT_FRACTION) * 100)))
        self.slider.setMinimumWidth(60)
        self.slider.setMaximumWidth(120)
        self.label = QLabel()
        for w in (self.check, self.slider, self.label):
            row.addWidget(w)
        row.addStretch(1)
        self.check.toggled.connect(self._changed)
        self.slider.valueChanged.connect(self._changed)
        state.attention_style_changed.connect(self.sync)
        self.sync()

    def _changed(self, *_args) -> None:
        self.state.set_threshold(self.slider.value() / 100.0 if self.check.isChecked() else None)
        self.sync()

    def sync(self) -> None:
        on, fraction = self.state.threshold is not None, self.state.threshold or self.slider.value() / 100.0
        for w, value in ((self.check, on), (self.slider, int(round(fraction * 100)))):
            w.blockSignals(True)
            w.setChecked(value) if w is self.check else w.setValue(value)
            w.blockSignals(False)
        self.slider.setEnabled(on)
        self.label.setText(f"{int(round(fraction * 100))} % of its mass")
