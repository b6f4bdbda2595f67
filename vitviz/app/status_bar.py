"""The status bar: what is under the mouse, what the worker is busy with (a progress bar for downloads), and the
model, device and timings of the displayed result."""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtWidgets import QLabel, QProgressBar, QSizePolicy, QStatusBar, QToolButton, QWidget

from .session import Session
from .state import ViewState
from .widgets import SteadyText

__all__ = ["StatusBar"]


class StatusBar(QStatusBar):
    def __init__(self, state: ViewState, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.hover_label = QLabel("")
        self.hover_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.addWidget(self.hover_label, 1)
        self.busy_label = QLabel("")
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)
        self.busy_bar.setMaximumSize(QSize(120, 14))
        self.busy_bar.setTextVisible(False)
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Stop the download; the current model stays")
        self.cancel_button.clicked.connect(session.cancel_load)
        self.timing_label = QLabel("")
        self.timing_label.setObjectName("Muted")
        for w in (self.busy_label, self.busy_bar, self.cancel_button, SteadyText(self.timing_label)):
            self.addPermanentWidget(w)
        self.set_busy(False)
        state.status.connect(self.hover_label.setText)
        state.result_changed.connect(self._on_result)
        state.model_changed.connect(self._on_model)
        session.activity.connect(self.busy_label.setText)
        session.busy_changed.connect(self.set_busy)
        session.download_progress.connect(self.show_download)

    def set_busy(self, busy: bool) -> None:
        self.busy_label.setVisible(busy)
        self.busy_bar.setVisible(busy)
        if not busy:
            self.cancel_button.hide()
            self.busy_bar.setRange(0, 0)  # back to the indeterminate bar after a download

    def show_download(self, done: int, total: int) -> None:
        """A pretrained model is being downloaded: a determinate bar and the size."""
        mb = 1024 * 1024
        if total > 0:
            self.busy_bar.setRange(0, 1000)
            self.busy_bar.setValue(int(1000 * min(done, total) / total))
            self.busy_label.setText(f"Downloading model… {done / mb:.0f} of {total / mb:.0f} MB")
        else:
            self.busy_label.setText(f"Downloading model… {done / mb:.0f} MB")
        self.busy_label.setVisible(True)
        self.busy_bar.setVisible(True)
        self.cancel_button.setVisible(True)

    def _on_model(self, summary) -> None:
        if summary is not None and self.state.shown is None and self.state.preview is None:
            self.timing_label.setText(f"{summary.name} on {summary.device} · loaded in {summary.load_ms:.0f} ms")

    def _on_result(self, shown) -> None:
        if shown is None:
            return
        result = shown.result
        t = result.timings
        self.timing_label.setText(f"{result.model_name} on {result.device} · forward {t.get('forward', 0):.0f} ms · "
                                  f"total {t.get('total', 0):.0f} ms")
        self.timing_label.setToolTip("\n".join(f"{k}: {v:.1f} ms" for k, v in t.items()))
