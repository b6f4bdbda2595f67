"""Thumbnails drawn away from the UI thread: in a process of their own (so that drawing never holds this process's
Python lock while the list scrolls), or on a thread when no process can be started; the newest requests first,
answered in batches of QImages."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from ...gallery import Entry, Overlay
from ...thumbnails import ThumbnailProcess, ThumbnailRenderer, start_thumbnail_process
from ..widgets.qimage import to_qimage

__all__ = ["ThumbnailLoader"]

BATCH_S = 0.012  # the longest a drawn thumbnail waits for others to be sent with it
IN_FLIGHT = 16  # requests sent to the drawing process ahead of its answers (round trips cost more than drawing)


class ThumbnailLoader(QObject):
    """Draws the thumbnails asked for with :meth:`request`, newest first (what was just scrolled to), and answers
    with ``ready([(key, image, note), ...])`` on the UI thread; :meth:`forget` drops what is still waiting (a new
    overlay makes it useless). ``key`` is ``(entry name, overlay)``. ``process``: draw in a child process (else on a
    thread of this one, as also when the process cannot start)."""

    ready = Signal(list)

    def __init__(self, renderer: ThumbnailRenderer, parent: QObject | None = None,
                 process: bool | ThumbnailProcess = True) -> None:
        super().__init__(parent)
        self.renderer = renderer
        self._pending: OrderedDict[Any, tuple[Entry, Overlay]] = OrderedDict()
        self._wake = threading.Condition()
        self._stopped = False
        if isinstance(process, ThumbnailProcess):  # started earlier (vitviz browse)
            self.process: ThumbnailProcess | None = process
        else:
            self.process = start_thumbnail_process(renderer.run.folder, renderer.size) if process else None
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
        if self.process is not None:
            self.process.close()
            self.process = None

    def _loop(self) -> None:
        """Send the newest requests, collect the answers; send the answers on in batches (every ``BATCH_S`` or when
        nothing is left), so that a screenful of thumbnails costs the UI thread one repaint, not one per thumbnail."""
        batch: list[tuple[Any, QImage | None, str]] = []
        started, in_flight = 0.0, 0
        run = self.renderer.run
        while True:
            with self._wake:
                while not self._pending and not self._stopped and not batch and not in_flight:
                    self._wake.wait()
                if self._stopped:
                    return
                limit = IN_FLIGHT - in_flight if self.process is not None else 1
                todo = [self._pending.popitem(last=True) for _ in range(min(limit, len(self._pending)))]
            answers = []
            if self.process is not None:
                shape = (run.layers, run.heads, list(run.evidence_methods))
                try:
                    for key, (entry, overlay) in todo:
                        self.process.requests.send((key, entry, overlay, shape))
                        in_flight += 1
                    if in_flight and self.process.answers.poll(0.05):  # (waits without Python's lock)
                        answers = self.process.answers.recv()
                        in_flight -= len(answers)
                except (EOFError, OSError):
                    if self._stopped:
                        return
                    self.process, in_flight = None, 0  # the process is gone: draw here from now on
                    with self._wake:
                        for key, value in todo:
                            self._pending.setdefault(key, value)
                    continue
            else:
                for key, (entry, overlay) in todo:
                    try:
                        thumb = self.renderer.render(entry, overlay)
                        answers.append((key, thumb.rgb, thumb.note))
                    except Exception as exc:  # noqa: BLE001 - one bad file draws as a note
                        answers.append((key, None, f"cannot be drawn ({type(exc).__name__}: {exc})"))
            for key, rgb, note in answers:
                if not batch:
                    started = time.perf_counter()
                batch.append((key, None if rgb is None else to_qimage(rgb), note))
            idle = not in_flight and not self.pending()
            if batch and (idle or time.perf_counter() - started > BATCH_S):
                if self._stopped:
                    return
                self.ready.emit(batch)
                batch = []
