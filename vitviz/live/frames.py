"""What every live frame source shares: the Frame, the FrameSource interface and the errors a source raises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import VitvizError

__all__ = ["LiveSourceError", "CorruptFrame", "Frame", "FrameSource"]


class LiveSourceError(VitvizError):
    """A live source could not be opened or stopped working."""


class CorruptFrame(LiveSourceError):
    """One frame could not be decoded; the stream goes on with the next one."""


@dataclass
class Frame:
    """One frame of a live source."""

    image: np.ndarray  # uint8 [H, W, 3]
    index: int  # frame number in the source (files, scene) or since the camera opened
    timestamp: float  # seconds: presentation time in the file / scene loop, or since the camera opened
    source: str = ""  # display name of the source
    seq: int = -1  # set by the capture thread: increasing over everything it delivered
    captured: float = 0.0  # time.perf_counter() when the capture thread delivered it
    depth: np.ndarray | None = None  # float32 [H, W] exact z-depth in metres (the built-in scene only)
    label: str | None = None  # true class of the main object (the built-in scene only)


class FrameSource:
    """Base class: ``open()``, then ``read()`` frames in order until it returns None (end of a file), ``close()``.

    ``paced``: frames carry media timestamps and the capture thread plays them in real time (files, scene); False
    for devices whose ``read()`` blocks until the next frame exists (cameras).
    """

    kind = "source"
    paced = True
    seekable = False

    def __init__(self, name: str) -> None:
        self.name = name
        self.fps: float = 25.0  # nominal frame rate
        self.frame_count: int | None = None  # None: endless (camera) or unknown

    def open(self) -> None:
        """Acquire the file or device; raises :class:`LiveSourceError` with the reason."""

    def read(self) -> Frame | None:
        """The next frame in order, None at the end; raises :class:`CorruptFrame` for one bad frame (the stream
        goes on) or another :class:`LiveSourceError` when the source stopped working."""
        raise NotImplementedError

    def seek(self, index: int) -> None:
        """Make the next ``read()`` return frame ``index`` (clamped to the source's range)."""
        raise LiveSourceError(f"{self.name}: this source cannot seek")

    def close(self) -> None:
        """Release the file or device (idempotent)."""

    def __enter__(self) -> "FrameSource":
        self.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
