"""Representation figures (vitviz.features): each one against a direct computation written here with loops, on
hand-made attention matrices with known answers and on a tiny model; the hidden states' single forward pass; the
``analyze --features`` files."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from vitviz import features as F
from vitviz.cli import main
from vitviz.engine import Engine
from vitviz.errors import VitvizError
from vitviz.export import write_features


@pytest.fixture(scope="module")
def engine(tiny_checkpoint):
    return Engine(tiny_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def result(engine, photo):
    return engine.analyze(photo, features=True)  # 4 x 6 patches of 8 px, 1 prefix token, 3 layers x 3 heads


# ------------------------------------------------------------------------------------------------ direct loops


def loop_mean_distance(attn, rows, cols, patch, prefix):
    """[L, H, T, T] -> [L, H], one query and key at a time."""
    n = rows * cols
    out = np.zeros(attn.shape[:2])
    for l in range(attn.shape[0]):
        for h in range(attn.shape[1]):
            total = 0.0
            for q in range(n):
                row = attn[l, h, prefix + q, prefix:]
                qy, qx = divmod(q, cols)
                acc = 0.0
                for k in range(n):
                    ky, kx = divmod(k, cols)
                    acc += row[k] / row.sum() * math.hypot((qx - kx) * patch, (qy - ky) * patch)
                total += acc
            out[l, h] = total / n
    return out


def loop_entropy(attn, prefix):
    out = np.zeros(attn.shape[:2])
    for l in range(attn.shape[0]):
        for h in range(attn.shape[1]):
            row = attn[l, h, 0, prefix:]
            p = row / row.sum()
            out[l, h] = -sum(v * math.log(v) for v in p if v > 0)
    return out


def loop_pca(tokens):
    """Scores on the first 3 components by SVD, each signed so its third moment is positive, min-max scaled."""
    xc = tokens - tokens.mean(axis=0)
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    scores = u[:, :3] * s[:3]
    rgb = np.zeros_like(scores)
    for c in range(3):
        col = scores[:, c] if (scores[:, c] ** 3).sum() > 0 else -scores[:, c]
        rgb[:, c] = (col - col.min()) / (col.max() - col.min())
    return rgb


# ------------------------------------------------------------------------------------------------ known answers


def test_one_hot_attention_two_cells_away_is_two_patch_sizes():
    rows, cols, patch, prefix = 5, 6, 16, 2
    n, t = rows * cols, prefix + rows * cols
    attn = np.zeros((1, 2, t, t), np.float32)
    attn[..., :, 0] = 0.3  # prefix keys take a share that the renormalisation must remove
    for q in range(n):
        r, c = divmod(q, cols)
        attn[0, 0, prefix + q, prefix + r * cols + (c + 2 if c + 2 < cols else c - 2)] = 0.7  # 2 cells sideways
        attn[0, 1, prefix + q, prefix + (r + 2 if r + 2 < rows else r - 2) * cols + c] = 0.7  # 2 cells up/down
    mad = F.mean_attention_distance(attn, (rows, cols), prefix, patch_size=patch)
    np.testing.assert_allclose(mad, [[2 * patch, 2 * patch]], rtol=1e-6)
    # Attention to itself: distance 0.
    self_attn = np.zeros((1, 1, t, t), np.float32)
    self_attn[0, 0, np.arange(prefix, t), np.arange(prefix, t)] = 1.0
    assert F.mean_attention_distance(self_attn, (rows, cols, patch), prefix)[0, 0] == 0.0


def test_uniform_cls_attention_has_entropy_log_n():
    prefix, n = 1, 35
    attn = np.zeros((2, 1, prefix + n, prefix + n))
    attn[0, 0, 0, 0] = 0.5
    attn[0, 0, 0, prefix:] = 0.5 / n  # uniform over the patches once CLS's own share is removed
    attn[1, 0, 0, prefix + 7] = 1.0  # one patch only
    ent = F.cls_attention_entropy(attn, prefix)
    np.testing.assert_allclose(ent[:, 0], [math.log(n), 0.0], atol=1e-6)


def test_uniform_patch_attention_matches_the_reference_level():
    rows, cols, patch = 3, 4, 10
    t = 1 + rows * cols
    attn = np.full((1, 1, t, t), 1.0 / t)
    mad = F.mean_attention_distance(attn, (rows, cols, patch), 1)[0, 0]
    assert mad == pytest.approx(F.uniform_attention_distance((rows, cols, patch)), rel=1e-6)


# ------------------------------------------------------------------------------------------------ tiny model


def test_head_statistics_match_loops_on_a_tiny_model(result):
    a, g, p = result.attentions, result.grid, result.num_prefix_tokens
    assert (g.rows, g.cols, g.patch_size) == (4, 6, 8)  # non-square grid: rows and columns must not be swapped
    mad = F.mean_attention_distance(a, g, p)
    assert mad.shape == (3, 3)
    np.testing.assert_allclose(mad, loop_mean_distance(a.astype(np.float64), g.rows, g.cols, 8, p), rtol=1e-5)
    np.testing.assert_allclose(F.cls_attention_entropy(a, p), loop_entropy(a.astype(np.float64), p), rtol=1e-5)


def test_hidden_states_come_from_the_one_forward_pass(engine, photo, result):
    calls = []
    hook = engine.model.register_forward_hook(lambda *args: calls.append(1))
    try:
        r = engine.analyze(photo, features=True)
    finally:
        hook.remove()
    assert len(calls) == 1
    assert r.hidden_states.shape == (3, 25, 24) and r.hidden_states.dtype == np.float32
    np.testing.assert_array_equal(r.hidden_states, result.hidden_states)
    # The same tensors a direct call yields: block outputs before the final norm.
    x = torch.from_numpy(r.image).permute(2, 0, 1).float().div(255)
    x = ((x - torch.tensor(engine.info.mean).view(3, 1, 1)) / torch.tensor(engine.info.std).view(3, 1, 1))[None]
    with torch.no_grad():
        out = engine.model.forward_features(x, return_hidden=True)
    direct = torch.stack(out.hidden_states)[:, 0].numpy()
    np.testing.assert_allclose(r.hidden_states, direct, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(engine.model.norm(torch.from_numpy(r.hidden_states[-1])).numpy(),
                                   out.tokens[0].numpy(), rtol=1e-4, atol=1e-5)
    assert engine.analyze(photo).hidden_states is None  # not kept unless asked for
    # the blocks wrote into one [L, 1, T, D] tensor, which the result keeps (no copy); a batch's image its own part
    assert r.hidden_states.base is not None and r.hidden_states.flags.c_contiguous
    batch = engine.analyze_batch([photo, photo], features=True)
    assert batch[0].hidden_states.base is None and not np.shares_memory(batch[0].hidden_states, batch[1].hidden_states)
    for b in batch:
        np.testing.assert_allclose(b.hidden_states, r.hidden_states, rtol=1e-5, atol=1e-5)


def test_token_norms_match_loops(result):
    h = result.hidden_states
    norms = F.token_norms(h)
    assert norms.shape == (3, 25)
    for l in range(h.shape[0]):
        for t in range(h.shape[1]):
            assert norms[l, t] == pytest.approx(math.sqrt(sum(float(v) ** 2 for v in h[l, t])), rel=1e-5)


def test_pca_rgb_matches_an_svd_with_the_sign_convention(result):
    p, g = result.num_prefix_tokens, result.grid
    for layer in range(3):
        rgb = F.pca_rgb(result.hidden_states[layer], p, g)
        assert rgb.shape == (4, 6, 3) and rgb.dtype == np.float32
        expected = loop_pca(result.hidden_states[layer, p:].astype(np.float64)).reshape(4, 6, 3)
        np.testing.assert_allclose(rgb, expected, atol=1e-5)


def test_pca_colours_do_not_depend_on_component_signs(result, monkeypatch):
    h = result.hidden_states[1].astype(np.float64)
    p, g = result.num_prefix_tokens, result.grid
    reference = F.pca_rgb(h, p, g)
    # The features negated, and the first principal direction mirrored, give the same colours.
    np.testing.assert_allclose(F.pca_rgb(-h, p, g), reference, atol=1e-6)
    patches = h[p:] - h[p:].mean(axis=0)
    v1 = np.linalg.svd(patches, full_matrices=False)[2][0]
    mirrored = h.copy()
    mirrored[p:] -= 2.0 * np.outer(patches @ v1, v1)
    np.testing.assert_allclose(F.pca_rgb(mirrored, p, g), reference, atol=1e-6)
    # An eigensolver returning every eigenvector negated changes nothing either.
    eigh = np.linalg.eigh
    monkeypatch.setattr(F.np.linalg, "eigh", lambda m: (lambda w, v: (w, -v))(*eigh(m)))
    np.testing.assert_allclose(F.pca_rgb(h, p, g), reference, atol=1e-6)
    np.testing.assert_allclose(F.pca_rgb(h, p, g, foreground=True), F.pca_rgb(-h, p, g, foreground=True), atol=1e-6)


def test_percentile_scaling_clips_outliers():
    rng = np.random.default_rng(0)
    tokens = rng.normal(size=(1 + 100, 8))
    tokens[1 + 5] *= 50.0  # one outlier patch
    rgb = F.pca_rgb(tokens, 1, (10, 10), scaling="percentile", percentile=5.0)
    assert rgb.min() >= 0.0 and rgb.max() <= 1.0
    for c in range(3):
        frac_clipped = np.mean((rgb[..., c] == 0.0) | (rgb[..., c] == 1.0))
        assert 0.08 <= frac_clipped <= 0.12  # about 5 % at each end
    minmax = F.pca_rgb(tokens, 1, (10, 10))
    others = [i for i in range(100) if i != 5]
    # min-max: the outlier takes one end and squeezes every other patch together; the percentiles keep them apart
    assert minmax[..., 0].ravel()[others].std() < 0.05 < rgb[..., 0].ravel()[others].std()
    with pytest.raises(ValueError, match="scaling"):
        F.pca_rgb(tokens, 1, (10, 10), scaling="zscore")


def test_foreground_is_the_minority_cluster_and_background_is_black():
    rng = np.random.default_rng(1)
    rows, cols = 6, 6
    tokens = rng.normal(scale=0.1, size=(1 + rows * cols, 16))
    obj = [8, 9, 14, 15, 20, 21]
    tokens[1 + np.array(obj), 0] += 5.0  # a small object, far from the background along one direction
    mask = F.pca_foreground(tokens, 1, (rows, cols))
    assert sorted(np.flatnonzero(mask)) == obj
    assert sorted(np.flatnonzero(F.pca_foreground(-tokens, 1, (rows, cols)))) == obj  # sign-free
    rgb = F.pca_rgb(tokens, 1, (rows, cols), foreground=True).reshape(-1, 3)
    assert (rgb[[i for i in range(36) if i not in obj]] == 0).all()
    assert rgb[obj].max() == pytest.approx(1.0)


def test_patch_similarity_matches_loops(result):
    h, p = result.hidden_states[2], result.num_prefix_tokens
    sim = F.patch_similarity(h, 7, p, result.grid)
    assert sim.shape == (4, 6)
    assert sim.ravel()[7] == pytest.approx(1.0, abs=1e-6)
    a = h[p + 7].astype(np.float64)
    for k in range(24):
        b = h[p + k].astype(np.float64)
        assert sim.ravel()[k] == pytest.approx(a @ b / math.sqrt((a @ a) * (b @ b)), abs=1e-6)
    with pytest.raises(ValueError, match="outside"):
        F.patch_similarity(h, 24, p, result.grid)


def test_feature_set_holds_the_same_figures_and_caches_pca(result):
    fs = F.FeatureSet.from_result(result, pca_layers=(-1,))
    p, g = result.num_prefix_tokens, result.grid
    np.testing.assert_array_equal(fs.mean_distance, F.mean_attention_distance(result.attentions, g, p))
    np.testing.assert_array_equal(fs.cls_entropy, F.cls_attention_entropy(result.attentions, p))
    np.testing.assert_array_equal(fs.token_norms, F.token_norms(result.hidden_states))
    assert fs.pca(2) is fs.pca(-1)  # computed once, the last layer by either index
    np.testing.assert_array_equal(fs.pca(0, foreground=True), F.pca_rgb(result.hidden_states[0], p, g, True))
    np.testing.assert_array_equal(fs.similarity(1, 3), F.patch_similarity(result.hidden_states[1], 3, p, g))
    assert fs.atlas_image().ndim == 3
    with pytest.raises(ValueError, match="features=True"):
        F.FeatureSet.from_result(type(result)(**{**result.__dict__, "hidden_states": None}))


def test_bad_shapes_give_clear_errors():
    with pytest.raises(ValueError, match="do not match"):
        F.mean_attention_distance(np.zeros((1, 1, 10, 10)), (3, 4, 16), 1)
    with pytest.raises(ValueError, match="patch size"):
        F.mean_attention_distance(np.zeros((1, 1, 13, 13)), (3, 4), 1)
    with pytest.raises(ValueError, match="do not match"):
        F.pca_rgb(np.zeros((12, 4)), 1, (3, 4))


def test_head_atlas_image_draws_every_head():
    mad = np.array([[10.0, 20.0, 30.0], [40.0, 50.0, 60.0]])
    one = F.head_atlas_image(mad)
    two = F.head_atlas_image(mad, np.ones_like(mad), uniform_distance=45.0, num_patches=16, title="t")
    assert one.dtype == np.uint8 and one.ndim == 3 and one.shape[2] == 3
    assert two.shape[1] == 2 * one.shape[1]  # the entropy panel beside the distance panel
    for colour in F._HEAD_COLORS[:3]:  # a marker of each head's colour
        assert (one.reshape(-1, 3) == colour).all(axis=1).sum() > 10


# ------------------------------------------------------------------------------------------------ files


def test_analyze_features_writes_the_files(photo, tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    args = ["analyze", str(photo), "--out", str(out), "--model", str(tiny_checkpoint), "--device", "cpu", "--quiet"]
    assert main(args + ["--features", "--layer", "1", "--outputs", "all,attention-full"]) == 0
    folder = out / "photo"
    with np.load(folder / "features.npz") as data:
        arrays = {k: data[k] for k in data.files}
    assert arrays["mean_attention_distance"].shape == (3, 3)
    assert arrays["cls_attention_entropy"].shape == (3, 3)
    assert arrays["token_norms"].shape == (3, 25)
    assert arrays["pca_rgb"].shape == (3, 4, 6, 3)
    assert 0.0 <= arrays["pca_rgb"].min() and arrays["pca_rgb"].max() <= 1.0
    # The figures can be checked from attentions.npy, which keeps its meaning.
    attn = np.load(folder / "attentions.npy")
    np.testing.assert_allclose(arrays["mean_attention_distance"], F.mean_attention_distance(attn, (4, 6, 8), 1),
                               rtol=1e-5)
    np.testing.assert_allclose(arrays["cls_attention_entropy"], F.cls_attention_entropy(attn, 1), rtol=1e-5)
    pca = np.asarray(Image.open(folder / "pca_layer1.png"))
    assert pca.shape == (32, 48, 3)  # the input size, one 8x8 block per patch
    np.testing.assert_allclose(pca[::8, ::8] / 255.0, arrays["pca_rgb"][1], atol=1 / 255)
    atlas = np.asarray(Image.open(folder / "head_atlas.png"))
    assert atlas.ndim == 3 and atlas.shape[1] > atlas.shape[0]
    assert not (tmp_path / "plain" / "photo" / "features.npz").exists()
    assert main(["analyze", str(photo), "--out", str(tmp_path / "plain"), "--model", str(tiny_checkpoint),
                 "--quiet"]) == 0
    assert not (tmp_path / "plain" / "photo" / "features.npz").exists()


def test_write_features_needs_hidden_states(engine, photo, tmp_path):
    with pytest.raises(VitvizError, match="features=True"):
        write_features(engine.analyze(photo), tmp_path)
