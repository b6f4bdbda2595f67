"""How one gallery item is painted: the thumbnail, its caption, a badge for failed and out-of-domain images."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPalette
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from .list_model import ENTRY_ROLE, NOTE_ROLE

__all__ = ["ThumbnailDelegate"]

CAPTION = 18  # px under the image
PAD = 4


class ThumbnailDelegate(QStyledItemDelegate):
    """Paints an item of :class:`~vitviz.app.browse.list_model.GalleryListModel` in a ``size`` square plus a
    caption line; nothing is computed here, so scrolling stays smooth."""

    def __init__(self, size: int = 160, parent=None) -> None:
        super().__init__(parent)
        self.size = size

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:  # noqa: N802
        return QSize(self.size + 2 * PAD, self.size + CAPTION + 2 * PAD)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        entry = index.data(ENTRY_ROLE)
        if entry is None:
            return
        rect = option.rect
        painter.save()
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected:
            painter.fillRect(rect, option.palette.color(QPalette.ColorRole.Highlight).lighter(160))
        box = QRect(rect.x() + PAD, rect.y() + PAD, self.size, self.size)
        image = index.data(Qt.ItemDataRole.DecorationRole)
        if isinstance(image, QImage) and not image.isNull():
            w, h = image.width(), image.height()
            scale = min(box.width() / max(w, 1), box.height() / max(h, 1))
            tw, th = int(w * scale), int(h * scale)
            target = QRect(box.x() + (box.width() - tw) // 2, box.y() + (box.height() - th) // 2, tw, th)
            painter.drawImage(target, image)
        else:
            painter.fillRect(box, QColor("#e3e7ed"))
        note = index.data(NOTE_ROLE)
        if entry.failed:
            _badge(painter, box, "failed", QColor("#b3261e"))
        elif entry.in_domain is False:
            _badge(painter, box, "out of domain", QColor("#8a5300"))
        if note and not entry.failed:
            _badge(painter, box, "!", QColor("#5b6470"), right=True)
        text_rect = QRect(rect.x() + PAD, box.bottom() + 2, self.size, CAPTION)
        font = QFont(option.font)
        painter.setFont(font)
        painter.setPen(QColor("#b3261e") if entry.failed else option.palette.color(QPalette.ColorRole.Text))
        text = painter.fontMetrics().elidedText(str(index.data(Qt.ItemDataRole.DisplayRole)),
                                                Qt.TextElideMode.ElideRight, self.size)
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, text)
        painter.restore()


def _badge(painter: QPainter, box: QRect, text: str, color: QColor, right: bool = False) -> None:
    metrics = painter.fontMetrics()
    w, h = metrics.horizontalAdvance(text) + 8, metrics.height() + 2
    x = box.right() - w - 2 if right else box.x() + 2
    area = QRect(x, box.y() + 2, w, h)
    painter.fillRect(area, color)
    painter.setPen(QColor("white"))
    painter.drawText(area, Qt.AlignmentFlag.AlignCenter, text)
