"""Temporal smoothing in the live mode: an exponential moving average of the maps over successive analysis results,
and an out-of-domain verdict decided over a short window of frames (:class:`DomainWindow`)."""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import Any

import numpy as np

__all__ = ["SMOOTHED_FIELDS", "ema_result", "DomainWindow"]

# The maps that are averaged; predictions and probabilities are left as the model gave them for this frame. The
# attention (vitviz.attention.AttentionMaps) is averaged as full tensors when both frames kept them (the rollout is
# then that of the averaged attention), else as its prefix rows and rollout rows.
SMOOTHED_FIELDS = ("attention", "cls_attention", "depth")


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
        if name == "attention":
            setattr(out, name, _blend_attention(before, now, alpha))
            continue
        blended = alpha * np.asarray(now, dtype=np.float32) + (1.0 - alpha) * np.asarray(before, dtype=np.float32)
        setattr(out, name, blended.astype(np.asarray(now).dtype, copy=False))
    return out


def _blend(now: np.ndarray, before: np.ndarray, alpha: float) -> np.ndarray:
    return (alpha * np.asarray(now, np.float32) + (1.0 - alpha) * np.asarray(before, np.float32)).astype(np.float32)


def _blend_attention(before: Any, now: Any, alpha: float) -> Any:
    """``alpha * now + (1 - alpha) * before`` of two frames' AttentionMaps; ``now`` when their shapes differ."""
    from ..attention import AttentionMaps

    if now.prefix_rows.shape != before.prefix_rows.shape:
        return now
    if now.full_layers is not None and before.full_layers is not None:
        layers = [_blend(a, b, alpha) for a, b in zip(now.full_layers, before.full_layers)]  # not stacked
        return AttentionMaps.from_full(layers, now.grid, now.patch_size, now.num_prefix_tokens)
    return dataclasses.replace(now, prefix_rows=_blend(now.prefix_rows, before.prefix_rows, alpha),
                               rollout_rows=_blend(now.rollout_rows, before.rollout_rows, alpha),
                               queries=None, keys=None, full_layers=None)


class DomainWindow:
    """The out-of-domain verdict of a stream of frames, so that the note neither flickers nor follows one odd frame.

    Each frame's score is taken relative to its threshold; the verdict follows the median of the last ``frames``
    of them (one odd frame in a window of five moves the median no further than its neighbours), with hysteresis:
    the note appears when that median rises above 1 (the detector's threshold) and goes only when it falls below
    ``leave`` (0.9: 10 % under the threshold). A new detector (another model) starts afresh.
    """

    def __init__(self, frames: int = 5, leave: float = 0.9) -> None:
        self.ratios: deque[float] = deque(maxlen=max(1, int(frames)))
        self.leave = float(leave)
        self.out_of_domain = False
        self._detector: tuple[str, float] | None = None

    def update(self, verdict: Any) -> Any:
        """The verdict to show for this frame (a :class:`vitviz.models.domain.DomainVerdict` like ``verdict``, its
        score the window's median score)."""
        if not np.isfinite(verdict.score):
            return verdict
        detector = (verdict.method, float(verdict.threshold))
        if detector != self._detector:
            self._detector, self.out_of_domain = detector, False
            self.ratios.clear()
        threshold = float(verdict.threshold)
        scale = abs(threshold) or 1.0
        self.ratios.append(float(verdict.score) / scale)
        median = float(np.median(self.ratios))
        enter = threshold / scale  # 1, or -1 for a negative threshold (energy scores)
        self.out_of_domain = median > (enter - (1.0 - self.leave) if self.out_of_domain else enter)
        return dataclasses.replace(verdict, score=median * scale, in_domain=not self.out_of_domain)
