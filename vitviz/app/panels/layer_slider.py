"""A layer slider bound to the ViewState: any panel that shows one layer at a time can carry its own."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QWidget

from ..state import ViewState

__all__ = ["LayerSlider"]


class LayerSlider(QWidget):
    """"Layer [----o--] 3 of 0–5": moving it sets the state's layer; it follows the state's layer and result."""

    def __init__(self, state: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(8)
        row.addWidget(QLabel("Layer"))
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setPageStep(1)
        self.slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.slider.setTickInterval(1)
        self.slider.setToolTip("Transformer block shown (← → keys; 0 is the first)")
        self.slider.setMinimumWidth(110)
        self.slider.setEnabled(False)
        self.slider.valueChanged.connect(state.set_layer)
        row.addWidget(self.slider, 1)
        self.label = QLabel("–")
        self.label.setMinimumWidth(60)
        row.addWidget(self.label)
        state.result_changed.connect(self.sync)
        state.layer_changed.connect(self.sync)

    def sync(self, *_args) -> None:
        layers = self.state.num_layers
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, layers - 1))
        self.slider.setValue(self.state.layer)
        self.slider.blockSignals(False)
        self.slider.setEnabled(layers > 1)
        self.label.setText(f"{self.state.layer}  of 0–{layers - 1}" if layers else "–")
