"""Writing one analysis result to files (JSON, PNG maps, NPY arrays): shared by the command line and the app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import VitvizError

if TYPE_CHECKING:
    from .engine import AnalysisResult

__all__ = ["write_outputs", "feature_arrays", "write_features"]


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


def feature_arrays(result: AnalysisResult, scaling: str = "minmax") -> dict[str, np.ndarray]:
    """The arrays of ``features.npz`` (see vitviz.features for the definitions): ``mean_attention_distance`` and
    ``cls_attention_entropy`` ``[layers, heads]``, ``token_norms`` ``[layers, T]``, ``pca_rgb``
    ``[layers, rows, cols, 3]`` (0-1) and ``num_prefix_tokens``. Needs a result analysed with ``features=True``."""
    from .features import cls_attention_entropy, mean_attention_distance, pca_rgb, token_norms

    if result.attentions is None or result.hidden_states is None:
        raise VitvizError("no hidden states in this result: analyse it with features=True (vitviz analyze --features)")
    p, grid = result.num_prefix_tokens, result.grid
    return {
        "mean_attention_distance": mean_attention_distance(result.attentions, grid, p),
        "cls_attention_entropy": cls_attention_entropy(result.attentions, p),
        "token_norms": token_norms(result.hidden_states),
        "pca_rgb": np.stack([pca_rgb(h, p, grid, scaling=scaling) for h in result.hidden_states]),
        "num_prefix_tokens": np.int64(p),
    }


def write_features(result: AnalysisResult, folder: Path, layer: int = -1, scaling: str = "minmax") -> list[Path]:
    """Write ``features.npz`` (:func:`feature_arrays`), ``pca_layer{layer}.png`` (the drawn layer's PCA colours at
    the input resolution, one block per patch) and ``head_atlas.png`` into ``folder``; returns the files written."""
    from PIL import Image

    from .features import head_atlas_image, uniform_attention_distance
    from .render import resize_map

    arrays = feature_arrays(result, scaling)
    layers = arrays["pca_rgb"].shape[0]
    drawn = layer if layer >= 0 else layers + layer
    if not 0 <= drawn < layers:
        raise VitvizError(f"--layer {layer} is out of range: the model has {layers} layers (0..{layers - 1})")
    folder.mkdir(parents=True, exist_ok=True)
    npz = folder / "features.npz"
    np.savez(npz, **arrays)
    rgb = arrays["pca_rgb"][drawn]
    h, w = result.image.shape[:2]
    big = np.stack([resize_map(rgb[..., c], (h, w), smooth=False) for c in range(3)], axis=-1)
    pca_png = folder / f"pca_layer{drawn}.png"
    Image.fromarray((big * 255.0 + 0.5).astype(np.uint8)).save(pca_png)
    atlas = head_atlas_image(
        arrays["mean_attention_distance"], arrays["cls_attention_entropy"],
        uniform_attention_distance(result.grid), result.grid.num_patches,
        title=f"{result.model_name}: {result.grid.rows}x{result.grid.cols} patches of {result.grid.patch_size} px",
    )
    atlas_png = folder / "head_atlas.png"
    Image.fromarray(atlas).save(atlas_png)
    return [npz, pca_png, atlas_png]
