"""The design notes' MiniViT with its depth head, written as a user would, plus a factory for vitviz.

    vitviz --model examples/minivit/model.py:build
    vitviz analyze IMAGE --model examples/minivit/model.py:build

``build()`` loads ``minivit.pth`` beside this file when it is there (``train.py`` writes it) and returns the model
with its class names and input normalisation. This file imports nothing from vitviz.
"""

import json
import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


class PatchEmbedding(nn.Module):
    def __init__(self, img_size=224, patch_size=16, in_channels=3, embed_dim=768):
        super().__init__()
        self.num_patches = (img_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_channels, embed_dim,
                              kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        x = self.proj(x)  # [B, embed_dim, H', W']
        x = x.flatten(2)  # [B, embed_dim, N]
        x = x.transpose(1, 2)  # [B, N, embed_dim]
        return x


class MiniViT(nn.Module):
    def __init__(self, img_size=224, patch_size=16, in_channels=3, embed_dim=768, num_classes=10, depth=6,
                 num_heads=8, dim_feedforward=2048, dropout=0.1):
        super().__init__()
        self.patch_embed = PatchEmbedding(
            img_size, patch_size, in_channels, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(
            1, (img_size // patch_size) ** 2 + 1, embed_dim))

        self.transformer = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(
                d_model=embed_dim, nhead=num_heads, dim_feedforward=dim_feedforward, dropout=dropout,
                batch_first=True),
            num_layers=depth
        )

        self.mlp_head = nn.Sequential(
            nn.LayerNorm(embed_dim),
            nn.Linear(embed_dim, num_classes)
        )

        # The notes' "turn your classification ViT into a depth model": a decoder on the patch tokens.
        D = embed_dim
        self.depth_head = nn.Sequential(
            nn.ConvTranspose2d(D, D // 2, kernel_size=2, stride=2),
            nn.ReLU(),
            nn.ConvTranspose2d(D // 2, D // 4, kernel_size=2, stride=2),
            nn.ReLU(),
            nn.Conv2d(D // 4, 1, kernel_size=1)  # Output single-channel depth map
        )

    def forward(self, x):
        B, _, H_in, W_in = x.shape
        x = self.patch_embed(x)  # [B, N, D]
        cls_tokens = self.cls_token.expand(B, -1, -1)  # [B, 1, D]
        x = torch.cat((cls_tokens, x), dim=1)  # [B, N+1, D]
        x = x + self.pos_embed[:, :x.size(1)]  # positional encoding

        x = self.transformer(x)  # [B, N+1, D]
        logits = self.mlp_head(x[:, 0])  # [B, num_classes] from the CLS token

        patch_tokens = x[:, 1:, :]  # drop CLS, keep the patches
        D = patch_tokens.size(2)
        H = W = int((x.size(1) - 1) ** 0.5)
        feat_map = patch_tokens.transpose(1, 2).reshape(B, D, H, W)  # [B, D, H, W]
        depth = self.depth_head(feat_map)  # [B, 1, 4H, 4W]
        depth = F.interpolate(depth, size=(H_in, W_in), mode='bilinear')  # metres, at the input's size
        return logits, depth


# The architecture train.py trains (the JSON beside the weights holds what the weights do not: heads, classes).
# Small enough to learn something in a few minutes on a CPU.
CONFIG = dict(img_size=128, patch_size=16, in_channels=3, embed_dim=128, num_classes=10, depth=4, num_heads=4,
              dim_feedforward=512)


def build(weights=HERE / "minivit.pth"):
    """The trained MiniViT for vitviz: ``{"model", "labels", "mean", "std"}`` (random weights until train.py ran)."""
    weights = Path(weights)
    settings_file = weights.with_suffix(".json")
    settings = json.loads(settings_file.read_text()) if settings_file.is_file() else {}
    model = MiniViT(**CONFIG)
    if weights.is_file():
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    else:
        warnings.warn(f"{weights} not found: the MiniViT has random weights (run examples/minivit/train.py)")
    labels = settings.get("classes") or [f"class {i}" for i in range(CONFIG["num_classes"])]
    return {"model": model.eval(), "labels": labels, "mean": settings.get("mean", MEAN),
            "std": settings.get("std", STD)}
