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
heads) the mean of the CLS row and of the mean patch-token row (half each), or for attention pooling (SigLIP, no
CLS token) the mean of every token's row, as the attention maps of such models do (vitviz.attention).  Prefix tokens (CLS, registers) are
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

    from .attention import AttentionMaps
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
    "streamed_gradient_maps",
    "EVIDENCE_BUDGET",
    "warm_up",
]

METHODS: tuple[str, ...] = ("attention", "rollout", "grad-rollout", "relevance")
GRADIENT_METHODS: frozenset[str] = frozenset({"grad-rollout", "relevance"})
# Discard ratio used when none is given: none for rollout (Abnar & Zuidema, and the app's rollout view), vit-explain's
# default 0.9 for gradient-weighted rollout.
DEFAULT_DISCARD: dict[str, float] = {"rollout": 0.0, "grad-rollout": 0.9}
# The gradients of every layer for every target class, with the attention, are held (and any option is drawn at
# once) when they take at most this much; above it the maps are computed layer by layer in the backward passes.
EVIDENCE_BUDGET = 256 * 2**20


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
    elif pooling == "map":  # attention pooling (SigLIP): no token reads the image; every token's row, averaged
        r[:] = 1.0 / t
    else:
        raise ValueError(f"pooling must be 'cls', 'cls+mean' or 'map', not {pooling!r}")
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
    """One image's attention and the class-specific figures computed for it so far.

    Made by :meth:`vitviz.engine.Engine.evidence` or, without gradients, by :meth:`from_result`; :meth:`map` draws
    any method. For a model whose attention and gradients fit :data:`EVIDENCE_BUDGET` the gradients of every target
    are held (``grads``, with the full attention tensors), so any method and option is drawn at once with numpy;
    above it, the gradient methods' maps were computed layer by layer during the backward passes
    (:func:`streamed_gradient_maps`) and are held per (method, class, discard ratio) in ``maps``.
    """

    attention: AttentionMaps | None  # the image's attention (vitviz.attention)
    grid: tuple[int, int]
    num_prefix_tokens: int = 1
    pooling: str = "cls"
    labels: list[str] = field(default_factory=list)
    probabilities: np.ndarray | None = None  # [classes]
    targets: list[int] = field(default_factory=list)  # class indices, in the order of ``grads``
    grads: np.ndarray | None = None  # [targets, layers, heads, T, T] d logit / d attention; None: not held
    model_name: str = "this model"
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds
    maps: dict[tuple[str, int, float], np.ndarray] = field(default_factory=dict)  # (method, class, discard) -> map

    @classmethod
    def from_result(cls, result: AnalysisResult, pooling: str = "cls") -> Evidence:
        """Evidence without gradients from an analysis (``attention`` and ``rollout`` only); costs nothing."""
        if result.attention is None:
            raise VitvizError("this result holds no attention")
        return cls(result.attention, (result.grid.rows, result.grid.cols), result.num_prefix_tokens, pooling,
                   list(result.labels), result.probabilities, model_name=result.model_name)

    @property
    def attentions(self) -> np.ndarray | None:
        """The full attention tensors ``[layers, heads, T, T]`` when held."""
        return None if self.attention is None else self.attention.full

    @property
    def has_classifier(self) -> bool:
        return bool(self.labels)

    def has(self, target: int, method: str | None = None, discard_ratio: float | None = None) -> bool:
        """Whether a class-specific map can be drawn for class ``target`` (with ``method`` and ``discard_ratio``
        when the maps were computed layer by layer)."""
        if self.grads is not None:
            return int(target) in self.targets
        if method is None:
            return any(key[1] == int(target) for key in self.maps)
        return _map_key(method, target, discard_ratio) in self.maps

    def map(self, method: str, target: int | None = None, layer: int | None = None, head_fusion: str = "mean",
            discard_ratio: float | None = None) -> np.ndarray:
        """The ``[rows, cols]`` map of ``method`` for class ``target`` (default: the first target); see
        :func:`evidence_map` for the options."""
        _check_method(method)
        a = self.attention
        if a is None:
            raise VitvizError("this evidence holds no attention")
        if method in GRADIENT_METHODS:
            if not self.has_classifier:
                raise VitvizError(needs_classifier_message(self.model_name))
            if target is None and self.targets:
                target = self.targets[0]
            if target is None or not self.has(target, method, discard_ratio):
                held = ", ".join(self.labels[i] for i in self.targets) or "none"
                name = self.labels[target] if target is not None and 0 <= target < len(self.labels) else target
                raise VitvizError(f"no gradients for class {name!r} (held: {held}); compute them with "
                                  "Engine.evidence")
            if self.grads is None:
                if layer is not None and layer % a.num_layers != a.num_layers - 1:
                    raise VitvizError(f"{method} was computed through every layer only (the model is too large to "
                                      "keep its gradients)")
                return self.maps[_map_key(method, target, discard_ratio)]
        if a.full_layers is not None:
            grads = None if method not in GRADIENT_METHODS else self.grads[self.targets.index(int(target))]
            return evidence_map(a.full, grads, method, self.num_prefix_tokens, self.grid, layer, head_fusion,
                                discard_ratio, self.pooling)
        layers = a.num_layers
        last = layers - 1 if layer is None else (layer if layer >= 0 else layers + layer)
        if not 0 <= last < layers:
            raise ValueError(f"layer {layer} is out of range: the model has {layers} layers")
        if method == "attention":
            return _to_grid(a.prefix_rows[last, :, 0].astype(np.float64).mean(axis=0), self.num_prefix_tokens,
                            self.grid)
        ratio = DEFAULT_DISCARD.get(method, 0.0) if discard_ratio is None else float(discard_ratio)
        if self.pooling == "cls" and head_fusion == "mean" and not ratio:
            return _to_grid(a.rollout_rows[last], self.num_prefix_tokens, self.grid)
        readout = _readout(a.num_tokens, self.num_prefix_tokens, self.pooling)
        try:
            return _to_grid(a.rollout(last, head_fusion, ratio, start=readout), self.num_prefix_tokens, self.grid)
        except ValueError as exc:
            raise VitvizError(str(exc)) from exc

    def map_is_cheap(self, method: str, layer: int | None = None, head_fusion: str = "mean",
                     discard_ratio: float | None = None) -> bool:
        """Whether :meth:`map` of ``method`` with these options answers at once. False only for a large model's
        rollout with other options than the kept rows': a sweep over every layer's attention, for a worker thread
        (the gradient methods say what they lack through :meth:`has`)."""
        a = self.attention
        if method != "rollout" or a is None:
            return True
        last = a.num_layers - 1 if layer is None else layer % a.num_layers
        ratio = DEFAULT_DISCARD.get(method, 0.0) if discard_ratio is None else float(discard_ratio)
        if self.pooling == "cls" and head_fusion == "mean" and not ratio:
            return True
        return a.rollout_is_cheap(last, head_fusion, ratio, _readout(a.num_tokens, self.num_prefix_tokens,
                                                                      self.pooling))

    def merged(self, other: Evidence) -> Evidence:
        """This evidence plus the targets and maps of ``other`` (same image) that it does not hold yet."""
        if other.grads is None and not other.maps:
            return self
        if self.grads is None and not self.maps:
            return other
        if self.grads is not None and other.grads is not None:
            new = [k for k, t in enumerate(other.targets) if t not in self.targets]
            if not new:
                return self
            grads = np.concatenate([self.grads, other.grads[new]], axis=0)
            return Evidence(self.attention, self.grid, self.num_prefix_tokens, self.pooling, self.labels,
                            self.probabilities, self.targets + [other.targets[k] for k in new], grads,
                            self.model_name, dict(self.timings))
        targets = self.targets + [t for t in other.targets if t not in self.targets]
        return Evidence(self.attention, self.grid, self.num_prefix_tokens, self.pooling, self.labels,
                        self.probabilities, targets, None, self.model_name, dict(other.timings),
                        {**self.maps, **other.maps})


def _map_key(method: str, target: int, discard_ratio: float | None) -> tuple[str, int, float]:
    ratio = DEFAULT_DISCARD.get(method, 0.0) if discard_ratio is None else float(discard_ratio)
    return method, int(target), ratio if method == "grad-rollout" else 0.0


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

    if not model.has_classifier:
        raise VitvizError(needs_classifier_message())

    def repeated(k: int, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = x.shape[0]
        rep = model.forward_scores(x.repeat_interleave(k, dim=0), return_attention=True)
        logits = rep.logits  # [B*K, C]
        g = torch.autograd.grad(logits.gather(1, targets.reshape(-1, 1)).sum(), rep.attentions)
        grads = torch.stack(g, dim=1).reshape(b, k, len(g), *g[0].shape[1:])  # [B, K, L, H, T, T]
        attn = torch.stack([a.detach()[::k] for a in rep.attentions], dim=1)
        return attn, grads.detach(), logits.detach()[::k]

    with torch.enable_grad():
        if not callable(targets) and not batched_backward:
            known = torch.as_tensor(targets, dtype=torch.long, device=x.device)
            if known.shape[1] > 1:
                return repeated(known.shape[1], known)
        out = model.forward_scores(x, return_attention=True)
        logits = out.logits  # [B, C]
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


def streamed_gradient_maps(
    model: VisionTransformer, x: torch.Tensor, targets: Sequence[int], discard_ratio: float | None = None,
) -> tuple[dict[tuple[str, int, float], np.ndarray], torch.Tensor, torch.Tensor]:
    """The ``grad-rollout`` and ``relevance`` maps of each target class of one image, computed layer by layer.

    One forward pass keeps the attention probabilities in the autograd graph (its memory: every layer's
    ``[heads, T, T]``, as any gradient of the attention needs); then one backward pass per target, during which a
    hook on each layer's attention folds ``mean_h[(dy/dA ⊙ A)^+]`` into the two row vectors of the methods as soon
    as that layer's gradient exists, from the last layer down (``r (I + W_(L-1)) ... (I + W_0)`` for relevance, the
    rollout steps for grad-rollout), and lets it go: no layer's gradient outlives its hook. The maps equal
    :func:`evidence_map`'s through every layer. Returns (maps keyed as :attr:`Evidence.maps`, the detached
    attentions ``[L, H, T, T]`` of the image, the logits ``[C]``).
    """
    import torch

    from .render import discard_weakest

    ratio = DEFAULT_DISCARD["grad-rollout"] if discard_ratio is None else float(discard_ratio)
    p, pooling = model.num_prefix_tokens, model.config.head_pool
    maps: dict[tuple[str, int, float], np.ndarray] = {}
    with torch.enable_grad():
        out = model.forward_scores(x[:1], return_attention=True)
        logits = out.logits[0]
        attns = out.attentions
        t = attns[0].shape[-1]
        grid = out.grid
        state: dict[str, np.ndarray] = {}

        def fold(layer: int):
            def hook(grad: torch.Tensor) -> None:
                w = (grad[0].double() * attns[layer][0].detach().double()).clamp_(min=0).mean(dim=0).cpu().numpy()
                state["relevance"] = state["relevance"] + state["relevance"] @ w
                step = 0.5 * discard_weakest(w, ratio) + 0.5 * np.eye(t)
                step /= step.sum(axis=-1, keepdims=True)
                state["grad-rollout"] = state["grad-rollout"] @ step
            return hook

        for k, target in enumerate(targets):
            readout = _readout(t, p, pooling)
            state.update({"relevance": readout.copy(), "grad-rollout": readout.copy()})
            hooks = [a.register_hook(fold(layer)) for layer, a in enumerate(attns)]
            try:
                torch.autograd.grad(logits[int(target)], attns[0], retain_graph=k < len(targets) - 1)
            finally:
                for h in hooks:
                    h.remove()
            maps[_map_key("relevance", target, None)] = _to_grid(state["relevance"], p, grid)
            maps[_map_key("grad-rollout", target, ratio)] = _to_grid(state["grad-rollout"], p, grid)
    return maps, torch.stack([a.detach()[0] for a in attns]), logits.detach()


def _available_memory(device: Any) -> int | None:
    """Bytes free for a new allocation on ``device`` (None when unknown)."""
    import torch

    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _too_large_message(need: int, free: int | None, model_name: str) -> str:
    have = "" if free is None else f", {free / 2**30:.1f} GB is free"
    return (f"class evidence for this image needs about {need / 2**30:.1f} GB for {model_name}'s attention and its "
            f"gradients{have}: try a smaller image or the CPU")


def compute_evidence(engine: Engine, rgb: np.ndarray, result: AnalysisResult | None,
                     targets: str | int | Sequence[int] = "top5", discard_ratio: float | None = None,
                     started: float | None = None) -> Evidence:
    """:meth:`vitviz.engine.Engine.evidence` (without its lock) for the model input ``rgb``: see there. ``result``
    is the engine's analysis of that image when the caller has one (None otherwise); ``started``, the
    ``time.perf_counter()`` at which the caller began (image loading included), starts the total time."""
    import time

    import torch

    from .attention import AttentionMaps, full_attention_bytes

    t0 = time.perf_counter() if started is None else started
    cfg = engine.info.config
    labels = list(engine.info.labels)
    if not engine.model.has_classifier or not labels:
        raise VitvizError(needs_classifier_message(engine.info.name))
    x = engine._tensor(rgb, engine.info)
    grid = (rgb.shape[0] // cfg.patch_size, rgb.shape[1] // cfg.patch_size)
    p = engine.model.num_prefix_tokens
    full_bytes = full_attention_bytes(cfg.depth, cfg.num_heads, p + grid[0] * grid[1])
    count = len(resolve_targets(targets, labels, np.zeros(len(labels))))
    chosen: list[int] = []

    def pick(logits: torch.Tensor) -> torch.Tensor:
        probs = engine.model.probabilities(logits[0].float()).cpu().numpy()
        chosen.extend(resolve_targets(targets, labels, probs))
        return torch.tensor([chosen])

    t = time.perf_counter()
    # the batched backward holds the attention, the graph's copy of it and every target's gradients at once
    streamed = full_bytes * (2 * count + 2) > EVIDENCE_BUDGET
    need = full_bytes * 4  # the streamed passes: attention in the graph, its scores, a layer's gradient in flight
    free = _available_memory(engine.device)
    if streamed and free is not None and need > free:
        raise VitvizError(_too_large_message(need, free, engine.info.name))
    try:
        if streamed:
            if result is not None and result.probabilities is not None:
                chosen = resolve_targets(targets, labels, result.probabilities)
            else:
                with torch.inference_mode():
                    pick(engine.model.forward_scores(x).logits)
            maps, attn, logits = streamed_gradient_maps(engine.model, x, chosen, discard_ratio)
            attention = result.attention if result is not None and result.attention is not None else \
                AttentionMaps.from_full(attn.float().cpu().numpy(), grid, cfg.patch_size, p, keep_full=False)
            grads = None
            del attn
        else:
            attn, grads_t, logits_b = attention_gradients(engine.model, x, pick)
            logits = logits_b[0]
            attention = AttentionMaps.from_full(attn[0].float().cpu().numpy(), grid, cfg.patch_size, p)
            grads, maps = grads_t[0].float().cpu().numpy(), {}
    except (torch.cuda.OutOfMemoryError, MemoryError) as exc:
        raise VitvizError(_too_large_message(need, free, engine.info.name)) from exc
    except RuntimeError as exc:
        if "memory" not in str(exc).lower():
            raise
        raise VitvizError(_too_large_message(need, free, engine.info.name)) from exc
    if engine.device.type == "cuda":
        torch.cuda.synchronize()
    ms = (time.perf_counter() - t) * 1000.0
    probs = engine.model.probabilities(logits.float()).cpu().numpy()
    ev = Evidence(
        attention=attention,
        grid=grid,
        num_prefix_tokens=p,
        pooling=cfg.head_pool,
        labels=labels,
        probabilities=probs,
        targets=list(chosen),
        grads=grads,
        model_name=engine.info.name,
        maps=maps,
    )
    ev.timings = {"forward_backward": ms, "total": (time.perf_counter() - t0) * 1000.0}
    return ev
