"""The model's forward pass as a TorchScript trace, one per input shape, for the live mode.

A traced graph runs in C++ with Python's GIL released for the whole pass. The eager model needs the GIL again
between every operation, and the Qt UI thread holds it while it paints. In live mode the UI paints every frame,
so an eager pass next to it takes several times longer than alone (measured in benchmarks/bench_live.py). A traced
pass does not wait for the painting.

A trace is fixed to one input shape and to the shapes of its branches. That is why there is one trace per
``(shape, dtype, device)``; a live source has a single frame size. Tracing takes a fraction of a second and is
done on first use. Cancelling a traced pass mid-way is not possible; live frames are short.

On CUDA each trace is also recorded as a CUDA graph (:class:`_GraphedCall`): one replay launches the hundreds of
kernels of a pass at once, where a small model at batch 1 otherwise spends much of its time launching them. The
first replay is checked against the trace it recorded; if recording fails or the outputs differ, the traces run
without graphs from then on, and a line on stderr says so. ``VITVIZ_CUDA_GRAPHS=0`` turns graphs off.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from .vit import ViTOutput, VisionTransformer

__all__ = ["TracedForward"]

MAX_TRACES = 4  # input shapes kept (a live source has one; switching sources adds one)


class _Flat(nn.Module):
    """``model(x, return_attention=True)`` as a flat tuple of tensors: tokens, [logits], [depth], attentions..."""

    def __init__(self, model: VisionTransformer) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(x, return_attention=True)
        extra = [t for t in (out.logits, out.depth) if t is not None]
        return (out.tokens, *extra, *(out.attentions or []))


class TracedForward:
    """``TracedForward(model)(x)`` returns what ``model(x, return_attention=True)`` returns (a :class:`ViTOutput`,
    without hidden states), through a TorchScript trace made for ``x``'s shape on first use.

    If tracing fails (an architecture or a PyTorch build that cannot be traced), it says so once on stderr and
    runs the eager model from then on.
    """

    def __init__(self, model: VisionTransformer, cuda_graphs: bool | None = None) -> None:
        self.model = model
        self._traces: OrderedDict[tuple, Any] = OrderedDict()
        self.failed = False
        # None: on unless VITVIZ_CUDA_GRAPHS=0; only CUDA inputs are graphed
        self.cuda_graphs = os.environ.get("VITVIZ_CUDA_GRAPHS", "1") != "0" if cuda_graphs is None else cuda_graphs

    def __call__(self, x: torch.Tensor) -> ViTOutput:
        if self.failed:
            return self.model(x, return_attention=True)
        key = (tuple(x.shape), x.dtype, str(x.device))
        fn = self._traces.get(key)
        if fn is None:
            fn = self._trace(x)
            if fn is None:
                return self.model(x, return_attention=True)
            if self.cuda_graphs and _graphable(x):
                fn = self._graphed(fn, x) or fn
            self._traces[key] = fn
            while len(self._traces) > MAX_TRACES:
                self._traces.popitem(last=False)
        else:
            self._traces.move_to_end(key)
        return self._unflatten(fn(x), x)

    def _trace(self, x: torch.Tensor) -> Any:
        try:
            with warnings.catch_warnings():
                # torch.jit.trace is deprecated in favour of torch.compile / torch.export, which need a compiler
                # toolchain or cannot return to Python without the GIL; the tracer also warns about shape checks,
                # which a per-shape trace makes exact.
                warnings.simplefilter("ignore")
                with torch.inference_mode():
                    return torch.jit.trace(_Flat(self.model).eval(), x, check_trace=False)
        except Exception as exc:  # noqa: BLE001 - any failure: the eager model does the same work
            self.failed = True
            print(f"vitviz: the live mode runs the model without tracing ({type(exc).__name__}: {exc})",
                  file=sys.stderr)
            return None

    def _graphed(self, fn: Any, x: torch.Tensor) -> _GraphedCall | None:
        """``fn`` recorded as a CUDA graph for ``x``'s shape, checked once against ``fn``; None (and graphs off
        from then on) if that fails."""
        try:
            graphed = _GraphedCall(fn, x)
            expected, replayed = fn(x), graphed(x)
            for a, b in zip(expected, replayed, strict=True):
                if not torch.allclose(a.float(), b.float(), rtol=1e-3, atol=1e-4):
                    raise RuntimeError("the replayed outputs differ from the trace's")
            return graphed
        except Exception as exc:  # noqa: BLE001 - any failure: the trace alone does the same work
            self.cuda_graphs = False
            print(f"vitviz: the live mode runs without CUDA graphs ({type(exc).__name__}: {exc})", file=sys.stderr)
            return None

    def _unflatten(self, flat: tuple[torch.Tensor, ...], x: torch.Tensor) -> ViTOutput:
        model = self.model
        p = model.config.patch_size
        i = 1
        logits = depth = None
        if model.head is not None:
            logits, i = flat[i], i + 1
        if model.depth_head is not None:
            depth, i = flat[i], i + 1
        return ViTOutput(tokens=flat[0], logits=logits, depth=depth, attentions=list(flat[i:]),
                         grid=(x.shape[-2] // p, x.shape[-1] // p), num_prefix_tokens=model.num_prefix_tokens)


def _graphable(x: torch.Tensor) -> bool:
    return x.is_cuda


class _GraphedCall:
    """A trace recorded as a CUDA graph for one input shape: a call copies its input into the recorded input buffer
    and replays the recorded kernels. The outputs are the graph's own buffers, overwritten by the next call, so a
    caller copies them out first (the engine does, under its lock, before another analysis can start)."""

    def __init__(self, fn: Any, x: torch.Tensor, warmup: int = 3) -> None:
        self.x = x.clone()
        current = torch.cuda.current_stream(x.device)
        side = torch.cuda.Stream(device=x.device)  # warm-up off the default stream, as recording requires
        side.wait_stream(current)
        with torch.cuda.stream(side):
            for _ in range(warmup):  # cuBLAS handles and workspaces exist before recording
                fn(self.x)
        current.wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = fn(self.x)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.x.copy_(x)
        self.graph.replay()
        return self.out
