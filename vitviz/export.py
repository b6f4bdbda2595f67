"""Writing one analysis result to files (JSON, PNG maps, NPY arrays): shared by the command line and the app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import VitvizError

if TYPE_CHECKING:
    from .engine import AnalysisResult

__all__ = ["write_outputs"]


def write_outputs(
    result: AnalysisResult,
    folder: Path,
    layer: int = -1,
    cmap: str = "inferno",
    depth_cmap: str = "turbo",
    alpha: float = 0.6,
) -> list[Path]:
    """Write one result's JSON, PNG maps and NPY arrays into ``folder``; returns the files written."""
    from PIL import Image

    from .render import apply_colormap, draw_patch_grid, normalize, overlay, tile_images

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save_png(name: str, rgb: np.ndarray) -> None:
        path = folder / name
        Image.fromarray(rgb).save(path)
        written.append(path)

    def save_npy(name: str, array: np.ndarray) -> None:
        path = folder / name
        np.save(path, array)
        written.append(path)

    summary = result.summary()
    layers = result.num_layers
    if layers:
        layer = layer if layer >= 0 else layers + layer
        if not 0 <= layer < layers:
            raise VitvizError(f"--layer {layer} is out of range: the model has {layers} layers (0..{layers - 1})")
        summary["drawn_layer"] = layer
    (folder / "result.json").write_text(json.dumps(summary, indent=2) + "\n", "utf-8")
    written.append(folder / "result.json")
    save_png("input.png", result.image)
    save_png("patch_grid.png", draw_patch_grid(result.image, result.grid.patch_size))
    if layers:
        maps = result.cls_attention[layer]
        tiles = [overlay(result.image, m, cmap, alpha) for m in normalize(maps, axis=(1, 2))]
        tiles.append(overlay(result.image, normalize(maps.mean(axis=0)), cmap, alpha))
        titles = [f"head {h}" for h in range(len(maps))] + ["mean"]
        cols = int(np.ceil(np.sqrt(len(tiles))))
        save_png(f"heads_layer{layer}.png", tile_images(tiles, cols, titles))
        save_png("rollout.png", overlay(result.image, normalize(result.rollout()), cmap, alpha))
        save_npy("attentions.npy", result.attentions.astype(np.float32))
        save_npy("cls_attention.npy", result.cls_attention)
    if result.depth is not None:
        d = result.depth
        values = normalize(d)
        if result.depth_kind == "metric":
            values = 1.0 - values  # near = bright, like inverse depth
        save_png("depth.png", apply_colormap(values, depth_cmap))
        save_npy("depth.npy", d.astype(np.float32))
    return written
