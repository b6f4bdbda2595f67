"""Recording the live view: RGB frames to an MP4 (H.264 through PyAV, the ``live`` extra) or an animated GIF
(Pillow, for short clips), at the times they were shown, encoded on a thread of its own.

Each frame keeps the time it was added, so the file plays at the live frame rate however irregular it was.
"""

from __future__ import annotations

import queue
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .sources import INSTALL_HINT, LiveSourceError, MissingLiveExtra

__all__ = ["Recorder", "RECORD_SUFFIXES", "GIF_MAX_FRAMES", "GIF_MAX_SIDE"]

RECORD_SUFFIXES = (".mp4", ".gif")
GIF_MAX_FRAMES = 600  # a GIF holds every frame in memory until it is written: short clips only
GIF_MAX_SIDE = 640  # GIF frames are scaled down to this long side (the format has 256 colours anyway)
QUEUE_FRAMES = 16  # frames waiting for the encoder; beyond this the newest is dropped (and counted)


class Recorder:
    """Write frames to ``path`` (``.mp4`` or ``.gif``): ``add(rgb)`` for every shown frame, then ``close()``.

    ``add`` never blocks: frames wait in a short queue for the encoder thread, and are dropped (``dropped``) when it
    falls behind. All frames are scaled to the first frame's size. Errors of the encoder end the recording; they are
    kept in ``error`` and raised by ``close()`` as :class:`LiveSourceError`.
    """

    def __init__(self, path: str | Path, fps_hint: float = 25.0) -> None:
        self.path = Path(path)
        self.kind = self.path.suffix.lower()
        if self.kind not in RECORD_SUFFIXES:
            raise LiveSourceError(f"{self.path.name}: recordings are .mp4 or .gif files")
        if self.kind == ".mp4":
            try:
                import av  # noqa: F401
            except ImportError as exc:
                raise MissingLiveExtra(f"Recording MP4 needs PyAV, the optional live extra: {INSTALL_HINT} "
                                       "(or record a .gif)") from exc
        if not self.path.parent.is_dir():
            raise LiveSourceError(f"{self.path.parent}: no such folder")
        self.fps_hint = float(fps_hint) if fps_hint and fps_hint > 0 else 25.0
        self.written = 0
        self.dropped = 0
        self.error: str | None = None
        self._queue: queue.Queue[tuple[np.ndarray, float] | None] = queue.Queue(QUEUE_FRAMES)
        self._t0: float | None = None
        self._last_ms = -1
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"vitviz-record ({self.path.name})", daemon=True)
        self._thread.start()

    def add(self, rgb: np.ndarray, t: float | None = None, block: bool = False) -> bool:
        """Queue one uint8 [H, W, 3] frame shown at ``t`` (``time.perf_counter()`` seconds, or any clock in seconds;
        default now). Returns False when it was dropped (encoder behind, GIF full, recorder closed or failed).
        ``block``: wait for room in the queue instead of dropping (writing a file offline)."""
        if self._closed or self.error is not None:
            return False
        if self.kind == ".gif" and self.written + self._queue.qsize() >= GIF_MAX_FRAMES:
            self.dropped += 1
            return False
        t = time.perf_counter() if t is None else t
        if self._t0 is None:
            self._t0 = t
        try:
            self._queue.put((np.ascontiguousarray(rgb[..., :3], dtype=np.uint8), t - self._t0), block=block,
                            timeout=10.0 if block else None)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def close(self, timeout: float = 30.0) -> Path:
        """Finish the file (waits up to ``timeout`` s for the encoder) and return its path."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise LiveSourceError(f"{self.path.name}: the recording did not finish within {timeout:g} s")
        if self.error is not None:
            raise LiveSourceError(f"recording {self.path.name} failed: {self.error}")
        if self.written == 0:
            raise LiveSourceError(f"{self.path.name}: nothing was recorded")
        return self.path

    # -- encoder thread -------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            if self.kind == ".mp4":
                self._write_mp4()
            else:
                self._write_gif()
        except Exception as exc:  # noqa: BLE001 - reported by close() and through ``error``
            self.error = f"{type(exc).__name__}: {exc}"
            while self._queue.get() is not None:  # let add()/close() go on without blocking
                pass

    def _frames(self):
        while True:
            item = self._queue.get()
            if item is None:
                return
            yield item

    def _write_mp4(self) -> None:
        import av

        container: Any = None
        stream: Any = None
        try:
            for rgb, t in self._frames():
                if container is None:
                    h, w = (rgb.shape[0] // 2) * 2, (rgb.shape[1] // 2) * 2  # H.264 in 4:2:0 needs even sizes
                    container = av.open(str(self.path), mode="w")
                    codec = "libx264" if _has_encoder(av, "libx264") else "mpeg4"
                    stream = container.add_stream(codec, rate=Fraction(round(self.fps_hint * 1000), 1000))
                    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                    stream.codec_context.time_base = Fraction(1, 1000)
                    if codec == "libx264":
                        stream.options = {"crf": "20", "preset": "veryfast"}
                ms = max(self._last_ms + 1, int(round(t * 1000.0)))  # strictly increasing timestamps
                self._last_ms = ms
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame = frame.reformat(width=stream.width, height=stream.height, format="yuv420p")
                frame.pts, frame.time_base = ms, Fraction(1, 1000)
                for packet in stream.encode(frame):
                    container.mux(packet)
                self.written += 1
            if stream is not None:
                for packet in stream.encode(None):
                    container.mux(packet)
        finally:
            if container is not None:
                container.close()

    def _write_gif(self) -> None:
        from PIL import Image

        frames: list[Image.Image] = []
        times: list[float] = []
        size: tuple[int, int] | None = None
        for rgb, t in self._frames():
            im = Image.fromarray(rgb)
            if size is None:
                s = min(1.0, GIF_MAX_SIDE / max(im.size))
                size = (max(1, round(im.width * s)), max(1, round(im.height * s)))
            if im.size != size:
                im = im.resize(size, Image.Resampling.BILINEAR)
            frames.append(im.quantize(256, method=Image.Quantize.FASTOCTREE))  # 1 byte a pixel while waiting
            times.append(t)
            self.written += 1
        if not frames:
            return
        ends = times[1:] + [times[-1] + (times[-1] - times[0]) / max(1, len(times) - 1) if len(times) > 1
                            else 1.0 / self.fps_hint]
        durations = [max(20, int(round((b - a) * 100.0)) * 10) for a, b in zip(times, ends)]  # GIF: 1/100 s units
        frames[0].save(self.path, save_all=True, append_images=frames[1:], duration=durations, loop=0,
                       disposal=1, optimize=False)


def _has_encoder(av: Any, name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except Exception:  # noqa: BLE001 - unknown or decoder-only
        return False
    return True
