"""What an analysis keeps of a ViT's attention: memory that grows with the tokens T, not with T².

A forward pass with an :class:`AttentionRecorder` keeps, per layer and head:

- the rows of the prefix tokens (CLS, registers): ``prefix_rows [L, H, P, T]``; a model without prefix tokens
  (SigLIP) has no token that reads the image, and keeps instead the mean of every query's row, ``[L, H, 1, T]``:
  the attention each token *receives*, which sums to 1 like a row. Its rollout starts from the same uniform mix of
  tokens (:func:`reading_start`), so the maps stay one consistent story;
- when the app asks (``keep_queries``), the scaled queries and keys ``[L, H, T, head_dim]``, so that any row of any
  layer's attention can be recomputed later: a clicked patch's query attention, other rollout options.

It computes the attention in one of two ways. **In the pass** (the default on a CPU): each block's attention is
computed one slice of queries at a time (never more than about :data:`SLICE_BYTES` of probabilities at once),
giving the block's output, the prefix rows, the heads' distance statistics and the layer's head-mean ``[T, T]``,
kept until the pass ends (float32, or float16 above :data:`FUSED_FLOAT32_BYTES`: rollout rows then agree within
1e-3). **In a sweep** (on a GPU, whose fused kernel beats slices): the block runs PyTorch's fused kernel and
:meth:`AttentionRecorder.maps` afterwards recomputes every layer's attention, slice by slice, from the kept queries
and keys. The rollout rows come from :func:`vitviz.attention_maps.rollout_rows`, and :class:`AttentionMaps`
(:mod:`vitviz.attention_maps`, re-exported here with the rest of its public names) holds one image's arrays.

**Which way, by size.** Few tokens need no recorder: up to :data:`SUMMARY_FROM_FULL_BUDGET` (24 MB of full tensors
for the pass) the engine takes them from the model's eager forward pass and :meth:`AttentionMaps.from_full`
summarises them afterwards (numpy on the calling thread, its BLAS held to that thread: no ``[T, T]`` joint matrix).
The crossover is measured (``benchmarks/bench_attention_strategy.py``, one thread, the process's CPU time, which the
shared 2-core VM's other users hardly move; eager / in the pass, medians of 9 alternating rounds): ViT-S/16 0.93 at
65 tokens, 1.02 at 197, 1.10 at 401, 1.16 at 577, 1.10 at 785; ViT-B/16 1.00 at 65, 1.02 at 197 (21 MB), 1.01 at
401. Up to ~200 tokens the two ways do the same work within the noise, and the eager pass is taken there: its blocks
run 3 parallel regions instead of the slices' ~9 (each a wait for the other thread on a busy machine), and it is the
way 224 px models always went (their full tensors are kept for the app anyway, up to 64 MB); from 401 tokens the
pass does less work, in memory linear in T. Issue 47's 2x at 197 tokens was not the recorder: the rollout of the full
tensors multiplied 12 ``[T, T]`` joint matrices in numpy, whose OpenBLAS threads then spun through the next forward
pass and made it twice as slow (``benchmarks/speed_guard.py`` catches that now).
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .attention_maps import (SLICE_BYTES, AttentionMaps, _numpy, _QueryKeySource, _slice_rows, reading_start,
                             rollout_rows)

__all__ = [
    "SLICE_BYTES",
    "FULL_ATTENTION_BUDGET",
    "SUMMARY_FROM_FULL_BUDGET",
    "AttentionMaps",
    "AttentionRecorder",
    "reading_start",
    "rollout_rows",
    "full_attention_bytes",
]

# The app keeps a result's full attention tensors when they take at most this much (the shipped model: 0.6 MB,
# ViT-B/16 at 224 px: 22 MB); above it, the summary alone (Engine.analyze's ``attention="auto"``).
FULL_ATTENTION_BUDGET = 64 * 2**20
# Up to this many bytes of full tensors (full_attention_bytes of a forward pass), an analysis that keeps only the
# summary takes them from the model's eager forward pass and summarises them afterwards (AttentionMaps.from_full);
# above, an AttentionRecorder computes the attention in the pass: ViT-S/16 and ViT-B/16 at 224 px (10.7 and 21.3 MB
# an image) the first way, 401 tokens and more the second (measured: see "Which way" in the module docstring).
SUMMARY_FROM_FULL_BUDGET = 24 * 2**20
# A recorder computes the attention in the pass (on a CPU) while the head-means of a batch's layers ([B, T, T] each)
# take at most FUSED_BYTES in float16; they are kept in float32 while that takes at most FUSED_FLOAT32_BYTES (the
# shipped model: 0.2 MB; ViT-B/16 at 224 px: 1.8 MB; 2,036 tokens x 12 layers: 199 MB, kept in float16).
FUSED_BYTES = 256 * 2**20
FUSED_FLOAT32_BYTES = 96 * 2**20
# Distances between patch centres are computed once per sweep and kept for every layer when they fit this much.
DISTANCE_CACHE_BYTES = 64 * 2**20


def full_attention_bytes(layers: int, heads: int, tokens: int, images: int = 1) -> int:
    """Bytes of full float32 attention tensors ``[layers, heads, T, T]`` for ``images`` images."""
    return 4 * images * layers * heads * tokens * tokens


# ------------------------------------------------------------------------------------------------ recording


def _received(qs: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Mean over the queries of the attention rows, ``[B, H, 1, T]``, one slice of queries at a time."""
    b, h, t, _ = qs.shape
    step = _slice_rows(h, t, b)
    total = qs.new_zeros(b, h, 1, t)
    for s in range(0, t, step):
        total += torch.softmax(qs[:, :, s : s + step] @ k.transpose(-2, -1), dim=-1).sum(dim=2, keepdim=True)
    return total / t


class AttentionRecorder:
    """Keeps what the views need of every block's attention during a forward pass.

    Pass it as ``attention_recorder`` to :meth:`vitviz.models.vit.VisionTransformer.forward`; each block's
    attention calls it once with its queries, keys and values and gets the attention output back (in the pass, or
    from the fused kernel the model uses without a recorder: see the module docstring). ``grid`` is the patch grid
    of the input and ``num_prefix_tokens`` the tokens before the patches.
    """

    def __init__(self, grid: tuple[int, int], patch_size: int, num_prefix_tokens: int, keep_queries: bool = True,
                 head_statistics: bool = True, in_pass: bool | None = None, num_layers: int = 12) -> None:
        """``keep_queries``: keep the scaled queries and keys (rows of any token on demand later; always kept by a
        recorder that sweeps). ``head_statistics``: the heads' mean attention distance. ``in_pass``: compute the
        attention in slices during the pass and keep each layer's head-mean (see the class docstring); default: on
        a CPU, where it saves the sweep's second pass of attention scores, while the model's ``num_layers``
        head-means fit :data:`FUSED_BYTES`; not on a GPU, whose fused kernel is far faster than slices."""
        self.grid, self.patch_size, self.prefix = (int(grid[0]), int(grid[1])), int(patch_size), int(num_prefix_tokens)
        self.keep_queries, self.head_statistics, self.in_pass = keep_queries, head_statistics, in_pass
        self.num_layers = int(num_layers)
        self.prefix_rows: list[torch.Tensor] = []  # per layer [B, H, P, T]
        self.queries: list[torch.Tensor] = []  # per layer [B, H, T, d], scaled
        self.keys: list[torch.Tensor] = []
        self.fused: list[torch.Tensor] = []  # per layer [B, T, T] head-mean attention (in the pass)
        self.distances: list[_HeadDistance] = []  # per image (in the pass, with head_statistics)

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
        b, h, t = q.shape[:3]
        p = self.prefix
        if t != p + self.grid[0] * self.grid[1]:
            raise ValueError(f"{t} tokens do not match {p} prefix tokens + a {self.grid[0]}x{self.grid[1]} grid")
        if self.in_pass is None:
            self.in_pass = q.device.type == "cpu" and 2 * b * t * t * self.num_layers <= FUSED_BYTES
        qs = q * scale
        if self.keep_queries or not self.in_pass:
            self.queries.append(qs)
            self.keys.append(k.contiguous())  # not a view that would keep the block's whole q, k, v tensor alive
        if not self.in_pass:
            self.prefix_rows.append(torch.softmax(qs[:, :, :p] @ k.transpose(-2, -1), dim=-1) if p
                                    else _received(qs, k))
            return F.scaled_dot_product_attention(q, k, v, scale=scale)
        return self._in_pass(qs, k, v)

    def _in_pass(self, qs: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The attention output, from probabilities computed one slice of queries at a time; keeps the layer's
        prefix rows, its head-mean ``[B, T, T]`` (float32 up to :data:`FUSED_FLOAT32_BYTES` for the pass, else
        float16) and the heads' distance statistics."""
        b, h, t, _ = qs.shape
        p, layer = self.prefix, len(self.fused)
        dtype = self._begin_layer(b, t)
        # [B, T, H, d] in memory, as the fused kernel writes it: the block's transpose back is free
        out = qs.new_empty(b, t, h, v.shape[-1]).transpose(1, 2)
        fused = torch.empty(b, t, t, dtype=dtype, device=qs.device)
        received = qs.new_zeros(b, h, 1, t) if not p else None
        kt = k.transpose(-2, -1)
        step = _slice_rows(h, t, b, minimum=max(1, p))
        # one set of buffers for every slice: a fresh process's allocator would map and fault in new pages for each
        # slice's 12 MB (about 0.4 s of a photo model's first analysis), a warm one reuses them anyway
        scores = qs.new_empty(b, h, min(step, t), t)
        values = qs.new_empty(b, h, min(step, t), v.shape[-1])
        means = qs.new_empty(b, min(step, t), t)
        for s in range(0, t, step):
            rows = min(step, t - s)
            a = torch.matmul(qs[:, :, s : s + rows], kt, out=scores[:, :, :rows])  # [B, H, rows, T]
            a.sub_(a.amax(dim=-1, keepdim=True)).exp_()  # the softmax, in place
            a.div_(a.sum(dim=-1, keepdim=True))
            out[:, :, s : s + rows] = torch.matmul(a, v, out=values[:, :, :rows])
            fused[:, s : s + rows] = torch.mean(a, dim=1, out=means[:, :rows])
            if s == 0 and p:
                self.prefix_rows.append(a[:, :, :p].clone())
            if received is not None:
                received += a.sum(dim=2, keepdim=True)
            for i, distance in enumerate(self.distances):
                distance(layer, s, a[i])
        if received is not None:
            self.prefix_rows.append(received / t)
        self.fused.append(fused)
        return out

    def _begin_layer(self, batch: int, tokens: int) -> torch.dtype:
        """Start the heads' distance statistics with the first layer; the dtype of a layer's kept head-mean
        (float32 while the pass's head-means fit :data:`FUSED_FLOAT32_BYTES`, else float16)."""
        if self.head_statistics and not self.distances:
            self.distances = [_HeadDistance(self.grid, self.patch_size, self.prefix) for _ in range(batch)]
        fits = 4 * batch * tokens * tokens * self.num_layers <= FUSED_FLOAT32_BYTES
        return torch.float32 if fits else torch.float16

    def record(self, probabilities: torch.Tensor) -> None:
        """Keep what the views need of one layer's attention probabilities ``[B, H, T, T]`` that a model computed
        itself (a user's module, seen by :class:`vitviz.models.capture.AttentionCapture`): the prefix rows, the
        head-mean and the heads' distance statistics, as :meth:`__call__` keeps them in the pass."""
        a = probabilities.detach()
        b, h, t = a.shape[:3]
        p, layer = self.prefix, len(self.fused)
        if t != p + self.grid[0] * self.grid[1]:
            raise ValueError(f"{t} tokens do not match {p} prefix tokens + a {self.grid[0]}x{self.grid[1]} grid")
        dtype = self._begin_layer(b, t)
        self.prefix_rows.append(a[:, :, :p].float().clone() if p else a.float().mean(dim=2, keepdim=True))
        self.fused.append(a.float().mean(dim=1).to(dtype))
        for i, distance in enumerate(self.distances):
            distance(layer, 0, a[i].float())

    def maps(self, index: int, keep_queries: bool | None = None, head_statistics: bool | None = None) -> AttentionMaps:
        """Image ``index``'s :class:`AttentionMaps`: its rollout rows and, with ``head_statistics``, every head's
        mean attention distance (default: as the recorder was made). In the pass, from the kept head-means; else in
        one sweep over the layers' recomputed attention (on the pass's device)."""
        keep_queries = self.keep_queries if keep_queries is None else keep_queries
        head_statistics = self.head_statistics if head_statistics is None else head_statistics
        if self.fused:
            source: Any = _FusedSource([f[index] for f in self.fused])
            distance = self.distances[index] if head_statistics and self.distances else None
            visit = None
        else:
            source = _QueryKeySource([x[index] for x in self.queries], [x[index] for x in self.keys])
            distance = visit = _HeadDistance(self.grid, self.patch_size, self.prefix) if head_statistics else None
        start = reading_start(source.num_tokens, self.prefix).to(device=source.device, dtype=torch.float32)
        rollout = rollout_rows(source, start, visit=visit)[:, 0]  # [L, T]
        kept = keep_queries and bool(self.queries)
        return AttentionMaps(
            prefix_rows=_numpy(torch.stack([x[index] for x in self.prefix_rows])),
            rollout_rows=_numpy(rollout),
            mean_distance=distance.result() if distance is not None else None,
            grid=self.grid,
            patch_size=self.patch_size,
            num_prefix_tokens=self.prefix,
            queries=_stacked_numpy([x[index] for x in self.queries]) if kept else None,
            keys=_stacked_numpy([x[index] for x in self.keys]) if kept else None,
        )


class _HeadDistance:
    """Mean attention distance of every head (as :func:`vitviz.features.mean_attention_distance`), accumulated
    from the slices of attention that a rollout sweep visits: ``visit(layer, first_query, probabilities)``."""

    def __init__(self, grid: tuple[int, int], patch_size: int, prefix: int) -> None:
        self.grid, self.patch_size, self.prefix = grid, patch_size, prefix
        n = grid[0] * grid[1]
        self.weighted: dict[int, torch.Tensor] = {}  # per layer [H, N]: sum_k a_qk d_qk per patch query
        self.mass: dict[int, torch.Tensor] = {}  # per layer [H, N]: sum_k a_qk over the patch keys
        self.cache_distances = 4 * n * n <= DISTANCE_CACHE_BYTES
        self._cached: dict[tuple[int, int], torch.Tensor] = {}

    def _distances(self, first: int, stop: int, device: torch.device) -> torch.Tensor:
        """``[stop - first, N]``: distance (input pixels) from patch queries first..stop to every patch."""
        key = (first, stop)
        if key in self._cached:
            return self._cached[key]
        rows, cols = self.grid
        n = torch.arange(rows * cols, device=device, dtype=torch.float64)
        y, x = torch.div(n, cols, rounding_mode="floor"), n % cols
        d = (torch.sqrt((y[first:stop, None] - y[None]) ** 2 + (x[first:stop, None] - x[None]) ** 2)
             * self.patch_size).float()
        if self.cache_distances:
            self._cached[key] = d
        return d

    def __call__(self, layer: int, first_query: int, probabilities: torch.Tensor) -> None:
        p, stop = self.prefix, first_query + probabilities.shape[1]
        first = max(first_query, p)
        if first >= stop:
            return
        keys = probabilities[:, first - first_query :, p:].float()  # [H, queries, N]
        # an elementwise product and a row sum: ~4x faster than one batched product per query (whose [H, N] @ [N, 2]
        # products are too small for a matrix kernel), which was ~0.2 s of a 2,036-token analysis
        weighted = (keys * self._distances(first - p, stop - p, keys.device)).sum(dim=-1)  # [H, queries]
        if layer not in self.weighted:
            shape = (probabilities.shape[0], self.grid[0] * self.grid[1])
            self.weighted[layer] = torch.zeros(shape, dtype=torch.float64)
            self.mass[layer] = torch.zeros(shape, dtype=torch.float64)
        self.weighted[layer][:, first - p : stop - p] = weighted.double().cpu()
        self.mass[layer][:, first - p : stop - p] = keys.sum(dim=-1).double().cpu()

    def result(self) -> np.ndarray:
        layers = sorted(self.weighted)
        weighted = torch.stack([self.weighted[layer] for layer in layers])
        mass = torch.stack([self.mass[layer] for layer in layers])
        valid = mass > 0
        per_query = torch.where(valid, weighted / torch.where(valid, mass, 1.0), 0.0)
        return (per_query.sum(-1) / valid.sum(-1)).float().numpy()  # NaN where no query attends to a patch


def _stacked_numpy(layers: Sequence[torch.Tensor]) -> np.ndarray:
    """``[L, ...]`` float32 numpy of per-layer tensors, filled layer by layer (one copy, not two)."""
    out = np.empty((len(layers), *layers[0].shape), dtype=np.float32)
    for i, x in enumerate(layers):
        out[i] = _numpy(x)
    return out


class _FusedSource:
    """Head-mean attention of every layer ``[T, T]`` kept by a recorder in the pass (as one head: only mean
    fusion reads it)."""

    def __init__(self, fused: Sequence[torch.Tensor]) -> None:
        self.fused = list(fused)
        self.num_layers, self.num_heads, self.num_tokens = len(self.fused), 1, self.fused[0].shape[-1]
        self.device, self.dtype = self.fused[0].device, torch.float32

    def slices(self, layer: int) -> Iterator[tuple[int, torch.Tensor]]:
        step = _slice_rows(1, self.num_tokens)
        for s in range(0, self.num_tokens, step):
            yield s, self.fused[layer][None, s : s + step].float()

    def rows(self, layer: int, tokens: torch.Tensor) -> torch.Tensor:
        return self.fused[layer][None, tokens].float()
