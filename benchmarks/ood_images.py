"""Out-of-domain image sets for ``benchmarks/eval_ood.py``: openly licensed photos, random crops, textures, noise.

The photos come from ``assets/samples`` and scikit-image's bundled data module (``pip install -e ".[eval]"``); their
sources and licences are listed in ``assets/samples/SOURCES.md``. Textures and noise are generated from a seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "assets" / "samples"

# Disjoint on purpose: the validation photos choose the method; only the report photos are reported.
VALIDATION_SKIMAGE = ("coins", "brick", "cell", "immunohistochemistry", "text")
REPORT_SKIMAGE = ("camera", "rocket", "hubble_deep_field", "retina", "grass", "gravel", "microaneurysms")

TEXTURE_KINDS = ("uniform noise", "grey gaussian noise", "colour blobs", "1/f noise", "checkerboard", "stripes",
                 "dots", "rectangles", "waves")


def sample_photos() -> dict[str, Image.Image]:
    """The sample photos shipped in ``assets/samples`` (``photo-*.jpg``), by file name."""
    return {p.name: Image.open(p).convert("RGB") for p in sorted(SAMPLES.glob("photo-*.jpg"))}


def skimage_photos(names: tuple[str, ...]) -> dict[str, Image.Image]:
    """Images of scikit-image's data module by function name (greyscale ones as RGB)."""
    try:
        from skimage import data
    except ImportError as exc:
        raise SystemExit("scikit-image is needed for the photo sets: pip install -e \".[eval]\"") from exc
    out = {}
    for name in names:
        arr = np.asarray(getattr(data, name)())
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        out[f"skimage.data.{name}"] = Image.fromarray(np.ascontiguousarray(arr[..., :3]).astype(np.uint8))
    return out


def random_crops(images: dict[str, Image.Image], per_image: int, seed: int) -> dict[str, Image.Image]:
    """``per_image`` random crops of each image (30-80 % of its area, aspect ratio 3:4 to 4:3)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, img in images.items():
        w, h = img.size
        for k in range(per_image):
            area = rng.uniform(0.3, 0.8) * w * h
            aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
            cw = int(min(w, round(np.sqrt(area * aspect))))
            ch = int(min(h, round(np.sqrt(area / aspect))))
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            out[f"{name} crop {k}"] = img.crop((x, y, x + cw, y + ch))
    return out


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Colour noise on a coarse grid of about ``cells`` per side, bicubically enlarged to ``h x w``: [h, w, 3]."""
    small = rng.uniform(0, 255, (max(2, cells * h // max(h, w)), max(2, cells * w // max(h, w)), 3))
    return np.asarray(Image.fromarray(small.astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC), np.float64)


def texture(kind: str, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """One generated texture or noise image of ``kind`` (one of :data:`TEXTURE_KINDS`): uint8 ``[h, w, 3]``."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    c1, c2 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    if kind == "uniform noise":
        img = rng.uniform(0, 255, (h, w, 3))
    elif kind == "grey gaussian noise":
        img = np.repeat(np.clip(rng.normal(128, rng.uniform(20, 80), (h, w, 1)), 0, 255), 3, axis=2)
    elif kind == "colour blobs":
        img = _smooth_noise(rng, h, w, int(rng.integers(3, 24)))
    elif kind == "1/f noise":
        fy, fx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
        amp = 1.0 / np.maximum(np.hypot(fy, fx), 1.0 / max(h, w)) ** rng.uniform(1.0, 2.0)
        img = np.empty((h, w, 3))
        for c in range(3):
            field = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=(h, w))) * amp))
            img[..., c] = 255 * (field - field.min()) / (np.ptp(field) + 1e-9)
    elif kind in ("checkerboard", "stripes", "waves"):
        angle, period = rng.uniform(0, np.pi), rng.uniform(6, 64)
        u = xx * np.cos(angle) + yy * np.sin(angle)
        v = -xx * np.sin(angle) + yy * np.cos(angle)
        if kind == "checkerboard":
            t = ((np.floor(u / period) + np.floor(v / period)) % 2)[..., None]
        elif kind == "stripes":
            t = (np.floor(u / period) % 2)[..., None]
        else:
            t = (0.5 + 0.5 * np.sin(2 * np.pi * u / period) * np.cos(2 * np.pi * v / (period * rng.uniform(1, 3))))[..., None]
        img = c1 * t + c2 * (1 - t)
    elif kind == "dots":
        period = rng.uniform(8, 48)
        r = period * rng.uniform(0.15, 0.45)
        d = np.hypot((xx % period) - period / 2, (yy % period) - period / 2)
        t = (d < r)[..., None]
        img = np.where(t, c1, c2)
    elif kind == "rectangles":
        img = np.broadcast_to(c2, (h, w, 3)).copy()
        for _ in range(int(rng.integers(5, 30))):
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            x1, y1 = x0 + int(rng.integers(4, w // 2 + 5)), y0 + int(rng.integers(4, h // 2 + 5))
            img[y0:y1, x0:x1] = rng.uniform(0, 255, 3)
    else:
        raise ValueError(f"unknown texture kind {kind!r}")
    return np.clip(img, 0, 255).astype(np.uint8)


def textures(n: int, seed: int) -> dict[str, Image.Image]:
    """``n`` generated textures and noise images (kinds in turn, random sizes 128-384 px a side) from ``seed``."""
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n):
        kind = TEXTURE_KINDS[i % len(TEXTURE_KINDS)]
        h, w = (int(v) for v in rng.integers(128, 385, 2))
        out[f"{kind} {i}"] = Image.fromarray(texture(kind, rng, h, w))
    return out
