"""Render a grid of sample procedural scenes (image, optionally depth/mask) to a PNG.

Usage: python scripts/scene_gallery.py OUT.png [--seed 0] [--size 128] [--rows 4] [--cols 5]
       [--depth] [--one-per-class]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from vitviz.synthetic.scenes import CLASSES, render_scene, scene_seed  # noqa: E402


def _depth_rgb(depth: np.ndarray) -> np.ndarray:
    """Near = bright; normalised per image on inverse depth."""
    inv = 1.0 / depth
    inv = (inv - inv.min()) / max(float(np.ptp(inv)), 1e-9)
    return (np.stack([inv, inv**1.5, inv**3], -1) * 255).astype(np.uint8)


def gallery(path: str, seed: int = 0, size: int = 128, rows: int = 4, cols: int = 5,
            show_depth: bool = False, one_per_class: bool = False) -> None:
    """Write a rows x cols grid of scenes with their class names to ``path``."""
    n = rows * cols
    scenes = []
    i = 0
    want = [k % len(CLASSES) for k in range(n)]
    while len(scenes) < n:
        sc = render_scene(scene_seed(seed, i), size)
        i += 1
        if one_per_class:
            if sc.label != want[len(scenes)]:
                continue
        scenes.append(sc)
    panels = 2 if show_depth else 1
    label_h = 16
    cell_w, cell_h = size * panels + 4, size + label_h + 4
    canvas = Image.new("RGB", (cols * cell_w, rows * cell_h), (30, 30, 30))
    draw = ImageDraw.Draw(canvas)
    for k, sc in enumerate(scenes):
        r, c = divmod(k, cols)
        x0, y0 = c * cell_w + 2, r * cell_h + 2
        canvas.paste(Image.fromarray(sc.image), (x0, y0 + label_h))
        if show_depth:
            d = _depth_rgb(sc.depth)
            edge = sc.mask ^ np.roll(sc.mask, 1, 0) | sc.mask ^ np.roll(sc.mask, 1, 1)
            d[edge] = (0, 255, 0)
            canvas.paste(Image.fromarray(d), (x0 + size, y0 + label_h))
        cover = 100.0 * sc.mask.mean()
        draw.text((x0 + 2, y0 + 2), f"{CLASSES[sc.label]} ({cover:.0f}%)", fill=(255, 255, 255))
    canvas.save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--cols", type=int, default=5)
    ap.add_argument("--depth", action="store_true", help="show depth map + mask outline next to each image")
    ap.add_argument("--one-per-class", action="store_true", help="cycle through the classes in order")
    a = ap.parse_args()
    gallery(a.out, a.seed, a.size, a.rows, a.cols, a.depth, a.one_per_class)
    print(a.out)


if __name__ == "__main__":
    main()
