"""A box around an often-changing QLabel that stops its relayout requests from reaching the window."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QSize
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

__all__ = ["SteadyText"]


class SteadyText(QWidget):
    """A box around a QLabel whose text changes often (every live frame). A bare QLabel asks every layout around it,
    up to the window's, to lay out again on each change (about 10 ms a frame in live mode). In this box the request
    stops here, and goes on only when the label then needs another size. Add the box to a layout instead of the
    label; ``box.label`` is the label."""

    def __init__(self, label: QLabel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = label
        label.setParent(self)
        self.setSizePolicy(label.sizePolicy())
        self._needs = self._size_needs()

    def _size_needs(self) -> tuple:
        """What the enclosing layout uses of the label: its size hints (but not along an Ignored direction), and
        the height it needs at the current width when it wraps."""
        label, policy = self.label, self.label.sizePolicy()
        free_w = policy.horizontalPolicy() == QSizePolicy.Policy.Ignored
        free_h = policy.verticalPolicy() == QSizePolicy.Policy.Ignored
        hints = [(0 if free_w else s.width(), 0 if free_h else s.height())
                 for s in (label.sizeHint(), label.minimumSizeHint())]
        return (*hints, label.heightForWidth(self.width()) if label.hasHeightForWidth() else -1, label.isHidden())

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return self.label.sizeHint()

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return self.label.minimumSizeHint()

    def hasHeightForWidth(self) -> bool:  # noqa: N802 - Qt API
        return self.label.hasHeightForWidth()

    def heightForWidth(self, width: int) -> int:  # noqa: N802 - Qt API
        return self.label.heightForWidth(width)

    def resizeEvent(self, event) -> None:  # noqa: N802
        self.label.setGeometry(self.rect())
        self._needs = self._size_needs()
        super().resizeEvent(event)

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.LayoutRequest:  # the label's text (or font, or visibility) changed
            needs = self._size_needs()
            if needs != self._needs:
                self._needs = needs
                self.updateGeometry()
            return True
        return super().event(event)
