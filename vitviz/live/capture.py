"""The capture thread: reads a :class:`~vitviz.live.sources.FrameSource` in real time into a one-slot buffer.

The slot holds only the newest frame: a frame that nobody took before the next one arrived is dropped (and counted),
so a slow consumer never builds a backlog. Play, pause, step and seek are requests the thread applies between frames.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from .sources import CorruptFrame, Frame, FrameSource, LiveSourceError

__all__ = ["LatestFrame", "CaptureThread"]

MAX_CONSECUTIVE_CORRUPT = 50  # this many damaged frames in a row end the stream
LATE_RESYNC_S = 0.25  # a paced source this far behind its clock (after a stall) restarts its clock instead of rushing


class LatestFrame:
    """A one-slot buffer between a producer and a consumer thread: ``put`` replaces a frame nobody took (counted in
    ``dropped``); ``take`` waits for a frame and empties the slot."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._closed = False
        self.put_count = 0
        self.dropped = 0

    def put(self, frame: Frame) -> None:
        with self._cond:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self.put_count += 1
            self._cond.notify_all()

    def take(self, timeout: float | None = None) -> Frame | None:
        """The newest frame (emptying the slot), or None after ``timeout`` seconds or once closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None or self._closed, timeout)
            frame, self._frame = self._frame, None
            return frame

    def clear(self) -> None:
        """Forget the waiting frame without counting it as dropped (e.g. on seek or resume)."""
        with self._cond:
            self._frame = None

    def close(self) -> None:
        """Wake every waiting ``take`` (they return None from now on unless a frame is put again)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class CaptureThread(threading.Thread):
    """Opens ``source`` and delivers its frames into ``slot`` at their own pace.

    Callbacks run on this thread: ``on_open(source)`` once opened, ``on_error(message, fatal)`` for a damaged frame
    (``fatal`` False, the stream goes on) or a source that cannot open or stopped working (``fatal`` True, the
    thread ends), ``on_end()`` when a file ends without ``loop``.
    """

    def __init__(
        self,
        source: FrameSource,
        slot: LatestFrame,
        on_error: Callable[[str, bool], None] | None = None,
        on_open: Callable[[FrameSource], None] | None = None,
        on_end: Callable[[], None] | None = None,
        loop: bool = True,
    ) -> None:
        super().__init__(name=f"vitviz-capture ({source.name})", daemon=True)
        self.source = source
        self.slot = slot
        self.loop = loop
        self._on_error = on_error or (lambda message, fatal: None)
        self._on_open = on_open or (lambda source: None)
        self._on_end = on_end or (lambda: None)
        self._stop_event = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._paused = False
        self._steps = 0
        self._seek: int | None = None
        self.last_index = -1  # index of the newest frame delivered
        self.delivered = 0
        self.next_seq = 0  # seq of the next frame delivered (frames count from 0)
        self.corrupt = 0
        self.opened = False

    # -- requests from other threads ------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop_event.set()
        self._wake.set()

    def pause(self) -> None:
        with self._lock:
            self._paused = True

    def play(self) -> None:
        with self._lock:
            self._paused, self._steps = False, 0
        self._wake.set()

    @property
    def paused(self) -> bool:
        return self._paused

    def step(self, delta: int = 1) -> None:
        """While paused, deliver the next frame (``delta`` > 0) or the previous one (``delta`` < 0, seekable only)."""
        with self._lock:
            if delta < 0:
                self._seek = max(0, self.last_index + delta)
            self._steps += 1
        self._wake.set()

    def seek(self, index: int) -> None:
        """Continue from frame ``index`` (shown at once also while paused)."""
        with self._lock:
            self._seek = int(index)
            if self._paused:
                self._steps += 1
        self._wake.set()

    # -- the thread -----------------------------------------------------------------------------------------

    def run(self) -> None:
        source = self.source
        try:
            source.open()
        except LiveSourceError as exc:
            self._on_error(str(exc), True)
            return
        except Exception as exc:  # noqa: BLE001 - any failure becomes a message, never a dead thread without one
            self._on_error(f"{source.name}: cannot open ({type(exc).__name__}: {exc})", True)
            return
        try:
            self.opened = True
            self._on_open(source)
            self._play(source)
        finally:
            try:
                source.close()
            except Exception:  # noqa: BLE001
                pass

    def _play(self, source: FrameSource) -> None:
        clock: tuple[float, float] | None = None  # (wall time, media time) of the frame the pace is measured from
        offset = 0.0  # added to the media time after each loop, so the first frame waits its turn like any other
        last_ts = 0.0
        seq = 0
        corrupt_run = 0
        held: Frame | None = None  # a frame that was due while a pause arrived: it is the next one shown
        while not self._stop_event.is_set():
            with self._lock:
                seek, self._seek = self._seek, None
                paused, stepping = self._paused, self._steps > 0
            if seek is not None and source.seekable:
                try:
                    source.seek(seek)
                except LiveSourceError as exc:
                    self._on_error(str(exc), False)
                self.slot.clear()
                clock, offset, held = None, 0.0, None
            if paused and not stepping:
                if source.paced:
                    self._wake.wait(0.1)
                    self._wake.clear()
                    clock = None
                    continue
                # a device keeps being read while paused, so that resuming shows a fresh frame, not a stale buffer
            try:
                frame, held = (held, None) if held is not None else (source.read(), None)
            except CorruptFrame as exc:
                self.corrupt += 1
                corrupt_run += 1
                if corrupt_run == 1 or self.corrupt % 25 == 0:
                    self._on_error(f"{exc} ({self.corrupt} damaged so far)", False)
                if corrupt_run >= MAX_CONSECUTIVE_CORRUPT:
                    self._on_error(f"{source.name}: {corrupt_run} damaged frames in a row; playback stopped", True)
                    return
                continue
            except LiveSourceError as exc:
                self._on_error(str(exc), True)
                return
            except Exception as exc:  # noqa: BLE001
                self._on_error(f"{source.name}: reading failed ({type(exc).__name__}: {exc})", True)
                return
            corrupt_run = 0
            if frame is None:  # end of a file
                if self.delivered == 0:
                    self._on_error(f"{source.name}: no frame could be read", True)
                    return
                if self.loop and source.seekable:
                    source.seek(0)
                    offset = last_ts + 1.0 / max(source.fps, 1e-3)
                    continue
                self._on_end()
                with self._lock:
                    self._paused, self._steps = True, 0
                continue
            if paused and not stepping:
                continue  # a device read while paused: discarded
            media = frame.timestamp + offset
            last_ts = media
            if source.paced and not stepping:
                now = time.perf_counter()
                if clock is None:
                    clock = (now, media)
                due = clock[0] + (media - clock[1])
                if due - now < -LATE_RESYNC_S or media < clock[1]:
                    clock = (now, media)  # stalled (or sought backwards): restart the clock here
                elif due > now and self._stop_event.wait(due - now):
                    return
                if self._paused and self._steps == 0:
                    held = frame  # paused while waiting for this frame's time
                    continue
            if stepping:
                with self._lock:
                    self._steps = max(0, self._steps - 1)
            frame.seq = seq
            seq += 1
            self.next_seq = seq
            frame.captured = time.perf_counter()
            self.last_index = frame.index
            self.delivered += 1
            self.slot.put(frame)
