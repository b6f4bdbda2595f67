"""One image's attention as an analysis keeps it (:class:`AttentionMaps`), and attention rollout swept over a
model's layers (:func:`rollout_rows`) from whatever attention was kept: full tensors, scaled queries and keys (any
slice recomputed from them), or a recorder's head-means (:mod:`vitviz.attention` computes those in the pass).

**Rollout, exactly, without a T x T product.** Attention rollout (Abnar & Zuidema 2020) after layer ``l`` is
``J_l = S_l S_(l-1) ... S_0`` with ``S_k = D_k^-1 (0.5 fuse_h(A_k) + 0.5 I)`` (``D_k`` the row sums). A row of it,
``r^T J_l``, is a chain of vector-matrix products taken from the last layer down; :func:`rollout_rows` runs that
chain for every "up to layer l" at once in one sweep from the top layer to the first, carrying at most
``L x len(starts)`` row vectors, from the kept head-means or from slices of recomputed attention (mean fusion:
``sum_q r_q A_k[q, :]``). Max/min fusion with a discard ratio needs a layer's whole fused matrix (T x T, one layer
at a time) for the global threshold of the weakest links.

:class:`AttentionMaps` holds one image's arrays (float32 numpy) and answers the views' questions; a small model's
full tensors ``[L, H, T, T]`` may be kept beside them (:data:`vitviz.attention.FULL_ATTENTION_BUDGET`), from which the same
figures are computed (tests check the ways agree).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from .render import discard_weakest

__all__ = ["SLICE_BYTES", "AttentionMaps", "reading_start", "rollout_rows"]

# Attention probabilities recomputed at once: one slice of queries, all heads. Small enough to stay in a CPU's
# cache-friendly range (a few hundred queries of a 2,000-token image), large enough for efficient products.
SLICE_BYTES = 12 * 2**20


def _slice_rows(heads: int, tokens: int, batch: int = 1, minimum: int = 1) -> int:
    """Queries per slice so that ``batch x heads x rows x tokens`` float32 values fit :data:`SLICE_BYTES`."""
    return max(minimum, SLICE_BYTES // (4 * max(1, batch * heads * tokens)))


def reading_start(num_tokens: int, num_prefix_tokens: int) -> torch.Tensor:
    """The start vector ``[1, T]`` of the rollout the views show: the CLS token, or for a model without prefix tokens
    the mean of every token (see :mod:`vitviz.attention`)."""
    if num_prefix_tokens:
        start = torch.zeros(1, num_tokens, dtype=torch.float64)
        start[0, 0] = 1.0
        return start
    return torch.full((1, num_tokens), 1.0 / num_tokens, dtype=torch.float64)


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().float().cpu().numpy()


def _own_layers(full: Any, layers: list[np.ndarray]) -> Iterator[np.ndarray]:
    """``layers`` (float32 numpy of ``full``'s layers) as kept: views, except a layer that is part of a larger
    tensor (one image of a batch), copied so that the result holds its own image alone."""
    for x, layer in zip(full, layers):
        whole = (x.untyped_storage().nbytes() if isinstance(x, torch.Tensor) and x.device.type == "cpu"
                 and x.dtype == torch.float32 else 0)
        yield layer.copy() if whole > layer.nbytes else layer


def _float32_layers(full: np.ndarray | torch.Tensor | Sequence[torch.Tensor | np.ndarray]) -> list[np.ndarray]:
    """One float32 numpy array ``[H, T, T]`` per layer of full tensors (views of CPU float32 ones, no copy)."""
    if isinstance(full, np.ndarray):
        return list(np.asarray(full, dtype=np.float32))
    return [np.asarray(x, np.float32) if isinstance(x, np.ndarray) else _numpy(x) for x in full]


def _rollout_rows_of_means(means_from_top: Iterable[np.ndarray], start: np.ndarray) -> np.ndarray:
    """``[L, T]``: the row ``start @ J_l`` of the rollout after every layer, from each layer's head-mean ``[T, T]``,
    given from the last layer down (the sweep of :func:`rollout_rows` with mean fusion and nothing discarded, in
    float32 like the recorder's; call it under :func:`_one_blas_thread`)."""
    carried = np.zeros((0, start.shape[-1]), np.float32)  # rows of every layer >= the current one, highest first
    first = start.astype(np.float32)[None]
    for f in means_from_top:
        carried = np.concatenate([carried, first])
        scaled = carried / (0.5 * f.sum(axis=-1, dtype=np.float64) + 0.5).astype(np.float32)  # D^-1 (A + I) / 2
        carried = 0.5 * (scaled @ f) + 0.5 * scaled
    return carried[::-1].copy()


def _head_mean(layer: np.ndarray) -> np.ndarray:
    """A layer's mean over its heads, ``[H, T, T]`` -> ``[T, T]`` float32."""
    return np.add.reduce(layer, axis=0) * np.float32(1.0 / layer.shape[0])


_BLAS: Any = None


def _one_blas_thread() -> Any:
    """A context in which numpy's BLAS runs on the calling thread alone (threadpoolctl; about 7 us).

    The small products of a few hundred tokens' summary are not worth a team of threads, and numpy's OpenBLAS team
    spins after each product: through the next forward pass, whose own threads it then slows down (issue 47: 12
    joint-matrix products in numpy made ViT-S/16's next forward pass twice as slow). torch's threads are no better
    there: a small op waits for the other thread, which on the shared 2-core VM took 5 ms per op instead of 20 us
    while other processes kept the cores busy."""
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController().select(user_api="blas")
    return _BLAS.limit(limits=1)


# ------------------------------------------------------------------------------------------------ layer sources


class _FullSource:
    """Attention of every layer from full tensors: ``[L, H, T, T]``, or one ``[H, T, T]`` array per layer (float64,
    as the numpy rollout always was)."""

    def __init__(self, full: np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor]) -> None:
        self.layers = [torch.as_tensor(x) for x in full]  # views, no copy
        self.num_layers, (self.num_heads, _, self.num_tokens) = len(self.layers), self.layers[0].shape
        self.dtype, self.device = torch.float64, self.layers[0].device

    def slices(self, layer: int) -> Iterator[tuple[int, torch.Tensor]]:
        yield 0, self.layers[layer].to(torch.float64)

    def rows(self, layer: int, tokens: torch.Tensor) -> torch.Tensor:
        return self.layers[layer][:, tokens].to(torch.float32)


class _QueryKeySource:
    """Attention of every layer recomputed from scaled queries and keys ``[L, H, T, d]``, one slice at a time."""

    def __init__(self, queries: np.ndarray | torch.Tensor | Sequence[torch.Tensor],
                 keys: np.ndarray | torch.Tensor | Sequence[torch.Tensor]) -> None:
        """``queries``, ``keys``: ``[L, H, T, d]`` arrays, or one ``[H, T, d]`` tensor per layer."""
        self.q = [torch.as_tensor(x) for x in queries]
        self.k = [torch.as_tensor(x) for x in keys]
        self.num_layers, (self.num_heads, self.num_tokens) = len(self.q), self.q[0].shape[:2]
        self.device, self.dtype = self.q[0].device, torch.float32

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
    visit: Callable[[int, int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Rows ``starts @ J_l`` of attention rollout after each layer ``l`` in ``upto`` (default: every layer):
    ``[len(upto), n, T]`` for ``starts [n, T]`` (see the module docstring for the sweep).

    Same rule as :func:`vitviz.render.attention_rollout`: heads fused by mean, max or min, ``discard_ratio`` of a
    layer's weakest fused links zeroed (never a link to token 0), ``0.5 A + 0.5 I`` renormalised row by row.
    ``visit(layer, first_query, probabilities [H, rows, T])``, when given, sees every slice of attention the sweep
    computes (every layer up to the highest of ``upto``), so that other figures come from the same pass.
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
        slices = source.slices(layer)
        if visit is not None:
            slices = _visited(slices, layer, visit)
        if discard_ratio > 0:
            fused = torch.cat([fuse(a) for _, a in slices])  # this layer's [T, T]
            step = torch.from_numpy(discard_weakest(fused.double().cpu().numpy(), discard_ratio))
            step = (0.5 * step + 0.5 * torch.eye(t, dtype=step.dtype))
            step /= step.sum(dim=-1, keepdim=True)
            carried = (carried.double().cpu() @ step).to(device=source.device, dtype=source.dtype)
            continue
        nxt = torch.zeros_like(carried)
        support = torch.nonzero(carried.abs().sum(dim=0)).flatten()
        if visit is None and len(support) * 8 <= t:  # e.g. the CLS start at the top layer: only its rows needed
            f = fuse(source.rows(layer, support)).to(carried.dtype)  # [tokens, T]
            scaled = carried[:, support] / (0.5 * f.sum(dim=-1) + 0.5)
            nxt += 0.5 * (scaled @ f)
            nxt[:, support] += 0.5 * scaled
            carried = nxt
            continue
        for s, a in slices:
            f = fuse(a).to(carried.dtype)  # [rows, T]
            e = s + f.shape[0]
            scaled = carried[:, s:e] / (0.5 * f.sum(dim=-1) + 0.5)  # rows of D^-1 (0.5 A + 0.5 I)
            nxt += 0.5 * (scaled @ f)
            nxt[:, s:e] += 0.5 * scaled
        carried = nxt
    n = starts.shape[0]
    return carried.reshape(len(layers), n, t).flip(0).to(torch.float32)


def _visited(slices: Iterator[tuple[int, torch.Tensor]], layer: int,
             visit: Callable[[int, int, torch.Tensor], None]) -> Iterator[tuple[int, torch.Tensor]]:
    for s, a in slices:
        visit(layer, s, a)
        yield s, a


# ------------------------------------------------------------------------------------------------ one image's maps


@dataclass
class AttentionMaps:
    """One image's attention, as an analysis keeps it (float32 numpy; ``L`` layers, ``H`` heads, ``T`` tokens).

    ``prefix_rows``, ``rollout_rows`` and ``mean_distance`` are always there (the last two may be computed from
    the kept full tensors when first read: :meth:`from_full`). ``queries``/``keys`` (kept by the
    app) or ``full_layers`` (a small model's whole tensors) let rows of other tokens be computed on demand
    (:meth:`query_rows`, :meth:`query_rollout`, :meth:`rollout`), each cached per patch. The full tensors are kept
    as the forward pass gave them, one ``[H, T, T]`` array per layer (no copy); :attr:`full` stacks them into one
    ``[L, H, T, T]`` array the first time it is read.
    """

    prefix_rows: np.ndarray  # [L, H, P, T] attention of the prefix tokens' queries
    rollout_rows: np.ndarray  # [L, T] CLS row of the rollout up to each layer (mean fusion, nothing discarded)
    mean_distance: np.ndarray | None  # [L, H] mean attention distance, input pixels (None: not asked for)
    grid: tuple[int, int]
    patch_size: int
    num_prefix_tokens: int = 1
    queries: np.ndarray | None = None  # [L, H, T, d] scaled queries (q / sqrt(d))
    keys: np.ndarray | None = None  # [L, H, T, d]
    full_layers: Sequence[np.ndarray] | None = None  # L arrays [H, T, T] when kept
    _full: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)  # them stacked
    _cache: dict[Any, np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)
    _distance_on_demand: bool = field(default=False, init=False, repr=False, compare=False)
    _rollout_on_demand: bool = field(default=False, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    @classmethod
    def from_full(cls, full: np.ndarray | torch.Tensor | Sequence[torch.Tensor | np.ndarray], grid: tuple[int, int],
                  patch_size: int, num_prefix_tokens: int = 1, keep_full: bool = True,
                  head_statistics: bool = True, on_demand: bool = False) -> AttentionMaps:
        """The same figures from full tensors: ``[L, H, T, T]``, or one ``[H, T, T]`` tensor per layer as a forward
        pass returns them. ``keep_full``: keep them too (float32 numpy views of the tensors, no copy: copying a
        ViT-S/16's 11 MB took most of the post-processing), so that any patch's rows answer at once;
        ``head_statistics``: the heads' mean attention distance now; without it, from the kept tensors when
        :attr:`mean_distance` is first read (1.5 ms of ViT-S/16's post-processing that the plain call skips), or
        None when they are not kept; ``on_demand`` (with ``keep_full``): the CLS rollout rows too, when
        :attr:`rollout_rows` is first read (another 1.2-1.5 ms of ViT-S/16's: its 12 layers' head-means read 11 MB),
        so that a call from code pays for the figures it reads (the app's worker asks for everything at once).

        Computed with numpy on the calling thread (see :func:`_one_blas_thread` for why), from each layer's
        head-mean: no ``[T, T]`` joint matrix is multiplied. One sweep from the last layer down reads each layer's
        tensors once for its head-mean and head distances, and takes the layer's rollout step while its head-mean
        is in the cache (the forward pass wrote the last layers last)."""
        from .features import _check_attentions, _distance_sums, _mean_distance

        p = num_prefix_tokens
        if isinstance(full, torch.Tensor):
            full = _numpy(full)
        if isinstance(full, np.ndarray):
            full = np.asarray(full, np.float32)  # kept as it is (a float32 array: not copied)
        layers = _float32_layers(full)
        t = layers[0].shape[-1] if layers else 0
        if not layers or layers[0].ndim != 3 or layers[0].shape[-2] != t or not 0 <= p < t:
            raise ValueError(f"expected full attention tensors [layers, heads, T, T] with T > {p}, got "
                             f"{len(layers)} layers of {layers[0].shape if layers else ()}")
        rows, cols = int(grid[0]), int(grid[1])
        sums: list[np.ndarray] | None = None  # per layer from the top, [N, H, 2] (features.mean_attention_distance)
        if head_statistics:
            _check_attentions(layers[0], p, rows * cols)
            sums = []

        def means_from_top() -> Iterator[np.ndarray]:
            for x in reversed(layers):
                if sums is not None:
                    sums.append(_distance_sums(x, rows, cols, float(patch_size), p))
                yield _head_mean(x)

        rollout = distance = None
        on_demand = on_demand and keep_full
        if not on_demand or sums is not None:
            with _one_blas_thread():
                rollout = _rollout_rows_of_means(means_from_top(), reading_start(t, p)[0].numpy())
        if sums is not None:
            distance = _mean_distance(np.concatenate(sums[::-1], axis=1), (len(layers), -1))
        maps = cls(
            prefix_rows=np.stack([x[:, :p] if p else x.mean(axis=1, keepdims=True) for x in layers]),
            rollout_rows=rollout,
            mean_distance=distance,
            grid=(rows, cols),
            patch_size=int(patch_size),
            num_prefix_tokens=p,
            full_layers=tuple(_own_layers(full, layers)) if keep_full else None,
        )
        if keep_full and isinstance(full, np.ndarray):
            maps._full = full  # full_layers are views of it
        maps._distance_on_demand = keep_full and not head_statistics
        maps._rollout_on_demand = rollout is None
        return maps

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
    def full(self) -> np.ndarray | None:
        """The full tensors ``[L, H, T, T]`` when kept (stacked from :attr:`full_layers` on first use, then those
        are views of it)."""
        if self.full_layers is None:
            return None
        with self._lock:
            if self._full is None:
                self._full = np.stack(self.full_layers)
                self.full_layers = tuple(self._full)
            return self._full

    @property
    def nbytes(self) -> int:
        arrays = (self.prefix_rows, self.__dict__.get("_rollout_rows"), self.__dict__.get("_mean_distance"),
                  self.queries, self.keys,
                  *(self.full_layers or ()))
        return sum(int(a.nbytes) for a in arrays if a is not None) + sum(int(a.nbytes) for a in self._cache.values())

    def cls_maps(self) -> np.ndarray:
        """CLS attention to the patches, ``[L, H, rows, cols]`` (without a CLS token: the attention each patch
        receives, see the module docstring)."""
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
        return self.full_layers is not None or self.queries is not None

    @property
    def query_is_cheap(self) -> bool:
        """Whether a patch's rows come at once (full tensors held) rather than from a recomputation sweep."""
        return self.full_layers is not None

    def has_query(self, patch: int) -> bool:
        return ("rollout", int(patch)) in self._cache or self.query_is_cheap

    def _source(self) -> Any:
        if self.full_layers is not None:
            return _FullSource(self.full_layers)
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
        last, vec, key = self._rollout_key(upto_layer, head_fusion, discard_ratio, start)
        if key is None:
            return self.rollout_rows[last]
        with self._lock:
            if key not in self._cache:
                if not self.answers_queries:
                    raise ValueError("this analysis kept only the CLS rollout: other rollout options need the "
                                     "model's queries and keys (Engine.analyze with attention=\"auto\")")
                row = rollout_rows(self._source(), torch.from_numpy(vec)[None], head_fusion, discard_ratio, [last])
                self._cache[key] = row[0, 0].numpy()
            return self._cache[key]

    def _rollout_key(self, upto_layer: int | None, head_fusion: str, discard_ratio: float,
                     start: np.ndarray | None) -> tuple[int, np.ndarray | None, Any]:
        """(layer, start vector, cache key) of a rollout row; the key is None for the kept CLS rows."""
        last = self.num_layers - 1 if upto_layer is None else int(upto_layer) % self.num_layers
        if start is None and head_fusion == "mean" and not discard_ratio:
            return last, None, None
        vec = (reading_start(self.num_tokens, self.num_prefix_tokens)[0].numpy() if start is None
               else np.asarray(start, dtype=np.float64))
        return last, vec, ("joint", last, head_fusion, float(discard_ratio), vec.tobytes())

    def rollout_is_cheap(self, upto_layer: int | None = None, head_fusion: str = "mean", discard_ratio: float = 0.0,
                         start: np.ndarray | None = None) -> bool:
        """Whether :meth:`rollout` answers at once: the kept rows, a cached row, or full tensors of a small model
        (else it sweeps every layer's attention from the queries and keys: work for the app's worker thread)."""
        _last, _vec, key = self._rollout_key(upto_layer, head_fusion, discard_ratio, start)
        return key is None or self.full_layers is not None or not self.answers_queries or key in self._cache

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
        state["_full"] = None  # full_layers are views of it: pickled once, stacked again on demand
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


def _distances_of_full(maps: AttentionMaps) -> np.ndarray:
    """The heads' mean attention distance ``[L, H]`` from the kept full tensors."""
    from .features import mean_attention_distance

    return mean_attention_distance(maps.full_layers, (*maps.grid, maps.patch_size), maps.num_prefix_tokens)


def _rollout_of_full(maps: AttentionMaps) -> np.ndarray:
    """The CLS rollout rows ``[L, T]`` from the kept full tensors (each layer's head-mean, the last layer first)."""
    start = reading_start(maps.num_tokens, maps.num_prefix_tokens)[0].numpy()
    return _rollout_rows_of_means(map(_head_mean, reversed(maps.full_layers)), start)


def _computed_on_first_read(name: str, flag: str, compute: Callable[[AttentionMaps], np.ndarray],
                            doc: str) -> property:
    """A property over the dataclass field of that name (its ``__init__`` assigns through the setter): its value, or,
    when :meth:`AttentionMaps.from_full` left it to be computed (``flag``), ``compute(maps)`` from the kept full
    tensors on first read (once, under the maps' lock, numpy's BLAS on this thread)."""
    def read(maps: AttentionMaps) -> np.ndarray | None:
        state = maps.__dict__
        if state.get(name) is None and state.get(flag) and maps.full_layers is not None:
            with maps._lock:
                if state.get(name) is None:
                    with _one_blas_thread():
                        state[name] = compute(maps)
                    state[flag] = False
        return state.get(name)

    def write(maps: AttentionMaps, value: np.ndarray | None) -> None:
        maps.__dict__[name] = value

    return property(read, write, doc=doc)


AttentionMaps.mean_distance = _computed_on_first_read(  # type: ignore[assignment]
    "_mean_distance", "_distance_on_demand", _distances_of_full,
    "[L, H] mean attention distance, input pixels (None: not asked for)")
AttentionMaps.rollout_rows = _computed_on_first_read(  # type: ignore[assignment]
    "_rollout_rows", "_rollout_on_demand", _rollout_of_full,
    "[L, T] CLS row of the rollout up to each layer (mean fusion, nothing discarded)")
