"""Shared fixtures: tiny checkpoints and images made on the fly (no network, no GPU, no display)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
import torch
from PIL import Image

from vitviz.models.checkpoint import ModelInfo, save_checkpoint
from vitviz.models.vit import ViTConfig, build_model

TINY_LABELS = ["alpha", "beta", "gamma", "delta", "epsilon"]


@pytest.fixture(autouse=True)
def collect_garbage_between_tests():
    """Once a window has started, Python collects garbage only on the UI thread's timer (see
    ``vitviz.app.session.collect_garbage_on_the_ui_thread``); tests that never run the event loop collect after they
    end, as Python would have while they ran."""
    yield
    session = sys.modules.get("vitviz.app.session")
    if session is not None and session._collector is not None:
        session._collector.check()


def box_downsample(rgb: np.ndarray, k: int) -> np.ndarray:
    """Mean over k x k pixel blocks of an [H, W, C] image (H, W multiples of k), as float32."""
    h, w, c = rgb.shape[0] // k, rgb.shape[1] // k, rgb.shape[2]
    return rgb.reshape(h, k, w, k, c).astype(np.float32).mean(axis=(1, 3))


def tiny_config(**overrides) -> ViTConfig:
    base = dict(
        image_size=32, patch_size=8, embed_dim=24, depth=3, num_heads=3, num_classes=5, depth_head="fusion",
        depth_head_channels=(8,), depth_head_layers=(1, 3), depth_head_stem_channels=4,
    )
    base.update(overrides)
    return ViTConfig(**base)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A small random multi-task vitviz checkpoint (config JSON + safetensors); returns the JSON path."""
    torch.manual_seed(0)
    model = build_model(tiny_config())
    # Random, non-trivial positional embeddings and CLS so attention is not uniform.
    with torch.no_grad():
        model.pos_embed.normal_(0, 0.5)
        model.cls_token.normal_(0, 0.5)
    info = ModelInfo(name="tiny", config=model.config, labels=TINY_LABELS, depth_kind="metric", description="test")
    folder = tmp_path_factory.mktemp("ckpt")
    save_checkpoint(model, info, folder / "tiny")
    return folder / "tiny.json"


@pytest.fixture(scope="session")
def photo(tmp_path_factory) -> Path:
    """A smooth colourful 96x64 JPEG."""
    y, x = np.mgrid[0:64, 0:96]
    rgb = np.stack([x * 2.5, y * 4.0, (x + y) * 1.5], axis=-1).clip(0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("img") / "photo.jpg"
    Image.fromarray(rgb).save(path, quality=92)
    return path
