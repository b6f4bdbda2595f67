"""Two models on one image (vitviz.compare): layer matching, depth alignment, correlations, compare.json and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from vitviz.cli import main
from vitviz.compare import (
    align_depth, compare, compare_sheet, layer_pairs, match_layer, pearson, to_common_grid, top1_agree, write_compare,
)
from vitviz.engine import Engine

from .compare_models import save_deeper_checkpoint


@pytest.fixture(scope="module")
def deeper_checkpoint(tmp_path_factory):
    return save_deeper_checkpoint(tmp_path_factory.mktemp("deeper"))


@pytest.fixture(scope="module")
def engines(tiny_checkpoint, deeper_checkpoint):
    return Engine(tiny_checkpoint, device="cpu"), Engine(deeper_checkpoint, device="cpu")


# ---------------------------------------------------------------------------------------------- layer matching

@pytest.mark.parametrize("layers_a, layers_b", [(3, 5), (5, 3), (12, 6), (6, 12), (12, 24), (4, 4), (2, 7), (7, 1)])
def test_layers_are_matched_by_relative_depth(layers_a, layers_b):
    for layer in range(layers_a):
        exact = layer * (layers_b - 1) / (layers_a - 1)
        assert match_layer(layer, layers_a, layers_b) == math.floor(exact + 0.5)
    pairs = layer_pairs(layers_a, layers_b)
    assert pairs[0] == (0, 0) and pairs[-1] == (layers_a - 1, layers_b - 1)  # first with first, last with last


def test_known_layer_matches():
    assert [m for _, m in layer_pairs(3, 5)] == [0, 2, 4]
    assert [m for _, m in layer_pairs(5, 3)] == [0, 1, 1, 2, 2]  # 0.5 and 1.5 round up
    assert [m for _, m in layer_pairs(12, 6)] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_a_single_layer_model_matches_layer_zero():
    assert match_layer(0, 1, 12) == 0
    assert layer_pairs(1, 5) == [(0, 0)]
    with pytest.raises(ValueError):
        match_layer(3, 3, 5)


# ---------------------------------------------------------------------------------------------- correlation

def test_pearson_matches_numpy_and_finer_grid_is_used():
    rng = np.random.default_rng(0)
    x, y = rng.random((4, 6)), rng.random((4, 6))
    assert pearson(x, y) == pytest.approx(np.corrcoef(x.ravel(), y.ravel())[0, 1])
    assert pearson(x, x) == pytest.approx(1.0)
    assert pearson(x, 3 - 2 * x) == pytest.approx(-1.0)
    assert pearson(x, np.ones_like(x)) is None  # constant: undefined
    coarse, fine = rng.random((2, 3)), rng.random((4, 6))
    a, b = to_common_grid(coarse, fine)
    assert a.shape == b.shape == (4, 6) and np.array_equal(b, fine)
    a, b = to_common_grid(fine, coarse)
    assert a.shape == (4, 6) and np.array_equal(a, fine)
    # a map resampled to a finer grid and back keeps a perfect correlation with itself, up to interpolation
    assert pearson(*to_common_grid(coarse, np.kron(coarse, np.ones((2, 2))))) > 0.8


# ---------------------------------------------------------------------------------------------- depth alignment

def test_metric_depths_are_aligned_in_metres():
    rng = np.random.default_rng(1)
    a = rng.uniform(1.0, 10.0, (16, 24))
    b = (a - 0.5) / 2.0  # B = (A - 0.5) / 2: aligned by scale 2, shift 0.5
    d = align_depth(a, "metric", b, "metric")
    assert d.space == "depth" and d.unit == "m"
    assert d.scale == pytest.approx(2.0) and d.shift == pytest.approx(0.5)
    assert d.absrel == pytest.approx(0.0, abs=1e-6) and d.delta1 == 1.0
    assert np.abs(d.difference).max() < 1e-4


def test_relative_depth_is_aligned_in_inverse_depth_against_a_direct_fit():
    rng = np.random.default_rng(2)
    metric = rng.uniform(1.0, 10.0, (16, 24))
    relative = 3.0 / metric + rng.normal(0, 0.01, metric.shape) + 7.0  # inverse depth, another scale and shift
    d = align_depth(metric, "metric", relative, "relative_inverse")
    assert d.space == "inverse depth"
    ref = 1.0 / metric
    scale, shift = np.polyfit(relative.ravel(), ref.ravel(), 1)  # the least-squares line, computed directly
    assert d.scale == pytest.approx(scale, rel=1e-6) and d.shift == pytest.approx(shift, rel=1e-6, abs=1e-9)
    aligned = scale * relative + shift
    assert np.allclose(d.difference, np.abs(ref - aligned), atol=1e-6)
    assert d.absrel == pytest.approx(np.mean(np.abs(aligned - ref) / ref), rel=1e-5)
    ratio = np.maximum(aligned / ref, ref / aligned)
    assert d.delta1 == pytest.approx(np.mean(ratio < 1.25))


def test_depth_of_another_resolution_is_resized_to_a():
    a = np.linspace(1, 2, 32 * 48).reshape(32, 48)
    b = a[::2, ::2] * 4.0  # half resolution
    d = align_depth(a, "metric", b, "metric")
    assert d.difference.shape == (32, 48) and d.scale == pytest.approx(0.25, rel=0.02)


def test_identical_depth_aligns_exactly():
    a = np.random.default_rng(3).uniform(0.5, 3, (8, 8)).astype(np.float32)
    d = align_depth(a, "relative_inverse", a.copy(), "relative_inverse")
    assert (d.scale, d.shift, d.absrel, d.delta1) == (1.0, 0.0, 0.0, 1.0)
    assert not d.difference.any()


# ---------------------------------------------------------------------------------------------- two results

def test_a_model_compared_with_itself_gives_identical_sides(engines, photo, tmp_path):
    engine, _ = engines
    a, b = engine.analyze(photo, attention="summary"), engine.analyze(photo, attention="summary")
    c = compare(a, b)
    assert c.top1_agree is True
    assert c.depth is not None and c.depth.absrel == 0.0 and c.depth.delta1 == 1.0
    assert c.pairs == [(0, 0), (1, 1), (2, 2)]
    assert c.correlations == pytest.approx([1.0, 1.0, 1.0])
    files = write_compare(c, tmp_path)
    data = json.loads((tmp_path / "compare.json").read_text())
    assert [f.name for f in files] == ["compare.json", "compare.png"]
    assert data["a"] == data["b"] and data["a"]["model"] == "tiny"
    assert data["a"]["predictions"] == [{"label": p.label, "index": p.index, "probability": p.probability}
                                        for p in a.predictions]


def test_two_models_of_different_depth_and_grid(engines, photo):
    tiny, deeper = engines
    a, b = tiny.analyze(photo, attention="summary"), deeper.analyze(photo, attention="summary")
    assert (a.num_layers, b.num_layers) == (3, 5) and b.grid.num_patches == 4 * a.grid.num_patches
    c = compare(a, b)
    assert c.pairs == [(0, 0), (1, 2), (2, 4)]
    for (la, lb), r in zip(c.pairs, c.correlations):  # against a direct computation: A's map upsampled to B's grid
        from vitviz.render import resize_map

        ma = resize_map(a.cls_attention[la].mean(axis=0), b.cls_attention.shape[-2:])
        mb = b.cls_attention[lb].mean(axis=0)
        assert r == pytest.approx(np.corrcoef(ma.ravel(), mb.ravel())[0, 1], abs=1e-5)
    assert c.depth is not None and c.depth.space == "inverse depth"  # B's depth is relative
    assert c.depth.difference.shape == a.depth.shape
    assert c.top1_agree == (a.predictions[0].label == b.predictions[0].label)
    sheet = compare_sheet(c)
    assert sheet.ndim == 3 and sheet.dtype == np.uint8 and sheet.shape[1] > 5 * a.image.shape[1]


def test_top1_agreement_is_null_when_the_label_sets_differ(engines, photo, tmp_path):
    tiny, _ = engines
    other = Engine(save_deeper_checkpoint(tmp_path, labels=["x", "y", "z", "u", "v"], name="other"), device="cpu")
    a, b = tiny.analyze(photo, attention="summary"), other.analyze(photo, attention="summary")
    assert top1_agree(a, b) is None and compare(a, b).to_json()["top1_agree"] is None
    b.depth = None
    out = compare(a, b).to_json()
    assert out["depth_absrel"] is None and out["depth_delta1"] is None


# ---------------------------------------------------------------------------------------------- command line

def test_cli_compare_with_itself(tiny_checkpoint, photo, tmp_path):
    out = tmp_path / "out"
    assert main(["analyze", str(photo), "--out", str(out), "--model", str(tiny_checkpoint), "--compare",
                 str(tiny_checkpoint), "--quiet"]) == 0
    folder = out / "photo"
    assert (folder / "result.json").is_file() and (folder / "compare.png").is_file()
    data = json.loads((folder / "compare.json").read_text())
    assert set(data) >= {"a", "b", "top1_agree", "depth_absrel", "depth_delta1", "layer_pairs"}
    assert data["top1_agree"] is True and data["depth_absrel"] == 0.0 and data["depth_delta1"] == 1.0
    assert [(p["a"], p["b"]) for p in data["layer_pairs"]] == [(0, 0), (1, 1), (2, 2)]
    assert all(p["correlation"] == pytest.approx(1.0) for p in data["layer_pairs"])
    result = json.loads((folder / "result.json").read_text())
    assert data["a"]["predictions"] == result["predictions"] == data["b"]["predictions"]


def test_cli_compare_with_a_deeper_model(tiny_checkpoint, deeper_checkpoint, photo, tmp_path):
    out = tmp_path / "out"
    assert main(["analyze", str(photo), "--out", str(out), "--model", str(tiny_checkpoint), "--compare",
                 str(deeper_checkpoint), "--quiet", "--outputs", "json"]) == 0
    data = json.loads((out / "photo" / "compare.json").read_text())
    assert data["b"]["model"] == "deeper"
    assert [(p["a"], p["b"]) for p in data["layer_pairs"]] == [(0, 0), (1, 2), (2, 4)]
    assert 0.0 <= data["depth_delta1"] <= 1.0 and data["depth_absrel"] >= 0.0


def test_cli_compare_with_an_unreadable_model_fails_before_any_image(tiny_checkpoint, photo, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["analyze", str(photo), "--out", str(tmp_path / "o"), "--model", str(tiny_checkpoint),
                 "--compare", str(bad)]) == 2
    assert "error" in capsys.readouterr().err
    assert main(["analyze", str(photo), "--out", str(tmp_path / "o"), "--compare", str(tiny_checkpoint),
                 "--ray"]) == 2
