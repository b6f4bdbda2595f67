"""Runs of ``vitviz analyze`` for the gallery's tests, written once per session with the tiny checkpoint."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from vitviz.cli import main


def write_images(folder: Path, n: int = 6) -> list[Path]:
    """``n`` different images of different sizes, and one file that is not an image (``broken.png``)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    paths = []
    for i in range(n):
        h, w = (32, 48) if i % 2 else (40, 40)
        rgb = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        rgb[: h // 2, : w // 2] = (30 * i) % 255  # a block of its own colour
        path = folder / f"img{i}.png"
        Image.fromarray(rgb).save(path)
        paths.append(path)
    (folder / "broken.png").write_bytes(b"this is not a PNG file")
    return paths


def analyze_run(images: Path, out: Path, checkpoint: Path, *extra: str) -> Path:
    """``vitviz analyze images --out out`` with the tiny model; the run has a failed input (exit status 1)."""
    code = main(["analyze", str(images), "--out", str(out), "--model", str(checkpoint), "--device", "cpu", "--quiet",
                 *extra])
    assert code == 1, "broken.png fails alone"
    return out


def copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest
