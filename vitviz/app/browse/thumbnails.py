"""Thumbnails drawn on a thread of their own: the newest requests first, each answered once, as a QImage."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from PySide6.QtCore import QObject, Signal

from ...gallery import Entry, Overlay, ThumbnailRenderer
from ..widgets.qimage import to_qimage

__all__ = ["ThumbnailLoader"]


class ThumbnailLoader(QObject):
    """Draws the thumbnails asked for with :meth:`request` on a worker thread, newest first (what was just scrolled
    to), and answers with ``ready(key, image, note)`` on the UI thread; :meth:`forget` drops what is still waiting
    (a new overlay makes it useless). ``key`` is ``(entry name, overlay)``."""

    ready = Signal(object, object, str)

    def __init__(self, renderer: ThumbnailRenderer, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.renderer = renderer
        self._pending: OrderedDict[Any, tuple[Entry, Overlay]] = OrderedDict()
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="vitviz-thumbnails", daemon=True)
        self._thread.start()

    def request(self, entry: Entry, overlay: Overlay) -> None:
        key = (entry.name, overlay)
        with self._wake:
            self._pending[key] = (entry, overlay)
            self._pending.move_to_end(key)  # asked again: it is on screen now
            self._wake.notify()

    def forget(self) -> None:
        with self._wake:
            self._pending.clear()

    def pending(self) -> int:
        with self._wake:
            return len(self._pending)

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._pending.clear()
            self._wake.notify()
        self._thread.join(timeout=2.0)

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._stopped:
                    self._wake.wait()
                if self._stopped:
                    return
                key, (entry, overlay) = self._pending.popitem(last=True)  # newest first
            try:
                thumb = self.renderer.render(entry, overlay)
                image, note = to_qimage(thumb.rgb), thumb.note
            except Exception as exc:  # noqa: BLE001 - one bad file draws as a note, never stops the thread
                image, note = None, f"cannot be drawn ({type(exc).__name__}: {exc})"
            if self._stopped:
                return
            self.ready.emit(key, image, note)
