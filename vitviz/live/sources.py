"""Frame sources of the live mode behind one small interface: ``open()``, ``read()`` the next frame, ``seek()``,
``close()``.

* the built-in scene (:class:`vitviz.live.scene.SceneSource`, pure numpy, no extra needed);
* animated GIF and WebP files (Pillow, a core dependency, so they need no extra either);
* video files: mp4, webm, mov, mkv, avi, ... (PyAV, the optional ``live`` extra);
* cameras (PyAV through FFmpeg's v4l2 / avfoundation / dshow devices, the same extra).

Every failure is a :class:`LiveSourceError` whose text is one complete line for the user.
"""

from __future__ import annotations

import errno
import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .frames import CorruptFrame, Frame, FrameSource, LiveSourceError

__all__ = [
    "INSTALL_HINT",
    "LiveSourceError",
    "MissingLiveExtra",
    "VideoError",
    "CameraError",
    "CorruptFrame",
    "Frame",
    "FrameSource",
    "VideoFileSource",
    "AnimatedImageSource",
    "CameraSource",
    "CameraInfo",
    "list_cameras",
    "live_extra_available",
    "open_source",
    "check_source",
]

INSTALL_HINT = 'pip install -e ".[live]"'
ANIMATED_IMAGE_SUFFIXES = (".gif", ".webp")
DEFAULT_MAX_SIDE = 640  # long side of decoded video/camera frames: the models see 128-518 px, the view a bit more


class MissingLiveExtra(LiveSourceError):
    """Video files and cameras need the optional ``live`` extra (PyAV)."""


class VideoError(LiveSourceError):
    """A video file is missing, not a video, damaged or in a codec that cannot be decoded."""


class CameraError(LiveSourceError):
    """No camera, a busy camera, no permission, or a camera that stopped delivering frames."""


# ------------------------------------------------------------------------------------------------ helpers


def live_extra_available() -> bool:
    """Whether PyAV (the ``live`` extra: video files and cameras) can be imported."""
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def _import_av(what: str) -> Any:
    try:
        import av
    except ImportError as exc:
        raise MissingLiveExtra(f"{what} needs PyAV, the optional live extra: {INSTALL_HINT}") from exc
    return av


def _fit(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) scaled down so the long side is at most ``max_side`` (never up)."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    s = max_side / max(width, height)
    return max(1, round(width * s)), max(1, round(height * s))


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "strerror", None) or exc).strip()  # FFmpeg errors: the reason without errno and path
    return text.splitlines()[0] if text else type(exc).__name__


# ------------------------------------------------------------------------------------------------ video files


class VideoFileSource(FrameSource):
    """A video file decoded by PyAV (FFmpeg): mp4, webm, mov, mkv, avi and whatever else FFmpeg reads."""

    kind = "video"
    seekable = True

    def __init__(self, path: str | Path, max_side: int | None = DEFAULT_MAX_SIDE) -> None:
        super().__init__(Path(path).name)
        self.path = Path(path)
        self.max_side = max_side
        self._container: Any = None
        self._stream: Any = None
        self._packets: Any = None
        self._pending: list[Any] = []
        self._skip_before: float | None = None
        self._start = 0.0
        self._av: Any = None

    def open(self) -> None:
        if not self.path.is_file():
            raise VideoError(f"{self.path}: no such file")
        av = self._av = _import_av("Playing video files")
        try:
            self._container = av.open(str(self.path), mode="r")
        except av.error.FFmpegError as exc:
            raise VideoError(f"{self.name}: not a video file, or a damaged one ({_first_line(exc)})") from exc
        videos = self._container.streams.video
        if not videos:
            self.close()
            raise VideoError(f"{self.name}: the file has no video track")
        self._stream = videos[0]
        if self._stream.codec_context is None:  # FFmpeg knows the container but has no decoder for the codec
            self.close()
            raise VideoError(f"{self.name}: its video codec cannot be decoded by this FFmpeg build")
        self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate and float(rate) > 0 else 25.0
        tb = self._stream.time_base
        self._start = float(self._stream.start_time * tb) if self._stream.start_time is not None and tb else 0.0
        count = int(self._stream.frames or 0)
        if not count and self._stream.duration is not None and tb:
            count = int(round(float(self._stream.duration * tb) * self.fps))
        if not count and self._container.duration:  # e.g. webm / mkv: only the container knows (microseconds)
            count = int(round(self._container.duration / 1e6 * self.fps))
        self.frame_count = count or None
        self._packets = self._container.demux(self._stream)
        # Decode the first frame now, so an undecodable codec is reported at open rather than as endless corrupt frames.
        try:
            first = self._next_av_frame()
        except CorruptFrame as exc:
            self.close()
            codec = getattr(self._stream.codec_context, "name", None) or "unknown"
            raise VideoError(f"{self.name}: its video ({codec}) cannot be decoded ({exc})") from exc
        except LiveSourceError:
            self.close()
            raise
        if first is None:
            self.close()
            raise VideoError(f"{self.name}: the video track holds no decodable frame")
        self._pending.insert(0, first)

    def _next_av_frame(self) -> Any:
        av = self._av
        while not self._pending:
            try:
                packet = next(self._packets)
            except StopIteration:
                return None
            except av.error.FFmpegError as exc:  # the demuxer gives up: the rest of the file is unreadable
                self._packets = iter(())
                raise CorruptFrame(f"{self.name}: damaged data, the rest of the file is skipped ({_first_line(exc)})") \
                    from exc
            try:
                self._pending.extend(packet.decode())
            except av.error.FFmpegError as exc:
                raise CorruptFrame(f"{self.name}: a damaged frame was skipped ({_first_line(exc)})") from exc
        return self._pending.pop(0)

    def read(self) -> Frame | None:
        if self._container is None:
            raise LiveSourceError(f"{self.name}: the video is not open")
        while True:
            f = self._next_av_frame()
            if f is None:
                return None
            t = float(f.time) - self._start if f.time is not None else 0.0
            if self._skip_before is not None:
                if t < self._skip_before:
                    continue  # decoding forward from the key frame before a seek target
                self._skip_before = None
            w, h = _fit(f.width, f.height, self.max_side)
            rgb = f.to_ndarray(format="rgb24", width=w, height=h)
            return Frame(np.ascontiguousarray(rgb), int(round(t * self.fps)), t, self.name)

    def seek(self, index: int) -> None:
        if self._container is None:
            raise LiveSourceError(f"{self.name}: the video is not open")
        index = max(0, int(index))
        if self.frame_count:
            index = min(index, self.frame_count - 1)
        t = index / self.fps
        tb = self._stream.time_base
        target = int(math.floor((t + self._start) / tb)) if tb else 0
        try:
            self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
        except self._av.error.FFmpegError as exc:
            raise VideoError(f"{self.name}: cannot seek ({_first_line(exc)})") from exc
        self._packets = self._container.demux(self._stream)
        self._pending = []
        self._skip_before = t - 0.5 / self.fps

    def close(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            finally:
                self._container = None
                self._packets = None
                self._pending = []


# ------------------------------------------------------------------------------------------------ GIF / WebP


class AnimatedImageSource(FrameSource):
    """An animated GIF or WebP decoded by Pillow (a core dependency: no extra needed). A still image is one frame."""

    kind = "animation"
    seekable = True

    def __init__(self, path: str | Path, max_side: int | None = DEFAULT_MAX_SIDE) -> None:
        super().__init__(Path(path).name)
        self.path = Path(path)
        self.max_side = max_side
        self._image: Any = None
        self._times: list[float] = []
        self._next = 0

    def open(self) -> None:
        from PIL import Image, UnidentifiedImageError

        if not self.path.is_file():
            raise VideoError(f"{self.path}: no such file")
        try:
            self._image = Image.open(self.path)
            n = int(getattr(self._image, "n_frames", 1))
            durations = []
            for i in range(n):  # the frame durations are in each frame's header (WebP: known once loaded)
                self._image.seek(i)
                self._image.load()
                durations.append(float(self._image.info.get("duration") or 100.0) / 1000.0)
            self._image.seek(0)
        except (UnidentifiedImageError, OSError, ValueError, EOFError) as exc:
            self.close()
            raise VideoError(f"{self.name}: not an animation Pillow can read, or a damaged one ({_first_line(exc)})") \
                from exc
        durations = [d if d > 0.005 else 0.1 for d in durations]  # browsers also treat 0 as "default"
        self._times = list(np.concatenate([[0.0], np.cumsum(durations)[:-1]]))
        self.frame_count = n
        self.fps = n / sum(durations)
        self._next = 0

    def read(self) -> Frame | None:
        if self._image is None:
            raise LiveSourceError(f"{self.name}: the animation is not open")
        if self._next >= self.frame_count:
            return None
        i = self._next
        self._next += 1
        try:
            self._image.seek(i)
            rgb = self._image.convert("RGB")
        except (OSError, ValueError, EOFError) as exc:
            raise CorruptFrame(f"{self.name}: frame {i} is damaged and was skipped ({_first_line(exc)})") from exc
        size = _fit(*rgb.size, self.max_side)
        if size != rgb.size:
            rgb = rgb.resize(size)
        return Frame(np.asarray(rgb, dtype=np.uint8).copy(), i, self._times[i], self.name)

    def seek(self, index: int) -> None:
        self._next = min(max(0, int(index)), max(0, (self.frame_count or 1) - 1))

    def close(self) -> None:
        if self._image is not None:
            self._image.close()
            self._image = None


# ------------------------------------------------------------------------------------------------ cameras


@dataclass
class CameraInfo:
    """A camera the user can pick: ``device`` is what :class:`CameraSource` opens."""

    name: str
    device: str


def _camera_format() -> str:
    if sys.platform.startswith("linux"):
        return "v4l2"
    if sys.platform == "darwin":
        return "avfoundation"
    if sys.platform.startswith("win"):
        return "dshow"
    raise CameraError(f"cameras are not supported on {sys.platform}")


def list_cameras() -> list[CameraInfo]:
    """The cameras present now (Linux: from /sys, no extra needed; macOS / Windows: asked from FFmpeg via PyAV)."""
    if sys.platform.startswith("linux"):
        found = []
        for node in sorted(Path("/sys/class/video4linux").glob("video*"),
                           key=lambda p: int(re.sub(r"\D", "", p.name) or 0)):
            try:
                if (node / "index").read_text().strip() not in ("", "0"):
                    continue  # metadata nodes of the same camera
                name = (node / "name").read_text().strip() or node.name
            except OSError:
                name = node.name
            found.append(CameraInfo(name, f"/dev/{node.name}"))
        return found
    if not live_extra_available():
        return []
    return _ffmpeg_device_list(_camera_format())


def _ffmpeg_device_list(fmt: str) -> list[CameraInfo]:  # pragma: no cover - macOS / Windows only
    """Camera names printed by FFmpeg's ``list_devices`` option (avfoundation, dshow)."""
    import av
    import av.logging

    with av.logging.Capture() as logs:
        try:
            av.open("dummy" if fmt == "dshow" else "", format=fmt, options={"list_devices": "true"}).close()
        except Exception:  # noqa: BLE001 - listing always "fails" after printing the list
            pass
    cameras: list[CameraInfo] = []
    in_video = fmt == "dshow"
    for _level, _name, message in logs:
        text = str(message).strip()
        if fmt == "avfoundation":
            if "video devices" in text.lower():
                in_video = True
                continue
            if "audio devices" in text.lower():
                in_video = False
            m = re.match(r"\[(\d+)\]\s+(.*)", text)
            if in_video and m and not m.group(2).lower().startswith("capture screen"):
                cameras.append(CameraInfo(m.group(2), m.group(1)))
        else:
            m = re.match(r'"(.+)"\s+\(video\)', text)
            if m:
                cameras.append(CameraInfo(m.group(1), f"video={m.group(1)}"))
    return cameras


class CameraSource(FrameSource):
    """A camera read through PyAV: ``device`` is /dev/videoN (Linux), an index (macOS) or ``video=NAME`` (Windows)."""

    kind = "camera"
    paced = False

    def __init__(self, device: str, name: str | None = None, size: tuple[int, int] | None = (640, 480),
                 fps: float = 30.0, max_side: int | None = DEFAULT_MAX_SIDE) -> None:
        super().__init__(name or f"camera {device}")
        self.device = str(device)
        self.size = size
        self.fps = float(fps)
        self.max_side = max_side
        self._container: Any = None
        self._frames: Any = None
        self._count = 0
        self._t0 = 0.0

    def open(self) -> None:
        fmt = _camera_format()
        if fmt == "v4l2" and not Path(self.device).exists():
            present = list_cameras()
            hint = f" (cameras present: {', '.join(c.device for c in present)})" if present else " (no camera found)"
            raise CameraError(f"no camera at {self.device}{hint}")
        av = _import_av("Reading a camera")
        options = {"framerate": f"{self.fps:g}"}
        if self.size:
            options["video_size"] = f"{self.size[0]}x{self.size[1]}"
        try:
            self._container = self._open_with(av, fmt, options)
        except (OSError, av.error.FFmpegError) as exc:
            raise CameraError(self._describe(exc, "cannot open")) from exc
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        if rate and float(rate) > 0:
            self.fps = float(rate)
        self._frames = self._container.decode(stream)
        self._count = 0
        self._t0 = time.perf_counter()

    def _open_with(self, av: Any, fmt: str, options: dict[str, str]) -> Any:
        try:
            return av.open(self.device, format=fmt, options=options, timeout=(5.0, 5.0))
        except (OSError, av.error.FFmpegError) as exc:
            # A camera that refuses the requested size or rate: retry with its own defaults.
            if getattr(exc, "errno", None) in (errno.EBUSY, errno.EACCES, errno.ENOENT, errno.ENODEV):
                raise
            return av.open(self.device, format=fmt, timeout=(5.0, 5.0))

    def _describe(self, exc: BaseException, doing: str) -> str:
        code = getattr(exc, "errno", None)
        if code == errno.EBUSY:
            return f"{self.name} is busy: another program is using it"
        if code == errno.EACCES:
            return f"no permission to open {self.name} (on Linux: add yourself to the 'video' group)"
        if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
            return f"{self.name} is not there (unplugged?)"
        return f"{doing} {self.name}: {_first_line(exc)}"

    def read(self) -> Frame | None:
        if self._container is None:
            raise LiveSourceError(f"{self.name}: the camera is not open")
        import av

        try:
            f = next(self._frames)
        except StopIteration:
            raise CameraError(f"{self.name} stopped delivering frames (unplugged?)") from None
        except av.error.InvalidDataError as exc:
            raise CorruptFrame(f"{self.name}: a damaged frame was skipped ({_first_line(exc)})") from exc
        except (OSError, av.error.FFmpegError) as exc:
            raise CameraError(self._describe(exc, "lost")) from exc
        w, h = _fit(f.width, f.height, self.max_side)
        rgb = f.to_ndarray(format="rgb24", width=w, height=h)
        frame = Frame(np.ascontiguousarray(rgb), self._count, time.perf_counter() - self._t0, self.name)
        self._count += 1
        return frame

    def close(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            finally:
                self._container = None
                self._frames = None


# ------------------------------------------------------------------------------------------------ factory


def open_source(spec: str | Path, **options: Any) -> FrameSource:
    """A (not yet opened) source for ``spec``: ``scene`` or ``scene:SEED``; ``camera`` or ``camera:N`` (the N-th
    listed camera) or a device path such as ``/dev/video0``; otherwise a video or animation file."""
    text = str(spec).strip()
    low = text.lower()
    if low == "scene" or low.startswith("scene:"):
        from .scene import SceneSource

        seed = text.split(":", 1)[1] if ":" in text else None
        try:
            return SceneSource(seed=int(seed) if seed else None, **options)
        except ValueError as exc:
            raise LiveSourceError(f"{text}: the scene seed must be a whole number") from exc
    if low == "camera" or low.startswith("camera:"):
        which = text.split(":", 1)[1] if ":" in text else "0"
        cameras = list_cameras()
        if which.isdigit():
            if int(which) < len(cameras):
                cam = cameras[int(which)]
                return CameraSource(cam.device, cam.name, **options)
            if not cameras:
                raise CameraError("no camera found")
            raise CameraError(f"there is no camera {which} (found {len(cameras)}: "
                              + ", ".join(f"{i}: {c.name}" for i, c in enumerate(cameras)) + ")")
        return CameraSource(which, **options)
    if low.startswith("/dev/video"):
        return CameraSource(text, **options)
    path = Path(text).expanduser()
    if path.suffix.lower() in ANIMATED_IMAGE_SUFFIXES:
        return AnimatedImageSource(path, **options)
    return VideoFileSource(path, **options)


def check_source(spec: str | Path) -> str:
    """``spec`` unchanged if :func:`open_source` accepts it and a file it names exists; else a
    :class:`LiveSourceError` (used by ``vitviz live`` before the window opens). Devices are checked when opened."""
    source = open_source(spec)
    path = getattr(source, "path", None)
    if path is not None and not Path(path).is_file():
        raise VideoError(f"{path}: no such file")
    return str(spec)
