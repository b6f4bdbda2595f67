"""Numbers as the widgets write them: round axis ticks, tick labels and probabilities as percentages."""

from __future__ import annotations

import math
from typing import Sequence

__all__ = ["nice_ticks", "format_tick", "format_percent"]


def nice_ticks(lo: float, hi: float, max_ticks: int = 6) -> list[float]:
    """Round tick values covering [lo, hi] (1-2-5 steps)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, max_ticks - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(0.0 if abs(v) < step * 1e-9 else v)
        v += step
    return ticks


def format_percent(p: float) -> str:
    """87.3%, 5.2%, 0.21%, <0.01%: enough digits to tell small probabilities apart."""
    if p >= 0.9995:
        return "100%"
    if p >= 0.01:
        return f"{p * 100:.1f}%"
    if p >= 0.0001:
        return f"{p * 100:.2f}%"
    return "<0.01%"


def format_tick(value: float, ticks: Sequence[float]) -> str:
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else abs(value) or 1.0
    decimals = max(0, -int(math.floor(math.log10(step))) + (1 if step / 10 ** math.floor(math.log10(step)) == 2.5 else 0))
    return f"{value:.{min(decimals, 6)}f}"
