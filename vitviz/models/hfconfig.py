"""Values of Hugging Face ``config.json`` and ``preprocessor_config.json`` files, read the same way for every family
(vitviz.models.convert for ViT/DINOv2/Depth Anything, vitviz.models.imagetext for CLIP/SigLIP)."""

from __future__ import annotations

import re
from typing import Any

from ..errors import CheckpointError

__all__ = ["square", "preprocessing", "labels_from_id2label"]


def square(value: Any, what: str) -> int:
    """An int, or a pair of equal ints (a square size); :class:`CheckpointError` naming ``what`` otherwise."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or int(value[0]) != int(value[1]):
            raise CheckpointError(f"non-square {what} {list(value)} is not supported")
        value = value[0]
    return int(value)


def preprocessing(
    pre: dict[str, Any] | None, default_mean: tuple, default_std: tuple, default_size: int
) -> tuple[tuple, tuple, int]:
    """Mean, std and input size (center crop, else resize target) from ``preprocessor_config.json``."""
    pre = pre or {}
    mean = tuple(float(v) for v in pre.get("image_mean") or default_mean)
    std = tuple(float(v) for v in pre.get("image_std") or default_std)
    size = default_size
    crop = pre.get("crop_size")
    resize = pre.get("size")
    if pre.get("do_center_crop") and crop:
        size = int(crop.get("height", crop.get("shortest_edge", size))) if isinstance(crop, dict) else int(crop)
    elif isinstance(resize, dict):
        size = int(resize.get("shortest_edge", resize.get("height", size)))
    elif isinstance(resize, (int, float)):
        size = int(resize)
    if len(mean) != 3 or len(std) != 3:
        raise CheckpointError("preprocessor_config.json: image_mean / image_std must have 3 values")
    return mean, std, size  # type: ignore[return-value]


def labels_from_id2label(cfg: dict[str, Any], n: int) -> list[str]:
    """The ``n`` class names of ``id2label``; empty when missing or only the placeholders ``LABEL_0``..."""
    id2label = cfg.get("id2label") or {}
    try:
        labels = [str(id2label[str(i)] if str(i) in id2label else id2label[i]) for i in range(n)]
    except (KeyError, TypeError):
        return []
    if all(re.fullmatch(r"LABEL_\d+", lab) for lab in labels):
        return []
    return labels
