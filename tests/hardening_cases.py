"""Bad and odd inputs shared by the hardening tests: image files, checkpoints, each with the reason vitviz gives.

Every maker writes into a folder and returns the path to hand to vitviz. Makers are cheap (a few ms each): the
decompression bomb is a real, valid PNG built from a compressed stream of zeros, not an encoded 196 Mpx image.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

PWNED_MARKER = Path("/tmp/vitviz-hardening-pwned")


def gradient(w: int = 60, h: int = 40) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 4, y * 6, (x + y) * 2], axis=-1).clip(0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------------------ bad images


def _zero_byte(d: Path) -> Path:
    p = d / "empty.png"
    p.write_bytes(b"")
    return p


def _truncated(fmt: str) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        p = d / f"cut.{fmt.lower()}"
        Image.fromarray(gradient(200, 200)).save(p, fmt)
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
        return p

    return make


def _text_jpg(d: Path) -> Path:
    p = d / "notes.jpg"
    p.write_text("just some text, not a picture\n")
    return p


def _directory(d: Path) -> Path:
    p = d / "folder.png"
    p.mkdir()
    return p


def _missing(d: Path) -> Path:
    return d / "nope.png"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _bomb(d: Path) -> Path:
    """A valid 14000x14000 1-bit PNG (196 Mpx, above Pillow's hard limit) of about 25 kB."""
    side = 14000
    row = b"\x00" + bytes((side + 7) // 8)
    comp = zlib.compressobj(9)
    data = b"".join(comp.compress(row * 1000) for _ in range(side // 1000)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    p = d / "bomb.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b""))
    return p


# name -> (maker, words the one-line reason must contain)
BAD_IMAGES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "zero-byte": (_zero_byte, "empty"),
    "truncated-jpeg": (_truncated("JPEG"), "damaged or truncated"),
    "truncated-png": (_truncated("PNG"), "damaged or truncated"),
    "text-named-jpg": (_text_jpg, "not an image file"),
    "directory": (_directory, "is a folder"),
    "missing": (_missing, "no such file"),
    "decompression-bomb": (_bomb, "decompression bomb"),
}


# ----------------------------------------------------------------------------------------------------- odd images


def _gray16(d: Path) -> Path:
    p = d / "gray16.png"
    Image.fromarray(np.linspace(1000, 61000, 40 * 48, dtype=np.uint16).reshape(40, 48)).save(p)
    return p


def _cmyk(d: Path) -> Path:
    p = d / "cmyk.jpg"
    Image.new("CMYK", (40, 32), (0, 255, 255, 0)).save(p)
    return p


def _palette(d: Path) -> Path:
    p = d / "palette.png"
    img = Image.new("P", (40, 30), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.putpixel((0, 0), 0)
    img.save(p, transparency=0)
    return p


def _rgba(d: Path) -> Path:
    p = d / "alpha.png"
    arr = np.zeros((30, 40, 4), np.uint8)
    arr[..., 2] = 255
    arr[:, 20:, 3] = 255
    Image.fromarray(arr, "RGBA").save(p)
    return p


def exif_rotated(d: Path) -> Path:
    """Stored landscape 40x20 (left red, right blue) with EXIF orientation 6: upright it is portrait, red on top."""
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)
    arr[:, 20:] = (0, 0, 255)
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6
    p = d / "rotated.jpg"
    img.save(p, exif=exif, quality=95)
    return p


def _gif(d: Path) -> Path:
    p = d / "anim.gif"
    frames = [Image.new("RGB", (40, 32), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=100)
    return p


def _tiff(d: Path) -> Path:
    p = d / "pages.tif"
    pages = [Image.new("RGB", (40, 32), c) for c in [(0, 0, 255), (255, 0, 0)]]
    pages[0].save(p, save_all=True, append_images=pages[1:])
    return p


def _webp(d: Path) -> Path:
    p = d / "pic.webp"
    Image.fromarray(gradient()).save(p, lossless=True)
    return p


def _size(w: int, h: int) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        p = d / f"px{w}x{h}.png"
        Image.new("RGB", (w, h), (10, 200, 30)).save(p)
        return p

    return make


# name -> (maker, words one of the result's notices must contain, or None)
ODD_IMAGES: dict[str, tuple[Callable[[Path], Path], str | None]] = {
    "16-bit": (_gray16, "rescaled"),
    "cmyk": (_cmyk, None),
    "palette-transparency": (_palette, "transparent"),
    "rgba": (_rgba, "transparent"),
    "exif-rotated": (exif_rotated, "EXIF"),
    "animated-gif": (_gif, "3 frames"),
    "multipage-tiff": (_tiff, "2 frames"),
    "webp": (_webp, None),
    "1x1-smaller-than-a-patch": (_size(1, 1), None),
    "3x5000": (_size(3, 5000), "downscaled from 3x5000"),
}


# ----------------------------------------------------------------------------------------------------- checkpoints


class Evil:
    """Unpickling this runs a shell command: vitviz must refuse it without running it."""

    def __reduce__(self):
        return (os.system, (f"touch {PWNED_MARKER}",))


def _pair(tiny: Path, d: Path, weights: bytes | None = None, config: dict | None = None, suffix=".safetensors") -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "m.json").write_text(json.dumps(config) if config is not None else tiny.read_text())
    if weights is None:
        weights = tiny.with_suffix(".safetensors").read_bytes()
    (d / f"m{suffix}").write_bytes(weights)
    return d / ("m.json" if suffix == ".safetensors" else f"m{suffix}")


def _truncated_safetensors(tiny: Path, d: Path) -> Path:
    data = tiny.with_suffix(".safetensors").read_bytes()
    return _pair(tiny, d, data[: len(data) // 2])


def _random_bytes(tiny: Path, d: Path) -> Path:
    return _pair(tiny, d, np.random.default_rng(7).integers(0, 256, 10_000, dtype=np.uint8).tobytes())


def _pickle_pt(tiny: Path, d: Path) -> Path:
    """A torch.save'd .pt beside a valid vitviz config, holding an object whose unpickling runs code."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save({"w": Evil()}, buf)
    return _pair(tiny, d, buf.getvalue(), suffix=".pt")


def _raw_pickle_pt(tiny: Path, d: Path) -> Path:
    """A bare plain-pickle .pt (no config beside it): the usual file someone hands over."""
    d.mkdir(parents=True, exist_ok=True)
    p = d / "model.pt"
    p.write_bytes(pickle.dumps({"w": Evil()}, protocol=4))
    return p


def _truncated_pt(tiny: Path, d: Path) -> Path:
    """A plain tensor state dict saved by torch.save, cut in half."""
    import io

    from safetensors.torch import load_file
    import torch

    buf = io.BytesIO()
    torch.save(load_file(str(tiny.with_suffix(".safetensors"))), buf)
    return _pair(tiny, d, buf.getvalue()[: len(buf.getvalue()) // 2], suffix=".pt")


def _shape_mismatch(tiny: Path, d: Path) -> Path:
    config = json.loads(tiny.read_text())
    config["architecture"]["embed_dim"] = 30
    return _pair(tiny, d, config=config)


def _missing_keys(tiny: Path, d: Path) -> Path:
    from safetensors.torch import load_file, save as save_bytes

    state = load_file(str(tiny.with_suffix(".safetensors")))
    state.pop("head.weight")
    return _pair(tiny, d, save_bytes(state))


# name -> (maker(tiny checkpoint json, folder), words the one-line reason must contain)
BAD_CHECKPOINTS: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "truncated-safetensors": (_truncated_safetensors, "truncated"),
    "random-bytes": (_random_bytes, "not a valid safetensors file"),
    "pickle-pt": (_pickle_pt, "never unpickles"),
    "raw-pickle-pt": (_raw_pickle_pt, "never unpickles"),
    "random-bytes-pt": (lambda tiny, d: _pair(tiny, d, bytes(range(256)) * 40, suffix=".pt"),
                        "neither a zip archive nor a pickle stream"),
    "truncated-pt": (_truncated_pt, "not a readable"),
    "shape-mismatch": (_shape_mismatch, "wrong shape"),
    "missing-keys": (_missing_keys, "missing: head.weight"),
}
