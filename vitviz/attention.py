"""What an analysis keeps of a ViT's attention: memory that grows with the tokens T, not with T².

A forward pass with an :class:`AttentionRecorder` computes each block's attention one slice of queries at a time
(never more than about :data:`SLICE_BYTES` of probabilities at once) and keeps, per layer and head:

- the rows of the prefix tokens (CLS, registers): ``prefix_rows [L, H, P, T]``;
- the head statistics of the Features view and ``features.npz``: mean attention distance ``[L, H]`` (the CLS
  entropy follows from the prefix rows);
- the scaled queries and keys ``[L, H, T, head_dim]``, so that any row of any layer's attention can be recomputed
  later: a clicked patch's query attention, or rollout rows.

**Rollout, exactly, without a T x T matrix.** Attention rollout (Abnar & Zuidema 2020) after layer ``l`` is
``J_l = S_l S_(l-1) ... S_0`` with ``S_k = D_k^-1 (0.5 fuse_h(A_k) + 0.5 I)`` (``D_k`` the row sums). A row of it,
``r^T J_l``, is a chain of vector-matrix products taken from the last layer down; :func:`rollout_rows` runs that
chain for every "up to layer l" at once in one sweep from the top layer to the first, carrying at most
``L x len(starts)`` row vectors. Each layer's ``r^T S_k`` is formed one slice of queries at a time from the kept
queries and keys (mean fusion: ``sum_q r_q A_k[q, :]``), so the sweep costs about one more pass of attention scores
and holds one slice. Max/min fusion with a discard ratio needs a layer's whole fused matrix (T x T, one layer at a
time) for the global threshold of the weakest links.

:class:`AttentionMaps` holds one image's arrays (float32 numpy) and answers the views' questions; a small model's
full tensors ``[L, H, T, T]`` may be kept beside them (:data:`FULL_ATTENTION_BUDGET`), from which the same
figures are computed (tests check the two ways agree).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from .render import discard_weakest

__all__ = [
    "SLICE_BYTES",
    "FULL_ATTENTION_BUDGET",
    "AttentionMaps",
    "AttentionRecorder",
    "rollout_rows",
    "full_attention_bytes",
]

SLICE_BYTES = 32 * 2**20  # attention probabilities computed at once: one slice of queries, all heads
# The app keeps a result's full attention tensors when they take at most this much (the shipped model: 0.6 MB,
# ViT-B/16 at 224 px: 22 MB); above it, the summary alone (Engine.analyze's ``attention="auto"``).
FULL_ATTENTION_BUDGET = 64 * 2**20


def full_attention_bytes(layers: int, heads: int, tokens: int, images: int = 1) -> int:
    """Bytes of full float32 attention tensors ``[layers, heads, T, T]`` for ``images`` images."""
    return 4 * images * layers * heads * tokens * tokens


def _slice_rows(heads: int, tokens: int, batch: int = 1, minimum: int = 1) -> int:
    """Queries per slice so that ``batch x heads x rows x tokens`` float32 values fit :data:`SLICE_BYTES`."""
    return max(minimum, SLICE_BYTES // (4 * max(1, batch * heads * tokens)))


def _patch_distances(rows: int, cols: int, patch_size: float, queries: torch.Tensor, device: torch.device,
                     dtype: torch.dtype) -> torch.Tensor:
    """``[len(queries), N]`` distances (input pixels) between the patch centres of ``queries`` and every patch."""
    n = torch.arange(rows * cols, device=device)
    y, x = torch.div(n, cols, rounding_mode="floor").to(torch.float64), (n % cols).to(torch.float64)
    qy, qx = y[queries], x[queries]
    d = torch.sqrt((qy[:, None] - y[None]) ** 2 + (qx[:, None] - x[None]) ** 2) * float(patch_size)
    return d.to(dtype)


# ------------------------------------------------------------------------------------------------ recording


class AttentionRecorder:
    """Computes every block's attention in slices of queries during a forward pass and keeps what the views need.

    Pass it as ``attention_recorder`` to :meth:`vitviz.models.vit.VisionTransformer.forward`; each block's
    attention calls it once with its queries, keys and values and gets the attention output back (the same
    ``softmax(q k^T / sqrt(d)) v`` as the model's explicit path). ``grid`` is the patch grid of the input and
    ``num_prefix_tokens`` the tokens before the patches. ``keep_queries``: keep each layer's queries and keys for
    rows computed later (query rows, rollout); they are needed by :meth:`maps` to compute the rollout rows.
    """

    def __init__(self, grid: tuple[int, int], patch_size: int, num_prefix_tokens: int) -> None:
        self.grid, self.patch_size, self.prefix = (int(grid[0]), int(grid[1])), int(patch_size), int(num_prefix_tokens)
        self.prefix_rows: list[torch.Tensor] = []  # per layer [B, H, P, T]
        self.distance: list[torch.Tensor] = []  # per layer [B, H] mean attention distance
        self.queries: list[torch.Tensor] = []  # per layer [B, H, T, d], scaled
        self.keys: list[torch.Tensor] = []

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
        b, h, t, _ = q.shape
        p, n = self.prefix, self.grid[0] * self.grid[1]
        if t != p + n:
            raise ValueError(f"{t} tokens do not match {p} prefix tokens + a {self.grid[0]}x{self.grid[1]} grid")
        qs = q * scale
        kt = k.transpose(-2, -1)
        out = torch.empty_like(v)
        prefix = q.new_empty(b, h, p, t)
        weighted = torch.zeros(b, h, n, dtype=torch.float64, device=q.device)
        mass = torch.zeros_like(weighted)
        step = _slice_rows(h, t, b, minimum=max(p, 1))
        for s in range(0, t, step):
            e = min(t, s + step)
            a = torch.softmax(qs[:, :, s:e] @ kt, dim=-1)  # [B, H, rows, T]
            out[:, :, s:e] = a @ v
            if s < p:
                prefix[:, :, s : min(e, p)] = a[:, :, : min(e, p) - s]
            first = max(s, p)
            if first < e:  # patch queries of this slice: distance-weighted and total attention to the patch keys
                rows = torch.arange(first - p, e - p, device=q.device)
                keys = a[:, :, first - s :, p:].float()
                dist = _patch_distances(*self.grid, self.patch_size, rows, q.device, torch.float32)
                weighted[:, :, rows] = torch.einsum("bhqk,qk->bhq", keys, dist).double()
                mass[:, :, rows] = keys.sum(dim=-1).double()
        valid = mass > 0
        per_query = torch.where(valid, weighted / torch.where(valid, mass, torch.ones_like(mass)), 0.0)
        self.distance.append(per_query.sum(-1) / valid.sum(-1))  # NaN where no query attends to a patch
        self.prefix_rows.append(prefix)
        self.queries.append(qs)
        self.keys.append(k)
        return out

    def maps(self, index: int, keep_queries: bool = True) -> AttentionMaps:
        """Image ``index``'s :class:`AttentionMaps`, its rollout rows computed here (on the pass's device)."""
        q = torch.stack([x[index] for x in self.queries])  # [L, H, T, d]
        k = torch.stack([x[index] for x in self.keys])
        source = _QueryKeySource(q, k)
        t = q.shape[2]
        start = torch.zeros(1, t, dtype=torch.float32, device=q.device)
        start[0, 0] = 1.0
        rollout = rollout_rows(source, start)[:, 0]  # [L, T]
        return AttentionMaps(
            prefix_rows=_numpy(torch.stack([x[index] for x in self.prefix_rows])),
            rollout_rows=_numpy(rollout),
            mean_distance=_numpy(torch.stack([x[index] for x in self.distance])),
            grid=self.grid,
            patch_size=self.patch_size,
            num_prefix_tokens=self.prefix,
            queries=_numpy(q) if keep_queries else None,
            keys=_numpy(k) if keep_queries else None,
        )


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().float().cpu().numpy()


# ------------------------------------------------------------------------------------------------ layer sources


class _FullSource:
    """Attention of every layer from full tensors ``[L, H, T, T]`` (float64, as the numpy rollout always was)."""

    def __init__(self, full: np.ndarray | torch.Tensor) -> None:
        self.full = torch.as_tensor(np.asarray(full) if not isinstance(full, torch.Tensor) else full)
        self.num_layers, self.num_heads, self.num_tokens = self.full.shape[0], self.full.shape[1], self.full.shape[-1]
        self.dtype, self.device = torch.float64, self.full.device

    def slices(self, layer: int) -> Iterator[tuple[int, torch.Tensor]]:
        yield 0, self.full[layer].to(torch.float64)

    def rows(self, layer: int, tokens: torch.Tensor) -> torch.Tensor:
        return self.full[layer][:, tokens].to(torch.float32)


class _QueryKeySource:
    """Attention of every layer recomputed from scaled queries and keys ``[L, H, T, d]``, one slice at a time."""

    def __init__(self, queries: np.ndarray | torch.Tensor, keys: np.ndarray | torch.Tensor) -> None:
        self.q, self.k = torch.as_tensor(queries), torch.as_tensor(keys)
        self.num_layers, self.num_heads, self.num_tokens = self.q.shape[0], self.q.shape[1], self.q.shape[2]
        # the carried rows in float64 where that is cheap (as the rollout from full tensors), float32 on a GPU
        self.device = self.q.device
        self.dtype = torch.float32 if self.device.type in ("cuda", "mps") else torch.float64

    def slices(self, layer: int) -> Iterator[tuple[int, torch.Tensor]]:
        q, kt = self.q[layer], self.k[layer].transpose(-2, -1)
        step = _slice_rows(self.num_heads, self.num_tokens)
        for s in range(0, self.num_tokens, step):
            yield s, torch.softmax((q[:, s : s + step] @ kt).float(), dim=-1)

    def rows(self, layer: int, tokens: torch.Tensor) -> torch.Tensor:
        return torch.softmax((self.q[layer][:, tokens] @ self.k[layer].transpose(-2, -1)).float(), dim=-1)


_FUSE = {"mean": lambda a: a.mean(dim=0), "max": lambda a: a.amax(dim=0), "min": lambda a: a.amin(dim=0)}


def rollout_rows(
    source: Any,
    starts: torch.Tensor,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
    upto: Sequence[int] | None = None,
) -> torch.Tensor:
    """Rows ``starts @ J_l`` of attention rollout after each layer ``l`` in ``upto`` (default: every layer):
    ``[len(upto), n, T]`` for ``starts [n, T]`` (see the module docstring for the sweep).

    Same rule as :func:`vitviz.render.attention_rollout`: heads fused by mean, max or min, ``discard_ratio`` of a
    layer's weakest fused links zeroed (never a link to token 0), ``0.5 A + 0.5 I`` renormalised row by row.
    """
    if head_fusion not in _FUSE:
        raise ValueError(f"head_fusion must be mean, max or min, not {head_fusion!r}")
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError("discard_ratio must be in [0, 1)")
    layers = list(range(source.num_layers)) if upto is None else sorted({int(u) for u in upto})
    if not layers:
        return starts.new_zeros(0, *starts.shape)
    if layers[0] < 0 or layers[-1] >= source.num_layers:
        raise ValueError(f"layers {layers} are out of range: the model has {source.num_layers} layers")
    fuse = _FUSE[head_fusion]
    starts = starts.to(device=source.device, dtype=source.dtype)
    t = source.num_tokens
    wanted = set(layers)
    carried = starts.new_zeros(0, t)  # rows of every wanted l >= the current layer, highest l first
    for layer in range(layers[-1], -1, -1):
        if layer in wanted:
            carried = torch.cat([carried, starts])
        if discard_ratio > 0:
            fused = torch.cat([fuse(a) for _, a in source.slices(layer)])  # this layer's [T, T]
            step = torch.from_numpy(discard_weakest(fused.double().cpu().numpy(), discard_ratio))
            step = (0.5 * step + 0.5 * torch.eye(t, dtype=step.dtype))
            step /= step.sum(dim=-1, keepdim=True)
            carried = (carried.double().cpu() @ step).to(device=source.device, dtype=source.dtype)
            continue
        nxt = torch.zeros_like(carried)
        for s, a in source.slices(layer):
            f = fuse(a).to(carried.dtype)  # [rows, T]
            e = s + f.shape[0]
            scaled = carried[:, s:e] / (0.5 * f.sum(dim=-1) + 0.5)  # rows of D^-1 (0.5 A + 0.5 I)
            nxt += 0.5 * (scaled @ f)
            nxt[:, s:e] += 0.5 * scaled
        carried = nxt
    n = starts.shape[0]
    return carried.reshape(len(layers), n, t).flip(0).to(torch.float32)


# ------------------------------------------------------------------------------------------------ one image's maps


@dataclass
class AttentionMaps:
    """One image's attention, as an analysis keeps it (float32 numpy; ``L`` layers, ``H`` heads, ``T`` tokens).

    ``prefix_rows``, ``rollout_rows`` and ``mean_distance`` are always there. ``queries``/``keys`` (kept by the
    app) or ``full`` (a small model's whole tensors) let rows of other tokens be computed on demand
    (:meth:`query_rows`, :meth:`query_rollout`, :meth:`rollout`), each cached per patch.
    """

    prefix_rows: np.ndarray  # [L, H, P, T] attention of the prefix tokens' queries
    rollout_rows: np.ndarray  # [L, T] CLS row of the rollout up to each layer (mean fusion, nothing discarded)
    mean_distance: np.ndarray  # [L, H] mean attention distance, input pixels
    grid: tuple[int, int]
    patch_size: int
    num_prefix_tokens: int = 1
    queries: np.ndarray | None = None  # [L, H, T, d] scaled queries (q / sqrt(d))
    keys: np.ndarray | None = None  # [L, H, T, d]
    full: np.ndarray | None = None  # [L, H, T, T] when kept
    _cache: dict[Any, np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    @classmethod
    def from_full(cls, full: np.ndarray, grid: tuple[int, int], patch_size: int, num_prefix_tokens: int = 1,
                  keep_full: bool = True) -> AttentionMaps:
        """The same figures from full tensors ``[L, H, T, T]`` (for small models, and to check the recorder)."""
        from .features import mean_attention_distance

        a = np.asarray(full, dtype=np.float32)
        p = num_prefix_tokens
        start = torch.zeros(1, a.shape[-1], dtype=torch.float64)
        start[0, 0] = 1.0
        return cls(
            prefix_rows=np.ascontiguousarray(a[:, :, :p]),
            rollout_rows=rollout_rows(_FullSource(a), start)[:, 0].numpy(),
            mean_distance=mean_attention_distance(a, (grid[0], grid[1], patch_size), p),
            grid=(int(grid[0]), int(grid[1])),
            patch_size=int(patch_size),
            num_prefix_tokens=p,
            full=a if keep_full else None,
        )

    # -- shapes and always-there figures

    @property
    def num_layers(self) -> int:
        return int(self.prefix_rows.shape[0])

    @property
    def num_heads(self) -> int:
        return int(self.prefix_rows.shape[1])

    @property
    def num_tokens(self) -> int:
        return int(self.prefix_rows.shape[-1])

    @property
    def nbytes(self) -> int:
        arrays = (self.prefix_rows, self.rollout_rows, self.mean_distance, self.queries, self.keys, self.full)
        return sum(int(a.nbytes) for a in arrays if a is not None) + sum(int(a.nbytes) for a in self._cache.values())

    def cls_maps(self) -> np.ndarray:
        """CLS attention to the patches, ``[L, H, rows, cols]``."""
        p = self.num_prefix_tokens
        return self.prefix_rows[:, :, 0, p:].reshape(self.num_layers, self.num_heads, *self.grid)

    def cls_entropy(self) -> np.ndarray:
        """Entropy (nats) of the CLS row over the patches, ``[L, H]`` (see vitviz.features.cls_attention_entropy)."""
        from .features import cls_attention_entropy

        return cls_attention_entropy(self.prefix_rows, self.num_prefix_tokens)

    # -- rows computed on demand

    @property
    def answers_queries(self) -> bool:
        """Whether rows of other tokens than the prefix can be computed (queries and keys, or full tensors, kept)."""
        return self.full is not None or self.queries is not None

    @property
    def query_is_cheap(self) -> bool:
        """Whether a patch's rows come at once (full tensors held) rather than from a recomputation sweep."""
        return self.full is not None

    def has_query(self, patch: int) -> bool:
        return ("rollout", int(patch)) in self._cache or self.query_is_cheap

    def _source(self) -> Any:
        if self.full is not None:
            return _FullSource(self.full)
        if self.queries is not None and self.keys is not None:
            return _QueryKeySource(self.queries, self.keys)
        raise ValueError("this analysis kept no attention beyond the prefix tokens' rows")

    def _check_patch(self, patch: int) -> int:
        n = self.grid[0] * self.grid[1]
        if not 0 <= int(patch) < n:
            raise ValueError(f"patch {patch} is outside the {self.grid[0]}x{self.grid[1]} grid")
        return int(patch)

    def query_rows(self, patch: int) -> np.ndarray:
        """Attention of one patch's query to every patch, every layer and head: ``[L, H, rows, cols]`` (cached)."""
        patch = self._check_patch(patch)
        key = ("rows", patch)
        with self._lock:
            if key not in self._cache:
                source, p = self._source(), self.num_prefix_tokens
                token = torch.tensor([p + patch])
                rows = torch.stack([source.rows(layer, token)[:, 0, p:] for layer in range(self.num_layers)])
                self._cache[key] = rows.float().numpy().reshape(self.num_layers, self.num_heads, *self.grid)
            return self._cache[key]

    def query_rollout(self, patch: int) -> np.ndarray:
        """The rollout row of one patch's token up to each layer: ``[L, T]`` (cached)."""
        patch = self._check_patch(patch)
        key = ("rollout", patch)
        with self._lock:
            if key not in self._cache:
                start = torch.zeros(1, self.num_tokens)
                start[0, self.num_prefix_tokens + patch] = 1.0
                self._cache[key] = rollout_rows(self._source(), start)[:, 0].numpy()
            return self._cache[key]

    def rollout(self, upto_layer: int | None = None, head_fusion: str = "mean", discard_ratio: float = 0.0,
                start: np.ndarray | None = None) -> np.ndarray:
        """The row ``start @ J`` (default: the CLS row) of the rollout after ``upto_layer`` (default: the last),
        over every token ``[T]``. The kept rows answer the default; other options recompute (cached)."""
        last = self.num_layers - 1 if upto_layer is None else int(upto_layer) % self.num_layers
        if start is None and head_fusion == "mean" and not discard_ratio:
            return self.rollout_rows[last]
        vec = np.zeros(self.num_tokens) if start is None else np.asarray(start, dtype=np.float64)
        if start is None:
            vec[0] = 1.0
        key = ("joint", last, head_fusion, float(discard_ratio), vec.tobytes())
        with self._lock:
            if key not in self._cache:
                if not self.answers_queries:
                    raise ValueError("this analysis kept only the CLS rollout: other rollout options need the "
                                     "model's queries and keys (Engine.analyze with attention=\"auto\")")
                row = rollout_rows(self._source(), torch.from_numpy(vec)[None], head_fusion, discard_ratio, [last])
                self._cache[key] = row[0, 0].numpy()
            return self._cache[key]

    def without_queries(self) -> AttentionMaps:
        """The same maps without the queries, keys and full tensors (for writing, or sending to another process);
        what was computed from them already stays answered."""
        lean = AttentionMaps(self.prefix_rows, self.rollout_rows, self.mean_distance, self.grid, self.patch_size,
                             self.num_prefix_tokens)
        lean._cache.update(self._cache)
        return lean

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
