"""The closable banner at the top of the window for errors, warnings and information."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSizePolicy, QToolButton, QWidget

__all__ = ["MessageBar"]


class MessageBar(QFrame):
    """A non-modal banner at the top of the window: errors, warnings and information, closable."""

    STYLES = {
        "error": ("#fdecea", "#b3261e", "#f4c7c3", "⚠"),
        "warning": ("#fff4e5", "#8a5300", "#f7d9a8", "⚠"),
        "info": ("#e8f1fd", "#174ea6", "#c5d9f7", "ℹ"),
    }

    closed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind = "info"
        self.topic = "info"  # what the message is about, so that a later success can clear it
        self._timer = QTimer(self)  # a child of the bar: never fires after the window is gone
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        self.icon = QLabel(self)
        self.text = QLabel(self)
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        close = QToolButton(self)
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.dismiss)
        layout.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self.text, 1)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_message(self, text: str, kind: str = "error", topic: str | None = None, transient: bool = False) -> None:
        """Show ``text``; ``topic`` (default: ``kind``) names what it is about, for :meth:`dismiss_topics`; a
        transient message goes away by itself after six seconds."""
        bg, fg, border, icon = self.STYLES.get(kind, self.STYLES["info"])
        self.kind, self.topic = kind, topic or kind
        self._timer.stop()
        if transient:
            self._timer.start(6000)
        self.setStyleSheet(
            f"MessageBar {{ background: {bg}; border: 1px solid {border}; border-radius: 6px; }}"
            f"QLabel {{ color: {fg}; background: transparent; }}"
        )
        self.icon.setText(icon)
        self.text.setText(text)
        self.show()

    def message(self) -> str:
        return self.text.text() if self.isVisible() else ""

    def dismiss(self) -> None:
        self.hide()
        self.closed.emit()

    def dismiss_topics(self, *topics: str) -> None:
        """Hide the message if it is about one of ``topics`` (the problem was solved)."""
        if self.isVisible() and self.topic in topics:
            self.dismiss()
