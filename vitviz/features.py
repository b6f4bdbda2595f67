"""Figures of the representation inside a ViT, from one forward pass: mean attention distance and CLS attention
entropy per head, token norms, PCA of patch features as RGB and patch-to-patch cosine similarity (pure numpy).

Inputs are the arrays of an :class:`vitviz.engine.AnalysisResult` (whose ``attention`` holds the head statistics
already, computed during the forward pass: vitviz.attention) or full ``attentions [layers, heads, T, T]`` and
``hidden_states [layers, T, D]`` (block outputs before the final norm; ``Engine.analyze(..., features=True)``), with
``T = num_prefix_tokens + rows * cols`` and the patches in row-major order. A ``grid`` is either an object with
``rows``, ``cols`` (and ``patch_size``) attributes, such as :class:`vitviz.engine.PatchGrid`, or a tuple
``(rows, cols)`` / ``(rows, cols, patch_size)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

__all__ = [
    "FeatureSet",
    "patch_centers",
    "patch_distances",
    "mean_attention_distance",
    "uniform_attention_distance",
    "cls_attention_entropy",
    "token_norms",
    "principal_scores",
    "pca_foreground",
    "pca_rgb",
    "patch_similarity",
    "head_atlas_image",
]

PCA_SCALINGS = ("minmax", "percentile")


# ------------------------------------------------------------------------------------------------ geometry


def _grid_shape(grid: Any, patch_size: float | None = None) -> tuple[int, int, float | None]:
    """``(rows, cols, patch_size)`` of a PatchGrid-like object or a tuple; ``patch_size`` overrides the grid's."""
    if hasattr(grid, "rows") and hasattr(grid, "cols"):
        rows, cols, size = int(grid.rows), int(grid.cols), getattr(grid, "patch_size", None)
    else:
        values = tuple(grid)
        if len(values) not in (2, 3):
            raise ValueError(f"grid must be (rows, cols) or (rows, cols, patch_size), got {grid!r}")
        rows, cols = int(values[0]), int(values[1])
        size = values[2] if len(values) == 3 else None
    if rows < 1 or cols < 1:
        raise ValueError(f"the patch grid must have at least one row and column, got {rows}x{cols}")
    if patch_size is not None:
        size = patch_size
    return rows, cols, None if size is None else float(size)


def patch_centers(rows: int, cols: int, patch_size: float) -> np.ndarray:
    """``[rows * cols, 2]`` (x, y) centres of the patches in model-input pixels, row-major."""
    r, c = np.divmod(np.arange(rows * cols), cols)
    return np.stack([(c + 0.5) * patch_size, (r + 0.5) * patch_size], axis=1).astype(np.float64)


@lru_cache(maxsize=16)
def _distances(rows: int, cols: int, patch_size: float) -> np.ndarray:
    xy = patch_centers(rows, cols, patch_size)
    d = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)).astype(np.float32)
    d.flags.writeable = False
    return d


@lru_cache(maxsize=16)
def _distances_and_ones(rows: int, cols: int, patch_size: float) -> np.ndarray:
    """``[N, N, 2]``: the distances beside a column of ones, for :func:`mean_attention_distance`."""
    d = _distances(rows, cols, patch_size)
    both = np.stack([d, np.ones_like(d)], axis=-1)
    both.flags.writeable = False
    return both


def patch_distances(grid: Any, patch_size: float | None = None) -> np.ndarray:
    """``[N, N]`` Euclidean distances between patch centres in input pixels (cached per geometry, read-only)."""
    rows, cols, size = _grid_shape(grid, patch_size)
    if size is None:
        raise ValueError("the patch size is needed for distances in pixels (pass patch_size=)")
    return _distances(rows, cols, size)


def _check_attentions(attentions: np.ndarray, num_prefix_tokens: int, num_patches: int | None = None) -> np.ndarray:
    a = np.asarray(attentions)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"expected attentions [..., T, T], got shape {a.shape}")
    if not 0 <= num_prefix_tokens < a.shape[-1]:
        raise ValueError(f"{num_prefix_tokens} prefix tokens leave no patch among {a.shape[-1]} tokens")
    if num_patches is not None and a.shape[-1] != num_prefix_tokens + num_patches:
        raise ValueError(
            f"attentions over {a.shape[-1]} tokens do not match "
            f"{num_prefix_tokens} prefix tokens + {num_patches} patches"
        )
    return a


# ------------------------------------------------------------------------------------------------ head statistics


def mean_attention_distance(
    attentions: np.ndarray | Sequence[np.ndarray], grid: Any, num_prefix_tokens: int = 1,
    patch_size: float | None = None,
) -> np.ndarray:
    """Mean attention distance of every head in input pixels (Dosovitskiy et al. 2021, Fig. 7): ``[..., heads]``.

    For each patch query q: its attention to the patch keys only, renormalised to sum to 1, weighted by the distance
    between patch centres, ``sum_k a_qk * |pos_q - pos_k|``; then the mean over the patch queries. ``attentions``
    is ``[..., T, T]`` (e.g. ``[layers, heads, T, T]``), or a list of same-shape arrays read as stacked (one
    ``[heads, T, T]`` per layer, as a forward pass gives them) without stacking them. A query that gives the patches
    no attention at all (possible only in hand-made matrices) is left out of the mean; NaN when every query is.
    """
    rows, cols, size = _grid_shape(grid, patch_size)
    if size is None:
        raise ValueError("the patch size is needed for distances in pixels (pass patch_size=)")
    n = rows * cols
    p = num_prefix_tokens
    parts = [attentions] if isinstance(attentions, np.ndarray) else list(attentions)
    parts = [_check_attentions(a, p, n) for a in parts]
    if not parts or any(a.shape != parts[0].shape for a in parts):
        raise ValueError("expected attentions [..., T, T], or a list of arrays of one shape")
    lead = parts[0].shape[:-2] if isinstance(attentions, np.ndarray) else (len(parts), *parts[0].shape[:-2])
    return _mean_distance(np.concatenate([_distance_sums(a, rows, cols, size, p) for a in parts], axis=1), lead)


def _distance_sums(a: np.ndarray, rows: int, cols: int, size: float, p: int) -> np.ndarray:
    """``[N, B, 2]``: for each patch query of every head of ``a [..., T, T]`` (B heads in all), ``sum_k a_qk * d_qk``
    and the patch mass ``sum_k a_qk``, both from one batched product per query."""
    n = rows * cols
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float32)
    patches = a[..., p:, p:].reshape(-1, n, n).transpose(1, 0, 2)  # [q, B, k], a view
    return np.matmul(patches, _distances_and_ones(rows, cols, size).astype(a.dtype, copy=False))


def _mean_distance(both: np.ndarray, lead: tuple[int, ...]) -> np.ndarray:
    """``[*lead]`` mean attention distances from :func:`_distance_sums` ``[N, B, 2]`` (B = the product of lead)."""
    n = both.shape[0]
    weighted = both[..., 0].T.reshape(*lead, n).astype(np.float64)
    mass = both[..., 1].T.reshape(*lead, n).astype(np.float64)
    valid = mass > 0
    per_query = np.where(valid, weighted / np.where(valid, mass, 1.0), 0.0)
    count = valid.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (per_query.sum(axis=-1) / count).astype(np.float32)


def uniform_attention_distance(grid: Any, patch_size: float | None = None) -> float:
    """Mean attention distance of a head attending uniformly to every patch (a reference level for the atlas)."""
    return float(patch_distances(grid, patch_size).mean(dtype=np.float64))


def cls_attention_entropy(attentions: np.ndarray, num_prefix_tokens: int = 1) -> np.ndarray:
    """Entropy in nats of the CLS row's attention to the patch keys, renormalised to sum to 1: ``[..., heads]``.

    ``log(N)`` for uniform attention over N patches, 0 for attention to a single patch; NaN when the CLS row gives
    the patches no attention at all (only in hand-made matrices). ``attentions`` may also be the prefix tokens' rows
    alone, ``[..., P, T]`` (what an analysis keeps: vitviz.attention).
    """
    a = np.asarray(attentions)
    if a.ndim < 2 or not 0 <= num_prefix_tokens < a.shape[-1] or a.shape[-2] < 1:
        raise ValueError(f"expected attention rows [..., rows, T] with T > {num_prefix_tokens}, got {a.shape}")
    row = a[..., 0, num_prefix_tokens:].astype(np.float64)
    mass = row.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        prob = row / mass
        plogp = np.where(prob > 0, prob * np.log(np.where(prob > 0, prob, 1.0)), 0.0)
        ent = -plogp.sum(axis=-1)
    ent = np.where(mass[..., 0] > 0, ent, np.nan)
    return np.maximum(ent, 0.0).astype(np.float32)  # -0.0 and rounding below zero for one-hot rows


def token_norms(hidden_states: np.ndarray) -> np.ndarray:
    """L2 norm of every token: ``[..., T, D] -> [..., T]`` (prefix tokens first, as in the hidden states)."""
    h = np.asarray(hidden_states)
    if h.ndim < 2:
        raise ValueError(f"expected hidden states [..., T, D], got shape {h.shape}")
    if h.dtype != np.float64:
        h = h.astype(np.float32, copy=False)
    return np.sqrt(np.einsum("...d,...d->...", h, h)).astype(np.float32)


# ------------------------------------------------------------------------------------------------ PCA


def _patch_tokens(hidden_layer: np.ndarray, num_prefix_tokens: int, rows: int, cols: int) -> np.ndarray:
    h = np.asarray(hidden_layer)
    if h.ndim != 2:
        raise ValueError(f"expected one layer's hidden states [T, D], got shape {h.shape}")
    if h.shape[0] != num_prefix_tokens + rows * cols:
        raise ValueError(
            f"{h.shape[0]} tokens do not match {num_prefix_tokens} prefix tokens + {rows}x{cols} patches"
        )
    return h[num_prefix_tokens:]


def principal_scores(x: np.ndarray, k: int = 3) -> np.ndarray:
    """Scores ``[N, k]`` of the rows of ``x [N, D]`` on its first ``k`` principal components (``x`` centred first).

    Sign convention (so the result does not depend on the arbitrary sign an eigensolver returns, and is the same
    for ``x`` and ``-x``): each component's sign makes the third moment of its scores positive, i.e. the longer
    tail of the distribution points to +; for a symmetric distribution (third moment below 1e-6 of sum |s|^3), the
    patch with the largest |score| is positive. Components beyond the rank of ``x`` (variance below 1e-10 of the
    first's) are returned as zeros, as are missing ones when ``min(N, D) < k``.
    """
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    xc = x - x.mean(axis=0)
    scores = np.zeros((n, k))
    m = min(k, n, d)
    if m == 0:
        return scores
    # The smaller of the two Gram matrices: N x N when there are fewer patches than channels, else D x D.
    if n <= d:
        w, u = np.linalg.eigh(xc @ xc.T)
        top = np.argsort(w)[::-1][:m]
        scores[:, :m] = u[:, top] * np.sqrt(np.maximum(w[top], 0.0))
    else:
        w, v = np.linalg.eigh(xc.T @ xc)
        top = np.argsort(w)[::-1][:m]
        scores[:, :m] = xc @ v[:, top]
    w_top = np.maximum(w[top], 0.0)
    scores[:, :m][:, w_top <= 1e-10 * max(w_top[0], 1e-300)] = 0.0
    cubes = (scores**3).sum(axis=0)
    scale = (np.abs(scores) ** 3).sum(axis=0)
    extreme = scores[np.abs(scores).argmax(axis=0), np.arange(k)]
    sign = np.where(np.abs(cubes) > 1e-6 * scale, np.sign(cubes), np.sign(extreme))
    return scores * np.where(sign == 0, 1.0, sign)


def pca_foreground(
    hidden_layer: np.ndarray, num_prefix_tokens: int, grid: Any, threshold: float = 0.0
) -> np.ndarray:
    """DINOv2-style foreground ``[rows, cols]`` (bool): patches whose first principal-component score, under the
    sign convention of :func:`principal_scores`, exceeds ``threshold`` standard deviations of that score.

    With the default 0 that is the side of the first component's mean where its longer tail lies, which is the
    object when the object covers less of the image than the background; it is a heuristic, as in DINOv2's demos.
    """
    rows, cols, _ = _grid_shape(grid)
    first = principal_scores(_patch_tokens(hidden_layer, num_prefix_tokens, rows, cols), 1)[:, 0]
    std = first.std()
    return (first > threshold * std).reshape(rows, cols) if std > 0 else np.zeros((rows, cols), bool)


def _scale01(scores: np.ndarray, scaling: str, percentile: float) -> np.ndarray:
    if scaling == "minmax":
        lo, hi = scores.min(axis=0), scores.max(axis=0)
    elif scaling == "percentile":
        if not 0.0 <= percentile < 50.0:
            raise ValueError(f"percentile must be in [0, 50), not {percentile}")
        lo, hi = np.percentile(scores, [percentile, 100.0 - percentile], axis=0)
    else:
        raise ValueError(f"scaling must be one of {', '.join(PCA_SCALINGS)}, not {scaling!r}")
    span = hi - lo
    out = (scores - lo) / np.where(span > 0, span, 1.0)
    out[:, span <= 0] = 0.0  # a component without variance is black
    return np.clip(out, 0.0, 1.0)


def pca_rgb(
    hidden_layer: np.ndarray,
    num_prefix_tokens: int,
    grid: Any,
    foreground: bool = False,
    scaling: str = "minmax",
    percentile: float = 2.0,
    threshold: float = 0.0,
) -> np.ndarray:
    """First three principal components of one layer's patch tokens as RGB: ``[rows, cols, 3]`` float32 in 0..1.

    The PCA is over the N patch tokens (prefix tokens excluded), centred; signs follow :func:`principal_scores`, so
    colours do not change when an eigensolver flips a component. Each component is scaled to 0..1 on its own:
    ``"minmax"`` maps its minimum to 0 and maximum to 1; ``"percentile"`` maps the ``percentile``-th and
    ``(100 - percentile)``-th percentiles to 0 and 1 and clips (robust to a few outlier tokens).
    ``foreground``: as DINOv2 does, keep the patches of :func:`pca_foreground` (``threshold``), run the PCA again
    over those patches only, and paint the background black.
    """
    rows, cols, _ = _grid_shape(grid)
    tokens = _patch_tokens(hidden_layer, num_prefix_tokens, rows, cols)
    if scaling not in PCA_SCALINGS:
        raise ValueError(f"scaling must be one of {', '.join(PCA_SCALINGS)}, not {scaling!r}")
    rgb = np.zeros((rows * cols, 3), np.float32)
    if foreground:
        mask = pca_foreground(hidden_layer, num_prefix_tokens, (rows, cols), threshold).ravel()
        if mask.sum() >= 2:
            rgb[mask] = _scale01(principal_scores(tokens[mask], 3), scaling, percentile)
    else:
        rgb[:] = _scale01(principal_scores(tokens, 3), scaling, percentile)
    return rgb.reshape(rows, cols, 3)


def patch_similarity(hidden_layer: np.ndarray, patch_index: int, num_prefix_tokens: int, grid: Any) -> np.ndarray:
    """Cosine similarity ``[rows, cols]`` (-1..1, float32) of patch ``patch_index``'s token to every patch token."""
    rows, cols, _ = _grid_shape(grid)
    tokens = _patch_tokens(hidden_layer, num_prefix_tokens, rows, cols).astype(np.float64)
    if not 0 <= patch_index < rows * cols:
        raise ValueError(f"patch {patch_index} is outside the {rows}x{cols} grid")
    norms = np.linalg.norm(tokens, axis=1)
    unit = tokens / np.where(norms > 0, norms, 1.0)[:, None]
    return (unit @ unit[patch_index]).reshape(rows, cols).astype(np.float32)


@dataclass
class FeatureSet:
    """The figures of one analysis result: head statistics and token norms of every layer computed at once, PCA
    colours cached per (layer, foreground, scaling), similarity maps on demand. Build it off the UI thread."""

    hidden_states: np.ndarray  # [layers, T, D]
    grid: Any
    num_prefix_tokens: int
    mean_distance: np.ndarray  # [layers, heads], input pixels
    cls_entropy: np.ndarray  # [layers, heads], nats
    token_norms: np.ndarray  # [layers, T]
    uniform_distance: float  # mean attention distance of uniform attention (reference level)
    _pca: dict[tuple[int, bool, str], np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def compute(
        cls, attentions: np.ndarray, hidden_states: np.ndarray, grid: Any, num_prefix_tokens: int,
        pca_layers: tuple[int, ...] = (),
    ) -> "FeatureSet":
        """All head statistics (from full attention tensors) and token norms, plus the plain min-max PCA of
        ``pca_layers`` (negative: from the end)."""
        return cls.from_statistics(mean_attention_distance(attentions, grid, num_prefix_tokens),
                                   cls_attention_entropy(attentions, num_prefix_tokens), hidden_states, grid,
                                   num_prefix_tokens, pca_layers)

    @classmethod
    def from_statistics(
        cls, mean_distance: np.ndarray, cls_entropy: np.ndarray, hidden_states: np.ndarray, grid: Any,
        num_prefix_tokens: int, pca_layers: tuple[int, ...] = (),
    ) -> "FeatureSet":
        """From head statistics computed already (e.g. during the forward pass: vitviz.attention)."""
        h = np.asarray(hidden_states)
        fs = cls(
            hidden_states=h,
            grid=grid,
            num_prefix_tokens=num_prefix_tokens,
            mean_distance=np.asarray(mean_distance, np.float32),
            cls_entropy=np.asarray(cls_entropy, np.float32),
            token_norms=token_norms(h),
            uniform_distance=uniform_attention_distance(grid),
        )
        for layer in pca_layers:
            fs.pca(layer)
        return fs

    @classmethod
    def from_result(cls, result: Any, pca_layers: tuple[int, ...] = ()) -> "FeatureSet":
        """From an :class:`vitviz.engine.AnalysisResult` analysed with ``features=True``."""
        if result.attention is None or result.hidden_states is None:
            raise ValueError("this result holds no hidden states: analyse it with features=True")
        a = result.attention
        return cls.from_statistics(a.mean_distance, a.cls_entropy(), result.hidden_states, result.grid,
                                   result.num_prefix_tokens, pca_layers)

    @property
    def num_layers(self) -> int:
        return int(self.hidden_states.shape[0])

    def pca(self, layer: int, foreground: bool = False, scaling: str = "minmax") -> np.ndarray:
        """:func:`pca_rgb` of one layer ``[rows, cols, 3]``, computed once per (layer, foreground, scaling)."""
        layer = layer % self.num_layers
        key = (layer, bool(foreground), scaling)
        if key not in self._pca:
            self._pca[key] = pca_rgb(self.hidden_states[layer], self.num_prefix_tokens, self.grid, foreground, scaling)
        return self._pca[key]

    def similarity(self, layer: int, patch_index: int) -> np.ndarray:
        """:func:`patch_similarity` at one layer ``[rows, cols]`` (cheap: one matrix-vector product)."""
        return patch_similarity(self.hidden_states[layer], patch_index, self.num_prefix_tokens, self.grid)

    def atlas_image(self, title: str = "") -> np.ndarray:
        """:func:`head_atlas_image` of these statistics."""
        rows, cols, _ = _grid_shape(self.grid)
        return head_atlas_image(self.mean_distance, self.cls_entropy, self.uniform_distance, rows * cols, title)


# ------------------------------------------------------------------------------------------------ head atlas image

_HEAD_COLORS = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
    (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (0, 0, 128), (128, 128, 0),
    (0, 128, 128), (255, 215, 0), (128, 0, 0), (0, 255, 127),
)


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [lo, hi]."""
    if not np.isfinite(hi - lo) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    mag = 10.0 ** np.floor(np.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = np.ceil(lo / step - 1e-9) * step
    return [float(v) for v in np.arange(start, hi + step * 1e-6, step)]


@lru_cache(maxsize=4)
def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1, scalable
    except TypeError:
        return ImageFont.load_default()


def _scatter_panel(
    values: np.ndarray, title: str, ylabel: str, reference: float | None, reference_label: str,
    size: tuple[int, int], font: Any, small: Any,
) -> Any:
    from PIL import Image, ImageDraw

    width, height = size
    img = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    left, right, top, bottom = 64, 16, 34, 46
    x0, x1, y0, y1 = left, width - right, top, height - bottom
    layers, heads = values.shape
    finite = values[np.isfinite(values)]
    hi = max([float(finite.max()) if finite.size else 1.0] + ([reference] if reference is not None else []))
    hi = hi * 1.08 if hi > 0 else 1.0
    ticks = _nice_ticks(0.0, hi)
    hi = max(hi, ticks[-1])

    def px(layer: float) -> float:
        return x0 + (layer + 0.5) / layers * (x1 - x0)

    def py(v: float) -> float:
        return y1 - v / hi * (y1 - y0)

    draw.text(((x0 + x1) / 2, 8), title, fill=(20, 20, 20), font=font, anchor="ma")
    for t in ticks:
        y = py(t)
        draw.line([(x0, y), (x1, y)], fill=(232, 232, 232))
        draw.text((x0 - 6, y), f"{t + 0.0:g}", fill=(60, 60, 60), font=small, anchor="rm")
    label_every = max(1, int(np.ceil(layers / 16)))
    for layer in range(layers):
        if layer % label_every == 0:
            draw.text((px(layer), y1 + 6), str(layer), fill=(60, 60, 60), font=small, anchor="ma")
    draw.text(((x0 + x1) / 2, height - 6), "layer", fill=(20, 20, 20), font=small, anchor="md")
    draw.text((6, (y0 + y1) / 2), ylabel, fill=(20, 20, 20), font=small, anchor="lm")
    draw.rectangle([x0, y0, x1, y1], outline=(120, 120, 120))
    if reference is not None and np.isfinite(reference):
        y = py(reference)
        for xs in np.arange(x0, x1, 10):
            draw.line([(xs, y), (min(xs + 5, x1), y)], fill=(90, 90, 90))
        draw.text((x1 - 4, y - 3), reference_label, fill=(90, 90, 90), font=small, anchor="rd")
    mean = np.array([np.nanmean(v) if np.isfinite(v).any() else np.nan for v in values])
    pts = [(px(i), py(m)) for i, m in enumerate(mean) if np.isfinite(m)]
    if len(pts) > 1:
        draw.line(pts, fill=(0, 0, 0), width=2)
    spread = 0.5 / layers * (x1 - x0)  # heads side by side within half a layer's column
    r = 3.5
    for layer in range(layers):
        for head in range(heads):
            v = values[layer, head]
            if not np.isfinite(v):
                continue
            x = px(layer) + ((head + 0.5) / heads - 0.5) * spread
            y = py(float(v))
            draw.ellipse([x - r, y - r, x + r, y + r], fill=_HEAD_COLORS[head % len(_HEAD_COLORS)],
                         outline=(30, 30, 30))
    return img


def head_atlas_image(
    mean_distance: np.ndarray,
    cls_entropy: np.ndarray | None = None,
    uniform_distance: float | None = None,
    num_patches: int | None = None,
    title: str = "",
    panel_size: tuple[int, int] = (520, 360),
) -> np.ndarray:
    """The head atlas as an RGB uint8 image: every head of every layer at (layer, mean attention distance), and
    beside it (layer, CLS attention entropy) when given; heads are coloured by index, the black line is the mean
    over heads, dashed lines mark uniform attention (``uniform_distance``; ``log(num_patches)`` nats).

    Drawn with Pillow (already a dependency) so the command line needs neither Qt nor matplotlib.
    """
    from PIL import Image, ImageDraw

    mad = np.asarray(mean_distance, dtype=np.float64)
    if mad.ndim != 2 or mad.size == 0:
        raise ValueError(f"expected mean attention distances [layers, heads], got shape {mad.shape}")
    font, small = _font(15), _font(12)
    panels = [_scatter_panel(mad, "Mean attention distance", "px", uniform_distance, "uniform attention",
                             panel_size, font, small)]
    if cls_entropy is not None:
        ent = np.asarray(cls_entropy, dtype=np.float64)
        if ent.shape != mad.shape:
            raise ValueError(f"entropy shape {ent.shape} differs from distance shape {mad.shape}")
        ref = float(np.log(num_patches)) if num_patches else None
        panels.append(_scatter_panel(ent, "CLS attention entropy", "nats", ref, "uniform (log N)",
                                     panel_size, font, small))
    heads = mad.shape[1]
    legend_h = 22
    title_h = 24 if title else 0
    canvas = Image.new("RGB", (panel_size[0] * len(panels), panel_size[1] + legend_h + title_h), (255, 255, 255))
    for i, panel in enumerate(panels):
        canvas.paste(panel, (i * panel_size[0], title_h))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((canvas.width / 2, 4), title, fill=(20, 20, 20), font=font, anchor="ma")
    x, y = 64, title_h + panel_size[1] + 4
    draw.text((x, y + 7), "head", fill=(40, 40, 40), font=small, anchor="lm")
    x += 8 + int(draw.textlength("head", font=small))
    for head in range(heads):
        if x > canvas.width - 160:
            draw.text((x, y + 7), "...", fill=(40, 40, 40), font=small, anchor="lm")
            x += 20
            break
        draw.ellipse([x, y + 3, x + 8, y + 11], fill=_HEAD_COLORS[head % len(_HEAD_COLORS)], outline=(30, 30, 30))
        draw.text((x + 11, y + 7), str(head), fill=(40, 40, 40), font=small, anchor="lm")
        x += 18 + int(draw.textlength(str(head), font=small))
    draw.line([(x + 8, y + 7), (x + 28, y + 7)], fill=(0, 0, 0), width=2)
    draw.text((x + 32, y + 7), "mean over heads", fill=(40, 40, 40), font=small, anchor="lm")
    return np.asarray(canvas)
