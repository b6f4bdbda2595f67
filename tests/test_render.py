"""Pure-numpy rendering helpers."""

import numpy as np
import pytest

from vitviz.render import (
    COLORMAPS, apply_colormap, attention_rollout, cls_maps, colormap_lut, draw_patch_grid, normalize, overlay,
    resize_map,
)


def test_every_colormap_has_a_256_entry_table():
    for name in COLORMAPS:
        lut = colormap_lut(name)
        assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert tuple(colormap_lut("gray")[0]) == (0, 0, 0) and tuple(colormap_lut("gray")[-1]) == (255, 255, 255)
    with pytest.raises(ValueError):
        colormap_lut("nope")


def test_normalize_global_and_per_axis():
    a = np.array([[0.0, 2.0], [4.0, 8.0]])
    np.testing.assert_allclose(normalize(a), a / 8)
    np.testing.assert_allclose(normalize(a, axis=1), [[0, 1], [0, 1]])
    assert np.all(normalize(np.full((3, 3), 5.0)) == 0)
    assert np.all(np.isfinite(normalize(np.array([np.nan, 1.0, np.inf]))))


def test_colormap_and_overlay():
    rgb = apply_colormap(np.array([0.0, 1.0]), "viridis")
    assert rgb.shape == (2, 3)
    img = np.zeros((16, 16, 3), np.uint8)
    out = overlay(img, np.ones((2, 2)), "gray", alpha=0.5)
    assert out.shape == img.shape and np.all(out == 128)
    assert np.array_equal(overlay(img, np.ones((2, 2)), "gray", alpha=0.0), img)


def test_resize_map_nearest_keeps_patches():
    m = np.arange(4, dtype=np.float32).reshape(2, 2)
    big = resize_map(m, (4, 4), smooth=False)
    np.testing.assert_array_equal(big, [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
    smooth = resize_map(m, (8, 8))
    assert smooth.min() == pytest.approx(0) and smooth.max() == pytest.approx(3)


def test_patch_grid_lines_at_patch_borders():
    img = np.zeros((32, 48, 3), np.uint8)
    out = draw_patch_grid(img, 16, alpha=1.0)
    assert np.all(out[16, :] == 255) and np.all(out[:, 32] == 255)
    assert np.all(out[8, 8] == 0)


def test_cls_maps_reshape():
    att = np.random.rand(2, 3, 7, 7)
    maps = cls_maps(att, (2, 3))
    assert maps.shape == (2, 3, 2, 3)
    np.testing.assert_array_equal(maps[1, 2].ravel(), att[1, 2, 0, 1:])


def _random_attention(layers, heads, t, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.random((layers, heads, t, t))
    return a / a.sum(-1, keepdims=True)


def test_rollout_single_layer_matches_definition():
    a = _random_attention(1, 2, 5)
    expected = 0.5 * a[0].mean(0) + 0.5 * np.eye(5)
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(attention_rollout(a), expected)


def test_rollout_is_product_and_row_stochastic():
    a = _random_attention(3, 4, 6, seed=3)
    joint = attention_rollout(a, head_fusion="max", discard_ratio=0.3)
    np.testing.assert_allclose(joint.sum(-1), 1.0)
    steps = []
    for layer in range(3):
        s = 0.5 * a[layer].mean(0) + 0.5 * np.eye(6)
        steps.append(s / s.sum(-1, keepdims=True))
    np.testing.assert_allclose(attention_rollout(a), steps[2] @ steps[1] @ steps[0])
    np.testing.assert_allclose(attention_rollout(a, upto_layer=0), steps[0])
    with pytest.raises(ValueError):
        attention_rollout(a, head_fusion="median")


@pytest.mark.parametrize("smooth", [True, False])
def test_overlay_of_a_stack_equals_one_map_at_a_time(smooth):
    """The attention view draws every head of a live frame in one pass: same pixels as drawing each alone."""
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (48, 32, 3), dtype=np.uint8)
    maps = rng.random((5, 6, 4)).astype(np.float32)
    stacked = overlay(image, maps, "viridis", 0.4, smooth=smooth)
    assert stacked.shape == (5, 48, 32, 3) and stacked.dtype == np.uint8
    for k in range(len(maps)):
        np.testing.assert_array_equal(stacked[k], overlay(image, maps[k], "viridis", 0.4, smooth=smooth))
        np.testing.assert_array_equal(resize_map(maps, (48, 32), smooth)[k], resize_map(maps[k], (48, 32), smooth))


def test_tile_images_places_tiles_and_captions():
    """Each tile lands in its cell under a caption strip; captions are dark text on white, and the same caption
    drawn twice (a cached mask) looks the same in both cells."""
    from vitviz.render import tile_images

    tiles = [np.full((20, 30, 3), v, np.uint8) for v in (10, 60, 110, 160, 210)]
    grid = tile_images(tiles, cols=3, titles=["head 0", "head 1", "head 0", "", "mean"], pad=4, title_height=14)
    assert grid.shape == (2 * (20 + 14 + 4) + 4, 3 * (30 + 4) + 4, 3)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, 3)
        y, x = 4 + r * 38 + 14, 4 + c * 34
        assert np.array_equal(grid[y : y + 20, x : x + 30], tile)
    cells = [divmod(i, 3) for i in range(5)]
    strips = [grid[4 + r * 38 : 4 + r * 38 + 14, 4 + c * 34 : 4 + c * 34 + 30] for r, c in cells]
    assert all(s.min() < 120 for s in (strips[0], strips[1], strips[2], strips[4]))  # text was drawn
    assert strips[3].min() == 255  # an empty caption leaves the strip white
    assert np.array_equal(strips[0], strips[2]) and not np.array_equal(strips[0], strips[1])
    untitled = tile_images(tiles, cols=3)
    assert untitled.shape == (2 * (20 + 4) + 4, 3 * (30 + 4) + 4, 3)
