"""Reading images from disk into upright RGB, with clear errors for files that cannot be used."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageLoadError

__all__ = ["LoadedImage", "load_image", "to_rgb", "MAX_WORKING_SIDE", "MAX_ASPECT_TOKENS", "DISPLAY_MAX_SIDE",
           "model_input_size", "prepare_image", "display_scale", "display_copy", "as_loaded", "rgb8"]

# Larger images are reduced while decoding (JPEG draft mode) and then downscaled: the model never needs more.
MAX_WORKING_SIDE = 2048
MAX_ASPECT_TOKENS = 4  # the long side gets at most this many times the model's training resolution
DISPLAY_MAX_SIDE = 1024  # long side (pixels) of the sharper copy of the image kept for enlarged views


@dataclass
class LoadedImage:
    """An upright RGB image plus what the user should know about how it was read."""

    image: Image.Image | None  # mode "RGB"; None for an array resized on the device (Engine.prepare)
    source: str
    original_size: tuple[int, int]  # (width, height) as stored in the file, after EXIF rotation
    notices: list[str] = field(default_factory=list)


def to_rgb(img: Image.Image, notices: list[str] | None = None) -> Image.Image:
    """Convert any Pillow mode (16-bit, CMYK, palette, alpha, ...) to 8-bit RGB.

    Transparent areas are composited onto white, 16/32-bit and float images are rescaled to their own range.
    """
    notices = notices if notices is not None else []
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo)
        notices.append(f"{mode} image rescaled from its value range [{lo:g}, {hi:g}] to 8 bits")
        return Image.fromarray((np.nan_to_num(scaled) * 255).round().astype(np.uint8), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        background.alpha_composite(rgba)
        notices.append("transparent areas shown on white")
        return background.convert("RGB")
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def load_image(path: str | os.PathLike[str], max_side: int = MAX_WORKING_SIDE) -> LoadedImage:
    """Open ``path`` as an upright RGB image no larger than ``max_side`` on its long side.

    Raises :class:`ImageLoadError` with a one-line reason for anything that cannot be used.
    """
    p = Path(path)
    if not p.exists():
        raise ImageLoadError(f"{p}: no such file")
    if p.is_dir():
        raise ImageLoadError(f"{p}: is a folder, not an image file")
    try:
        size_on_disk = p.stat().st_size
    except OSError as exc:
        raise ImageLoadError(f"{p}: cannot be read ({exc.strerror or exc})") from exc
    if size_on_disk == 0:
        raise ImageLoadError(f"{p}: the file is empty (0 bytes)")
    notices: list[str] = []
    src: Image.Image | None = None  # the opened file's image: closed below unless it is the image returned
    img: Image.Image | None = None
    try:
        with warnings.catch_warnings(), open(p, "rb") as fh:  # our own handle: closed when this block ends
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                src = Image.open(fh)
            except Image.DecompressionBombWarning:
                # Above Pillow's warning limit but below its hard limit: a legal, very large image.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                fh.seek(0)
                src = Image.open(fh)
            n_frames = getattr(src, "n_frames", 1)
            if n_frames > 1:
                notices.append(f"the file has {n_frames} frames; showing the first")
                src.seek(0)
            stored = src.size
            orientation = src.getexif().get(0x0112, 1)
            if max(stored) > max_side and src.format == "JPEG":
                src.draft("RGB", (max_side, max_side))  # decode at reduced scale: memory stays small
            if orientation in range(2, 9) or n_frames > 1:
                img = ImageOps.exif_transpose(src)  # a new, decoded image, independent of the file
                img.load()
            else:  # upright, one frame: decoded in place (no copy), needing the file no longer
                src.load()
                img = src
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(
            f"{p}: refused as a possible decompression bomb ({exc}); such sizes are not supported"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError(f"{p}: not an image file, or a format Pillow cannot read") from exc
    except PermissionError as exc:
        raise ImageLoadError(f"{p}: cannot be read ({exc.strerror or exc})") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageLoadError(f"{p}: the image is damaged or truncated ({exc})") from exc
    except MemoryError as exc:
        raise ImageLoadError(f"{p}: the image is too large to decode in the available memory") from exc
    finally:
        if src is not None and src is not img:
            src.close()
    original = stored[::-1] if orientation in (5, 6, 7, 8) else stored
    if orientation in range(2, 9):
        notices.append("turned upright from its EXIF orientation")
    img = to_rgb(img, notices)
    if max(img.size) > max_side:
        scale = max_side / max(img.size)
        new_size = (max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale)))
        notices.append(f"downscaled from {original[0]}x{original[1]} to {new_size[0]}x{new_size[1]}")
        img = img.resize(new_size, Image.Resampling.BICUBIC, reducing_gap=3.0)
    return LoadedImage(image=img, source=str(p), original_size=tuple(original), notices=notices)


# ------------------------------------------------------------------------------------------------ model input


def model_input_size(size: tuple[int, int], image_size: int, patch_size: int,
                     fixed: bool = False) -> tuple[int, int]:
    """``(width, height)`` of the model input for an image of ``size = (width, height)``: the aspect ratio kept,
    short side ~ ``image_size``, long side capped, both multiples of the patch; ``fixed``: the square
    ``image_size`` (a model whose positional embedding has one size)."""
    if fixed:
        return image_size, image_size
    w, h = size
    scale = image_size / min(w, h)
    max_long = image_size * MAX_ASPECT_TOKENS
    if max(w, h) * scale > max_long:
        scale = max_long / max(w, h)

    def snap(v: float) -> int:
        return max(patch_size, int(round(v * scale / patch_size)) * patch_size)

    return snap(w), snap(h)


def prepare_image(img: Image.Image, image_size: int, patch_size: int, fixed: bool = False) -> np.ndarray:
    """Resize keeping the aspect ratio, or to the square ``image_size`` when ``fixed`` (see
    :func:`model_input_size`), with Pillow's bicubic filter."""
    size = model_input_size(img.size, image_size, patch_size, fixed)
    resized = img.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0) if size != img.size else img
    return np.array(resized, dtype=np.uint8)


def display_scale(size: tuple[int, int], input_hw: tuple[int, int], max_side: int = DISPLAY_MAX_SIDE) -> int:
    """The whole number ``k`` by which the display copy of an image of ``size = (width, height)`` enlarges the model
    input of size ``input_hw``: the copy fits ``max_side`` and does not exceed the original's resolution."""
    h, w = input_hw
    return min(size[0] // w, size[1] // h, max_side // max(h, w))


def display_copy(img: Image.Image, input_hw: tuple[int, int], max_side: int = DISPLAY_MAX_SIDE) -> np.ndarray | None:
    """``img`` framed like the model input of size ``input_hw`` but ``k`` times larger (:func:`display_scale`);
    None when ``k`` would be 1."""
    k = display_scale(img.size, input_hw, max_side)
    if k < 2:
        return None
    size = (k * input_hw[1], k * input_hw[0])
    return np.array(img.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0), dtype=np.uint8)


def as_loaded(image: Any) -> LoadedImage:
    """A path, PIL image, image array or :class:`LoadedImage` as a :class:`LoadedImage` (upright RGB)."""
    if isinstance(image, LoadedImage):
        return image
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    if isinstance(image, Image.Image):
        notices: list[str] = []
        return LoadedImage(to_rgb(image, notices), "image", image.size, notices)
    if isinstance(image, np.ndarray):
        notices = []
        pil = Image.fromarray(rgb8(image, notices))
        return LoadedImage(pil, "array", pil.size, notices)
    raise ImageLoadError(f"cannot analyse an object of type {type(image).__name__}")


def rgb8(image: np.ndarray, notices: list[str]) -> np.ndarray:
    """An image array ``[H, W]``, ``[H, W, 1-4]`` (grey, grey + alpha, RGB, RGBA; alpha is dropped) as uint8 RGB.

    uint8 is taken as it is, bool as black and white, floats within 0-1 as fractions (else as 0-255 levels), other
    integers above 255 as 16-bit levels; values outside the range are clipped, with a notice."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] in (1, 2):
        arr = arr[..., 0]
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageLoadError(f"expected an image array [H, W] or [H, W, 3], got shape {image.shape}")
    arr = arr[..., :3]
    if arr.dtype == np.uint8:
        rgb = arr
    elif arr.dtype == np.bool_:
        rgb = arr.astype(np.uint8) * 255
    elif arr.dtype.kind in "iuf":
        values = arr.astype(np.float64)
        if not np.isfinite(values).all():
            raise ImageLoadError("the image array holds NaN or infinite values")
        lo, hi = float(values.min()), float(values.max())
        if arr.dtype.kind == "f" and lo >= 0.0 and hi <= 1.0:
            values = values * 255.0
        elif arr.dtype.kind in "iu" and hi > 255:
            values = values / 257.0  # 16-bit levels
            notices.append("16-bit levels shown in 8 bits")
        if values.min() < 0 or values.max() > 255:
            notices.append("values outside the image range were clipped")
        rgb = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    else:
        raise ImageLoadError(f"cannot read an image array of type {arr.dtype}")
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    return np.ascontiguousarray(rgb)
