"""Small ViTs written the ways people write their own (tests of vitviz.models.usermodel): each keeps the attention
probabilities it computed (``last_attention`` per attention module, ``[B, heads, T, T]``) so tests can compare
vitviz's capture with the module's own figures."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PatchEmbedding(nn.Module):
    """The design notes' patch embedding: a Conv2d with kernel = stride = patch."""

    def __init__(self, img_size: int = 64, patch_size: int = 16, in_channels: int = 3, embed_dim: int = 64) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class EncoderViT(nn.Module):
    """The design notes' MiniViT: nn.TransformerEncoder, Q/K/V inside nn.MultiheadAttention, an mlp_head, and the
    ConvTranspose depth head when ``depth_head``."""

    def __init__(self, img_size: int = 64, patch_size: int = 16, embed_dim: int = 64, depth: int = 3,
                 num_heads: int = 4, num_classes: int = 5, batch_first: bool = True, norm_first: bool = False,
                 depth_head: bool = False) -> None:
        super().__init__()
        self.batch_first = batch_first
        self.patch_embed = PatchEmbedding(img_size, patch_size, 3, embed_dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, embed_dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, (img_size // patch_size) ** 2 + 1, embed_dim) * 0.02)
        layer = nn.TransformerEncoderLayer(d_model=embed_dim, nhead=num_heads, batch_first=batch_first,
                                           norm_first=norm_first, dim_feedforward=2 * embed_dim)
        self.transformer = nn.TransformerEncoder(layer, num_layers=depth, enable_nested_tensor=False)
        self.mlp_head = nn.Sequential(nn.LayerNorm(embed_dim), nn.Linear(embed_dim, num_classes))
        d = embed_dim
        self.depth_head = nn.Sequential(
            nn.ConvTranspose2d(d, d // 2, 2, 2), nn.ReLU(), nn.ConvTranspose2d(d // 2, d // 4, 2, 2), nn.ReLU(),
            nn.Conv2d(d // 4, 1, 1)) if depth_head else None

    def forward(self, x: torch.Tensor):
        b, _, h, w = x.shape
        t = self.patch_embed(x)
        t = torch.cat((self.cls_token.expand(b, -1, -1), t), dim=1) + self.pos_embed[:, : t.shape[1] + 1]
        t = self.transformer(t if self.batch_first else t.transpose(0, 1))
        t = t if self.batch_first else t.transpose(0, 1)
        logits = self.mlp_head(t[:, 0])
        if self.depth_head is None:
            return logits
        g = int((t.shape[1] - 1) ** 0.5)
        depth = self.depth_head(t[:, 1:].transpose(1, 2).reshape(b, -1, g, g))
        return logits, F.interpolate(depth, size=(h, w), mode="bilinear")


def encoder_attention(model: EncoderViT, x: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's per-head probabilities as nn.MultiheadAttention itself reports them (need_weights=True,
    average_attn_weights=False), from each layer's own input."""
    inputs: list[torch.Tensor] = []
    hooks = [layer.register_forward_pre_hook(lambda m, a: inputs.append(a[0])) for layer in model.transformer.layers]
    with torch.no_grad():
        model(x)
        out = []
        for layer, inp in zip(model.transformer.layers, inputs):
            y = layer.norm1(inp) if layer.norm_first else inp
            _, a = layer.self_attn(y, y, y, need_weights=True, average_attn_weights=False)
            out.append(a)
    for h in hooks:
        h.remove()
    return out


class QKVBlock(nn.Module):
    """Separate query/key/value layers and a hand-written softmax (``fused``: F.scaled_dot_product_attention)."""

    def __init__(self, dim: int, heads: int, fused: bool = False, einsum: bool = False) -> None:
        super().__init__()
        self.heads, self.fused, self.einsum = heads, fused, einsum
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.last_qk: tuple[torch.Tensor, torch.Tensor, float] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        y = self.norm1(x)
        q, k, v = (f(y).view(b, t, self.heads, d // self.heads).transpose(1, 2)
                   for f in (self.query, self.key, self.value))
        scale = (d // self.heads) ** -0.5
        self.last_qk = (q.detach(), k.detach(), scale)  # the module's own probabilities, computed by own_attention
        if self.fused:
            o = F.scaled_dot_product_attention(q, k, v)
        elif self.einsum:
            a = (torch.einsum("bhid,bhjd->bhij", q, k) * scale).softmax(dim=-1)
            o = torch.einsum("bhij,bhjd->bhid", a, v)
        else:
            a = F.softmax(q @ k.transpose(-2, -1) * scale, dim=-1)
            o = a @ v
        x = x + self.out(o.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.norm2(x))


class MHABlock(nn.Module):
    """nn.MultiheadAttention inside a hand-written pre-norm block, called with its default need_weights=True."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.last_attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        o, a = self.attn(y, y, y, average_attn_weights=False)
        self.last_attention = a.detach()
        x = x + o
        return x + self.mlp(self.norm2(x))


class BlockViT(nn.Module):
    """A hand-written ViT of ``block`` modules with a final norm and a linear head; returns a dict with the logits
    and, when ``depth``, a ``[B, H/P, W/P]`` depth map."""

    def __init__(self, block: str = "qkv", img_size: int = 64, patch: int = 16, dim: int = 64, depth: int = 3,
                 heads: int = 4, classes: int = 5, with_depth: bool = False) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, patch)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + (img_size // patch) ** 2, dim) * 0.02)

        def make() -> nn.Module:
            if block == "mha":
                return MHABlock(dim, heads)
            return QKVBlock(dim, heads, fused=block == "sdpa", einsum=block == "einsum")
        self.blocks = nn.ModuleList(make() for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)
        self.to_depth = nn.Linear(dim, 1) if with_depth else None

    def forward(self, x: torch.Tensor):
        t = self.patch(x)
        g = t.shape[-2:]
        t = torch.cat([self.cls.expand(len(x), -1, -1), t.flatten(2).transpose(1, 2)], 1) + self.pos_embed
        for blk in self.blocks:
            t = blk(t)
        t = self.norm(t)
        out = {"logits": self.head(t[:, 0])}
        if self.to_depth is not None:
            out["depth"] = self.to_depth(t[:, 1:]).reshape(len(x), *g)
        return out


class EinsumViT(nn.Module):
    """vit-pytorch's style: patches cut by reshape (no Conv2d), 1-channel images, attention and feed-forward
    applied in a loop with the residual added outside any module."""

    def __init__(self, img_size: int = 32, patch: int = 8, dim: int = 48, depth: int = 2, heads: int = 4,
                 classes: int = 3) -> None:
        super().__init__()
        self.p = patch
        self.to_embedding = nn.Linear(patch * patch, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, (img_size // patch) ** 2 + 1, dim))
        self.layers = nn.ModuleList(
            nn.ModuleList([_EinsumAttention(dim, heads), nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim))])
            for _ in range(depth))
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, classes))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        b, c, h, w = img.shape
        p = self.p
        x = img.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), -1)
        x = torch.cat([self.cls_token.expand(b, -1, -1), self.to_embedding(x)], 1) + self.pos_embedding
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        return self.head(x[:, 0])


class _EinsumAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, dim * 3, bias=False)
        self.to_out = nn.Linear(dim, dim)
        self.last_attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = self.norm(x).shape
        q, k, v = (t.reshape(b, n, self.heads, -1).transpose(1, 2) for t in self.to_qkv(self.norm(x)).chunk(3, -1))
        dots = torch.einsum("bhid,bhjd->bhij", q, k) * (d // self.heads) ** -0.5
        attn = dots.softmax(dim=-1)
        self.last_attention = attn.detach()
        return self.to_out(torch.einsum("bhij,bhjd->bhid", attn, v).transpose(1, 2).reshape(b, n, d))


def own_attention(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Every attention layer's probabilities as ``model`` computes them in a plain pass on ``x`` (no vitviz)."""
    with torch.no_grad():
        model(x)
    out = []
    for m in model.modules():
        if getattr(m, "last_qk", None) is not None:
            q, k, scale = m.last_qk
            out.append(torch.softmax(q @ k.transpose(-2, -1) * scale, dim=-1))
        elif getattr(m, "last_attention", None) is not None:
            out.append(m.last_attention)
    return out


class TinyCLIP(nn.Module):
    """An image-text model in open_clip's convention: ``encode_image``, ``encode_text`` and a ``logit_scale``
    parameter (its log); the image side is a hand-written ViT whose "logits" are the image embedding."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.visual = BlockViT("sdpa", classes=dim)
        self.token_embedding = nn.Embedding(100, dim)
        self.logit_scale = nn.Parameter(torch.tensor(4.6052))  # log(100)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual(x)["logits"]

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        return self.token_embedding(ids).mean(dim=1)


def tiny_tokenize(texts: list[str]) -> torch.Tensor:
    """Token ids ``[N, 4]`` of each text's last four words (a stand-in for a real tokenizer)."""
    return torch.tensor([[sum(map(ord, w)) % 100 for w in ([""] * 4 + t.split())[-4:]] for t in texts])
