"""Class evidence: which patches made a ViT predict a class, from its attention and the attention's gradients.

Two parts, so a viewer can switch class and method without running the model again:

- :func:`attention_gradients` (torch) runs one forward pass that keeps every layer's attention probabilities ``A_l``
  in the autograd graph, then one batched backward pass giving ``dy_c / dA_l`` for several target classes at once
  (``y_c`` is the class's logit, before the softmax, as in vit-explain and Chefer et al.).
  :meth:`vitviz.engine.Engine.evidence` wraps it and returns an :class:`Evidence` (plain numpy arrays).
- :func:`evidence_map` (numpy only) turns attentions (and gradients, for the class-specific methods) into a map
  over the patch grid, ``[rows, cols]``, non-negative and summing to 1:

  ``attention``
      the CLS token's attention to the patches in one layer, mean of the heads (not class-specific).
  ``rollout``
      attention rollout (Abnar & Zuidema 2020) as vit-explain offers it: per layer the heads are fused by mean, max
      or min, a ``discard_ratio`` of the weakest links is zeroed (links to token 0 are kept), ``0.5 A + 0.5 I`` is
      renormalised so rows sum to 1, and the layers are multiplied; the CLS row is read (not class-specific).
  ``grad-rollout``
      gradient-weighted rollout (vit-explain's ``grad_rollout``): the same recurrence on
      ``mean_h[(dy_c/dA ⊙ A)^+]`` instead of the fused attention (vit-explain's default ``discard_ratio`` 0.9).
  ``relevance``
      Chefer, Gur & Wolf, ICCV 2021, "Generic Attention-model Explainability for Interpreting Bi-Modal and
      Encoder-Decoder Transformers", rule for self-attention encoders: ``R = I``, then for every layer
      ``R <- R + mean_h[(dy_c/dA ⊙ A)^+] @ R``; the map is the CLS row of ``R`` over the patches.  This is the
      gradient x attention rule of that paper, not the LRP-based relevance of their CVPR 2021 paper.

The map reads the row of the token the classifier reads: the CLS row, or for ``cls+mean`` pooling (DINOv2 linear
heads) the mean of the CLS row and of the mean patch-token row (half each).  Prefix tokens (CLS, registers) are
dropped from the map.  A map whose mass over the patches is zero (e.g. every gradient negative) is returned
uniform.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from .errors import VitvizError
from .render import attention_rollout

if TYPE_CHECKING:
    import torch

    from .engine import AnalysisResult, Engine
    from .models.vit import VisionTransformer

__all__ = [
    "METHODS",
    "GRADIENT_METHODS",
    "DEFAULT_DISCARD",
    "Evidence",
    "evidence_map",
    "weighted_attention",
    "mass_threshold_mask",
    "resolve_targets",
    "attention_gradients",
    "needs_classifier_message",
    "compute_evidence",
    "warm_up",
]

METHODS: tuple[str, ...] = ("attention", "rollout", "grad-rollout", "relevance")
GRADIENT_METHODS: frozenset[str] = frozenset({"grad-rollout", "relevance"})
# Discard ratio used when none is given: none for rollout (Abnar & Zuidema, and the app's rollout view), vit-explain's
# default 0.9 for gradient-weighted rollout.
DEFAULT_DISCARD: dict[str, float] = {"rollout": 0.0, "grad-rollout": 0.9}


def needs_classifier_message(model_name: str = "this model") -> str:
    """The one-line explanation given when class evidence is asked of a model without a classification head."""
    return (f"class evidence needs a classifier: {model_name} has no classification head "
            "(attention and rollout maps still work)")


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise VitvizError(f"unknown evidence method {method!r}; choose from {', '.join(METHODS)}")


def weighted_attention(attentions: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """``mean_h[(grad ⊙ A)^+]`` per layer: ``[layers, heads, T, T]`` twice -> ``[layers, T, T]`` (float64)."""
    a = np.asarray(attentions, dtype=np.float64)
    g = np.asarray(grads, dtype=np.float64)
    if a.shape != g.shape:
        raise ValueError(f"attentions {a.shape} and gradients {g.shape} differ in shape")
    return np.maximum(a * g, 0.0).mean(axis=1)


def _readout(t: int, num_prefix_tokens: int, pooling: str) -> np.ndarray:
    """The row vector (over tokens) the classifier reads: CLS, or half CLS and half the mean patch token."""
    r = np.zeros(t)
    if pooling == "cls+mean":
        r[0] = 0.5
        r[num_prefix_tokens:] += 0.5 / (t - num_prefix_tokens)
    elif pooling == "cls":
        r[0] = 1.0
    else:
        raise ValueError(f"pooling must be 'cls' or 'cls+mean', not {pooling!r}")
    return r


def _to_grid(row: np.ndarray, num_prefix_tokens: int, grid: tuple[int, int]) -> np.ndarray:
    patches = np.maximum(np.asarray(row, dtype=np.float64)[num_prefix_tokens:], 0.0)
    if patches.size != grid[0] * grid[1]:
        raise ValueError(f"{patches.size} patch tokens do not fill a {grid[0]}x{grid[1]} grid")
    total = patches.sum()
    patches = patches / total if total > 0 and np.isfinite(total) else np.full(patches.size, 1.0 / patches.size)
    return patches.reshape(grid).astype(np.float32)


def evidence_map(
    attentions: np.ndarray,
    grads: np.ndarray | None,
    method: str,
    num_prefix_tokens: int,
    grid: tuple[int, int],
    layer: int | None = None,
    head_fusion: str = "mean",
    discard_ratio: float | None = None,
    pooling: str = "cls",
) -> np.ndarray:
    """One evidence map ``[rows, cols]`` (float32, non-negative, summing to 1); see the module docstring.

    ``attentions`` and ``grads`` are ``[layers, heads, T, T]`` for one image (``grads``: of one target class's
    logit; None for a model without a classifier, which then only supports ``attention`` and ``rollout``).
    ``layer`` is the layer of ``attention`` and the last layer the rollout-type methods include (default: last).
    ``head_fusion`` applies to ``rollout``; ``discard_ratio`` to both rollouts (None: :data:`DEFAULT_DISCARD`).
    ``pooling`` is the classifier's (``"cls"`` or ``"cls+mean"``), it picks the row the rollout-type maps read.
    Pure numpy: about a millisecond for the shipped model, so it can run on every change of class or method.
    """
    _check_method(method)
    a = np.asarray(attentions)
    if a.ndim != 4 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"expected attentions [layers, heads, T, T], got {a.shape}")
    layers, t = a.shape[0], a.shape[-1]
    last = layers - 1 if layer is None else (layer if layer >= 0 else layers + layer)
    if not 0 <= last < layers:
        raise ValueError(f"layer {layer} is out of range: the model has {layers} layers")
    if method == "attention":
        return _to_grid(a[last, :, 0].astype(np.float64).mean(axis=0), num_prefix_tokens, grid)
    ratio = DEFAULT_DISCARD.get(method, 0.0) if discard_ratio is None else float(discard_ratio)
    readout = _readout(t, num_prefix_tokens, pooling)
    if method == "rollout":
        joint = attention_rollout(a, head_fusion, ratio, last)
        return _to_grid(readout @ joint, num_prefix_tokens, grid)
    if grads is None:
        raise VitvizError(needs_classifier_message())
    fused = weighted_attention(a[: last + 1], np.asarray(grads)[: last + 1])  # [layers, T, T]
    if method == "grad-rollout":
        # the rollout recurrence on one "head" per layer: mean fusion of a single head is that head
        joint = attention_rollout(fused[:, None], "mean", ratio, None)
        return _to_grid(readout @ joint, num_prefix_tokens, grid)
    rel = np.eye(t)
    for w in fused:  # relevance (Chefer et al. 2021): R <- R + Abar R
        rel = rel + w @ rel
    return _to_grid(readout @ rel, num_prefix_tokens, grid)


def mass_threshold_mask(values: np.ndarray, fraction: float = 0.6) -> np.ndarray:
    """The smallest set of cells holding ``fraction`` of a non-negative map's mass, as a boolean mask (DINO's view).

    Cells are taken largest first (ties in index order) until their sum reaches ``fraction`` of the total; negative
    and non-finite values count as 0.  An all-zero map gives an empty mask.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], not {fraction}")
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    v = np.maximum(v, 0.0)
    flat = v.reshape(-1)
    total = flat.sum()
    mask = np.zeros(flat.size, bool)
    if total <= 0 or fraction <= 0:
        return mask.reshape(v.shape)
    order = np.argsort(-flat, kind="stable")
    cum = np.cumsum(flat[order])
    k = int(np.searchsorted(cum, fraction * total * (1 - 1e-12), side="left")) + 1
    mask[order[: min(k, flat.size)]] = True
    return mask.reshape(v.shape)


def resolve_targets(spec: str | int | Sequence[int], labels: Sequence[str],
                    probabilities: np.ndarray | None = None) -> list[int]:
    """Class indices from ``top1``/``top5``/``topK``, a label, an index, or a list of indices.

    ``topK`` needs ``probabilities``. Raises :class:`VitvizError` with a one-line reason for anything else.
    """
    n = len(labels)
    if n == 0:
        raise VitvizError(needs_classifier_message())
    if isinstance(spec, (list, tuple, np.ndarray)):
        out = [int(i) for i in spec]
        bad = [i for i in out if not 0 <= i < n]
        if bad:
            raise VitvizError(f"class index {bad[0]} is out of range: the model has {n} classes (0..{n - 1})")
        return out
    if isinstance(spec, (int, np.integer)):
        return resolve_targets([int(spec)], labels)
    text = str(spec).strip()
    low = text.lower()
    if low.startswith("top") and low[3:].isdigit():
        k = int(low[3:])
        if k < 1:
            raise VitvizError(f"--target {text}: K in topK must be at least 1")
        if probabilities is None:
            raise VitvizError(f"--target {text} needs the model's class probabilities")
        return [int(i) for i in np.argsort(-np.asarray(probabilities), kind="stable")[: min(k, n)]]
    exact = [i for i, lab in enumerate(labels) if lab == text]
    folded = exact or [i for i, lab in enumerate(labels) if lab.lower() == low]
    if folded:
        return folded[:1]
    if text.lstrip("-").isdigit():
        return resolve_targets([int(text)], labels)
    hint = f"; e.g. {', '.join(labels[:5])}" if n > 5 else f"; choose from {', '.join(labels)}"
    raise VitvizError(f"--target {text!r} is not top1, top5, a class label or a class index (0..{n - 1}){hint}")


@dataclass
class Evidence:
    """Attentions of one image and, per target class, the gradients of its logit with respect to them.

    Made by :meth:`vitviz.engine.Engine.evidence` (one forward plus one batched backward) or, without gradients,
    by :meth:`from_result`. :meth:`map` then draws any method for any held target with numpy only.
    """

    attentions: np.ndarray  # [layers, heads, T, T]
    grid: tuple[int, int]
    num_prefix_tokens: int = 1
    pooling: str = "cls"
    labels: list[str] = field(default_factory=list)
    probabilities: np.ndarray | None = None  # [classes]
    targets: list[int] = field(default_factory=list)  # class indices, in the order of ``grads``
    grads: np.ndarray | None = None  # [targets, layers, heads, T, T] d logit / d attention; None: not computed
    model_name: str = "this model"
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds

    @classmethod
    def from_result(cls, result: AnalysisResult, pooling: str = "cls") -> Evidence:
        """Evidence without gradients from an analysis (``attention`` and ``rollout`` only); costs nothing."""
        if result.attentions is None:
            raise VitvizError("this result holds no attentions")
        return cls(result.attentions, (result.grid.rows, result.grid.cols), result.num_prefix_tokens, pooling,
                   list(result.labels), result.probabilities, model_name=result.model_name)

    @property
    def has_classifier(self) -> bool:
        return bool(self.labels)

    def has(self, target: int) -> bool:
        """Whether the gradients of class ``target`` are held (a class-specific map can be drawn for it)."""
        return self.grads is not None and int(target) in self.targets

    def map(self, method: str, target: int | None = None, layer: int | None = None, head_fusion: str = "mean",
            discard_ratio: float | None = None) -> np.ndarray:
        """The ``[rows, cols]`` map of ``method`` for class ``target`` (default: the first target); see
        :func:`evidence_map` for the options."""
        _check_method(method)
        grads = None
        if method in GRADIENT_METHODS:
            if not self.has_classifier:
                raise VitvizError(needs_classifier_message(self.model_name))
            if target is None and self.targets:
                target = self.targets[0]
            if target is None or not self.has(target):
                held = ", ".join(self.labels[i] for i in self.targets) or "none"
                name = self.labels[target] if target is not None and 0 <= target < len(self.labels) else target
                raise VitvizError(f"no gradients for class {name!r} (held: {held}); compute them with "
                                  "Engine.evidence")
            grads = self.grads[self.targets.index(int(target))]
        return evidence_map(self.attentions, grads, method, self.num_prefix_tokens, self.grid, layer, head_fusion,
                            discard_ratio, self.pooling)

    def merged(self, other: Evidence) -> Evidence:
        """This evidence plus the targets of ``other`` (same image) that it does not hold yet."""
        if other.grads is None:
            return self
        if self.grads is None:
            return other
        new = [k for k, t in enumerate(other.targets) if t not in self.targets]
        if not new:
            return self
        grads = np.concatenate([self.grads, other.grads[new]], axis=0)
        return Evidence(self.attentions, self.grid, self.num_prefix_tokens, self.pooling, self.labels,
                        self.probabilities, self.targets + [other.targets[k] for k in new], grads, self.model_name,
                        dict(self.timings))


def attention_gradients(
    model: VisionTransformer,
    x: torch.Tensor,
    targets: torch.Tensor | Callable[[torch.Tensor], torch.Tensor],
    batched_backward: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One forward pass keeping the attention probabilities in the graph, one batched backward for all targets.

    ``x`` is a normalised batch ``[B, 3, H, W]``, ``targets`` class indices ``[B, K]`` or a function of the
    logits ``[B, C]`` returning them (e.g. the top 5 of this very pass). The backward pass for the
    ``K`` targets is vectorised (``torch.autograd.grad(..., is_grads_batched=True)``, one one-hot output gradient
    per target); with ``batched_backward=False``, or should a backend refuse that, every image is repeated ``K``
    times along the batch instead and the summed target logits are differentiated once. (The first batched
    backward of a process loads PyTorch's decompositions lazily, about 1.5 s once: see benchmarks/bench_explain.py.)
    Only the attention tensors receive gradients, not the weights.
    Returns ``attentions [B, L, H, T, T]``, ``grads [B, K, L, H, T, T]`` (d logit / d attention) and
    ``logits [B, C]``, all detached.  Only the encoder and the classifier run, not a depth head.
    """
    import torch

    if model.head is None:
        raise VitvizError(needs_classifier_message())

    def repeated(k: int, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = x.shape[0]
        rep = model.forward_features(x.repeat_interleave(k, dim=0), return_attention=True)
        logits = model.classify(rep.tokens)  # [B*K, C]
        g = torch.autograd.grad(logits.gather(1, targets.reshape(-1, 1)).sum(), rep.attentions)
        grads = torch.stack(g, dim=1).reshape(b, k, len(g), *g[0].shape[1:])  # [B, K, L, H, T, T]
        attn = torch.stack([a.detach()[::k] for a in rep.attentions], dim=1)
        return attn, grads.detach(), logits.detach()[::k]

    with torch.enable_grad():
        if not callable(targets) and not batched_backward:
            known = torch.as_tensor(targets, dtype=torch.long, device=x.device)
            if known.shape[1] > 1:
                return repeated(known.shape[1], known)
        out = model.forward_features(x, return_attention=True)
        logits = model.classify(out.tokens)  # [B, C]
        if callable(targets):
            targets = targets(logits.detach())
        targets = torch.as_tensor(targets, dtype=torch.long, device=logits.device)
        k = targets.shape[1]
        if k == 1:
            grads = torch.stack(torch.autograd.grad(logits.gather(1, targets).sum(), out.attentions), dim=1)[:, None]
        else:
            if not batched_backward:
                return repeated(k, targets)
            onehot = torch.zeros(k, *logits.shape, dtype=logits.dtype, device=logits.device)
            onehot.scatter_(2, targets.T.unsqueeze(-1), 1.0)  # [K, B, C]: one output gradient per target
            try:
                g = torch.autograd.grad(logits, out.attentions, grad_outputs=onehot, is_grads_batched=True)
            except RuntimeError:  # vmap over this backward unsupported here: repeat each image K times instead
                return repeated(k, targets)
            grads = torch.stack(g, dim=2).transpose(0, 1)  # [B, K, L, H, T, T]
    attn = torch.stack([a.detach() for a in out.attentions], dim=1)  # [B, L, H, T, T]
    return attn, grads.detach(), logits.detach()


def warm_up() -> None:
    """Run a tiny batched backward so that PyTorch loads what it needs for one (about 1.5 s, once per process).

    A viewer can call this in a worker thread after loading a model, so that the first class-evidence request is
    as fast as later ones.
    """
    import torch

    with torch.enable_grad():
        x = torch.ones(2, requires_grad=True)
        torch.autograd.grad(x * 2.0, x, grad_outputs=torch.eye(2), is_grads_batched=True)


def compute_evidence(engine: Engine, image: Any, targets: str | int | Sequence[int] = "top5") -> Evidence:
    """:meth:`vitviz.engine.Engine.evidence` (without its lock): see there."""
    import time

    import torch

    from .engine import AnalysisResult, _as_loaded, prepare_image

    t0 = time.perf_counter()
    cfg = engine.info.config
    if isinstance(image, AnalysisResult):
        if image.model_name != engine.info.name:
            raise VitvizError(f"this analysis was made with {image.model_name}, not {engine.info.name}: analyse the "
                              "image again first")
        rgb = image.image
    else:
        rgb = prepare_image(_as_loaded(image).image, cfg.image_size, cfg.patch_size)
    labels = list(engine.info.labels)
    if engine.model.head is None or not labels:
        raise VitvizError(needs_classifier_message(engine.info.name))
    x = engine._tensor(rgb, engine.info)
    chosen: list[int] = []

    def pick(logits: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(logits[0].float(), dim=-1).cpu().numpy()
        chosen.extend(resolve_targets(targets, labels, probs))
        return torch.tensor([chosen])

    t = time.perf_counter()
    attn, grads, logits = attention_gradients(engine.model, x, pick)
    if engine.device.type == "cuda":
        torch.cuda.synchronize()
    ms = (time.perf_counter() - t) * 1000.0
    probs = torch.softmax(logits[0].float(), dim=-1).cpu().numpy()
    ev = Evidence(
        attentions=attn[0].float().cpu().numpy(),
        grid=(rgb.shape[0] // cfg.patch_size, rgb.shape[1] // cfg.patch_size),
        num_prefix_tokens=engine.model.num_prefix_tokens,
        pooling=cfg.head_pool,
        labels=labels,
        probabilities=probs,
        targets=chosen,
        grads=grads[0].float().cpu().numpy(),
        model_name=engine.info.name,
    )
    ev.timings = {"forward_backward": ms, "total": (time.perf_counter() - t0) * 1000.0}
    return ev
