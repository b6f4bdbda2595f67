"""The logit lens of a ViT classifier (Vilas, Schaumlöffel and Roig 2023): what the model would answer at every layer.

Block ``l``'s output tokens go through the model's final norm and its classifier, as the last block's do:

- the token the classifier reads (CLS, or CLS and the mean patch token for a "cls+mean" head) gives class
  probabilities per layer, ``cls_probabilities [L, C]``; its last row is the model's own prediction;
- every patch token on its own gives, per layer, a map of class probabilities over the patches; the lens keeps the
  top-K classes of the final prediction, ``patch_probabilities [L, rows, cols, K]``. For a "cls+mean" head, a patch
  token stands in for both halves of the head's input.

Everything is computed from the hidden states an analysis keeps with ``features=True`` (block outputs before the
final norm), several layers at a time (at most :data:`LOGITS_BYTES` of patch logits at once); the patch maps only
when they are first asked for (the app draws one layer at a time; ``lens.npz`` holds them all).
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import numpy as np
import torch

__all__ = ["LogitLens", "logit_lens", "LENS_TOPK"]

LENS_TOPK = 5  # classes of the final prediction whose patch maps are kept
LOGITS_BYTES = 32 * 2**20  # patch logits computed at once (several layers' [N, C] together)


class LogitLens:
    """One image's logit lens (float32 numpy arrays).

    ``cls_probabilities [L, C]`` (row l from block l's output, 0-based), ``classes [K]`` (int64, the top-K classes of
    the final prediction, best first) and their ``labels`` are computed at once. The patch maps are computed when
    first asked for, one layer at a time (:meth:`patch_map`, what the app's view draws) or all of them
    (:attr:`patch_probabilities`, what ``lens.npz`` holds), and kept: an analysis that never shows them does not
    pay for them (with 1,000 classes they are most of the lens's cost).
    """

    def __init__(self, cls_probabilities: np.ndarray, classes: np.ndarray, labels: list[str],
                 patch_maps: Callable[[int, int], np.ndarray] | np.ndarray) -> None:
        """``patch_maps``: ``[L, rows, cols, K]``, or a function giving layers ``first..stop-1`` of it."""
        self.cls_probabilities = cls_probabilities
        self.classes = classes
        self.labels = labels
        self._maps: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()
        if isinstance(patch_maps, np.ndarray):
            self._maps = {layer: patch_maps[layer] for layer in range(patch_maps.shape[0])}
            self._compute: Callable[[int, int], np.ndarray] | None = None
        else:
            self._compute = patch_maps

    @property
    def num_layers(self) -> int:
        return int(self.cls_probabilities.shape[0])

    def patch_map(self, layer: int) -> np.ndarray:
        """``[rows, cols, K]``: the probability of ``classes[k]`` from each patch token after ``layer`` (computed on
        first use, then kept)."""
        layer = int(layer) % self.num_layers
        with self._lock:
            if layer not in self._maps:
                assert self._compute is not None
                self._maps[layer] = self._compute(layer, layer + 1)[0]
            return self._maps[layer]

    @property
    def patch_probabilities(self) -> np.ndarray:
        """``[L, rows, cols, K]``: every layer's patch maps (the missing ones computed together, then kept)."""
        with self._lock:
            layer = 0
            while layer < self.num_layers:  # each run of missing layers in one product: faster than one each
                if layer in self._maps:
                    layer += 1
                    continue
                stop = layer
                while stop < self.num_layers and stop not in self._maps:
                    stop += 1
                assert self._compute is not None
                for i, values in enumerate(self._compute(layer, stop)):
                    self._maps[layer + i] = values
                layer = stop
            return np.stack([self._maps[layer] for layer in range(self.num_layers)])

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
    :class:`vitviz.models.vit.VisionTransformer` with a classifier); runs on the model's device. The class
    probabilities per layer are computed here; the patch maps when first asked for (:class:`LogitLens`)."""
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
    n, num_classes = rows * cols, cls.shape[-1]
    # the labels of this moment (an image-text model may be asked about others before the maps are computed; they
    # are computed in the thread that asks for them, without changing the model)
    label_embeddings = model.text.label_embeddings if getattr(model, "text", None) is not None else None

    def compute(first: int, stop: int) -> np.ndarray:
        """Layers ``first..stop-1`` of the patch maps ``[layers, rows, cols, K]``."""
        per_chunk = max(1, LOGITS_BYTES // (4 * n * num_classes))  # layers whose patch logits are made at once
        maps = []
        with torch.inference_mode():
            for start in range(first, stop, per_chunk):
                patches = normed[start : min(stop, start + per_chunk), p:].reshape(-1, normed.shape[-1])
                logits = model.patch_logits(patches, pair, label_embeddings).float()
                maps.append(model.probabilities(logits)[:, classes].reshape(-1, rows, cols, k))
        return torch.cat(maps).cpu().numpy().astype(np.float32)

    idx = classes.cpu().numpy().astype(np.int64)
    names = [labels[i] if labels and i < len(labels) else str(i) for i in idx.tolist()]
    return LogitLens(cls.cpu().numpy().astype(np.float32), idx, names, compute)
