"""Writing one analysis result to files (JSON, PNG maps, NPY arrays): shared by the command line and the app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import VitvizError

if TYPE_CHECKING:
    from .engine import AnalysisResult

__all__ = ["write_outputs", "OUTPUTS", "OUTPUT_ALIASES", "parse_outputs", "output_files"]

# What ``vitviz analyze --outputs`` can pick: each name is a set of files in an image's folder.
OUTPUTS: dict[str, tuple[str, ...]] = {
    "json": ("result.json",),
    "input": ("input.png", "patch_grid.png"),
    "heads": ("heads_layer{layer}.png",),
    "rollout": ("rollout.png",),
    "depth": ("depth.png",),
    "attention-npy": ("attentions.npy", "cls_attention.npy"),
    "depth-npy": ("depth.npy",),
}
OUTPUT_ALIASES: dict[str, tuple[str, ...]] = {
    "all": tuple(OUTPUTS),
    "png": ("input", "heads", "rollout", "depth"),
    "npy": ("attention-npy", "depth-npy"),
    "none": (),
}


def write_outputs(
    result: AnalysisResult,
    folder: Path,
    layer: int = -1,
    cmap: str = "inferno",
    depth_cmap: str = "turbo",
    alpha: float = 0.6,
    outputs: frozenset[str] | None = None,
    png_compress_level: int = 6,
) -> list[Path]:
    """Write one result's JSON, PNG maps and NPY arrays into ``folder``; returns the files written.

    ``outputs``: the names of :data:`OUTPUTS` to write (None: all). ``png_compress_level``: zlib level of the PNGs
    (1 encodes about four times faster than the default 6, for files about 10 % larger).
    """
    want = frozenset(OUTPUTS) if outputs is None else outputs
    from PIL import Image

    from .render import apply_colormap, draw_patch_grid, normalize, overlay, tile_images

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save_png(name: str, rgb: np.ndarray) -> None:
        path = folder / name
        Image.fromarray(rgb).save(path, compress_level=png_compress_level)
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
    if "json" in want:
        (folder / "result.json").write_text(json.dumps(summary, indent=2) + "\n", "utf-8")
        written.append(folder / "result.json")
    if "input" in want:
        save_png("input.png", result.image)
        save_png("patch_grid.png", draw_patch_grid(result.image, result.grid.patch_size))
    if layers and "heads" in want:
        maps = result.cls_attention[layer]
        tiles = [overlay(result.image, m, cmap, alpha) for m in normalize(maps, axis=(1, 2))]
        tiles.append(overlay(result.image, normalize(maps.mean(axis=0)), cmap, alpha))
        titles = [f"head {h}" for h in range(len(maps))] + ["mean"]
        cols = int(np.ceil(np.sqrt(len(tiles))))
        save_png(f"heads_layer{layer}.png", tile_images(tiles, cols, titles))
    if layers and "rollout" in want:
        save_png("rollout.png", overlay(result.image, normalize(result.rollout()), cmap, alpha))
    if layers and "attention-npy" in want:
        save_npy("attentions.npy", result.attentions.astype(np.float32))
        save_npy("cls_attention.npy", result.cls_attention)
    if result.depth is not None and "depth" in want:
        d = result.depth
        values = normalize(d)
        if result.depth_kind == "metric":
            values = 1.0 - values  # near = bright, like inverse depth
        save_png("depth.png", apply_colormap(values, depth_cmap))
    if result.depth is not None and "depth-npy" in want:
        save_npy("depth.npy", result.depth.astype(np.float32))
    return written


def parse_outputs(spec: str | None) -> frozenset[str]:
    """``"json,heads"`` (commas or spaces; aliases ``all``, ``png``, ``npy``, ``none``) -> names of :data:`OUTPUTS`.

    Raises :class:`VitvizError` naming an unknown name.
    """
    names: set[str] = set()
    for token in (spec or "all").replace(",", " ").split():
        token = token.strip().lower()
        if token in OUTPUT_ALIASES:
            names.update(OUTPUT_ALIASES[token])
        elif token in OUTPUTS:
            names.add(token)
        else:
            known = ", ".join([*OUTPUTS, *OUTPUT_ALIASES])
            raise VitvizError(f"--outputs: unknown output {token!r} (choose from {known})")
    return frozenset(names)


def output_files(outputs: frozenset[str], layers: int, layer: int, has_depth: bool) -> set[str]:
    """The file names :func:`write_outputs` writes for ``outputs`` with a model of ``layers`` layers (``layer``: the
    drawn one, negative from the end) and with or without depth."""
    drawn = layer if layer >= 0 else layers + layer
    files: set[str] = set()
    for name in outputs:
        if name in ("heads", "rollout", "attention-npy") and not layers:
            continue
        if name in ("depth", "depth-npy") and not has_depth:
            continue
        files.update(f.format(layer=drawn) for f in OUTPUTS[name])
    return files
