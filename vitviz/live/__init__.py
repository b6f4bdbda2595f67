"""Live mode without Qt: frame sources (built-in scene, video files, cameras), the capture thread with its one-slot
"latest frame" buffer, temporal smoothing of the maps, and recording to MP4 / GIF.

The Qt side (the controller that feeds the engine and emits frame + result pairs) is :mod:`vitviz.app.live`.
"""

from __future__ import annotations

from .capture import CaptureThread, LatestFrame
from .record import Recorder
from .smoothing import DomainWindow, ema_result
from .sources import (
    CameraError,
    CameraInfo,
    Frame,
    FrameSource,
    LiveSourceError,
    MissingLiveExtra,
    VideoError,
    list_cameras,
    live_extra_available,
    open_source,
)

__all__ = [
    "CameraError",
    "CameraInfo",
    "CaptureThread",
    "Frame",
    "FrameSource",
    "LatestFrame",
    "LiveSourceError",
    "MissingLiveExtra",
    "Recorder",
    "VideoError",
    "ema_result",
    "DomainWindow",
    "list_cameras",
    "live_extra_available",
    "open_source",
]
