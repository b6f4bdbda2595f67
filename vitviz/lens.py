"""The logit lens of a ViT classifier (Vilas, Schaumlöffel and Roig 2023): what the model would answer at every layer.

Block ``l``'s output tokens go through the model's final norm and its classifier, as the last block's do:

- the token the classifier reads (CLS, or CLS and the mean patch token for a "cls+mean" head) gives class
  probabilities per layer, ``cls_probabilities [L, C]``; its last row is the model's own prediction;
- every patch token on its own gives, per layer, a map of class probabilities over the patches; the lens keeps the
  top-K classes of the final prediction, ``patch_probabilities [L, rows, cols, K]``. For a "cls+mean" head, a patch
  token stands in for both halves of the head's input.

Everything is computed from the hidden states an analysis keeps with ``features=True`` (block outputs before the
final norm), several layers at a time (at most :data:`LOGITS_BYTES` of patch logits at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["LogitLens", "logit_lens", "LENS_TOPK"]

LENS_TOPK = 5  # classes of the final prediction whose patch maps are kept
LOGITS_BYTES = 32 * 2**20  # patch logits computed at once (several layers' [N, C] together)


@dataclass
class LogitLens:
    """One image's logit lens (float32 numpy arrays)."""

    cls_probabilities: np.ndarray  # [L, C]: row l from block l's output (0-based)
    patch_probabilities: np.ndarray  # [L, rows, cols, K]: the probability of classes[k] from each patch token
    classes: np.ndarray  # [K] int64: the top-K classes of the final prediction, best first
    labels: list[str]  # their names

    @property
    def num_layers(self) -> int:
        return int(self.cls_probabilities.shape[0])

    def first_layer_of(self, class_index: int) -> int | None:
        """The first layer from which ``class_index`` stays the top class to the end (None if it never does)."""
        top = self.cls_probabilities.argmax(axis=1)
        if top[-1] != class_index:
            return None
        layer = len(top) - 1
        while layer > 0 and top[layer - 1] == class_index:
            layer -= 1
        return layer

    def arrays(self) -> dict[str, np.ndarray]:
        """What ``lens.npz`` holds."""
        return {"cls_probabilities": self.cls_probabilities, "patch_probabilities": self.patch_probabilities,
                "classes": self.classes, "labels": np.asarray(self.labels, dtype=np.str_)}


def logit_lens(model: Any, hidden_states: np.ndarray | torch.Tensor, grid: tuple[int, int],
               labels: list[str] | None = None, topk: int = LENS_TOPK) -> LogitLens:
    """The logit lens of one image from its ``hidden_states [L, T, D]`` through ``model`` (a
    :class:`vitviz.models.vit.VisionTransformer` with a classifier); runs on the model's device."""
    if not getattr(model, "has_classifier", False):
        raise ValueError("the logit lens needs a model with a classifier")
    param = next(model.parameters())
    h = torch.as_tensor(np.asarray(hidden_states) if not isinstance(hidden_states, torch.Tensor) else hidden_states)
    h = h.to(device=param.device, dtype=param.dtype)
    layers, tokens, _ = h.shape
    p, rows, cols = model.num_prefix_tokens, int(grid[0]), int(grid[1])
    if tokens != p + rows * cols:
        raise ValueError(f"{tokens} tokens do not match {p} prefix tokens + a {rows}x{cols} grid")
    pair = model.config.head_pool == "cls+mean"
    with torch.inference_mode():
        normed = model.norm(h)  # [L, T, D]
        cls = model.probabilities(model.classify(normed).float())  # [L, C]
        k = max(1, min(int(topk), cls.shape[-1]))
        classes = torch.argsort(cls[-1], descending=True)[:k]
        n = rows * cols
        per_chunk = max(1, LOGITS_BYTES // (4 * n * cls.shape[-1]))  # layers whose patch logits are made at once
        maps = []
        for first in range(0, layers, per_chunk):  # one product for several layers: faster than one per layer
            patches = normed[first : first + per_chunk, p:].reshape(-1, normed.shape[-1])
            logits = model.patch_logits(patches, pair).float()
            maps.append(model.probabilities(logits)[:, classes].reshape(-1, rows, cols, k))
    idx = classes.cpu().numpy().astype(np.int64)
    names = [labels[i] if labels and i < len(labels) else str(i) for i in idx.tolist()]
    return LogitLens(cls.cpu().numpy().astype(np.float32), torch.cat(maps).cpu().numpy().astype(np.float32), idx,
                     names)
