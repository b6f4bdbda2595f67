"""Thumbnails drawn on a thread of their own: the newest requests first, each answered once, as a QImage."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from ...gallery import Entry, Overlay, ThumbnailRenderer
from ..widgets.qimage import to_qimage

__all__ = ["ThumbnailLoader"]

BATCH_S = 0.012  # the longest a drawn thumbnail waits for others to be sent with it


class ThumbnailLoader(QObject):
    """Draws the thumbnails asked for with :meth:`request` on a worker thread, newest first (what was just scrolled
    to), and answers with ``ready([(key, image, note), ...])`` on the UI thread; :meth:`forget` drops what is still waiting
    (a new overlay makes it useless). ``key`` is ``(entry name, overlay)``."""

    ready = Signal(list)

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
        """Draw what is asked, newest first; answer in batches (every ``BATCH_S`` or when nothing waits), so that
        a screenful of thumbnails costs the UI thread one repaint, not one per thumbnail."""
        batch: list[tuple[Any, QImage | None, str]] = []
        started = 0.0
        while True:
            with self._wake:
                while not self._pending and not self._stopped and not batch:
                    self._wake.wait()
                if self._stopped:
                    return
                item = self._pending.popitem(last=True) if self._pending else None  # newest first
            if item is not None:
                key, (entry, overlay) = item
                try:
                    thumb = self.renderer.render(entry, overlay)
                    image, note = to_qimage(thumb.rgb), thumb.note
                except Exception as exc:  # noqa: BLE001 - one bad file draws as a note, never stops the thread
                    image, note = None, f"cannot be drawn ({type(exc).__name__}: {exc})"
                if not batch:
                    started = time.perf_counter()
                batch.append((key, image, note))
            if batch and (item is None or time.perf_counter() - started > BATCH_S):
                if self._stopped:
                    return
                self.ready.emit(batch)
                batch = []
