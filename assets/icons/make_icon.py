"""Draws the vitviz app icon (a patch grid lit by an attention hot spot) as PNGs: python assets/icons/make_icon.py"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
SIZES = (16, 24, 32, 48, 64, 128, 512)  # plus vitviz.png at 256


def _inferno(t: float) -> tuple[int, int, int]:
    # a few stops of the inferno colormap, linearly interpolated
    stops = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21],
                      [250, 193, 39], [252, 255, 164]], float)
    x = np.clip(t, 0, 1) * (len(stops) - 1)
    i = min(int(x), len(stops) - 2)
    c = stops[i] * (1 - (x - i)) + stops[i + 1] * (x - i)
    return tuple(int(v + 0.5) for v in c)


def draw(size: int = 1024) -> Image.Image:
    s = size
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((0.03 * s, 0.03 * s, 0.97 * s, 0.97 * s), radius=0.2 * s, fill=(22, 27, 48, 255))
    n = 4
    pad = 0.14 * s
    gap = 0.035 * s
    cell = (s - 2 * pad - (n - 1) * gap) / n
    hot = np.array([1.15, 1.0])  # attention centre, in cell units (col, row)
    for r in range(n):
        for c in range(n):
            dist = np.hypot(c - hot[0], r - hot[1])
            t = float(np.exp(-(dist**2) / 2.6))
            x0 = pad + c * (cell + gap)
            y0 = pad + r * (cell + gap)
            d.rounded_rectangle((x0, y0, x0 + cell, y0 + cell), radius=0.18 * cell, fill=_inferno(0.12 + 0.88 * t))
    # the query patch: a bright outline, like the app's selected patch
    c, r = 1, 1
    x0, y0 = pad + c * (cell + gap), pad + r * (cell + gap)
    w = max(2, int(0.028 * s))
    d.rounded_rectangle((x0 - 1.6 * w, y0 - 1.6 * w, x0 + cell + 1.6 * w, y0 + cell + 1.6 * w), radius=0.25 * cell,
                        outline=(0, 216, 255, 255), width=w)
    return img


def main() -> None:
    big = draw(1024)
    for size in SIZES:
        big.resize((size, size), Image.Resampling.LANCZOS).save(HERE / f"vitviz-{size}.png")
    big.resize((256, 256), Image.Resampling.LANCZOS).save(HERE / "vitviz.png")


if __name__ == "__main__":
    main()
