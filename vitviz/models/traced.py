"""The model's forward pass as a TorchScript trace, one per input shape, for the live mode.

A traced graph runs in C++ with Python's GIL released for the whole pass. The eager model needs the GIL again
between every operation, and the Qt UI thread holds it while it paints. In live mode the UI paints every frame,
so an eager pass next to it takes several times longer than alone (measured in benchmarks/bench_live.py). A traced
pass does not wait for the painting.

A trace is fixed to one input shape and to the shapes of its branches. That is why there is one trace per
``(shape, dtype, device)``; a live source has a single frame size. Tracing takes a fraction of a second and is
done on first use. Cancelling a traced pass mid-way is not possible; live frames are short.
"""

from __future__ import annotations

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

    def __init__(self, model: VisionTransformer) -> None:
        self.model = model
        self._traces: OrderedDict[tuple, Any] = OrderedDict()
        self.failed = False

    def __call__(self, x: torch.Tensor) -> ViTOutput:
        if self.failed:
            return self.model(x, return_attention=True)
        key = (tuple(x.shape), x.dtype, str(x.device))
        fn = self._traces.get(key)
        if fn is None:
            fn = self._trace(x)
            if fn is None:
                return self.model(x, return_attention=True)
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
