"""Render the generated sample scenes of assets/samples (one per listed class: the first seed from 5000 on whose
main object has that class), so they match the current scene generator.

    python scripts/make_samples.py [--out assets/samples]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vitviz.synthetic.scenes import CLASSES, random_spec, render_scene  # noqa: E402

FIRST_SEED = 5000
# class -> (height, width): square, like the shipped model's training images (on 4:3 scenes its top-1 accuracy
# drops by about ten points; the photographs show the app on other aspect ratios)
SAMPLES = {name: (320, 320) for name in ("sphere", "cube", "cone", "torus", "pyramid", "capsule", "ring", "star_prism")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "samples")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, size in SAMPLES.items():
        seed = FIRST_SEED
        while CLASSES[random_spec(seed)["label"]] != name:
            seed += 1
        path = args.out / f"scene-{name.replace('_', '-')}.png"
        Image.fromarray(render_scene(seed, size).image).save(path, optimize=True)
        print(f"{path.name}: seed {seed}, {size[1]}x{size[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
