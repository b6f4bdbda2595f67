"""Head knockout and head importance: what each attention head contributes to a prediction.

A head is knocked out by zeroing its attention output before its block's output projection (``head_mask`` of
:class:`vitviz.models.vit.VisionTransformer`); its attention probabilities stay as they were.
:func:`compute_head_importance` knocks out every head of every layer, one at a time, and measures what that does to
the target class (the drop of its logit and of its probability) and, for a model with its own depth head, to the
depth map (mean absolute relative change).

The knockouts run in batches, one batch element per head, the image repeated. The blocks before a head's layer
compute exactly what the unablated pass computed, so every knockout starts from the unablated pass's tokens at its
own layer: an element joins its batch at that layer, and a knockout in layer ``l`` of ``L`` costs ``L - l`` blocks
rather than ``L`` (about half a forward pass on average). That is still about 30 forward passes for a 12-layer model
of 6 heads (ViT-S/16): every knockout in layer ``l`` reruns every later block on every token.

:func:`estimate_head_importance` is the fast alternative (Michel, Levy and Neubig 2019, section 4.1): one forward and
one backward pass give the derivative of the target's logit and probability with respect to every head's mask
factor, the first-order (Taylor) estimate of what removing the head does, for about three forward passes at any
number of heads. It is an estimate: it ranks like the knockouts, not equal to them (``benchmarks/
eval_importance_estimate.py`` measures how closely), and it has no depth figure.
"""

from __future__ import annotations

import math
import operator
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch.utils.checkpoint import checkpoint

from .errors import VitvizError
from .models.vit import ViTOutput, VisionTransformer

__all__ = ["Head", "HeadImportance", "check_heads", "head_mask", "compute_head_importance", "BATCH_BYTES",
           "METHODS", "ESTIMATE_GRAPH_BYTES", "estimate_head_importance", "rank_heads", "needs_classifier_or_depth"]

Head = tuple[int, int]  # (layer, head), 0-based as the app labels them

# how the heads are ranked: each knocked out alone (exact), or the first-order estimate (fast, no depth figure)
METHODS = ("knockout", "estimate")

# Activations one batch of knockouts may take (the batch size when none is given; see _auto_batch_size): on a CPU
# the matrix products run fastest per element at a few dozen tokens' rows (ViT-S/16: about 6 ms per block and element
# at 6-24 elements, 8 ms alone, 7 ms at 72), an accelerator wants the batch as large as memory allows.
BATCH_BYTES = {"cpu": 64 * 2**20, "other": 1024 * 2**20}
# The estimate's backward passes need every block's activations, about 16 x tokens x dim values per block (ViT-L/14
# at 518 x 784 px: 3.0 GB). Above this much, each block keeps its input alone and is run again in the backward
# passes (activation checkpointing: 0.5 GB for that model, in 30 % more time: 81 s against 63 s on 2 cores).
ESTIMATE_GRAPH_BYTES = 1024 * 2**20


def check_heads(heads: Iterable[Sequence[int]], layers: int, num_heads: int, what: str = "head") -> list[Head]:
    """``heads`` as sorted, unique ``(layer, head)`` pairs; a :class:`VitvizError` naming the first pair that is not
    one or that is out of range for a model of ``layers`` layers of ``num_heads`` heads (``what`` names the option
    in the message, e.g. ``--ablate``)."""
    checked: set[Head] = set()
    for pair in heads:
        try:
            layer, head = (operator.index(v) for v in pair)
        except (TypeError, ValueError):
            raise VitvizError(f"{what} {pair!r} is not a (layer, head) pair of whole numbers") from None
        if not 0 <= layer < layers:
            raise VitvizError(f"{what} {layer}.{head}: layer {layer} is out of range: the model has {layers} layers "
                              f"(0..{layers - 1})")
        if not 0 <= head < num_heads:
            raise VitvizError(f"{what} {layer}.{head}: head {head} is out of range: each layer has {num_heads} heads "
                              f"(0..{num_heads - 1})")
        checked.add((layer, head))
    return sorted(checked)


def head_mask(heads: Sequence[Head], layers: int, num_heads: int, device: torch.device | str | None = None,
              dtype: torch.dtype = torch.float32) -> list[torch.Tensor | None] | None:
    """The model's ``head_mask`` that knocks out ``heads``: per block a ``[num_heads]`` tensor of 1s with 0s at the
    knocked-out heads, or None where the block keeps them all; None when ``heads`` is empty."""
    if not heads:
        return None
    masks: list[torch.Tensor | None] = [None] * layers
    for layer, head in heads:
        if masks[layer] is None:
            masks[layer] = torch.ones(num_heads, device=device, dtype=dtype)
        masks[layer][head] = 0  # type: ignore[index]
    return masks


def needs_classifier_or_depth(name: str) -> str:
    return (f"head importance measures the class logit and probability or the depth map, and {name} has neither a "
            "classifier nor a depth head")


@dataclass
class HeadImportance:
    """What knocking out each head alone does: ``[layers, heads]`` float64 arrays (NaN where not measured)."""

    logit_drop: np.ndarray  # target logit, unablated minus ablated (NaN without a classifier)
    prob_drop: np.ndarray  # target probability, unablated minus ablated (NaN without a classifier)
    depth_absrel: np.ndarray | None  # mean |d_ablated - d| / d over the pixels with d > 0; None without a depth head
    target: int | None = None  # the class measured (None without a classifier)
    target_label: str | None = None
    logit: float | None = None  # the unablated target logit and probability
    probability: float | None = None
    ablated: list[Head] = field(default_factory=list)  # heads knocked out in every pass, the unablated one included
    seconds: float = 0.0
    method: str = "knockout"  # one of METHODS: "estimate" holds first-order estimates of the drops

    @property
    def estimated(self) -> bool:
        return self.method == "estimate"

    @property
    def num_layers(self) -> int:
        return int(self.logit_drop.shape[0])

    @property
    def num_heads(self) -> int:
        return int(self.logit_drop.shape[1])

    def rows(self) -> list[dict[str, Any]]:
        """One dict per head, layer by layer: ``layer``, ``head``, ``target`` (the class label, None without a
        classifier), ``logit_drop``, ``prob_drop`` and, with a depth head, ``depth_absrel``."""
        rows = []
        for layer in range(self.num_layers):
            for head in range(self.num_heads):
                row: dict[str, Any] = {"layer": layer, "head": head, "target": self.target_label,
                                       "logit_drop": float(self.logit_drop[layer, head]),
                                       "prob_drop": float(self.prob_drop[layer, head])}
                if self.depth_absrel is not None:
                    row["depth_absrel"] = float(self.depth_absrel[layer, head])
                rows.append(row)
        return rows


def _auto_batch_size(model: VisionTransformer, x: torch.Tensor, tokens: int) -> int:
    """Knockouts per batch so that a batch's activations stay near :data:`BATCH_BYTES` for ``x``'s device."""
    per_token = 12 + (model.num_layers if model.depth_needs_hidden else 0)  # widths of D kept at once, roughly
    per_element = tokens * model.config.embed_dim * x.element_size() * per_token
    if model.has_depth:
        per_element += x.shape[-2] * x.shape[-1] * x.element_size() * 64  # a depth head's feature maps, roughly
    budget = BATCH_BYTES["cpu" if x.device.type == "cpu" else "other"]
    return max(1, budget // per_element)


def compute_head_importance(
    model: VisionTransformer,
    x: torch.Tensor,
    labels: Sequence[str] = (),
    target: int | str | None = None,
    ablate: Iterable[Sequence[int]] = (),
    progress: Callable[[int, int], None] | None = None,
    batch_size: int | None = None,
    name: str = "this model",
) -> HeadImportance:
    """Knock out every head of ``model`` alone, for the model input ``x`` ``[1, 3, H, W]`` (on the model's device
    and in its dtype), and measure each knockout against the unablated pass (see :class:`HeadImportance`).

    ``target``: the class (an index or a label of ``labels``; default: the unablated top-1). ``ablate``: heads
    knocked out in every pass, the unablated one included (their own drops are then 0). ``progress(done, total)``
    follows the knockouts, once per batch. ``batch_size``: knockouts per batch (None: as many as fit about
    :data:`BATCH_BYTES` of activations). A model without a classifier gets NaN logit and probability drops; one
    with neither a classifier nor a depth head raises :class:`VitvizError`. For a "cls" classifier without a depth
    head, the last block computes CLS's output alone (nothing else is read).
    """
    t0 = time.perf_counter()
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"expected one model input [1, 3, H, W], not {tuple(x.shape)}")
    layers, heads = model.num_layers, model.num_heads
    classifier, depth = model.has_classifier, model.has_depth
    if not classifier and not depth:
        raise VitvizError(needs_classifier_or_depth(name))
    if target is not None and not classifier:
        raise VitvizError(f"{name} has no classifier: there is no class to measure")
    fixed = check_heads(ablate, layers, heads, "ablated head")
    base_mask = head_mask(fixed, layers, heads, x.device, x.dtype)
    pairs = [(layer, head) for layer in range(layers) for head in range(heads)]
    with torch.inference_mode():
        if isinstance(model, VisionTransformer):
            base, knockouts, tokens = _blockwise_knockouts(model, x, base_mask)
        else:  # any other model of the interface (a user's module): whole passes with a batched head mask
            base = model(x, head_mask=base_mask)
            knockouts = _whole_pass_knockouts(model, x, base_mask)
            tokens = base.num_prefix_tokens + base.grid[0] * base.grid[1]
        result = HeadImportance(np.full((layers, heads), np.nan), np.full((layers, heads), np.nan),
                                np.full((layers, heads), np.nan) if depth else None, ablated=fixed)
        if classifier:
            base_logits = base.logits[0].float()
            result.target = _resolve_target(target, labels, base_logits)
            result.target_label = labels[result.target] if result.target < len(labels) else str(result.target)
            result.logit = float(base_logits[result.target])
            result.probability = float(model.probabilities(base_logits)[result.target])
        size = batch_size or _auto_batch_size(model, x, tokens)
        for start in range(0, len(pairs), size):
            chunk = pairs[start : start + size]
            out = knockouts(chunk)
            rows = np.array([layer for layer, _ in chunk]), np.array([head for _, head in chunk])
            if classifier:
                logits = out.logits.float()
                result.logit_drop[rows] = (result.logit - logits[:, result.target]).double().cpu().numpy()
                probs = model.probabilities(logits)[:, result.target]
                result.prob_drop[rows] = (result.probability - probs).double().cpu().numpy()
            if depth:
                result.depth_absrel[rows] = _absrel(out.depth.float(), base.depth[:1].float()).cpu().numpy()
            if progress is not None:
                progress(start + len(chunk), len(pairs))
        if base_mask is not None:  # an already knocked-out head changes nothing
            for layer, head in fixed:
                for values in (result.logit_drop, result.prob_drop, result.depth_absrel):
                    if values is not None and not math.isnan(values[layer, head]):
                        values[layer, head] = 0.0
    result.seconds = time.perf_counter() - t0
    return result


def estimate_head_importance(
    model: VisionTransformer,
    x: torch.Tensor,
    labels: Sequence[str] = (),
    target: int | str | None = None,
    ablate: Iterable[Sequence[int]] = (),
    name: str = "this model",
) -> HeadImportance:
    """First-order estimates of what knocking out each head alone does to the ``target`` class of the model input
    ``x`` ``[1, 3, H, W]``: ``logit_drop[l, h]`` and ``prob_drop[l, h]`` are the derivatives of the target's logit
    and probability with respect to head ``(l, h)``'s mask factor (1 for a kept head, 0 for ``ablate``'s), the drops
    a model linear in that factor would show when it goes from 1 to 0. One forward and two backward passes, whatever
    the number of heads. ``depth_absrel`` is None (a mean of absolute changes has no first-order form short of one
    pass per head). :class:`VitvizError` for a model without a classifier, or an image-text model without labels.
    Arguments as for :func:`compute_head_importance`.
    """
    t0 = time.perf_counter()
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"expected one model input [1, 3, H, W], not {tuple(x.shape)}")
    if not model.has_classifier:
        raise VitvizError(f"the fast estimate of head importance follows the class logit and probability, and {name} "
                          "has no classifier: rank the heads by knocking them out instead")
    layers, heads = model.num_layers, model.num_heads
    fixed = check_heads(ablate, layers, heads, "ablated head")
    mask = torch.ones(layers, heads, device=x.device, dtype=x.dtype)  # every head's factor, one leaf of the graph
    for layer, head in fixed:
        mask[layer, head] = 0
    cls_only = model.config.head_pool == "cls"  # nothing but CLS's output of the last block is read
    with torch.enable_grad():
        mask.requires_grad_(True)
        if isinstance(model, VisionTransformer):
            logits = _masked_logits(model, x, mask, cls_only)
        else:  # a user's module: one whole pass with the mask
            logits = model(x, head_mask=mask).logits
        if logits is None:
            raise VitvizError(f"{name} has no labels to score yet: give it labels first")
        logits = logits[0].to(torch.promote_types(logits.dtype, torch.float32))  # half precision: in float32
        result = HeadImportance(np.zeros((layers, heads)), np.zeros((layers, heads)), None, ablated=fixed,
                                method="estimate")
        result.target = _resolve_target(target, labels, logits.detach())
        result.target_label = labels[result.target] if result.target < len(labels) else str(result.target)
        probability = model.probabilities(logits)[result.target]
        result.logit, result.probability = float(logits[result.target].detach()), float(probability.detach())
        for values, output, retain in ((result.logit_drop, logits[result.target], True),
                                       (result.prob_drop, probability, False)):
            values[:] = torch.autograd.grad(output, mask, retain_graph=retain)[0].double().cpu().numpy()
    for layer, head in fixed:  # an already knocked-out head changes nothing
        result.logit_drop[layer, head] = result.prob_drop[layer, head] = 0.0
    result.seconds = time.perf_counter() - t0
    return result


def _masked_logits(model: VisionTransformer, x: torch.Tensor, mask: torch.Tensor, cls_only: bool) -> torch.Tensor:
    """vitviz's own ViT's logits with head factors ``mask [layers, heads]``, block by block (the blocks keep their
    inputs alone and run again in the backward pass above :data:`ESTIMATE_GRAPH_BYTES`)."""
    layers = mask.shape[0]
    tokens, _ = model.embed(x)
    graph_bytes = 16 * tokens.numel() * tokens.element_size() * layers
    for i, block in enumerate(model.blocks):
        queries = 1 if cls_only and i == layers - 1 else None
        if graph_bytes > ESTIMATE_GRAPH_BYTES:
            tokens, _ = checkpoint(block, tokens, False, None, mask[i], queries, use_reentrant=False)
        else:
            tokens, _ = block(tokens, False, None, mask[i], queries)
    return model.classify(model.norm(tokens))


def rank_heads(model: VisionTransformer, x: torch.Tensor, labels: Sequence[str] = (), target: int | str | None = None,
               ablate: Iterable[Sequence[int]] = (), progress: Callable[[int, int], None] | None = None,
               batch_size: int | None = None, name: str = "this model", method: str = "knockout") -> HeadImportance:
    """:func:`compute_head_importance` (``method="knockout"``) or :func:`estimate_head_importance` ("estimate")."""
    if method == "estimate":
        return estimate_head_importance(model, x, labels, target, ablate, name)
    if method != "knockout":
        raise VitvizError(f"unknown head importance method {method!r}: one of {', '.join(METHODS)}")
    return compute_head_importance(model, x, labels, target, ablate, progress, batch_size, name)


def _resolve_target(target: int | str | None, labels: Sequence[str], logits: torch.Tensor) -> int:
    n = logits.shape[-1]
    if target is None:
        return int(torch.argmax(logits))
    if isinstance(target, str):
        if target in labels:
            return list(labels).index(target)
        if not target.strip().isdigit():
            raise VitvizError(f"unknown class {target!r}")
        target = int(target)
    if not 0 <= int(target) < n:
        raise VitvizError(f"class {target} is out of range: the model has {n} classes (0..{n - 1})")
    return int(target)


def _blockwise_knockouts(model: VisionTransformer, x: torch.Tensor, base_mask: list[torch.Tensor | None] | None
                         ) -> tuple[ViTOutput, Callable[[list[Head]], ViTOutput], int]:
    """vitviz's own ViT: the unablated pass block by block, and knockouts that rerun a head's layer and those after
    it alone (:func:`_knockout_batch`); with the token count."""
    keep_hidden = model.depth_needs_hidden
    tokens, grid = model.embed(x)
    inputs, hidden = [], []  # every block's input and output in the unablated pass
    for i, block in enumerate(model.blocks):
        inputs.append(tokens)
        tokens, _ = block(tokens, False, None, None if base_mask is None else base_mask[i])
        hidden.append(tokens)
    base = model.forward_heads(ViTOutput(tokens=model.norm(tokens), hidden_states=hidden, grid=grid,
                                         num_prefix_tokens=model.num_prefix_tokens), x)

    def knockouts(chunk: list[Head]) -> ViTOutput:
        return _knockout_batch(model, x, chunk, inputs, hidden if keep_hidden else None, base_mask, grid)
    return base, knockouts, tokens.shape[1]


def _whole_pass_knockouts(model: Any, x: torch.Tensor, base_mask: list[torch.Tensor | None] | None
                          ) -> Callable[[list[Head]], ViTOutput]:
    """Knockouts as whole forward passes of a batch, element ``i`` without head ``chunk[i]`` (a model that cannot
    be run block by block: a user's module)."""
    layers, heads = model.num_layers, model.num_heads

    def knockouts(chunk: list[Head]) -> ViTOutput:
        n = len(chunk)
        mask = torch.ones(layers, n, heads, device=x.device, dtype=x.dtype)
        if base_mask is not None:
            for layer, m in enumerate(base_mask):
                if m is not None:
                    mask[layer] *= m.reshape(-1, heads)
        for row, (layer, head) in enumerate(chunk):
            mask[layer, row, head] = 0
        return model(x.expand(n, -1, -1, -1), head_mask=mask)
    return knockouts


def _knockout_batch(model: VisionTransformer, x: torch.Tensor, chunk: list[Head], inputs: list[torch.Tensor],
                    hidden: list[torch.Tensor] | None, base_mask: list[torch.Tensor | None] | None,
                    grid: tuple[int, int]) -> ViTOutput:
    """The outputs of one batch of knockouts, element ``i`` without head ``chunk[i]`` (``chunk`` in layer order).

    Element ``i`` joins the batch at its layer, from the unablated pass's input to that block (``inputs``), so that
    the batch holds at block ``l`` the elements of layers up to ``l``. ``hidden``: the unablated blocks' outputs, for
    a depth head that reads them (an element's outputs before its layer are those)."""
    layers, heads = len(model.blocks), model.config.num_heads
    first, n = chunk[0][0], len(chunk)
    # what the heads read of the last block: every token for a depth head or mean pooling, else CLS alone
    cls_only = model.depth_head is None and model.config.head_pool == "cls"
    tokens: torch.Tensor | None = None
    outputs: dict[int, torch.Tensor] = {}
    for layer in range(first, layers):
        joining = sum(1 for lay, _ in chunk if lay == layer)
        if joining:
            new = inputs[layer].expand(joining, -1, -1)
            tokens = new if tokens is None else torch.cat([tokens, new])
        assert tokens is not None
        knocked = [(row, head) for row, (lay, head) in enumerate(chunk) if lay == layer]
        mask = None if base_mask is None else base_mask[layer]
        if knocked:
            rows = tokens.shape[0]
            mask = (torch.ones(heads, device=x.device, dtype=x.dtype) if mask is None else mask).repeat(rows, 1)
            for row, head in knocked:
                mask[row, head] = 0
        last = layer == layers - 1
        tokens, _ = model.blocks[layer](tokens, False, None, mask, 1 if last and cls_only else None)
        if hidden is not None:
            outputs[layer] = tokens
    assert tokens is not None and tokens.shape[0] == n
    full_hidden = None
    if hidden is not None:  # rows that have not joined by block l carry the unablated output of block l
        full_hidden = [hidden[layer].expand(n, -1, -1) if layer not in outputs else
                       torch.cat([outputs[layer], hidden[layer].expand(n - outputs[layer].shape[0], -1, -1)])
                       for layer in range(layers)]
    out = ViTOutput(tokens=model.norm(tokens), hidden_states=full_hidden, grid=grid,
                    num_prefix_tokens=model.num_prefix_tokens)
    return model.forward_heads(out, x.expand(n, -1, -1, -1))


def _absrel(depth: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``[n]`` mean of ``|depth - reference| / reference`` over the pixels where ``reference > 0``."""
    valid = reference > 0
    rel = torch.where(valid, (depth - reference).abs() / torch.where(valid, reference, 1.0), 0.0)
    count = valid.sum()
    return (rel.flatten(1).sum(1) / count).double() if count else torch.full((depth.shape[0],), float("nan"))
