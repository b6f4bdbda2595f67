"""What an analysis returns: a plain :class:`AnalysisResult` (numpy arrays and Python values) that the app and the
command line both consume, with its :class:`PatchGrid` and top-k :class:`Prediction` s (made by vitviz.engine)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .attention import AttentionMaps
    from .models.domain import DomainVerdict

__all__ = ["Prediction", "PatchGrid", "AnalysisResult"]


@dataclass
class Prediction:
    label: str
    index: int
    probability: float


@dataclass
class PatchGrid:
    """Geometry of the patch grid over the model input image."""

    rows: int
    cols: int
    patch_size: int
    input_size: tuple[int, int]  # (height, width) of the resized image the model saw
    original_size: tuple[int, int]  # (width, height) of the file, upright

    @property
    def num_patches(self) -> int:
        return self.rows * self.cols

    def patch_at(self, x: float, y: float) -> int | None:
        """Index of the patch containing input-image pixel (x, y), or None outside the image."""
        if not (0 <= x < self.input_size[1] and 0 <= y < self.input_size[0]):
            return None
        return int(y // self.patch_size) * self.cols + int(x // self.patch_size)

    def patch_box(self, index: int) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) pixel box of a patch in the input image (x1, y1 exclusive)."""
        r, c = divmod(index, self.cols)
        p = self.patch_size
        return c * p, r * p, (c + 1) * p, (r + 1) * p


@dataclass
class AnalysisResult:
    """Everything one analysis produced, as plain numpy arrays and Python values."""

    source: str
    image: np.ndarray  # uint8 [H, W, 3]: the resized image the model saw
    grid: PatchGrid
    model_name: str
    device: str
    labels: list[str] = field(default_factory=list)
    probabilities: np.ndarray | None = None  # [num_classes]
    predictions: list[Prediction] = field(default_factory=list)  # top-k, best first
    attention: AttentionMaps | None = None  # what the analysis kept of the attention (vitviz.attention)
    cls_attention: np.ndarray | None = None  # [layers, heads, rows, cols] CLS -> patch attention
    num_prefix_tokens: int = 1
    depth: np.ndarray | None = None  # [H, W] float32 at the input resolution
    depth_kind: str | None = None  # "metric" (metres) or "relative_inverse"
    depth_model_name: str | None = None
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds per stage
    notices: list[str] = field(default_factory=list)
    # The same framing as ``image`` at an integer multiple of its size (up to DISPLAY_MAX_SIDE, never above the
    # original's resolution), for enlarged views: maps drawn over it keep the photo's detail.  None: use ``image``.
    display_image: np.ndarray | None = None
    # Every block's output tokens before the final norm, ``[layers, T, D]`` float32, from the same forward pass as
    # ``attentions``; only when ``Engine.analyze(..., features=True)`` (see vitviz.features).  None otherwise.
    hidden_states: np.ndarray | None = None
    # Whether the image looks like the model's training data; None for models without an out-of-domain detector.
    domain: DomainVerdict | None = None
    logits: np.ndarray | None = None  # [num_classes] float32, before the softmax of ``probabilities``
    # Heads knocked out in this analysis, (layer, head) 0-based and sorted (Engine.analyze's ``ablate``).
    ablated: list[tuple[int, int]] = field(default_factory=list)
    # Image-text models (CLIP, SigLIP): the image's normalised embedding [dim] (labels are re-scored from it without
    # another forward pass: Engine.rescore), the prompt templates, and the scoring rule ("softmax" or "sigmoid").
    image_embedding: np.ndarray | None = None
    templates: list[str] = field(default_factory=list)
    scoring: str = "softmax"
    # Models that pool with attention (SigLIP): the pooling probe's attention per head [heads, rows, cols], the map
    # of the token the scores are read from.
    pool_attention: np.ndarray | None = None

    def detail_image(self) -> tuple[np.ndarray, int]:
        """The sharpest copy of the model's view and its scale relative to ``image`` (a whole number >= 1)."""
        if self.display_image is None:
            return self.image, 1
        return self.display_image, self.display_image.shape[0] // self.image.shape[0]

    @property
    def num_layers(self) -> int:
        return 0 if self.cls_attention is None else self.cls_attention.shape[0]

    @property
    def num_heads(self) -> int:
        return 0 if self.cls_attention is None else self.cls_attention.shape[1]

    @property
    def attentions(self) -> np.ndarray | None:
        """The full attention tensors ``[layers, heads, T, T]`` when the analysis kept them (see ATTENTION_MODES;
        stacked from the forward pass's per-layer tensors the first time it is read: ``attention.full_layers``)."""
        return None if self.attention is None else self.attention.full

    def query_attention(self, layer: int, patch_index: int) -> np.ndarray:
        """Attention of one patch's query to every patch, all heads: ``[heads, rows, cols]`` (computed on first
        use for the patch, from the kept queries and keys, then cached)."""
        if self.attention is None or not self.attention.answers_queries:
            raise ValueError("this result holds no attention beyond the CLS rows")
        return self.attention.query_rows(patch_index)[layer]

    def rollout(self, upto_layer: int | None = None, head_fusion: str = "mean", discard_ratio: float = 0.0,
                patch_index: int | None = None) -> np.ndarray:
        """Attention rollout to the patches after ``upto_layer`` (default: the last), ``[rows, cols]``: the row of
        CLS, or of ``patch_index``'s token (computed on first use for the patch, then cached)."""
        if self.attention is None:
            raise ValueError("this result holds no attention")
        a, p = self.attention, self.num_prefix_tokens
        if patch_index is None:
            row = a.rollout(upto_layer, head_fusion, discard_ratio)
        else:
            start = np.zeros(a.num_tokens)
            start[p + patch_index] = 1.0
            if head_fusion == "mean" and not discard_ratio:
                row = a.query_rollout(patch_index)[-1 if upto_layer is None else upto_layer]
            else:
                row = a.rollout(upto_layer, head_fusion, discard_ratio, start)
        return np.asarray(row[p:], np.float32).reshape(self.grid.rows, self.grid.cols)

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable summary: predictions, geometry, timings, device."""
        return {
            "source": self.source,
            "model": self.model_name,
            "depth_model": self.depth_model_name,
            "device": self.device,
            "input_size": {"height": self.grid.input_size[0], "width": self.grid.input_size[1]},
            "original_size": {"width": self.grid.original_size[0], "height": self.grid.original_size[1]},
            "patch_grid": {"rows": self.grid.rows, "cols": self.grid.cols, "patch_size": self.grid.patch_size},
            "layers": self.num_layers,
            "heads": self.num_heads,
            "predictions": [{"label": p.label, "index": p.index, "probability": p.probability} for p in self.predictions],
            "depth": None
            if self.depth is None
            else {
                "kind": self.depth_kind,
                "min": float(np.min(self.depth)),
                "max": float(np.max(self.depth)),
                "mean": float(np.mean(self.depth)),
            },
            "timings_ms": {k: round(v, 3) for k, v in self.timings.items()},
            "notices": list(self.notices),
        } | ({} if self.image_embedding is None else {"templates": list(self.templates), "scoring": self.scoring,
                                                       "labels": list(self.labels)}) | (
            {} if self.domain is None else {"domain": self.domain.to_json()}) | (
            {"ablated": [{"layer": layer, "head": head} for layer, head in self.ablated]} if self.ablated else {})
