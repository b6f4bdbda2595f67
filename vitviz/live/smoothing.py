"""Temporal smoothing of the live maps: an exponential moving average over successive analysis results."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = ["SMOOTHED_FIELDS", "ema_result"]

# The maps that are averaged; predictions and probabilities are left as the model gave them for this frame.
SMOOTHED_FIELDS = ("attentions", "cls_attention", "depth")


def ema_result(previous: Any | None, current: Any, alpha: float) -> Any:
    """``current`` (an :class:`~vitviz.engine.AnalysisResult`) with each map replaced by
    ``alpha * current + (1 - alpha) * previous`` where ``previous`` is the last smoothed result.

    ``alpha`` in (0, 1]: 1 is no smoothing, smaller is smoother. A map whose shape (or depth kind) changed, e.g.
    after a model switch or a new source, starts afresh. Pure: neither argument is modified. Attention rows stay
    probability distributions (a convex combination of two distributions is one).
    """
    if previous is None or not 0.0 < alpha < 1.0:
        return current
    out = dataclasses.replace(current)
    for name in SMOOTHED_FIELDS:
        now, before = getattr(current, name), getattr(previous, name)
        if now is None or before is None or np.shape(now) != np.shape(before):
            continue
        if name == "depth" and getattr(current, "depth_kind", None) != getattr(previous, "depth_kind", None):
            continue
        blended = alpha * np.asarray(now, dtype=np.float32) + (1.0 - alpha) * np.asarray(before, dtype=np.float32)
        setattr(out, name, blended.astype(np.asarray(now).dtype, copy=False))
    return out
