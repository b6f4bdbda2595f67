"""Thumbnails of a ``vitviz analyze`` run's images with one overlay (a head's CLS map, the rollout, class evidence,
depth), drawn with numpy, cached, and served by a child process so that the app's UI thread never draws them."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .gallery import IMAGE_HINT, OVERLAYS, THUMBNAIL_PX, Entry, Overlay, Run

__all__ = ["Thumbnail", "ThumbnailRenderer", "blend_map", "ThumbnailProcess", "start_thumbnail_process",
           "serve_thumbnails"]


@dataclass
class Thumbnail:
    """A drawn thumbnail: ``rgb`` ``[h, w, 3]`` uint8, and ``note``, one line when the overlay could not be drawn
    (the file is missing, or its shape is another model's)."""

    rgb: np.ndarray
    note: str = ""


class _LRU(OrderedDict):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get_or(self, key: Any, make: Callable[[], Any]) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = make()
        self[key] = value
        if len(self) > self.size:
            self.popitem(last=False)
        return value


class ThumbnailRenderer:
    """Draws thumbnails of a run's images, at most ``size`` pixels on their longer side; keeps the last images and
    arrays it read, so that changing the overlay redraws from memory. Safe to call from one worker thread."""

    def __init__(self, run: Run, size: int = THUMBNAIL_PX, cache: int = 1024) -> None:
        self.run, self.size = run, size
        self._images = _LRU(cache)  # name -> base image at thumbnail size (or None: missing)
        self._arrays = _LRU(cache)  # (name, file) -> array (or an error note)

    def render(self, entry: Entry, overlay: Overlay) -> Thumbnail:
        base, note = self._base(entry)
        if entry.failed:
            return Thumbnail(_dim(base), entry.error or "failed")
        if overlay.kind == "none":
            return Thumbnail(base, note)
        values, why = self._map(entry, overlay)
        if values is None:
            return Thumbnail(base, note or why)
        if isinstance(values, tuple):  # an image already drawn (rollout.png, depth.png)
            return Thumbnail(values[0], note)
        from .render import apply_colormap, normalize, resize_map

        if overlay.kind == "depth":
            v = normalize(values)
            if entry.depth_kind == "metric":
                v = 1.0 - v  # near = bright, as depth.png draws it
            return Thumbnail(apply_colormap(resize_map(v, base.shape[:2]), "turbo"), note)
        return Thumbnail(blend_map(base, values, overlay.cmap, overlay.alpha), note)

    # ---------------------------------------------------------------------------------------- pieces

    def _base(self, entry: Entry) -> tuple[np.ndarray, str]:
        image = self._images.get_or(entry.name, lambda: self._read_base(entry))
        if image is None:
            h, w = self._fit(entry.input_size if all(entry.input_size) else (self.size, self.size))
            return np.full((h, w, 3), 60, np.uint8), f"image missing: {IMAGE_HINT}"
        return image, ""

    def _read_base(self, entry: Entry) -> np.ndarray | None:
        """The model's input (input.png), else the analysed file resized to the model's input size, at thumbnail
        size; None when neither is there."""
        from PIL import Image

        path = self.run.folder_of(entry) / "input.png"
        if not path.is_file():
            path = self.run.source_path(entry)  # type: ignore[assignment]
        if path is None:
            return None
        try:
            with Image.open(path) as im:
                target = entry.input_size if all(entry.input_size) else (im.height, im.width)
                h, w = self._fit(target)
                im.draft("RGB", (w, h))  # JPEG: decode at a reduced scale
                return np.asarray(im.convert("RGB").resize((w, h), Image.Resampling.BILINEAR))
        except Exception:  # noqa: BLE001 - an unreadable file draws as missing
            return None

    def _fit(self, hw: tuple[int, int]) -> tuple[int, int]:
        h, w = hw
        scale = self.size / max(h, w, 1)
        return max(1, round(h * scale)), max(1, round(w * scale))

    def _array(self, entry: Entry, name: str) -> np.ndarray | str:
        def load() -> np.ndarray | str:
            path = self.run.folder_of(entry) / name
            if not path.is_file():
                return ""
            try:
                return np.load(path, allow_pickle=False)
            except (OSError, ValueError) as exc:
                return f"{name} cannot be read ({exc})"
        return self._arrays.get_or((entry.name, name), load)

    def _map(self, entry: Entry, overlay: Overlay) -> tuple[Any, str]:
        """The map to draw (``[h, w]`` values, or a 1-tuple holding a drawn image), or None and why not."""
        if overlay.kind == "head":
            cls = self._array(entry, "cls_attention.npy")
            if isinstance(cls, str):
                return None, cls or f"no cls_attention.npy: add {OVERLAYS['head'][1]}"
            problem = self._check_cls(entry, cls)
            if problem:
                return None, problem
            layer = overlay.layer if overlay.layer >= 0 else cls.shape[0] + overlay.layer
            if not 0 <= layer < cls.shape[0] or overlay.head is not None and not 0 <= overlay.head < cls.shape[1]:
                return None, f"no layer {overlay.layer} head {overlay.head} in this image's arrays"
            maps = cls[layer]
            return (maps.mean(axis=0) if overlay.head is None else maps[overlay.head]), ""
        folder = self.run.folder_of(entry)
        if overlay.kind == "rollout":
            arr = self._array(entry, _first(folder, "explain_rollout*.npy") or "explain_rollout.npy")
            if not isinstance(arr, str) and arr.ndim == 2:
                return arr, ""
            return self._drawn(entry, "rollout.png", f"no rollout.png: add {OVERLAYS['rollout'][1]}")
        if overlay.kind == "evidence":
            method = overlay.method or (self.run.evidence_methods[0] if self.run.evidence_methods else "")
            name = _first(folder, f"explain_{method}_*.npy") or _first(folder, f"explain_{method}.npy")
            if not name:
                return None, f"no class evidence ({method or 'any method'}): add {OVERLAYS['evidence'][1]}"
            arr = self._array(entry, name)
            if isinstance(arr, str) or arr.ndim != 2:
                return None, arr if isinstance(arr, str) and arr else f"{name} is not a 2-D map"
            return arr, ""
        if overlay.kind == "depth":
            arr = self._array(entry, "depth.npy")
            if not isinstance(arr, str) and arr.ndim == 2:
                return arr, ""
            if not isinstance(arr, str):
                return None, f"depth.npy has shape {list(arr.shape)}, not a 2-D depth map"
            return self._drawn(entry, "depth.png", f"no depth: add {OVERLAYS['depth'][1]}")
        return None, f"unknown overlay {overlay.kind!r}"

    def _check_cls(self, entry: Entry, cls: np.ndarray) -> str:
        """Why ``cls_attention.npy`` does not belong to this run's model, or ""."""
        if cls.ndim != 4:
            return f"cls_attention.npy has shape {list(cls.shape)}, not [layers, heads, rows, cols]"
        if self.run.layers and cls.shape[:2] != (self.run.layers, self.run.heads):
            return (f"cls_attention.npy is {cls.shape[0]} layers x {cls.shape[1]} heads, another model's shape "
                    f"(this run: {self.run.layers} x {self.run.heads})")
        h, w = entry.input_size
        if h and w and cls.shape[2] and cls.shape[3] and (h % cls.shape[2] or w % cls.shape[3]
                                                          or h // cls.shape[2] != w // cls.shape[3]):
            return (f"cls_attention.npy's {cls.shape[2]}x{cls.shape[3]} patches do not tile this image's "
                    f"{w}x{h} input")
        return ""

    def _drawn(self, entry: Entry, name: str, missing: str) -> tuple[Any, str]:
        from PIL import Image

        path = self.run.folder_of(entry) / name
        if not path.is_file():
            return None, missing

        def load() -> np.ndarray | str:
            try:
                with Image.open(path) as im:
                    h, w = self._fit((im.height, im.width))
                    return np.asarray(im.convert("RGB").resize((w, h), Image.Resampling.BILINEAR))
            except Exception as exc:  # noqa: BLE001
                return f"{name} cannot be read ({type(exc).__name__})"
        image = self._arrays.get_or((entry.name, name), load)
        return (None, image) if isinstance(image, str) else ((image,), "")


def blend_map(image: np.ndarray, values: np.ndarray, cmap: str = "inferno", alpha: float = 0.6) -> np.ndarray:
    """:func:`vitviz.render.overlay` of ``values`` min-max scaled, in fewer steps for a small map on a thumbnail
    (the bilinear resize as two small matrix products): the same picture to within one level of 255."""
    from .render import colormap_lut

    v = np.asarray(values, dtype=np.float32)
    if not np.isfinite(v).all():
        v = np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(v.min()), float(v.max())
    v = (v - lo) * (255.0 / max(hi - lo, 1e-12))
    h, w = image.shape[:2]
    big = _bilinear(v.shape[0], h) @ v @ _bilinear(v.shape[1], w).T
    big += 0.5
    np.clip(big, 0, 255, out=big)
    colors = np.take(colormap_lut(cmap), big.astype(np.uint8), axis=0).astype(np.float32)
    a = float(np.clip(alpha, 0.0, 1.0))
    colors *= a
    colors += image * np.float32(1 - a) + np.float32(0.5)
    return colors.astype(np.uint8)


_BILINEAR: dict[tuple[int, int], np.ndarray] = {}


def _bilinear(n: int, out: int) -> np.ndarray:
    """The ``[out, n]`` matrix of pixel-centre-aligned linear interpolation (:func:`vitviz.render.resize_map`)."""
    key = (n, out)
    if key not in _BILINEAR:
        x = np.clip((np.arange(out) + 0.5) * n / out - 0.5, 0, n - 1)
        x0 = np.floor(x).astype(int)
        x1 = np.minimum(x0 + 1, n - 1)
        weights = np.zeros((out, n), np.float32)
        weights[np.arange(out), x0] += (1 - (x - x0)).astype(np.float32)
        weights[np.arange(out), x1] += (x - x0).astype(np.float32)
        _BILINEAR[key] = weights
    return _BILINEAR[key]


def _first(folder: Path, pattern: str) -> str:
    found = sorted(folder.glob(pattern))
    return found[0].name if found else ""


def _dim(rgb: np.ndarray) -> np.ndarray:
    """A failed input's thumbnail: greyed."""
    grey = rgb.mean(axis=2, keepdims=True)
    return (0.35 * grey + 0.25 * 255).astype(np.uint8).repeat(3, axis=2)


def serve_thumbnails(read_fd: int, write_fd: int, folder: str, size: int) -> None:
    """A thumbnail process (started by the app's gallery, so that drawing never holds the UI process's Python
    lock): reads ``(key, entry, overlay, (layers, heads, methods))`` requests, answers lists of ``(key, rgb, note)``
    (the requests that were waiting, drawn together); ends at None or when the app's end of the pipe closes."""
    from multiprocessing.connection import Connection

    requests, answers = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    from PIL import Image, JpegImagePlugin, PngImagePlugin  # noqa: F401 - imported before the first request

    from .render import colormap_lut

    colormap_lut("inferno")
    run = Run(Path(folder))
    renderer = ThumbnailRenderer(run, size)
    while True:
        try:
            messages = [requests.recv()]
            while messages[-1] is not None and len(messages) < 8 and requests.poll(0):
                messages.append(requests.recv())  # what else waits: answered together
        except (EOFError, OSError):
            return
        drawn = []
        for message in messages:
            if message is None:
                return
            key, entry, overlay, (run.layers, run.heads, run.evidence_methods) = message
            try:
                thumb = renderer.render(entry, overlay)
                drawn.append((key, thumb.rgb, thumb.note))
            except Exception as exc:  # noqa: BLE001 - one bad file draws as a note
                drawn.append((key, None, f"cannot be drawn ({type(exc).__name__}: {exc})"))
        try:
            answers.send(drawn)
        except (BrokenPipeError, OSError):
            return


class ThumbnailProcess:
    """A process running :func:`serve_thumbnails` for the run in ``folder``, and the two pipes to it
    (``requests``, ``answers``: :class:`multiprocessing.connection.Connection`). ``vitviz browse`` starts it before
    anything else, so that it is ready when the window is."""

    def __init__(self, folder: str | Path, size: int = THUMBNAIL_PX) -> None:
        import os
        import subprocess
        import sys
        from multiprocessing.connection import Connection

        self.folder, self.size = Path(folder), size
        to_child, from_parent = os.pipe()
        to_parent, from_child = os.pipe()
        code = ("import sys; from vitviz.thumbnails import serve_thumbnails; "
                "serve_thumbnails(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))")
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[1])  # the vitviz this process runs
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        try:
            self.child = subprocess.Popen(
                [sys.executable, "-c", code, str(to_child), str(from_child), str(self.folder), str(size)],
                pass_fds=(to_child, from_child), env=env, stdin=subprocess.DEVNULL)
        except BaseException:
            for fd in (from_parent, to_parent):
                os.close(fd)
            raise
        finally:
            os.close(to_child)
            os.close(from_child)
        self.requests = Connection(from_parent, readable=False)
        self.answers = Connection(to_parent, writable=False)

    def close(self) -> None:
        import subprocess

        try:
            self.requests.send(None)
        except OSError:
            pass
        for conn in (self.requests, self.answers):
            conn.close()
        try:
            self.child.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            self.child.kill()


def start_thumbnail_process(folder: str | Path, size: int = THUMBNAIL_PX) -> ThumbnailProcess | None:
    """A :class:`ThumbnailProcess`, or None where no process can be started (the gallery then draws on a thread)."""
    try:
        return ThumbnailProcess(folder, size)
    except OSError:
        return None
