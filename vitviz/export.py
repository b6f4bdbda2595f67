"""Writing one analysis result to files (JSON, PNG maps, NPY arrays): shared by the command line and the app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import VitvizError
from .runfolder import atomic_write_text

if TYPE_CHECKING:
    from .engine import AnalysisResult
    from .explain import Evidence
    from .importance import HeadImportance

__all__ = ["write_outputs", "OUTPUTS", "OUTPUT_ALIASES", "FULL_OUTPUTS", "parse_outputs", "output_files",
           "feature_arrays", "write_features", "write_evidence", "class_slug", "HEAD_IMPORTANCE_FILE",
           "write_head_importance"]

# What ``vitviz analyze --outputs`` can pick: each name is a set of files in an image's folder.
OUTPUTS: dict[str, tuple[str, ...]] = {
    "json": ("result.json",),
    "input": ("input.png", "patch_grid.png"),
    "heads": ("heads_layer{layer}.png",),
    "rollout": ("rollout.png",),
    "depth": ("depth.png",),
    "attention-npy": ("cls_attention.npy",),
    "attention-full": ("attentions.npy",),
    "depth-npy": ("depth.npy",),
}
# Not part of "all": the full tensors grow with the square of the tokens (1.2 GB for one 518x770 photo through a
# ViT-S/14); estimate_full_attention says how much before a run writes them.
FULL_OUTPUTS = frozenset({"attention-full"})
OUTPUT_ALIASES: dict[str, tuple[str, ...]] = {
    "all": tuple(name for name in OUTPUTS if name not in FULL_OUTPUTS),
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
    (levels 1-3 encode several times faster than the default 6, for files about 17 % larger: :mod:`vitviz.pngfile`).
    """
    want = frozenset(OUTPUTS) if outputs is None else outputs
    from .pngfile import save_png as write_png
    from .render import apply_colormap, draw_patch_grid, normalize, overlay, tile_images

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save_png(name: str, rgb: np.ndarray) -> None:
        path = folder / name
        write_png(path, rgb, png_compress_level)
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
        atomic_write_text(folder / "result.json", json.dumps(summary, indent=2) + "\n")
        written.append(folder / "result.json")
    if "input" in want:
        save_png("input.png", result.image)
        save_png("patch_grid.png", draw_patch_grid(result.image, result.grid.patch_size))
    if layers and "heads" in want:
        maps = result.cls_attention[layer]
        tiles = overlay(result.image, np.concatenate([normalize(maps, axis=(1, 2)), normalize(maps.mean(axis=0))[None]]),
                        cmap, alpha)  # every head and their mean, in one pass
        titles = [f"head {h}" for h in range(len(maps))] + ["mean"]
        cols = int(np.ceil(np.sqrt(len(tiles))))
        save_png(f"heads_layer{layer}.png", tile_images(tiles, cols, titles))
    if layers and "rollout" in want:
        save_png("rollout.png", overlay(result.image, normalize(result.rollout()), cmap, alpha))
    if layers and "attention-npy" in want:
        save_npy("cls_attention.npy", result.cls_attention)
    if layers and "attention-full" in want:
        if result.attentions is None:
            raise VitvizError("the full attention tensors were not kept: analyse with attention=\"full\"")
        save_npy("attentions.npy", result.attentions.astype(np.float32))
    if result.depth is not None and "depth" in want:
        d = result.depth
        values = normalize(d)
        if result.depth_kind == "metric":
            values = 1.0 - values  # near = bright, like inverse depth
        save_png("depth.png", apply_colormap(values, depth_cmap))
    if result.depth is not None and "depth-npy" in want:
        save_npy("depth.npy", result.depth.astype(np.float32))
    return written


def feature_arrays(result: AnalysisResult, scaling: str = "minmax") -> dict[str, np.ndarray]:
    """The arrays of ``features.npz`` (see vitviz.features for the definitions): ``mean_attention_distance`` and
    ``cls_attention_entropy`` ``[layers, heads]``, ``token_norms`` ``[layers, T]``, ``pca_rgb``
    ``[layers, rows, cols, 3]`` (0-1) and ``num_prefix_tokens``. Needs a result analysed with ``features=True``."""
    from .features import pca_rgb, token_norms

    if result.attention is None or result.hidden_states is None:
        raise VitvizError("no hidden states in this result: analyse it with features=True (vitviz analyze --features)")
    p, grid = result.num_prefix_tokens, result.grid
    return {
        "mean_attention_distance": result.attention.mean_distance.astype(np.float32),
        "cls_attention_entropy": result.attention.cls_entropy(),
        "token_norms": token_norms(result.hidden_states),
        "pca_rgb": np.stack([pca_rgb(h, p, grid, scaling=scaling) for h in result.hidden_states]),
        "num_prefix_tokens": np.int64(p),
    }


def features_files(layers: int, layer: int = -1) -> list[str]:
    """The names :func:`write_features` writes for a model of ``layers`` layers, ``layer`` drawn (negative: from the
    end): the arrays, the drawn layer's PCA colours, the head atlas."""
    drawn = layer if layer >= 0 else layers + layer
    return ["features.npz", f"pca_layer{drawn}.png", "head_atlas.png"]


def write_features(result: AnalysisResult, folder: Path, layer: int = -1, scaling: str = "minmax",
                   png_compress_level: int = 6) -> list[Path]:
    """Write ``features.npz`` (:func:`feature_arrays`), ``pca_layer{layer}.png`` (the drawn layer's PCA colours at
    the input resolution, one block per patch) and ``head_atlas.png`` into ``folder``; returns the files written."""
    from .features import head_atlas_image, uniform_attention_distance
    from .pngfile import save_png
    from .render import resize_map

    arrays = feature_arrays(result, scaling)
    layers = arrays["pca_rgb"].shape[0]
    drawn = layer if layer >= 0 else layers + layer
    if not 0 <= drawn < layers:
        raise VitvizError(f"--layer {layer} is out of range: the model has {layers} layers (0..{layers - 1})")
    folder.mkdir(parents=True, exist_ok=True)
    npz, pca_png, atlas_png = (folder / name for name in features_files(layers, drawn))
    np.savez(npz, **arrays)
    rgb = arrays["pca_rgb"][drawn]
    h, w = result.image.shape[:2]
    big = np.stack([resize_map(rgb[..., c], (h, w), smooth=False) for c in range(3)], axis=-1)
    save_png(pca_png, (big * 255.0 + 0.5).astype(np.uint8), png_compress_level)
    atlas = head_atlas_image(
        arrays["mean_attention_distance"], arrays["cls_attention_entropy"],
        uniform_attention_distance(result.grid), result.grid.num_patches,
        title=f"{result.model_name}: {result.grid.rows}x{result.grid.cols} patches of {result.grid.patch_size} px",
    )
    save_png(atlas_png, atlas, png_compress_level)
    return [npz, pca_png, atlas_png]


HEAD_IMPORTANCE_FILE = "head_importance.csv"  # vitviz analyze --head-importance


def write_head_importance(importance: HeadImportance, folder: Path) -> Path:
    """Write ``head_importance.csv``: one row per head, layer by layer, with the columns ``layer, head, target,
    logit_drop, prob_drop`` and, for a model with its own depth head, ``depth_absrel`` (see vitviz.importance;
    empty cells where a figure is not measured, e.g. the class columns of a model without a classifier). First-order
    estimates are named ``logit_drop_estimate, prob_drop_estimate``, so that no script mistakes them for knockouts."""
    import csv

    rows = importance.rows()
    if importance.estimated:
        rows = [{(k + "_estimate" if k in ("logit_drop", "prob_drop") else k): v for k, v in row.items()}
                for row in rows]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / HEAD_IMPORTANCE_FILE
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None or (isinstance(v, float) and np.isnan(v)) else
                             (f"{v:.9g}" if isinstance(v, float) else v) for k, v in row.items()})
    return path


def class_slug(labels: list[str], index: int) -> str:
    """File-name form of class ``index``: its label in lower case with runs of other characters as ``_`` (plus
    ``-<index>`` when two labels share that form, as some ImageNet lemmas do)."""
    import re

    def slug(text: str) -> str:
        return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")

    own = slug(labels[index]) or str(index)
    clash = sum(1 for lab in labels if slug(lab) == own) > 1
    return f"{own}-{index}" if clash else own


def write_evidence(
    evidence: Evidence,
    result: AnalysisResult,
    folder: Path,
    methods: list[str],
    targets: list[int],
    layer: int = -1,
    cmap: str = "inferno",
    alpha: float = 0.6,
    head_fusion: str = "mean",
    discard_ratio: float | None = None,
    png_compress_level: int = 6,
) -> list[Path]:
    """Write ``explain_<method>_<class>.npy`` (``[rows, cols]``, non-negative, summing to 1) and ``.png`` (overlay)
    for every method and target class, and add the methods and targets to ``result.json`` (key ``explain``).

    ``layer`` is the layer of the ``attention`` method (the rollout-type methods use every layer); ``attention`` and
    ``rollout`` are not class-specific and are written once per target all the same (or as ``explain_<method>``
    alone when ``targets`` is empty, for a model without a classifier). Returns the files written.
    """
    from .explain import DEFAULT_DISCARD, GRADIENT_METHODS
    from .pngfile import save_png
    from .render import normalize, overlay

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    files: dict[str, dict[str, str]] = {}
    for method in methods:
        if method in GRADIENT_METHODS and not targets:
            raise VitvizError(f"{method} needs a target class")
        for target in targets or [None]:
            arr = evidence.map(method, target, layer=layer if method == "attention" else None,
                               head_fusion=head_fusion, discard_ratio=discard_ratio)
            stem = f"explain_{method}" if target is None else f"explain_{method}_{class_slug(result.labels, target)}"
            np.save(folder / f"{stem}.npy", arr.astype(np.float32))
            save_png(folder / f"{stem}.png", overlay(result.image, normalize(arr), cmap, alpha), png_compress_level)
            written += [folder / f"{stem}.npy", folder / f"{stem}.png"]
            files.setdefault(method, {})["none" if target is None else str(target)] = stem
    probs = result.probabilities
    info = {
        "methods": list(methods),
        "targets": [{"label": result.labels[t], "index": int(t),
                     "probability": None if probs is None else float(probs[t])} for t in targets],
        "options": {"attention_layer": layer, "rollout_head_fusion": head_fusion,
                    "discard_ratio": {m: DEFAULT_DISCARD[m] if discard_ratio is None else discard_ratio
                                      for m in methods if m in DEFAULT_DISCARD},
                    "pooling": evidence.pooling},
        "files": files,
    }
    path = folder / "result.json"
    summary = json.loads(path.read_text("utf-8")) if path.is_file() else result.summary()
    summary["explain"] = info
    atomic_write_text(path, json.dumps(summary, indent=2) + "\n")
    written.append(path)
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
        if name in ("heads", "rollout", "attention-npy", "attention-full") and not layers:
            continue
        if name in ("depth", "depth-npy") and not has_depth:
            continue
        files.update(f.format(layer=drawn) for f in OUTPUTS[name])
    return files


def full_attention_estimate(paths: list[str], config: Any, num_prefix_tokens: int) -> int:
    """Bytes that ``attentions.npy`` (output attention-full) takes for these images with a model of ``config``
    (read from the files' headers; an unreadable file counts as nothing: it will fail on its own)."""
    from PIL import Image

    from .attention import full_attention_bytes
    from .engine import model_input_size

    total = 0
    for path in paths:
        try:
            with Image.open(path) as im:
                size = im.size
        except Exception:  # noqa: BLE001 - reported when the image is analysed
            continue
        w, h = model_input_size(size, config.image_size, config.patch_size, config.fixed_size)
        tokens = num_prefix_tokens + (w // config.patch_size) * (h // config.patch_size)
        total += full_attention_bytes(config.depth, config.num_heads, tokens) + 128
    return total


def print_full_attention_estimate(paths: list[str], config: Any, num_prefix_tokens: int) -> None:
    """Say on stderr how much attention-full will write, before a run starts writing it."""
    import sys

    size = full_attention_estimate(paths, config, num_prefix_tokens)
    print(f"vitviz: attention-full writes the full attention tensors [layers, heads, T, T]: about "
          f"{size / 1e9:.2f} GB for {len(paths)} image(s) (they grow with the square of the tokens)", file=sys.stderr)
