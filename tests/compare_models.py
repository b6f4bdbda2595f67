"""A second small random checkpoint to compare the tests' tiny model with: deeper (5 layers instead of 3), with finer
patches (4 pixels instead of 8), so that layer matching and grid resampling are not the identity."""

from __future__ import annotations

from pathlib import Path

import torch

from vitviz.models.checkpoint import ModelInfo, save_checkpoint
from vitviz.models.vit import build_model

from .conftest import TINY_LABELS, tiny_config


def save_deeper_checkpoint(folder: Path, labels: list[str] | None = None, depth_kind: str = "relative_inverse",
                           name: str = "deeper") -> Path:
    """Save the deeper model into ``folder``; returns its JSON path."""
    torch.manual_seed(1)
    model = build_model(tiny_config(depth=5, patch_size=4, depth_head_layers=(2, 5)))
    with torch.no_grad():
        model.pos_embed.normal_(0, 0.5)
        model.cls_token.normal_(0, 0.5)
    info = ModelInfo(name=name, config=model.config, labels=list(labels or TINY_LABELS), depth_kind=depth_kind,
                     description="test: a deeper model to compare with")
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, info, folder / name)
    return folder / f"{name}.json"
