"""Two models on the same image: matched layers, their attention correlations, depth aligned and compared.

Pure numpy on two :class:`~vitviz.engine.AnalysisResult`\\ s (model A, the reference, and model B); the app's
comparison view and ``vitviz analyze --compare`` both use it.

- Layers are matched by relative depth: layer ``l`` of A with ``round(l * (L_B - 1) / (L_A - 1))`` of B (halves round
  up; a single-layer A matches B's layer 0).
- Depth: B is aligned to A by the least-squares scale and shift, in inverse depth when either model's depth is
  relative (metric depth is inverted first), else in metres; the disagreement is ``|A - aligned B|`` in that space,
  and AbsRel and delta<1.25 measure B against A there.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .render import resize_map

if TYPE_CHECKING:
    from .engine import AnalysisResult

__all__ = [
    "match_layer", "layer_pairs", "resample_to", "pearson", "to_common_grid", "DepthAlignment", "align_depth",
    "Comparison", "compare", "top1_agree", "mean_map", "COMPARE_JSON", "COMPARE_PNG", "compare_sheet", "write_compare",
]

COMPARE_JSON = "compare.json"
COMPARE_PNG = "compare.png"
MIN_DEPTH = 1e-6  # metric depths below this are not inverted (and reference values below it are left out)


def match_layer(layer: int, layers_a: int, layers_b: int) -> int:
    """The layer of B at the relative depth of A's ``layer``: ``round(layer * (L_B - 1) / (L_A - 1))``, halves up;
    0 when A has a single layer."""
    if layers_a < 1 or layers_b < 1:
        raise ValueError("both models need at least one layer")
    if not 0 <= layer < layers_a:
        raise ValueError(f"layer {layer} is out of range for a model with {layers_a} layers")
    if layers_a == 1:
        return 0
    return min(layers_b - 1, int(math.floor(layer * (layers_b - 1) / (layers_a - 1) + 0.5)))


def layer_pairs(layers_a: int, layers_b: int) -> list[tuple[int, int]]:
    """``(l, match_layer(l))`` for every layer ``l`` of A."""
    return [(layer, match_layer(layer, layers_a, layers_b)) for layer in range(layers_a)]


def resample_to(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A 2-D map resized (bilinear, pixel-centre aligned) to ``shape = (rows, cols)``, float64."""
    if np.shape(values) == tuple(shape):
        return np.asarray(values, np.float64)
    return np.asarray(resize_map(np.asarray(values, np.float32), tuple(shape), smooth=True), np.float64)


def to_common_grid(map_a: np.ndarray, map_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both maps on the finer of their two grids (the one with more cells; A's on a tie)."""
    a, b = np.asarray(map_a, np.float64), np.asarray(map_b, np.float64)
    shape = a.shape if a.size >= b.size else b.shape
    return resample_to(a, shape), resample_to(b, shape)


def pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson's correlation of two equally shaped arrays; None when either is constant."""
    x = np.asarray(x, np.float64).ravel() - np.mean(x)
    y = np.asarray(y, np.float64).ravel() - np.mean(y)
    norm = math.sqrt(float(x @ x) * float(y @ y))
    if norm <= 0.0 or not math.isfinite(norm):
        return None
    return float(np.clip(float(x @ y) / norm, -1.0, 1.0))


@dataclass
class DepthAlignment:
    """B's depth aligned to A's: ``aligned = scale * b + shift`` in ``space`` ("depth", metres; or "inverse depth").

    ``reference`` and ``aligned`` are at A's resolution; ``difference`` is ``|reference - aligned|``."""

    space: str
    scale: float
    shift: float
    reference: np.ndarray
    aligned: np.ndarray
    difference: np.ndarray
    absrel: float | None  # mean |aligned - reference| / reference over the reference's positive pixels
    delta1: float | None  # the fraction of those pixels where max(aligned / reference, reference / aligned) < 1.25

    @property
    def unit(self) -> str:
        return "m" if self.space == "depth" else "inverse depth"


def _in_space(depth: np.ndarray, kind: str | None, space: str) -> np.ndarray:
    d = np.asarray(depth, np.float64)
    if space == "depth" or kind not in ("metric", "relative"):
        return d  # depth (metres, or a user's model's own units), or a relative model's inverse depth as it is
    return 1.0 / np.maximum(d, MIN_DEPTH)


def align_depth(depth_a: np.ndarray, kind_a: str | None, depth_b: np.ndarray, kind_b: str | None) -> DepthAlignment:
    """Align B's depth map to A's (B resized to A's resolution first) by least squares; see :class:`DepthAlignment`."""
    depths = ("metric", "relative")  # larger = farther (a user's model's depth output is taken as depth)
    space = "depth" if kind_a in depths and kind_b in depths else "inverse depth"
    a = _in_space(depth_a, kind_a, space)
    b = _in_space(resample_to(depth_b, a.shape), kind_b, space)
    if np.array_equal(a, b):
        scale, shift = 1.0, 0.0  # the same map (a model compared with itself): exactly, not to rounding
    else:
        design = np.stack([b.ravel(), np.ones(b.size)], axis=1)
        (scale, shift), *_ = np.linalg.lstsq(design, a.ravel(), rcond=None)
    if not np.isfinite([scale, shift]).all():
        scale, shift = 0.0, float(np.mean(a))
    aligned = scale * b + shift
    valid = a > MIN_DEPTH
    absrel = delta1 = None
    if valid.any():
        ref, est = a[valid], aligned[valid]
        absrel = float(np.mean(np.abs(est - ref) / ref))
        ratio = np.maximum(est / ref, ref / np.maximum(est, MIN_DEPTH))
        delta1 = float(np.mean((est > 0) & (ratio < 1.25)))
    return DepthAlignment(space, float(scale), float(shift), a.astype(np.float32), aligned.astype(np.float32),
                          np.abs(a - aligned).astype(np.float32), absrel, delta1)


def top1_agree(a: AnalysisResult, b: AnalysisResult) -> bool | None:
    """Whether both models' top classes are the same label; None when their label sets differ (or one has none)."""
    if not a.predictions or not b.predictions or set(a.labels) != set(b.labels):
        return None
    return a.predictions[0].label == b.predictions[0].label


def _predictions(result: AnalysisResult) -> list[dict[str, Any]]:
    return [{"label": p.label, "index": p.index, "probability": p.probability} for p in result.predictions]


@dataclass
class Comparison:
    """What :func:`compare` found: A and B, their matched layers with the correlations of their mean CLS maps, the top
    class agreement and the depth alignment (None unless both give depth)."""

    a: AnalysisResult
    b: AnalysisResult
    pairs: list[tuple[int, int]] = field(default_factory=list)
    correlations: list[float | None] = field(default_factory=list)
    top1_agree: bool | None = None
    depth: DepthAlignment | None = None

    def to_json(self) -> dict[str, Any]:
        """``compare.json``'s content."""
        return {
            "a": {"model": self.a.model_name, "predictions": _predictions(self.a)},
            "b": {"model": self.b.model_name, "predictions": _predictions(self.b)},
            "top1_agree": self.top1_agree,
            "depth_absrel": None if self.depth is None else self.depth.absrel,
            "depth_delta1": None if self.depth is None else self.depth.delta1,
            "depth_space": None if self.depth is None else self.depth.space,
            "layer_pairs": [{"a": la, "b": lb, "correlation": r} for (la, lb), r in zip(self.pairs, self.correlations)],
        }


def mean_map(result: AnalysisResult, layer: int) -> np.ndarray:
    """The mean over heads of ``result``'s CLS attention map of ``layer``, ``[rows, cols]``."""
    return np.asarray(result.cls_attention[layer], np.float64).mean(axis=0)


def compare(a: AnalysisResult, b: AnalysisResult) -> Comparison:
    """Compare B with A (see the module's description)."""
    out = Comparison(a, b, top1_agree=top1_agree(a, b))
    if a.num_layers and b.num_layers:
        out.pairs = layer_pairs(a.num_layers, b.num_layers)
        out.correlations = [pearson(*to_common_grid(mean_map(a, la), mean_map(b, lb))) for la, lb in out.pairs]
    if a.depth is not None and b.depth is not None:
        out.depth = align_depth(a.depth, a.depth_kind, b.depth, b.depth_kind)
    return out


# --------------------------------------------------------------------------------------------------- the sheet

def _fit(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An RGB uint8 image resized to ``shape = (height, width)`` (bilinear)."""
    if image.shape[:2] == tuple(shape):
        return image
    channels = [resize_map(image[..., c].astype(np.float32), shape) for c in range(3)]
    return np.clip(np.stack(channels, axis=-1) + 0.5, 0, 255).astype(np.uint8)


def _depth_rgb(result: AnalysisResult, cmap: str) -> np.ndarray:
    from .render import apply_colormap, normalize

    values = normalize(result.depth)
    return apply_colormap(1.0 - values if result.depth_kind in ("metric", "relative") else values, cmap)  # near = bright


def compare_sheet(comparison: Comparison, layer: int = -1, cmap: str = "inferno", depth_cmap: str = "turbo",
                  alpha: float = 0.6) -> np.ndarray:
    """One picture of both models: for A (top row) and B (bottom row), the input, the mean CLS map of the matched
    layers (A's ``layer``, default: the last), the rollout up to it and the depth; beside A's depth, the
    disagreement ``|A - aligned B|``. Every tile at A's input size; missing pieces are left white."""
    from .render import apply_colormap, normalize, overlay, tile_images

    a, b = comparison.a, comparison.b
    shape = a.image.shape[:2]
    blank = np.full((*shape, 3), 255, np.uint8)
    la = (layer if layer >= 0 else a.num_layers + layer) if a.num_layers else 0
    lb = match_layer(la, a.num_layers, b.num_layers) if a.num_layers and b.num_layers else 0
    tiles, titles = [], []
    for tag, result, lay in (("A", a, la), ("B", b, lb)):
        name = result.model_name
        tiles.append(_fit(result.image, shape))
        titles.append(f"{tag}: {name}"[:40])
        if result.num_layers:
            tiles.append(_fit(overlay(result.image, normalize(mean_map(result, lay)), cmap, alpha), shape))
            tiles.append(_fit(overlay(result.image, normalize(result.rollout(lay)), cmap, alpha), shape))
            titles += [f"{tag} mean, layer {lay}", f"{tag} rollout 0-{lay}"]
        else:
            tiles += [blank, blank]
            titles += ["", ""]
        tiles.append(_fit(_depth_rgb(result, depth_cmap), shape) if result.depth is not None else blank)
        titles.append(f"{tag} depth" if result.depth is not None else f"{tag}: no depth")
        if tag == "A":
            d = comparison.depth
            tiles.append(blank if d is None else apply_colormap(normalize(d.difference), "magma"))
            titles.append("" if d is None else "|A - aligned B|")
        else:
            tiles.append(blank)
            titles.append("")
    return tile_images(tiles, 5, titles)


def write_compare(comparison: Comparison, folder: Path, layer: int = -1, cmap: str = "inferno",
                  depth_cmap: str = "turbo", alpha: float = 0.6, png_compress_level: int = 6) -> list[Path]:
    """Write ``compare.json`` and ``compare.png`` into ``folder``; returns the files written."""
    from .pngfile import save_png

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / COMPARE_JSON).write_text(json.dumps(comparison.to_json(), indent=2) + "\n", "utf-8")
    save_png(folder / COMPARE_PNG, compare_sheet(comparison, layer, cmap, depth_cmap, alpha), png_compress_level)
    return [folder / COMPARE_JSON, folder / COMPARE_PNG]
