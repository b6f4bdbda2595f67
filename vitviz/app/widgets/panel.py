"""A titled section of the window: a header row above a body."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from .steady_text import SteadyText

__all__ = ["Panel"]


class Panel(QFrame):
    """A titled section of the window: a header row (title + optional widgets) above a body."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Panel")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(10, 8, 10, 10)
        outer.setSpacing(6)
        self.header = QHBoxLayout()
        self.header.setSpacing(8)
        self.title = QLabel(title, self)
        self.title.setObjectName("PanelTitle")
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.title.setWordWrap(True)
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.title.setMinimumWidth(80)
        self.header.addWidget(SteadyText(self.title), 1)
        outer.addLayout(self.header)
        self.body = QVBoxLayout()
        self.body.setSpacing(6)
        outer.addLayout(self.body, 1)

    def set_title(self, html: str) -> None:
        self.title.setText(html)

    def add_header_widget(self, widget: QWidget) -> None:
        self.header.addWidget(widget)
