"""Where vitviz finds its shipped models (torch-free, so the window can use it before torch is imported)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DEFAULT_MODEL", "weights_dir"]

DEFAULT_MODEL = "vitviz-mini"


def weights_dir() -> Path:
    """Folder of the shipped checkpoints (``$VITVIZ_WEIGHTS`` overrides)."""
    env = os.environ.get("VITVIZ_WEIGHTS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "weights"
