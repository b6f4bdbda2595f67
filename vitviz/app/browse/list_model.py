"""The Qt list model of the gallery: one row per image shown, its thumbnail asked for only when the view paints it."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QImage

from ...gallery import THUMBNAIL_PX, Entry, Gallery, Overlay, Run
from ...thumbnails import ThumbnailRenderer
from .thumbnails import ThumbnailLoader

__all__ = ["GalleryListModel", "ENTRY_ROLE", "NOTE_ROLE"]

ENTRY_ROLE = Qt.ItemDataRole.UserRole + 1  # the row's vitviz.gallery.Entry
NOTE_ROLE = Qt.ItemDataRole.UserRole + 2  # why the overlay is not drawn ("" when it is)
CACHED_THUMBNAILS = 1500  # QImages kept (about 100 kB each at 160 px)

_Index = QModelIndex | QPersistentModelIndex


def caption(entry: Entry) -> str:
    """The line under a thumbnail: top-1 label and confidence, or that it failed."""
    if entry.failed:
        return "failed"
    if not entry.label:
        return "no classifier"
    return entry.label + ("" if math.isnan(entry.confidence) else f"  {entry.confidence:.0%}")


class GalleryListModel(QAbstractListModel):
    """The images of a :class:`vitviz.gallery.Gallery`, in its order, each with the thumbnail of the current
    :class:`~vitviz.gallery.Overlay` (DecorationRole, a QImage; until it is drawn, the image's last thumbnail or
    None). ``thumbnails_arrived(count)`` follows each batch of thumbnails drawn; ``overlay_changed()`` asks the views to
    repaint."""

    thumbnails_arrived = Signal(int)
    overlay_changed = Signal()

    def __init__(self, run: Run, overlay: Overlay | None = None, size: int = THUMBNAIL_PX,
                 parent: QObject | None = None, sort: str = "name", process: Any = True) -> None:
        super().__init__(parent)
        self.run = run
        self.gallery = Gallery(run, sort=sort)
        self.overlay = overlay or Overlay()
        self.renderer = ThumbnailRenderer(run, size)
        self.loader = ThumbnailLoader(self.renderer, self, process)
        self.loader.ready.connect(self._arrived)
        self._images: OrderedDict[Any, tuple[QImage | None, str]] = OrderedDict()
        self._last: OrderedDict[str, QImage] = OrderedDict()  # each image's newest thumbnail, shown meanwhile
        self._row_of: dict[str, int] = {}
        self._rows = 0
        self._reindex()

    # ------------------------------------------------------------------------------------------ Qt

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt's API
        return 0 if parent.isValid() else self._rows  # (asked once per item whenever the view lays them out)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.gallery):
            return None
        entry = self.gallery.entry(index.row())
        if role == Qt.ItemDataRole.DisplayRole:
            return caption(entry)
        if role == Qt.ItemDataRole.DecorationRole:
            return self.thumbnail(entry)[0]
        if role == NOTE_ROLE:
            return self.thumbnail(entry, ask=False)[1]
        if role == ENTRY_ROLE:
            return entry
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.tooltip(entry)
        return None

    # ------------------------------------------------------------------------------------------ thumbnails

    def thumbnail(self, entry: Entry, ask: bool = True) -> tuple[QImage | None, str]:
        """The entry's thumbnail for the current overlay and its note; asks the thread for it when it is not drawn
        yet (and returns the image's previous thumbnail meanwhile)."""
        key = (entry.name, self.overlay)
        found = self._images.get(key)
        if found is not None:
            self._images.move_to_end(key)
            return found
        if ask:
            self.loader.request(entry, self.overlay)
        return self._last.get(entry.name), ""

    def is_drawn(self, row: int) -> bool:
        return (self.gallery.entry(row).name, self.overlay) in self._images

    def _arrived(self, batch: list[tuple[Any, QImage | None, str]]) -> None:
        rows = []
        for key, image, note in batch:
            self._images[key] = (image, note)
            name, overlay = key
            if image is not None:
                self._last[name] = image
                self._last.move_to_end(name)
            row = self._row_of.get(name)
            if row is not None and overlay == self.overlay:
                rows.append(row)
        for cache in (self._images, self._last):
            while len(cache) > CACHED_THUMBNAILS:
                cache.popitem(last=False)
        roles = [Qt.ItemDataRole.DecorationRole, NOTE_ROLE]
        for row in rows:  # row by row: an icon view measures every item of a range again
            index = self.index(row)
            self.dataChanged.emit(index, index, roles)
        self.thumbnails_arrived.emit(len(batch))

    def tooltip(self, entry: Entry) -> str:
        lines = [entry.name]
        if entry.source:
            lines.append(entry.source)
        if entry.failed:
            lines.append(f"failed: {entry.error}")
        else:
            lines.append(caption(entry))
            if entry.in_domain is not None:
                lines.append(("in" if entry.in_domain else "OUT of") +
                             f" the model's domain (score {entry.domain_score:.0f})")
        note = self._images.get((entry.name, self.overlay), (None, ""))[1]
        if note and not entry.failed:
            lines.append(note)
        return "\n".join(lines)

    # ------------------------------------------------------------------------------------------ changes

    def set_overlay(self, overlay: Overlay) -> None:
        """Show ``overlay`` on every thumbnail: what waits is forgotten, the visible ones are asked for again."""
        if overlay == self.overlay:
            return
        self.overlay = overlay
        self.loader.forget()
        # not dataChanged over every row: an icon view would measure all of them again (10,000 calls of the
        # delegate's sizeHint); the views repaint what they show, and ask for the new thumbnails
        self.overlay_changed.emit()

    def set_view(self, **changes: Any) -> None:
        """Change the gallery's sort, direction, label, status, domain or search (names of
        :class:`vitviz.gallery.Gallery`), and show its new order."""
        self.beginResetModel()
        for name, value in changes.items():
            setattr(self.gallery, name, value)
        self.gallery.update()
        self._reindex()
        self.endResetModel()

    def reload(self) -> None:
        """Read the run's table again (a run still being written), keeping the thumbnails drawn."""
        self.beginResetModel()
        self.run.read()
        self.gallery.update()
        self._reindex()
        self.endResetModel()

    def _reindex(self) -> None:
        self._rows = len(self.gallery.order)
        self._row_of = {self.run.entries[i].name: row for row, i in enumerate(self.gallery.order)}

    def row_of(self, name: str) -> int | None:
        return self._row_of.get(name)

    def shutdown(self) -> None:
        self.loader.stop()
