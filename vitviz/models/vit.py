"""The Vision Transformer at the heart of vitviz.

Classic ViT design (Dosovitskiy et al.): a ``Conv2d`` patch embedding, a learnable CLS token, a learnable positional
embedding over N+1 tokens (interpolated when the patch grid differs from training), pre-norm transformer blocks,
a classification head on the CLS output and an optional dense depth head on the patch tokens.

Every block can hand back its per-head attention probabilities ``[B, heads, T, T]`` (T = 1 + registers + N) so the
CLS row of any layer and head can be drawn. When attentions are not requested the fused
``scaled_dot_product_attention`` kernel is used instead.

Heads can be knocked out: a ``head_mask`` (one entry per block) multiplies each head's attention output before the
output projection, so a 0 drops that head's contribution while its attention probabilities stay as they were
(vitviz.importance measures what each head does to the prediction this way).

The same modules serve the shipped model and the pretrained families (ViT, DeiT, DINO, DINOv2) through the options
in :class:`ViTConfig` (qkv bias, layer scale, register tokens, classifier pooling, depth head kind).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import MLP_ACTIVATIONS, Attention, Block, LayerScale, Mlp, QuickGELU  # noqa: F401 - re-exported

__all__ = [
    "ViTConfig",
    "ViTOutput",
    "PatchEmbedding",
    "Attention",
    "Block",
    "SimpleDepthHead",
    "FusionDepthHead",
    "VisionTransformer",
    "interpolate_pos_embed",
    "build_model",
]


@dataclass
class ViTConfig:
    """Architecture of a :class:`VisionTransformer`; serialised into checkpoint JSON files."""

    image_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    embed_dim: int = 192
    depth: int = 12
    num_heads: int = 3
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    layer_scale_init: float | None = None  # DINOv2-style LayerScale when set
    num_register_tokens: int = 0
    norm_eps: float = 1e-6
    num_classes: int = 0  # 0: no classification head
    # "cls", "cls+mean" (concatenate CLS and mean patch token, DINOv2 linear heads) or "map" (SigLIP's attention
    # pooling: a learnt probe query attends to every token)
    head_pool: str = "cls"
    depth_head: str = "none"  # "none", "fusion" (the shipped model), "simple" or "dpt" (Depth Anything style)
    depth_head_channels: tuple[int, ...] = (128, 64)  # "simple": one x2 stage each; "fusion": (hidden channels,)
    depth_head_layers: tuple[int, ...] = ()  # "fusion": 1-based blocks whose outputs feed the head (empty: last)
    depth_head_stem_channels: int = 16  # "fusion": channels of the image stem at 1/4 of the patch size
    dpt: dict[str, Any] = field(default_factory=dict)  # options of the DPT head (see vitviz.models.dpt)
    pos_embed_antialias: bool = False  # antialiased bicubic resampling of positional embeddings
    pos_embed_offset: float = 0.0  # DINOv2's legacy +0.1 scale-factor offset when non-zero
    pos_embed_grid: int = 0  # patches per side of the stored positional embedding when not grid_size (DINOv2: 37)
    # Image-text towers (CLIP, SigLIP; vitviz.models.text):
    class_token: bool = True  # False: no CLS token (SigLIP), the classifier reads head_pool="map"
    patch_bias: bool = True  # bias of the patch embedding (CLIP has none)
    pre_norm: bool = False  # a LayerNorm on the embedded tokens before the first block (CLIP's pre_layrnorm)
    mlp_act: str = "gelu"  # "gelu", "gelu_tanh" (SigLIP) or "quick_gelu" (CLIP)
    embed_proj_dim: int = 0  # linear projection (no bias) of the pooled token into the joint image-text space
    text: dict[str, Any] = field(default_factory=dict)  # the text tower (vitviz.models.text.TextConfig), if any
    # The model reads image_size x image_size images alone (a user's model with a fixed positional embedding): the
    # input is resized to that square instead of keeping the aspect ratio (vitviz.images.model_input_size)
    fixed_size: bool = False

    @property
    def grid_size(self) -> int:
        """Patches per side of the training image."""
        return self.image_size // self.patch_size

    @property
    def pos_grid_size(self) -> int:
        """Patches per side of the stored positional embedding (``pos_embed_grid`` or ``grid_size``)."""
        return self.pos_embed_grid or self.grid_size

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["depth_head_channels"] = list(self.depth_head_channels)
        d["depth_head_layers"] = list(self.depth_head_layers)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ViTConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown architecture option(s): {', '.join(unknown)}")
        values = dict(data)
        for key in ("depth_head_channels", "depth_head_layers"):
            if key in values:
                values[key] = tuple(int(c) for c in values[key])
        return cls(**values)


@dataclass
class ViTOutput:
    """What one forward pass returns."""

    tokens: torch.Tensor  # [B, T, D] final (normalised) tokens
    logits: torch.Tensor | None = None  # [B, num_classes]
    depth: torch.Tensor | None = None  # [B, 1, H, W]
    attentions: list[torch.Tensor] | None = None  # per layer [B, heads, T, T]
    # per layer [B, T, D], block outputs (before final norm): a list, or one [L, B, T, D] tensor (stack_hidden)
    hidden_states: list[torch.Tensor] | torch.Tensor | None = None
    grid: tuple[int, int] = (0, 0)  # patch grid (rows, cols)
    num_prefix_tokens: int = 1  # CLS + registers
    pooled: torch.Tensor | None = None  # [B, E] an image-text model's image embedding, when the model gives it


class PatchEmbedding(nn.Module):
    """Split an image into non-overlapping patches and project each one: ``[B, C, H, W] -> [B, N, D]``."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int, bias: bool = True) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, bias=bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        p = self.patch_size
        if x.shape[-2] % p or x.shape[-1] % p:
            raise ValueError(f"image size {tuple(x.shape[-2:])} is not a multiple of the patch size {p}")
        x = self.proj(x)  # [B, D, gh, gw]
        grid = (x.shape[-2], x.shape[-1])
        return x.flatten(2).transpose(1, 2), grid


class SimpleDepthHead(nn.Module):
    """Dense head: patch tokens -> ``[B, D, gh, gw]`` -> transposed-conv decoder -> 1-channel map at input size.

    Each entry of ``channels`` is one x2 stage (transposed conv + 3x3 conv); the remaining factor up to the input
    resolution is bilinear, which keeps the head cheap on CPUs.

    Predicts log-depth; the model exponentiates it so depth is always positive.
    """

    def __init__(self, embed_dim: int, patch_size: int, channels: tuple[int, ...] = (128, 64)) -> None:
        super().__init__()
        # One x2 up-sampling stage per channel entry (at most log2(patch) of them); the rest is bilinear.
        chans = list(channels)[: max(1, int(math.log2(patch_size)))]
        self.input_proj = nn.Conv2d(embed_dim, chans[0], kernel_size=1)
        layers: list[nn.Module] = []
        c_in = chans[0]
        for c_out in chans:
            layers += [
                nn.ConvTranspose2d(c_in, c_out, kernel_size=2, stride=2),
                nn.GELU(),
                nn.Conv2d(c_out, c_out, kernel_size=3, padding=1),
                nn.GELU(),
            ]
            c_in = c_out
        self.decoder = nn.Sequential(*layers)
        self.out = nn.Conv2d(c_in, 1, kernel_size=1)

    def forward(self, patch_tokens: torch.Tensor, grid: tuple[int, int], out_size: tuple[int, int]) -> torch.Tensor:
        b, n, d = patch_tokens.shape
        fmap = patch_tokens.transpose(1, 2).reshape(b, d, grid[0], grid[1])
        y = self.out(self.decoder(self.input_proj(fmap)))
        if tuple(y.shape[-2:]) != tuple(out_size):
            y = F.interpolate(y, size=out_size, mode="bilinear", align_corners=False)
        return y  # log-depth


class FusionDepthHead(nn.Module):
    """Light dense head: patch tokens of several blocks, fused with a small image stem, at 1/4 of the patch size.

    Each selected block's patch tokens are layer-normalised and concatenated; one linear layer maps every token to a
    ``f x f`` block of ``channels``-dim features (``f = 4``, a pixel shuffle), which is concatenated with a strided
    convolution of the image (kernel = stride = patch / f) so object edges can be placed finer than a patch; two 3x3
    convolutions and a 1x1 output follow, and the map is resized bilinearly to the input size. About half the
    multiply-adds of :class:`SimpleDepthHead` on vitviz-mini (training took 6-9 % more steps in the same time).

    Predicts log-depth; the model exponentiates it so depth is always positive.
    """

    def __init__(
        self, embed_dim: int, patch_size: int, num_layers: int, channels: int = 32, stem_channels: int = 16,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        self.factor = f = 4 if patch_size % 4 == 0 else 1
        self.norms = nn.ModuleList(nn.LayerNorm(embed_dim) for _ in range(num_layers))
        self.proj = nn.Linear(embed_dim * num_layers, channels * f * f)
        self.stem = nn.Conv2d(in_chans, stem_channels, kernel_size=patch_size // f, stride=patch_size // f)
        self.fuse = nn.Conv2d(channels + stem_channels, channels, kernel_size=3, padding=1)
        self.refine = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.out = nn.Conv2d(channels, 1, kernel_size=1)

    def forward(
        self, layer_tokens: list[torch.Tensor], image: torch.Tensor, grid: tuple[int, int], out_size: tuple[int, int]
    ) -> torch.Tensor:
        """``layer_tokens``: one ``[B, N, D]`` patch-token tensor per selected block; ``image``: the model input."""
        tokens = torch.cat([norm(t) for norm, t in zip(self.norms, layer_tokens)], dim=-1)
        b, n, _ = tokens.shape
        y = self.proj(tokens).transpose(1, 2).reshape(b, -1, grid[0], grid[1])
        y = F.gelu(F.pixel_shuffle(y, self.factor))
        y = F.gelu(self.fuse(torch.cat([y, F.gelu(self.stem(image))], dim=1)))
        y = self.out(y + F.gelu(self.refine(y)))
        if tuple(y.shape[-2:]) != tuple(out_size):
            y = F.interpolate(y, size=out_size, mode="bilinear", align_corners=False)
        return y  # log-depth


class AttentionPool(nn.Module):
    """SigLIP's multi-head attention pooling: a learnt probe query attends to every final token, then a residual
    MLP; its per-head attention is the map of the pooled token (:meth:`attention`)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, norm_eps: float, act: str) -> None:
        super().__init__()
        self.probe = nn.Parameter(torch.zeros(1, 1, dim))
        self.attention = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.norm = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, T, D]`` final tokens -> ``[B, D]`` pooled token."""
        probe = self.probe.expand(tokens.shape[0], -1, -1)
        x = self.attention(probe, tokens, tokens, need_weights=False)[0]
        return (x + self.mlp(self.norm(x)))[:, 0]

    def attention_map(self, tokens: torch.Tensor) -> torch.Tensor:
        """The probe's attention probabilities per head over the tokens: ``[B, heads, T]``."""
        probe = self.probe.expand(tokens.shape[0], -1, -1)
        weights = self.attention(probe, tokens, tokens, need_weights=True, average_attn_weights=False)[1]
        return weights[:, :, 0]


def interpolate_pos_embed(
    pos_embed: torch.Tensor,
    old_grid: tuple[int, int],
    new_grid: tuple[int, int],
    num_prefix: int = 1,
    antialias: bool = False,
    offset: float = 0.0,
) -> torch.Tensor:
    """Resample a ``[1, prefix + gh*gw, D]`` positional embedding to another patch grid (bicubic).

    The prefix (CLS) embeddings are kept as they are. Identity when the grids match.
    """
    if tuple(old_grid) == tuple(new_grid):
        return pos_embed
    prefix, grid_pe = pos_embed[:, :num_prefix], pos_embed[:, num_prefix:]
    d = grid_pe.shape[-1]
    grid_pe = grid_pe.reshape(1, old_grid[0], old_grid[1], d).permute(0, 3, 1, 2)
    orig_dtype = grid_pe.dtype
    grid_pe = grid_pe.float()
    if offset:
        # DINOv2's original implementation: scale factors nudged by a small offset to avoid rounding errors.
        scale = ((new_grid[0] + offset) / old_grid[0], (new_grid[1] + offset) / old_grid[1])
        grid_pe = F.interpolate(grid_pe, scale_factor=scale, mode="bicubic", align_corners=False, antialias=antialias)
    else:
        grid_pe = F.interpolate(grid_pe, size=tuple(new_grid), mode="bicubic", align_corners=False, antialias=antialias)
    grid_pe = grid_pe.to(orig_dtype).permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], d)
    return torch.cat([prefix, grid_pe], dim=1)


class VisionTransformer(nn.Module):
    """ViT with observable attention, optional classification head and optional dense depth head."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = c = config
        if c.head_pool not in ("cls", "cls+mean", "map"):
            raise ValueError(f"unknown head_pool {c.head_pool!r}")
        if not c.class_token and (c.head_pool != "map" or c.num_register_tokens):
            raise ValueError("a model without a class token pools with head_pool='map' and has no registers")
        self.patch_embed = PatchEmbedding(c.patch_size, c.in_chans, c.embed_dim, c.patch_bias)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim)) if c.class_token else None
        self.reg_token = (
            nn.Parameter(torch.zeros(1, c.num_register_tokens, c.embed_dim)) if c.num_register_tokens else None
        )
        self.pos_embed = nn.Parameter(torch.zeros(1, c.pos_grid_size**2 + int(c.class_token), c.embed_dim))
        self.pre_norm = nn.LayerNorm(c.embed_dim, eps=c.norm_eps) if c.pre_norm else None
        self.blocks = nn.ModuleList(
            Block(c.embed_dim, c.num_heads, c.mlp_ratio, c.qkv_bias, c.layer_scale_init, c.norm_eps, c.mlp_act)
            for _ in range(c.depth)
        )
        self.norm = nn.LayerNorm(c.embed_dim, eps=c.norm_eps)
        self.pool = (AttentionPool(c.embed_dim, c.num_heads, c.mlp_ratio, c.norm_eps, c.mlp_act)
                     if c.head_pool == "map" else None)
        self.image_proj = nn.Linear(c.embed_dim, c.embed_proj_dim, bias=False) if c.embed_proj_dim else None
        self.text: nn.Module | None = None
        if c.text:
            from .text import TextConfig, TextTower  # image-text models; imported only when used

            self.text = TextTower(TextConfig.from_dict(c.text))
        head_in = c.embed_proj_dim or c.embed_dim * (2 if c.head_pool == "cls+mean" else 1)
        self.head = nn.Linear(head_in, c.num_classes) if c.num_classes else None
        self.depth_head: nn.Module | None
        if c.depth_head == "simple":
            self.depth_head = SimpleDepthHead(c.embed_dim, c.patch_size, c.depth_head_channels)
        elif c.depth_head == "fusion":
            self.depth_head = FusionDepthHead(
                c.embed_dim, c.patch_size, len(self.depth_head_layers), c.depth_head_channels[0],
                c.depth_head_stem_channels, c.in_chans,
            )
        elif c.depth_head == "dpt":
            from .dpt import DPTHead  # the pretrained depth family; imported only when used

            self.depth_head = DPTHead(c)
        elif c.depth_head == "none":
            self.depth_head = None
        else:
            raise ValueError(f"unknown depth head {c.depth_head!r}")
        self._init_weights()

    @property
    def depth_head_layers(self) -> tuple[int, ...]:
        """0-based indices of the blocks whose outputs feed a "fusion" depth head."""
        layers = self.config.depth_head_layers or (self.config.depth,)
        if any(not 1 <= i <= self.config.depth for i in layers):
            raise ValueError(f"depth_head_layers {layers} outside 1..{self.config.depth}")
        return tuple(i - 1 for i in layers)

    @property
    def num_prefix_tokens(self) -> int:
        """CLS and register tokens before the patch tokens (0 for a model without a class token)."""
        return int(self.config.class_token) + self.config.num_register_tokens

    def set_fused_attention(self, fused: bool) -> None:
        """Use PyTorch's fused attention kernel (``True``, the default) or the explicit softmax(QK^T)V in every block.

        Both compute the same function; training on a CPU is about 1.5x faster without the fused kernel at
        vitviz-mini's 65 tokens (``benchmarks/train_step.py``).
        """
        for block in self.blocks:
            block.attn.fused = fused

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        if self.pool is not None:
            nn.init.normal_(self.pool.probe, std=0.02)
        if self.reg_token is not None:
            nn.init.normal_(self.reg_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Patch-embed, prepend CLS (and registers) and add positional embeddings: ``[B, T, D]``."""
        c = self.config
        tokens, grid = self.patch_embed(x)
        b = tokens.shape[0]
        pos = interpolate_pos_embed(
            self.pos_embed, (c.pos_grid_size, c.pos_grid_size), grid, int(c.class_token), c.pos_embed_antialias,
            c.pos_embed_offset,
        )
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(b, -1, -1), tokens], dim=1)
        tokens = tokens + pos
        if self.reg_token is not None:
            tokens = torch.cat([tokens[:, :1], self.reg_token.expand(b, -1, -1), tokens[:, 1:]], dim=1)
        if self.pre_norm is not None:
            tokens = self.pre_norm(tokens)
        return tokens, grid

    def forward_features(
        self, x: torch.Tensor, return_attention: bool = False, return_hidden: bool = False,
        attention_recorder: Callable[..., torch.Tensor] | None = None,
        head_mask: Sequence[torch.Tensor | None] | torch.Tensor | None = None,
        stack_hidden: bool = False,
    ) -> ViTOutput:
        """Run the encoder; optionally collect per-layer attention probabilities and hidden states.

        ``attention_recorder`` (vitviz.attention.AttentionRecorder) computes every block's attention and keeps what
        an analysis needs of it, in memory linear in the tokens; ``return_attention`` keeps the full tensors.
        ``head_mask``: one entry per block, None (every head kept) or ``[heads]`` / ``[B, heads]`` factors of the
        heads' outputs (0: knocked out; see :class:`Attention`); a tensor ``[depth, heads]`` or
        ``[depth, B, heads]`` works too. ``stack_hidden`` (with ``return_hidden``, without gradients): the blocks
        write their outputs into one ``[L, B, T, D]`` tensor, ``out.hidden_states``, that an analysis keeps as it is
        instead of stacking a copy."""
        if head_mask is not None and len(head_mask) != len(self.blocks):
            raise ValueError(f"head_mask has {len(head_mask)} entries for {len(self.blocks)} blocks")
        tokens, grid = self.embed(x)
        attentions: list[torch.Tensor] | None = [] if return_attention else None
        hidden: list[torch.Tensor] | None = [] if return_hidden else None
        stacked = (tokens.new_empty(len(self.blocks), *tokens.shape)
                   if hidden is not None and stack_hidden and not torch.is_grad_enabled() else None)
        for i, block in enumerate(self.blocks):
            tokens, attn = block(tokens, return_attention, attention_recorder,
                                 None if head_mask is None else head_mask[i], out=None if stacked is None else stacked[i])
            if attentions is not None:
                attentions.append(attn)
            if hidden is not None:
                hidden.append(tokens)
        return ViTOutput(
            tokens=self.norm(tokens),
            attentions=attentions,
            hidden_states=stacked if stacked is not None else hidden,
            grid=grid,
            num_prefix_tokens=self.num_prefix_tokens,
        )

    def pooled(self, tokens: torch.Tensor) -> torch.Tensor:
        """The token the classifier reads, from the final normalised tokens: CLS, CLS with the mean patch token, or
        the attention-pooled token; projected into the image-text space when the model has that projection."""
        if self.pool is not None:
            pooled = self.pool(tokens)
        else:
            pooled = tokens[:, 0]
            if self.config.head_pool == "cls+mean":
                pooled = torch.cat([pooled, tokens[:, self.num_prefix_tokens :].mean(dim=1)], dim=-1)
        return pooled if self.image_proj is None else self.image_proj(pooled)

    @property
    def has_classifier(self) -> bool:
        """Whether the model gives class (or label) scores: a classification head, or a text tower."""
        return self.head is not None or self.text is not None

    @property
    def has_depth(self) -> bool:
        """Whether the model predicts depth (it has a depth head)."""
        return self.depth_head is not None

    @property
    def num_layers(self) -> int:
        return len(self.blocks)

    @property
    def num_heads(self) -> int:
        return self.config.num_heads

    @property
    def lens_problem(self) -> str:
        """Why the logit lens cannot read this model ("" when it can)."""
        return "" if self.has_classifier else "the logit lens needs a model with a classifier"

    @property
    def has_hidden_states(self) -> bool:
        """Whether the forward pass can hand back every block's output tokens (always, here)."""
        return True

    def forward_scores(self, x: torch.Tensor, return_attention: bool = False) -> ViTOutput:
        """The encoder and the classifier alone (no depth head): ``out.logits`` and, with ``return_attention``,
        every layer's probabilities (in the autograd graph when gradients are on: class evidence)."""
        out = self.forward_features(x, return_attention=return_attention)
        out.logits = self.classify(out.tokens)
        return out

    def classify(self, tokens: torch.Tensor) -> torch.Tensor | None:
        """Class logits from the final normalised tokens; for an image-text model, the logits of the labels set on
        its text tower (None until labels are set)."""
        if self.text is not None:
            return self.text.logits(self.pooled(tokens)) if self.text.num_labels else None
        if self.head is None:
            return None
        return self.head(self.pooled(tokens))

    def patch_logits(self, tokens: torch.Tensor, pair: bool = False,
                     label_embeddings: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits of single normalised tokens ``[N, D]`` read as if each were the pooled one (the logit lens's
        patch maps): through the image-text projection and the labels (``label_embeddings``: these instead of the
        text tower's current ones), or the classification head (``pair``: each token stands for both halves of a
        "cls+mean" head's input)."""
        if self.text is not None:
            return self.text.logits(tokens if self.image_proj is None else self.image_proj(tokens), label_embeddings)
        if self.head is None:
            raise ValueError("this model has no classifier")
        return self.head(torch.cat([tokens, tokens], dim=-1) if pair else tokens)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities from :meth:`classify`'s logits: a softmax over the classes, or each label's own
        sigmoid for a SigLIP-style text tower (``scoring == "sigmoid"``)."""
        if self.text is not None and self.text.config.scoring == "sigmoid":
            return torch.sigmoid(logits)
        return torch.softmax(logits, dim=-1)

    @property
    def depth_needs_hidden(self) -> bool:
        """Whether the depth head reads the blocks' outputs (``hidden_states``), not only the final tokens."""
        return self.config.depth_head in ("dpt", "fusion")

    def forward(self, x: torch.Tensor, return_attention: bool = False, return_hidden: bool = False,
                attention_recorder: Callable[..., torch.Tensor] | None = None,
                head_mask: Sequence[torch.Tensor | None] | torch.Tensor | None = None) -> ViTOutput:
        """Full pass: tokens, logits, depth (when the model has those heads) and optionally attentions and every
        block's output tokens (``hidden_states``, before the final norm; kept anyway for "dpt"/"fusion" heads).
        ``head_mask`` knocks heads out (see :meth:`forward_features`)."""
        need_hidden = return_hidden or self.depth_needs_hidden
        out = self.forward_features(x, return_attention, need_hidden, attention_recorder, head_mask,
                                    stack_hidden=return_hidden)
        return self.forward_heads(out, x)

    def forward_heads(self, out: ViTOutput, x: torch.Tensor) -> ViTOutput:
        """Fill in ``out.logits`` and ``out.depth`` from the encoder's output for the input ``x`` (the final tokens,
        and ``out.hidden_states`` for "dpt"/"fusion" depth heads); returns ``out``."""
        out.logits = self.classify(out.tokens)
        if self.depth_head is not None:
            size = (x.shape[-2], x.shape[-1])
            if self.config.depth_head == "simple":
                patches = out.tokens[:, self.num_prefix_tokens :]
                out.depth = torch.exp(self.depth_head(patches, out.grid, size))
            elif self.config.depth_head == "fusion":
                p = self.num_prefix_tokens
                layers = [out.hidden_states[i][:, p:] for i in self.depth_head_layers]
                out.depth = torch.exp(self.depth_head(layers, x, out.grid, size))
            else:
                out.depth = self.depth_head(out.hidden_states, out.grid, size, self.norm, self.num_prefix_tokens)
        return out


def build_model(config: ViTConfig | dict[str, Any]) -> VisionTransformer:
    """Build an (untrained) model from a config or its dict form."""
    if isinstance(config, dict):
        config = ViTConfig.from_dict(config)
    return VisionTransformer(config)
