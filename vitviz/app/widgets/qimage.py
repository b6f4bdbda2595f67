"""Conversion of numpy RGB (or grey) arrays into QImages in the format Qt draws fastest."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage

__all__ = ["to_qimage"]


def to_qimage(rgb: np.ndarray) -> QImage:
    """A QImage (own copy of the pixels) of an ``[H, W, 3]`` (or ``[H, W]``) uint8 array, in the 32-bit format
    that Qt draws fastest (scaled smoothly about 2.5x faster than 24-bit RGB: every live frame draws ~10)."""
    arr = np.asarray(rgb, dtype=np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    # converting makes a new image with its own pixels, so the QImage does not read arr's memory afterwards
    return QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888).convertToFormat(QImage.Format.Format_RGB32)
