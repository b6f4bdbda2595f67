"""Two header buttons for head knockout: "Knock out N heads" while heads are picked (Ctrl-click a head), and
"Restore the model" while heads are knocked out. They act only through the :class:`~vitviz.app.state.ViewState`."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QPushButton, QWidget

from ..state import ViewState

__all__ = ["KnockoutButtons", "heads_text"]


def heads_text(heads) -> str:
    """``heads`` as the app names them: "L0.H1, L2.H0" (layer.head, 0-based)."""
    return ", ".join(f"L{layer}.H{head}" for layer, head in sorted(heads))


class KnockoutButtons(QWidget):
    def __init__(self, state: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(6)
        self.knockout = QPushButton("Knock out")
        self.knockout.clicked.connect(lambda: state.request_knockout())
        self.restore = QPushButton("Restore the model")
        self.restore.setToolTip("Bring back the analysis by the whole model (Ctrl+Shift+K)")
        self.restore.clicked.connect(lambda: state.restore_model())
        row.addWidget(self.knockout)
        row.addWidget(self.restore)
        for signal in (state.head_selection_changed, state.knockout_changed, state.result_changed):
            signal.connect(self.sync)
        self.sync()

    def sync(self, *_args) -> None:
        state, picked = self.state, sorted(self.state.selected_heads)
        offer = bool(picked) and picked != sorted(state.knocked_out) and state.shown is not None
        self.knockout.setText(f"Knock out {len(picked)} head{'s' * (len(picked) != 1)}")
        self.knockout.setToolTip(f"Analyse the image again without {heads_text(picked)} (Ctrl+K)")
        self.knockout.setVisible(offer)
        self.restore.setVisible(state.original is not None)
        self.setVisible(offer or state.original is not None)
