"""The fast PNG writer of ``vitviz analyze``: files that any decoder reads back exactly."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from vitviz import pngfile
from vitviz.render import apply_colormap


def _decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return np.asarray(im)


@pytest.mark.parametrize("shape", [(37, 53), (37, 53, 3), (37, 53, 4), (1, 1, 3), (64, 1), (5, 300, 3)])
@pytest.mark.parametrize("level", [0, 1, 3, 6])
def test_round_trip_is_exact(shape, level):
    rng = np.random.default_rng(sum(shape) + level)
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    assert np.array_equal(_decode(pngfile.encode_png(image, level)), image)


def test_standard_zlib_when_isal_is_missing(monkeypatch, tmp_path):
    image = apply_colormap(np.linspace(0, 1, 90 * 70).reshape(90, 70), "inferno")
    with_isal = pngfile.encode_png(image, 1)
    monkeypatch.setattr(pngfile, "_fast_deflate", None)
    without = pngfile.encode_png(image, 1)
    assert np.array_equal(_decode(without), image) and np.array_equal(_decode(with_isal), image)


def test_strided_views_and_smooth_maps_compress(tmp_path):
    """A view of a larger array is written as the pixels it shows; a smooth colour map compresses well."""
    big = apply_colormap(np.add.outer(np.linspace(0, 1, 256), np.linspace(0, 1, 256)) / 2, "turbo")
    view = big[::2, 10:200]
    path = tmp_path / "map.png"
    pngfile.save_png(path, view, level=1)
    assert np.array_equal(np.asarray(Image.open(path)), view)
    assert path.stat().st_size < view.nbytes / 4


def test_high_levels_and_other_types_go_through_pillow(tmp_path):
    image = np.full((8, 8, 3), 200, np.uint8)
    pngfile.save_png(tmp_path / "a.png", image, level=9)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), image)
    grey16 = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000
    pngfile.save_png(tmp_path / "b.png", grey16, level=1)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b.png")), grey16)
    grey_alpha = np.stack([np.arange(64, dtype=np.uint8).reshape(8, 8)] * 2, axis=-1)
    pngfile.save_png(tmp_path / "c.png", grey_alpha, level=1)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "c.png")), grey_alpha)


@pytest.mark.parametrize("bad", [np.zeros((0, 4, 3), np.uint8), np.zeros((4, 4, 2), np.uint8),
                                 np.zeros((4, 4, 3), np.float32)])
def test_unsupported_arrays_are_refused(bad):
    with pytest.raises(ValueError):
        pngfile.encode_png(bad)
