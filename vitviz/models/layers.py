"""The transformer layers shared by vitviz's image tower (vitviz.models.vit) and text tower (vitviz.models.text):
multi-head attention whose probabilities can be observed (and heads knocked out), the MLP and its activations,
LayerScale, and the pre-norm encoder block."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Attention", "LayerScale", "QuickGELU", "MLP_ACTIVATIONS", "Mlp", "Block"]


class Attention(nn.Module):
    """Multi-head self-attention whose probabilities can be observed."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embedding dim {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        # PyTorch's fused kernel (scaled_dot_product_attention) unless turned off: for short sequences on a CPU the
        # explicit softmax(QK^T)V is faster, above all in the backward pass (see VisionTransformer.set_fused_attention).
        self.fused = True
        self.causal = False  # each token attends to itself and the tokens before it alone (CLIP's text tower)

    def forward(self, x: torch.Tensor, return_attention: bool = False,
                recorder: Callable[..., torch.Tensor] | None = None,
                head_mask: torch.Tensor | None = None,
                queries: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``recorder(q, k, v, scale)``, when given, computes the attention output itself (and keeps what it needs
        of the probabilities: vitviz.attention.AttentionRecorder); else the fused kernel or the explicit product.

        ``head_mask``: ``[heads]`` or ``[B, heads]`` factors of the heads' outputs before the output projection
        (1 keeps a head, 0 knocks it out); the attention probabilities returned or recorded are unchanged.
        ``queries``: the output of the first ``queries`` tokens alone (e.g. CLS's, where nothing else is read
        afterwards); not with a recorder."""
        b, t, c = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each [B, heads, T, head_dim]
        if queries is not None:
            q, t = q[:, :, :queries], min(t, queries)
        if self.causal:
            if recorder is not None or queries is not None:
                raise ValueError("a causal attention is neither recorded nor read for some queries alone")
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        if recorder is not None and not return_attention:
            attn, out = None, recorder(q, k, v, self.scale)
        elif self.fused and not return_attention:
            attn, out = None, F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        else:
            scores = (q * self.scale) @ k.transpose(-2, -1)
            if self.causal:
                scores = scores.masked_fill(~mask, float("-inf"))
            attn = torch.softmax(scores, dim=-1)
            out = attn @ v
        out = out.transpose(1, 2)  # [B, T, heads, head_dim]: contiguous from the fused kernel
        if head_mask is not None:
            out = out * head_mask.to(out.dtype).reshape(-1, 1, self.num_heads, 1)
        out = out.reshape(b, t, c)
        return self.proj(out), attn if return_attention else None


class LayerScale(nn.Module):
    """Per-channel learnable scaling of a residual branch (CaiT / DINOv2)."""

    def __init__(self, dim: int, init: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class QuickGELU(nn.Module):
    """``x * sigmoid(1.702 x)``: the GELU approximation of OpenAI's CLIP."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


MLP_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "gelu": nn.GELU,
    "gelu_tanh": lambda: nn.GELU(approximate="tanh"),
    "quick_gelu": QuickGELU,
}


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, act: str = "gelu") -> None:
        super().__init__()
        if act not in MLP_ACTIVATIONS:
            raise ValueError(f"unknown activation {act!r} (known: {', '.join(MLP_ACTIVATIONS)})")
        self.fc1 = nn.Linear(dim, hidden)
        self.act = MLP_ACTIVATIONS[act]()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer encoder block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        layer_scale_init: float | None = None,
        norm_eps: float = 1e-6,
        act: str = "gelu",
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.ls1 = LayerScale(dim, layer_scale_init) if layer_scale_init else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act)
        self.ls2 = LayerScale(dim, layer_scale_init) if layer_scale_init else nn.Identity()

    def forward(self, x: torch.Tensor, return_attention: bool = False,
                recorder: Callable[..., torch.Tensor] | None = None,
                head_mask: torch.Tensor | None = None,
                queries: int | None = None, out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``queries``: the first ``queries`` tokens' outputs alone (see :class:`Attention`). ``out``: a tensor to
        write the output tokens into (without gradients), e.g. a slice of one that holds every block's output."""
        y, attn = self.attn(self.norm1(x), return_attention, recorder, head_mask, queries)
        x = (x if queries is None else x[:, :queries]) + self.ls1(y)
        y = self.ls2(self.mlp(self.norm2(x)))
        return (x + y if out is None else torch.add(x, y, out=out)), attn
