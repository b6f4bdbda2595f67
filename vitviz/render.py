"""Pure-numpy rendering: normalisation, colormaps, overlays, patch grids and attention rollout (no Qt, no torch)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Sequence

import numpy as np

__all__ = [
    "COLORMAPS",
    "colormap_lut",
    "normalize",
    "apply_colormap",
    "resize_map",
    "overlay",
    "overlay_rgb",
    "draw_patch_grid",
    "attention_rollout",
    "cumulative_rollout",
    "discard_weakest",
    "cls_maps",
    "tile_images",
]

# Perceptual colormaps (matplotlib's data, CC0 / Apache-2.0 for turbo) stored as 256x3 uint8 tables.
COLORMAPS: tuple[str, ...] = ("viridis", "magma", "inferno", "plasma", "cividis", "turbo", "gray", "coolwarm", "spectral_r")


@lru_cache(maxsize=None)
def _luts() -> dict[str, np.ndarray]:
    with resources.files("vitviz.data").joinpath("colormaps.npz").open("rb") as fh:
        with np.load(fh) as data:
            return {k: data[k] for k in data.files}


def colormap_lut(name: str) -> np.ndarray:
    """The ``[256, 3]`` uint8 lookup table of a colormap (see :data:`COLORMAPS`)."""
    luts = _luts()
    if name not in luts:
        raise ValueError(f"unknown colormap {name!r}; choose from {', '.join(COLORMAPS)}")
    return luts[name]


def normalize(values: np.ndarray, axis: int | tuple[int, ...] | None = None, eps: float = 1e-12) -> np.ndarray:
    """Min-max scale to [0, 1], over all values or independently along the given axes (non-finite -> 0)."""
    v = np.nan_to_num(np.asarray(values, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    lo = v.min(axis=axis, keepdims=True)
    hi = v.max(axis=axis, keepdims=True)
    return np.clip((v - lo) / np.maximum(hi - lo, eps), 0.0, 1.0)


def apply_colormap(values01: np.ndarray, cmap: str = "inferno") -> np.ndarray:
    """Map values in [0, 1] to uint8 RGB ``[..., 3]``."""
    # One scratch array, updated in place (same arithmetic as clip(nan_to_num(v) * 255 + 0.5)): the app maps
    # ~10 tiles per layer switch.
    t = np.asarray(np.asarray(values01) * 255.0)  # (a 0-d input multiplies to a scalar)
    t += 0.5
    np.clip(t, 0, 255, out=t)
    np.nan_to_num(t, copy=False)
    return np.take(colormap_lut(cmap), t.astype(np.uint8), axis=0)


def resize_map(values: np.ndarray, size: tuple[int, int], smooth: bool = True) -> np.ndarray:
    """Resize a 2-D map (or a stack ``[..., h, w]`` of them) to ``size = (height, width)``: bilinear (pixel-centre
    aligned) or nearest (blocky patches)."""
    v = np.asarray(values, dtype=np.float32)
    h, w = v.shape[-2:]
    oh, ow = size
    if (h, w) == (oh, ow):
        return v
    if not smooth:
        rows = np.minimum((np.arange(oh) * h) // oh, h - 1)
        cols = np.minimum((np.arange(ow) * w) // ow, w - 1)
        return v[..., rows, :][..., cols]
    y = np.clip((np.arange(oh) + 0.5) * h / oh - 0.5, 0, h - 1)
    x = np.clip((np.arange(ow) + 0.5) * w / ow - 0.5, 0, w - 1)
    y0 = np.floor(y).astype(int)
    x0 = np.floor(x).astype(int)
    y1 = np.minimum(y0 + 1, h - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    wy = (y - y0)[:, None].astype(np.float32)
    wx = (x - x0)[None, :].astype(np.float32)
    across = v[..., x0] * (1 - wx) + v[..., x1] * wx  # interpolate along x once per source row, then gather rows
    return across[..., y0, :] * (1 - wy) + across[..., y1, :] * wy


def overlay(
    image: np.ndarray, values01: np.ndarray, cmap: str = "inferno", alpha: float = 0.6, smooth: bool = True
) -> np.ndarray:
    """Blend a colormapped map (any resolution, values in [0, 1]) over an RGB uint8 image; a stack of maps
    ``[K, h, w]`` gives ``[K, H, W, 3]`` (one pass for all of them: a live frame draws every head)."""
    img = np.asarray(image)
    return _blend(img, apply_colormap(resize_map(values01, img.shape[:2], smooth), cmap).astype(np.float32), alpha)


def overlay_rgb(image: np.ndarray, rgb01: np.ndarray, alpha: float = 0.6, smooth: bool = False) -> np.ndarray:
    """Blend a colour map ``[rows, cols, 3]`` (values in [0, 1], e.g. PCA colours) over an RGB uint8 image."""
    img = np.asarray(image)
    colors = np.stack([resize_map(rgb01[..., c], img.shape[:2], smooth) for c in range(3)], axis=-1)
    return _blend(img, np.clip(colors, 0.0, 1.0) * 255.0, alpha)


def _blend(img: np.ndarray, colors: np.ndarray, alpha: float) -> np.ndarray:
    """``img * (1 - alpha) + colors * alpha``, rounded to uint8 (``colors`` float32, modified in place)."""
    a = float(np.clip(alpha, 0.0, 1.0))
    colors *= a
    colors += img.astype(np.float32) * (1 - a) + 0.5  # broadcast over a stack of maps
    return colors.astype(np.uint8)


def draw_patch_grid(
    image: np.ndarray, patch_size: int, color: Sequence[int] = (255, 255, 255), alpha: float = 0.45
) -> np.ndarray:
    """Draw the 1-pixel lines between patches (the image must be a multiple of the patch size)."""
    out = np.asarray(image).astype(np.float32).copy()
    c = np.asarray(color, dtype=np.float32)
    h, w = out.shape[:2]
    for y in range(patch_size, h, patch_size):
        out[y, :] = out[y, :] * (1 - alpha) + c * alpha
    for x in range(patch_size, w, patch_size):
        out[:, x] = out[:, x] * (1 - alpha) + c * alpha
    return (out + 0.5).astype(np.uint8)


def cls_maps(attentions: np.ndarray, grid: tuple[int, int], num_prefix: int = 1) -> np.ndarray:
    """CLS-row attention to the patch tokens, ``[..., T, T] -> [..., rows, cols]``."""
    a = np.asarray(attentions)
    return a[..., 0, num_prefix:].reshape(*a.shape[:-2], grid[0], grid[1])


def attention_rollout(
    attentions: np.ndarray,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
    upto_layer: int | None = None,
) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema, 2020): the product over layers of ``0.5 * A + 0.5 * I``.

    ``attentions`` is ``[layers, heads, T, T]``. Heads are fused by ``mean``, ``max`` or ``min``;
    ``discard_ratio`` zeroes that fraction of the weakest attention links per layer (never the links of token 0).
    Returns the ``[T, T]`` joint attention after layer ``upto_layer`` (default: the last).
    """
    a = np.asarray(attentions, dtype=np.float64)
    if a.ndim != 4 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"expected attentions [layers, heads, T, T], got {a.shape}")
    fuse = {"mean": np.mean, "max": np.max, "min": np.min}.get(head_fusion)
    if fuse is None:
        raise ValueError(f"head_fusion must be mean, max or min, not {head_fusion!r}")
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError("discard_ratio must be in [0, 1)")
    last = a.shape[0] - 1 if upto_layer is None else upto_layer
    t = a.shape[-1]
    eye = np.eye(t)
    joint = eye.copy()
    for layer in range(last + 1):
        fused = fuse(a[layer], axis=0)
        if discard_ratio > 0:
            fused = discard_weakest(fused, discard_ratio)
        step = 0.5 * fused + 0.5 * eye
        step /= step.sum(axis=-1, keepdims=True)
        joint = step @ joint
    return joint


def discard_weakest(fused: np.ndarray, ratio: float) -> np.ndarray:
    """A copy of a ``[T, T]`` fused attention matrix with ``ratio`` of its weakest links zeroed, never a link to token
    0 (CLS): the discard rule of attention rollout."""
    t = fused.shape[-1]
    flat = np.array(fused, dtype=np.float64).reshape(-1)
    k = int(flat.size * ratio)
    if k:
        weakest = np.argpartition(flat, k)[:k]
        flat[weakest[weakest % t != 0]] = 0.0
    return flat.reshape(t, t)


def cumulative_rollout(attentions: np.ndarray) -> np.ndarray:
    """Attention rollout (mean head fusion, no discarding) after every layer, in one pass: ``[L, T, T]``.

    Same recurrence as :func:`attention_rollout`, but it keeps each intermediate product.
    """
    a = np.asarray(attentions, dtype=np.float64)
    layers, t = a.shape[0], a.shape[-1]
    eye = np.eye(t)
    joint = eye
    out = np.empty((layers, t, t), np.float32)
    for layer in range(layers):
        step = 0.5 * a[layer].mean(axis=0) + 0.5 * eye
        step /= step.sum(axis=-1, keepdims=True)
        joint = step @ joint
        out[layer] = joint
    return out


def tile_images(
    images: Sequence[np.ndarray], cols: int, titles: Sequence[str] | None = None, pad: int = 4, title_height: int = 14
) -> np.ndarray:
    """Arrange equally sized RGB images in a grid with an optional caption above each (text drawn by Pillow)."""
    if len(images) == 0:
        raise ValueError("no images to tile")
    h, w = images[0].shape[:2]
    rows = (len(images) + cols - 1) // cols
    th = title_height if titles else 0
    canvas = np.full((rows * (h + th + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        y = pad + r * (h + th + pad) + th
        x = pad + c * (w + pad)
        canvas[y : y + h, x : x + w] = im
    for i, text in enumerate(titles or ()):
        r, c = divmod(i, cols)
        ink = _text_mask(text, th)[:, : w - 2]
        y, x = pad + r * (h + th + pad), pad + c * (w + pad) + 2
        area = canvas[y : y + ink.shape[0], x : x + ink.shape[1]]
        area[:] = area * (1.0 - ink[..., None]) + 20.0 * ink[..., None] + 0.5  # dark grey text on white
    return canvas


@lru_cache(maxsize=512)
def _text_mask(text: str, height: int) -> np.ndarray:
    """Coverage (0-1, float32) of ``text`` in Pillow's default font, ``height`` rows: a caption is drawn once, then
    reused (the batch writer captions every heads grid with the same few titles)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    width = max(1, int(np.ceil(ImageDraw.Draw(Image.new("L", (1, 1))).textlength(text, font=font))) + 2)
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).text((0, 0), text, fill=255, font=font)
    out = np.asarray(mask, dtype=np.float32) / 255.0
    out.flags.writeable = False
    return out
