"""Dense Prediction Transformer (DPT) depth head, as used by Depth Anything (V1 and V2).

The head turns the token sequences of a few intermediate encoder layers into a dense depth map:

1. **Reassemble**: each selected layer's output is normalised with the encoder's final LayerNorm, its prefix tokens
   (CLS, registers) are dropped, and the patch tokens are laid out as a ``[B, D, gh, gw]`` map. A 1x1 convolution
   projects it to ``neck_channels[i]`` channels and a resampling layer brings it to ``factor`` times the patch grid
   (transposed convolution for factors > 1, identity for 1, strided 3x3 convolution for factors < 1). With the usual
   factors (4, 2, 1, 0.5) this gives a feature pyramid at 4x, 2x, 1x and 1/2x the patch grid.
2. **Project**: a 3x3 convolution (no bias) per level maps every level to ``fusion_channels``.
3. **Fuse**: starting from the coarsest level, each fusion block adds the current level (through a residual conv unit)
   to the running feature, refines it with a second residual conv unit, up-samples it (bilinear, corners aligned)
   to the next finer level's size (x2 after the finest level) and applies a 1x1 convolution.
4. **Head**: 3x3 conv halving the channels, bilinear up-sampling to the input resolution, 3x3 conv, ReLU, 1x1 conv to
   one channel and a final ReLU (``output="relative"``: relative inverse depth, larger = nearer) or a sigmoid scaled
   by ``max_depth`` (``output="metric"``: metres).

Residual conv units are pre-activation: ``x + conv2(relu(conv1(relu(x))))``.

Numerics follow Hugging Face ``DepthAnythingForDepthEstimation`` (checked by ``tests/test_zoo.py``); the module layout
is vitviz's own, see :mod:`vitviz.models.convert` for the key mapping. ``fusion[0]`` is the block that starts from the coarsest
level (the last selected layer).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DPT_DEFAULTS", "dpt_options", "DPTHead"]

# Depth Anything (V2) small, with 0-based indices of the encoder blocks whose outputs feed the head.
DPT_DEFAULTS: dict[str, Any] = {
    "layers": [2, 5, 8, 11],  # 0-based block indices (HF backbone stages 3, 6, 9, 12)
    "neck_channels": [48, 96, 192, 384],
    "reassemble_factors": [4, 2, 1, 0.5],
    "fusion_channels": 64,
    "head_channels": 32,
    "head_in_index": -1,  # which fused level feeds the head (-1: the finest)
    "output": "relative",  # "relative" (ReLU, relative inverse depth) or "metric" (sigmoid * max_depth)
    "max_depth": 1.0,
    "apply_norm": True,  # normalise the hidden states with the encoder's final LayerNorm first
}


def dpt_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """The DPT options with defaults filled in; raises ``ValueError`` for unknown or inconsistent ones."""
    opts = dict(DPT_DEFAULTS)
    unknown = sorted(set(options or {}) - set(DPT_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown DPT option(s): {', '.join(unknown)}")
    opts.update(options or {})
    opts["layers"] = [int(v) for v in opts["layers"]]
    opts["neck_channels"] = [int(v) for v in opts["neck_channels"]]
    opts["reassemble_factors"] = [float(v) for v in opts["reassemble_factors"]]
    if not (len(opts["layers"]) == len(opts["neck_channels"]) == len(opts["reassemble_factors"])) or not opts["layers"]:
        raise ValueError("DPT options layers, neck_channels and reassemble_factors must have the same (non-zero) length")
    if opts["output"] not in ("relative", "metric"):
        raise ValueError(f"unknown DPT output {opts['output']!r} (use relative or metric)")
    if opts["max_depth"] is None:
        opts["max_depth"] = 1.0
    return opts


class ReassembleLayer(nn.Module):
    """1x1 projection of a token map followed by re-sampling by ``factor``."""

    def __init__(self, embed_dim: int, channels: int, factor: float) -> None:
        super().__init__()
        self.proj = nn.Conv2d(embed_dim, channels, kernel_size=1)
        self.resample: nn.Module
        if factor > 1:
            k = int(round(factor))
            self.resample = nn.ConvTranspose2d(channels, channels, kernel_size=k, stride=k)
        elif factor == 1:
            self.resample = nn.Identity()
        else:
            self.resample = nn.Conv2d(channels, channels, kernel_size=3, stride=int(round(1 / factor)), padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resample(self.proj(x))


class ResidualConvUnit(nn.Module):
    """Pre-activation residual unit: ``x + conv2(relu(conv1(relu(x))))``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in place where a fresh tensor allows it: a photo's full-size maps are tens of MB each, and every new one
        # costs page faults as well as memory
        y = self.conv2(F.relu(self.conv1(F.relu(x)), inplace=True))
        return y.add_(x)


class FusionBlock(nn.Module):
    """Merge a pyramid level into the running feature, refine, up-sample and project."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.res1 = ResidualConvUnit(channels)
        self.res2 = ResidualConvUnit(channels)
        self.out_proj = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor | None = None, size: Sequence[int] | None = None
    ) -> torch.Tensor:
        if skip is not None:
            if skip.shape != x.shape:
                skip = F.interpolate(skip, size=x.shape[-2:], mode="bilinear", align_corners=False)
            x = self.res1(skip).add_(x)
        x = self.res2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=tuple(int(s) for s in size), mode="bilinear", align_corners=True)
        return self.out_proj(x)


class DPTHead(nn.Module):
    """DPT depth head over a :class:`~vitviz.models.vit.VisionTransformer`'s intermediate layers (see the module docs)."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.options = o = dpt_options(config.dpt)
        self.patch_size = int(config.patch_size)
        if max(o["layers"]) >= config.depth or min(o["layers"]) < -config.depth:
            raise ValueError(f"DPT layers {o['layers']} out of range for an encoder of {config.depth} blocks")
        self.layers = list(o["layers"])
        fc = int(o["fusion_channels"])
        self.reassemble = nn.ModuleList(
            ReassembleLayer(config.embed_dim, c, f) for c, f in zip(o["neck_channels"], o["reassemble_factors"])
        )
        self.project = nn.ModuleList(nn.Conv2d(c, fc, kernel_size=3, padding=1, bias=False) for c in o["neck_channels"])
        self.fusion = nn.ModuleList(FusionBlock(fc) for _ in o["neck_channels"])
        self.head_conv1 = nn.Conv2d(fc, fc // 2, kernel_size=3, padding=1)
        self.head_conv2 = nn.Conv2d(fc // 2, int(o["head_channels"]), kernel_size=3, padding=1)
        self.head_conv3 = nn.Conv2d(int(o["head_channels"]), 1, kernel_size=1)
        self.head_in_index = int(o["head_in_index"])
        self.metric = o["output"] == "metric"
        self.max_depth = float(o["max_depth"])
        self.apply_norm = bool(o["apply_norm"])

    def forward(
        self,
        hidden_states: Sequence[torch.Tensor],
        grid: tuple[int, int],
        size: tuple[int, int],
        norm: nn.Module | None = None,
        num_prefix_tokens: int = 1,
    ) -> torch.Tensor:
        """``hidden_states``: every block's raw output ``[B, T, D]``; returns depth ``[B, 1, H, W]`` at ``size``."""
        gh, gw = grid
        features = []
        for i, layer in enumerate(self.layers):
            h = hidden_states[layer]
            if self.apply_norm and norm is not None:
                h = norm(h)
            h = h[:, num_prefix_tokens:]
            b, _, d = h.shape
            fmap = h.reshape(b, gh, gw, d).permute(0, 3, 1, 2).contiguous()
            features.append(self.project[i](self.reassemble[i](fmap)))

        features = features[::-1]  # coarsest first
        fused: list[torch.Tensor] = []
        x: torch.Tensor | None = None
        for i, (feat, block) in enumerate(zip(features, self.fusion)):
            next_size = features[i + 1].shape[-2:] if i + 1 < len(features) else None
            x = block(feat, size=next_size) if x is None else block(x, feat, size=next_size)
            fused.append(x)

        y = self.head_conv1(fused[self.head_in_index])
        y = F.interpolate(y, size=(gh * self.patch_size, gw * self.patch_size), mode="bilinear", align_corners=True)
        y = self.head_conv3(F.relu(self.head_conv2(y), inplace=True))
        y = torch.sigmoid(y).mul_(self.max_depth) if self.metric else F.relu(y, inplace=True).mul_(self.max_depth)
        if tuple(y.shape[-2:]) != tuple(size):
            y = F.interpolate(y, size=tuple(size), mode="bilinear", align_corners=False)
        return y
