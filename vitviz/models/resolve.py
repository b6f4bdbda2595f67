"""A model by the name the user gives: shipped, pretrained, a checkpoint path, or the user's own."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from ..errors import CheckpointError
from ..paths import DEFAULT_MODEL, weights_dir
from .checkpoint import ModelInfo, load_checkpoint
from .interface import InspectableModel

__all__ = ["resolve_model"]


def resolve_model(
    spec: str | os.PathLike[str] | None, progress: Callable[[int, int], None] | None = None
) -> tuple[InspectableModel, ModelInfo]:
    """Load a model by shipped name, pretrained-zoo name, checkpoint path or user's model (``PATH.py:NAME``,
    ``module:NAME``, a MiniViT state dict, a model registered in this process: vitviz.models.usermodel).

    ``progress(bytes_done, bytes_total)`` follows a download when a pretrained model is not cached yet.
    """
    from . import zoo
    from .userspec import resolve_user_model

    spec = spec or DEFAULT_MODEL
    user = resolve_user_model(spec)  # a model object of this process, PATH.py:NAME, a MiniViT state dict
    if user is not None:
        return user
    path = Path(spec)
    if path.exists():
        # Hugging Face / timm layouts are converted; vitviz's own checkpoints load directly.
        return zoo.load(str(path)) if zoo.is_foreign_checkpoint(path) else load_checkpoint(path)
    shipped = weights_dir() / f"{spec}.json"
    if shipped.is_file():
        return load_checkpoint(shipped)
    if str(spec) and (weights_dir() / str(spec) / "config.json").is_file():  # a shipped Hub-layout folder
        return zoo.load(str(weights_dir() / str(spec)))
    if zoo.is_known(str(spec)):
        return zoo.load(str(spec), progress=progress)
    raise CheckpointError(f"{spec}: no such model (not a checkpoint path, shipped model or known pretrained model)")
