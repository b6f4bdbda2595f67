"""Attention capture inside any PyTorch module, without naming its layers.

A :class:`torch.overrides.TorchFunctionMode` sees every torch call a module makes, where forward hooks see module
boundaries only. :class:`AttentionCapture` answers three kinds of call as a ViT's attention:

- ``F.multi_head_attention_forward``: what ``nn.MultiheadAttention`` (and so ``nn.TransformerEncoderLayer``) runs
  once a torch-function mode is active, since its C++ inference fast path steps aside for one;
- ``F.scaled_dot_product_attention`` over ``[B, heads, T, T]`` (timm, transformers' SDPA, hand-written blocks);
- a softmax over the last axis of a square ``[.., T, T]`` score tensor (hand-written attention with ``@`` or
  einsum, transformers' eager attention).

Each captured call is one layer, in call order. A :class:`CapturePass` says what the pass wants of each layer: the
full probabilities (``[B, heads, T, T]``, kept in the autograd graph when gradients are on), a
:class:`vitviz.attention.AttentionRecorder` that keeps memory linear in the tokens, per-head output factors (head
knockout), or nothing at all (the pass then costs one Python call per torch call more than the module's own).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..errors import VitvizError

__all__ = ["AttentionCapture", "CapturePass", "AttentionEvent"]

_SDPA = F.scaled_dot_product_attention
_MHA = F.multi_head_attention_forward
_MHA_SIGNATURE = inspect.signature(_MHA)
_SOFTMAXES = {torch.softmax, F.softmax, torch.Tensor.softmax, torch.nn.functional.softmax}


@dataclass
class AttentionEvent:
    """One attention computation seen during a probing pass."""

    kind: str  # "multihead", "sdpa" or "softmax"
    tokens: int
    heads: int
    stack: tuple[str, ...]  # names of the modules running when it was seen, outermost first


@dataclass
class CapturePass:
    """What one forward pass asks of the attention it captures (see the module docstring)."""

    batch: int
    tokens: int | None  # the sequence length of the model's attention (None while probing)
    return_attention: bool = False
    recorder: Callable[..., torch.Tensor] | None = None
    head_mask: Sequence[torch.Tensor | None] | torch.Tensor | None = None
    attentions: list[torch.Tensor] = field(default_factory=list)
    events: list[AttentionEvent] | None = None  # filled while probing
    stack: list[str] = field(default_factory=list)  # kept by module hooks while probing
    layer: int = 0

    def next_layer(self) -> int:
        self.layer += 1
        return self.layer - 1

    def keep(self, probabilities: torch.Tensor) -> None:
        """Keep one layer's probabilities ``[B, heads, T, T]`` as the pass asks: whole, or the recorder's summary."""
        if self.return_attention:
            self.attentions.append(probabilities)
        elif self.recorder is not None:
            self.recorder.record(probabilities)

    def mask(self, layer: int, heads: int) -> torch.Tensor | None:
        """``[B or 1, heads, 1, 1]`` factors of the heads' outputs in ``layer``, or None."""
        if self.head_mask is None or layer >= len(self.head_mask) or self.head_mask[layer] is None:
            return None
        return self.head_mask[layer].reshape(-1, heads, 1, 1)


class AttentionCapture(TorchFunctionMode):
    """A torch-function mode that treats attention calls as :class:`CapturePass` asks (see the module docstring)."""

    def __init__(self, state: CapturePass) -> None:
        super().__init__()
        self.state = state

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func is _MHA:
            return self._multihead(args, kwargs)
        if func is _SDPA:
            return self._sdpa(*args, **kwargs)
        if func in _SOFTMAXES:
            return self._softmax(func, args, kwargs)
        return func(*args, **kwargs)

    # ------------------------------------------------------------------------------------------------ the calls

    def _is_attention(self, tokens: int) -> bool:
        expected = self.state.tokens
        return tokens >= 2 if expected is None else tokens == expected

    def _seen(self, kind: str, tokens: int, heads: int) -> None:
        if self.state.events is not None:
            self.state.events.append(AttentionEvent(kind, tokens, heads, tuple(self.state.stack)))

    def _softmax(self, func: Callable, args: tuple, kwargs: dict) -> Any:
        x = args[0]
        dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
        if (not isinstance(x, torch.Tensor) or x.ndim not in (3, 4) or dim not in (-1, x.ndim - 1)
                or x.shape[-1] != x.shape[-2] or not self._is_attention(x.shape[-1])):
            return func(*args, **kwargs)
        s = self.state
        probs = func(*args, **kwargs)
        if probs.ndim == 3:  # [B * heads, T, T], as nn.MultiheadAttention's explicit path lays it out
            if probs.shape[0] % s.batch:
                return probs
            full = probs.view(s.batch, probs.shape[0] // s.batch, *probs.shape[1:])
        else:
            full = probs
        heads, layer = full.shape[1], s.next_layer()
        self._seen("softmax", full.shape[-1], heads)
        s.keep(full)
        mask = s.mask(layer, heads)
        return probs if mask is None else (full * mask.to(full.dtype)).view_as(probs)

    def _sdpa(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: Any = None,
              dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None, **rest: Any) -> Any:
        plain = (attn_mask is None and not is_causal and not dropout_p and not rest and q.ndim == 4
                 and q.shape[-2] == k.shape[-2] and self._is_attention(q.shape[-2]) and k.shape[1] == q.shape[1])
        if not plain:
            return _SDPA(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale, **rest)
        self._seen("sdpa", q.shape[-2], q.shape[1])
        out, _ = self._attend(q, k, v, q.shape[-1] ** -0.5 if scale is None else scale)
        return out

    def _multihead(self, args: tuple, kwargs: dict) -> Any:
        a = _MHA_SIGNATURE.bind(*args, **kwargs)
        a.apply_defaults()
        p = a.arguments
        query, heads = p["query"], p["num_heads"]
        plain = (query is p["key"] and query is p["value"] and query.ndim == 3 and p["bias_k"] is None
                 and p["bias_v"] is None and not p["add_zero_attn"] and not (p["training"] and p["dropout_p"])
                 and p["key_padding_mask"] is None and p["attn_mask"] is None and not p["is_causal"]
                 and p["static_k"] is None and p["static_v"] is None and self._is_attention(query.shape[0]))
        if not plain:  # something vitviz does not re-create: the module's own code, its per-head weights recorded
            if not self._is_attention(query.shape[0]) or query.ndim != 3:
                return _MHA(*args, **kwargs)
            wanted, averaged = p["need_weights"], p["average_attn_weights"]
            p["need_weights"], p["average_attn_weights"] = True, False
            out, weights = _MHA(**p)
            self._seen("multihead", query.shape[0], heads)
            layer = self.state.next_layer()
            if self.state.mask(layer, heads) is not None:
                raise VitvizError(f"the heads of layer {layer} cannot be knocked out: its nn.MultiheadAttention is "
                                  "called with masks, bias_k/bias_v or separate key and value inputs")
            self.state.keep(weights)
            return out, (weights.mean(dim=1) if averaged else weights) if wanted else None
        t, b, e = query.shape
        d = e // heads
        if p["use_separate_proj_weight"]:
            bq, bk, bv = (None, None, None) if p["in_proj_bias"] is None else p["in_proj_bias"].chunk(3)
            q = F.linear(query, p["q_proj_weight"], bq)
            k = F.linear(query, p["k_proj_weight"], bk)
            v = F.linear(query, p["v_proj_weight"], bv)
        else:
            q, k, v = F.linear(query, p["in_proj_weight"], p["in_proj_bias"]).chunk(3, dim=-1)
        q, k, v = (x.reshape(t, b, heads, d).permute(1, 2, 0, 3) for x in (q, k, v))  # [B, heads, T, d]
        self._seen("multihead", t, heads)
        out, probs = self._attend(q, k, v, d**-0.5, need_probabilities=p["need_weights"])
        out = F.linear(out.permute(2, 0, 1, 3).reshape(t, b, e), p["out_proj_weight"], p["out_proj_bias"])
        if not p["need_weights"]:
            return out, None
        return out, probs.mean(dim=1) if p["average_attn_weights"] else probs

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
                need_probabilities: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attention output ``[B, heads, T, d]`` of one layer, keeping what the pass asks; the probabilities
        when they were computed."""
        s = self.state
        layer, heads = s.next_layer(), q.shape[1]
        probs = None
        if s.return_attention or need_probabilities:
            probs = torch.softmax((q * scale) @ k.transpose(-2, -1), dim=-1)
            s.keep(probs)
            out = probs @ v
        elif s.recorder is not None:
            out = s.recorder(q, k, v, scale)
        else:
            out = _SDPA(q, k, v, scale=scale)
        mask = s.mask(layer, heads)
        if mask is not None:
            out = out * mask.to(out.dtype)
        return out, probs
