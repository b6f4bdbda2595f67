"""What an analysis keeps of the attention (vitviz.attention): the same figures as the full tensors give, in memory
that grows with the tokens, and rows of other tokens computed on demand."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import vitviz.attention as attention_module
import vitviz.attention_maps as maps_module
import vitviz.explain as explain_module
from vitviz.attention import AttentionMaps, AttentionRecorder
from vitviz.engine import Engine
from vitviz.explain import evidence_map
from vitviz.features import cls_attention_entropy, mean_attention_distance
from vitviz.models.vit import build_model
from vitviz.render import attention_rollout, cumulative_rollout

from .conftest import tiny_config

PATCH = 8


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(3)
    m = build_model(tiny_config(num_register_tokens=2, depth=4, depth_head="none")).eval()
    with torch.no_grad():  # sharp, uneven attention
        m.pos_embed.normal_(0, 0.7)
        m.cls_token.normal_(0, 0.7)
        m.reg_token.normal_(0, 0.7)
    return m


@pytest.fixture(autouse=True)
def few_queries_a_slice(monkeypatch):
    """Recomputed attention comes 5 queries a slice (3 heads, 38 tokens), so that slices, prefix rows and patch
    rows meet mid-slice."""
    monkeypatch.setattr(maps_module, "SLICE_BYTES", 4 * 3 * 5 * 38)


@pytest.fixture(scope="module", params=[True, False], ids=["in-pass", "sweep"])
def both(model, request):
    """(full tensors per image, recorder) of one forward pass each over two images of a 5x7 grid; the recorder
    computes the attention in the pass (a CPU's way) or recomputes it in a sweep afterwards (a GPU's way)."""
    x = torch.randn(2, 3, 5 * PATCH, 7 * PATCH, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        full = model(x, return_attention=True)
        recorder = AttentionRecorder(full.grid, PATCH, model.num_prefix_tokens, in_pass=request.param)
        kept = model(x, attention_recorder=recorder)
    torch.testing.assert_close(kept.logits, full.logits, rtol=1e-5, atol=1e-6)  # the same forward pass
    return [torch.stack([a[i] for a in full.attentions]).numpy() for i in range(2)], recorder


def test_the_kept_figures_equal_those_of_the_full_tensors(both, model):
    fulls, recorder = both
    p = model.num_prefix_tokens
    for i, full in enumerate(fulls):
        maps = recorder.maps(i)
        np.testing.assert_allclose(maps.prefix_rows, full[:, :, :p], atol=1e-6)
        np.testing.assert_allclose(maps.cls_maps(), full[:, :, 0, p:].reshape(4, 3, 5, 7), atol=1e-6)
        np.testing.assert_allclose(maps.rollout_rows, cumulative_rollout(full)[:, 0], atol=1e-6)
        np.testing.assert_allclose(maps.mean_distance, mean_attention_distance(full, (5, 7, PATCH), p), rtol=1e-5)
        np.testing.assert_allclose(maps.cls_entropy(), cls_attention_entropy(full, p), rtol=1e-5, atol=1e-6)
        assert maps.full is None and maps.queries.shape == (4, 3, 38, 8)  # linear in the tokens


def test_half_precision_head_means_stay_within_1e_3(model, monkeypatch):
    """Above FUSED_FLOAT32_BYTES the pass keeps its head-means in float16: rollout rows within 1e-3."""
    monkeypatch.setattr(attention_module, "FUSED_FLOAT32_BYTES", 0)
    x = torch.randn(1, 3, 5 * PATCH, 7 * PATCH, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        full = model(x, return_attention=True)
        recorder = AttentionRecorder(full.grid, PATCH, model.num_prefix_tokens, keep_queries=False, in_pass=True)
        model(x, attention_recorder=recorder)
    assert recorder.fused[0].dtype == torch.float16 and not recorder.queries  # nothing T x d kept
    maps = recorder.maps(0)
    expected = cumulative_rollout(torch.stack([a[0] for a in full.attentions]).numpy())[:, 0]
    np.testing.assert_allclose(maps.rollout_rows, expected, atol=1e-3)
    assert np.abs(maps.rollout_rows - expected).max() > 0  # rounded, not the float32 path in disguise
    assert maps.queries is None and not maps.answers_queries


def test_a_query_row_on_demand_equals_the_full_tensors_row(both, model):
    fulls, recorder = both
    p = model.num_prefix_tokens
    maps = recorder.maps(1)
    joint = cumulative_rollout(fulls[1])
    for patch in (0, 13, 34):
        np.testing.assert_allclose(maps.query_rows(patch), fulls[1][:, :, p + patch, p:].reshape(4, 3, 5, 7),
                                   atol=1e-6)
        np.testing.assert_allclose(maps.query_rollout(patch), joint[:, p + patch], atol=1e-6)
        assert maps.has_query(patch) and maps.query_rows(patch) is maps.query_rows(patch)  # cached
    with pytest.raises(ValueError, match="outside"):
        maps.query_rows(35)


@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
@pytest.mark.parametrize("discard", [0.0, 0.9])
def test_every_rollout_option_from_queries_and_keys(both, fusion, discard):
    fulls, recorder = both
    maps = recorder.maps(0)
    for upto in (0, 3):
        expected = attention_rollout(fulls[0], fusion, discard, upto)[0]
        np.testing.assert_allclose(maps.rollout(upto, fusion, discard), expected, atol=1e-6)


def test_maps_from_full_tensors_answer_the_same(both, model):
    fulls, recorder = both
    from_full = AttentionMaps.from_full(fulls[0], (5, 7), PATCH, model.num_prefix_tokens)
    recorded = recorder.maps(0)
    np.testing.assert_allclose(from_full.rollout_rows, recorded.rollout_rows, atol=1e-6)
    np.testing.assert_allclose(from_full.query_rollout(20), recorded.query_rollout(20), atol=1e-6)
    lean = recorded.without_queries()
    assert not lean.answers_queries and lean.nbytes < recorded.nbytes
    with pytest.raises(ValueError, match="kept only the CLS rollout"):
        lean.rollout(2, "max")


def test_the_engine_keeps_the_summary_or_the_full_tensors_as_asked(tiny_checkpoint, photo):
    engine = Engine(tiny_checkpoint, device="cpu")
    full = engine.analyze(photo, attention="full")
    summary = engine.analyze(photo, attention="summary", features=True)
    assert engine.analyze(photo, attention="summary").attention.mean_distance is None  # not asked for
    auto = engine.analyze(photo)  # a tiny model's tensors fit the budget: kept
    assert full.attentions is not None and summary.attentions is None and auto.attentions is not None
    t = full.attentions.shape[-1]
    kept = summary.attention
    assert kept.queries is None and kept.full is None
    assert all(t not in a.shape[:-1] for a in (kept.prefix_rows, kept.rollout_rows))  # nothing T x T
    np.testing.assert_allclose(summary.cls_attention, full.cls_attention, atol=1e-6)
    for layer in range(full.num_layers):
        np.testing.assert_allclose(summary.rollout(layer), full.rollout(layer), atol=1e-6)
    np.testing.assert_allclose(summary.attention.mean_distance, full.attention.mean_distance, rtol=1e-5)
    # the plain call keeps the tensors and computes the head distances when they are first read, as features=True does
    lazy = auto.attention
    assert lazy.__dict__["_mean_distance"] is None
    np.testing.assert_allclose(lazy.mean_distance, engine.analyze(photo, features=True).attention.mean_distance,
                               rtol=1e-6)
    assert lazy.mean_distance is lazy.mean_distance and lazy.without_queries().mean_distance is lazy.mean_distance
    # ... and its CLS rollout rows too, equal to those the app's worker computes at once
    plain = engine.analyze(photo).attention
    assert plain.__dict__["_rollout_rows"] is None
    shown = engine.analyze(photo, keep_display_image=True).attention
    assert shown.__dict__["_rollout_rows"] is not None
    np.testing.assert_allclose(plain.rollout_rows, shown.rollout_rows, atol=1e-7)
    np.testing.assert_allclose(plain.rollout_rows, full.attention.rollout_rows, atol=1e-6)
    assert plain.rollout_rows is plain.rollout_rows and plain.without_queries().rollout_rows is plain.rollout_rows
    np.testing.assert_allclose(pickle.loads(pickle.dumps(engine.analyze(photo).attention)).rollout_rows,
                               shown.rollout_rows, atol=1e-7)
    np.testing.assert_allclose(summary.probabilities, full.probabilities, atol=1e-6)
    with pytest.raises(ValueError, match="no attention beyond"):
        summary.query_attention(0, 3)


def test_streamed_evidence_equals_the_maps_of_held_gradients(tiny_checkpoint, photo, monkeypatch):
    engine = Engine(tiny_checkpoint, device="cpu")
    result = engine.analyze(photo, attention="full")
    held = engine.evidence(result, [0, 3])
    assert held.grads is not None
    monkeypatch.setattr(explain_module, "EVIDENCE_BUDGET", 0)  # as for a model too large to hold its gradients
    streamed = engine.evidence(result, [0, 3], discard_ratio=0.5)
    assert streamed.grads is None and streamed.targets == [0, 3]
    for target in (0, 3):
        grads = held.grads[held.targets.index(target)]
        for method, discard in (("relevance", None), ("grad-rollout", 0.5)):
            expected = evidence_map(result.attentions, grads, method, 1, (4, 6), discard_ratio=discard)
            np.testing.assert_allclose(streamed.map(method, target, discard_ratio=discard), expected, atol=1e-6)
        assert streamed.has(target, "grad-rollout", 0.5) and not streamed.has(target, "grad-rollout", 0.9)
    merged = streamed.merged(engine.evidence(result, [1]))
    assert merged.targets == [0, 3, 1] and merged.has(1, "relevance")


def test_evidence_too_large_for_the_memory_is_one_line(tiny_checkpoint, photo, monkeypatch):
    engine = Engine(tiny_checkpoint, device="cpu")
    monkeypatch.setattr(explain_module, "EVIDENCE_BUDGET", 0)
    monkeypatch.setattr(explain_module, "_available_memory", lambda device: 1000)
    from vitviz.errors import VitvizError

    with pytest.raises(VitvizError, match=r"needs about .* GB .* free") as info:
        engine.evidence(engine.analyze(photo), "top1")
    assert "\n" not in str(info.value)


def test_maps_from_a_forward_passs_layers_equal_those_of_the_stacked_array(both, model):
    """The engine hands from_full the forward pass's own per-layer tensors; without keeping them (a summary) the
    figures are the same as from the stacked array and the numpy references, and nothing T x T is kept."""
    fulls, _recorder = both
    p = model.num_prefix_tokens
    layers = [torch.from_numpy(layer) for layer in fulls[1]]
    lean = AttentionMaps.from_full(layers, (5, 7), PATCH, p, keep_full=False, head_statistics=False)
    stacked = AttentionMaps.from_full(fulls[1], (5, 7), PATCH, p)
    assert lean.full is None and lean.mean_distance is None and stacked.full is fulls[1]  # the array, not a copy
    np.testing.assert_allclose(lean.prefix_rows, fulls[1][:, :, :p], atol=1e-7)
    np.testing.assert_allclose(lean.rollout_rows, cumulative_rollout(fulls[1])[:, 0], atol=1e-6)
    np.testing.assert_allclose(stacked.rollout_rows, lean.rollout_rows, atol=1e-7)
    with_statistics = AttentionMaps.from_full(layers, (5, 7), PATCH, p, keep_full=False)
    np.testing.assert_allclose(with_statistics.mean_distance, mean_attention_distance(fulls[1], (5, 7, PATCH), p),
                               rtol=1e-6)


def test_kept_full_tensors_are_the_forward_passs_own_until_stacked(both, model):
    """Keeping a forward pass's full tensors copies nothing (views of its per-layer tensors; one image of a batch is
    copied, so a result holds its own image alone); ``full`` stacks them once, into the same [L, H, T, T] values,
    and every figure and on-demand row agrees with the stacked array's (within 1e-5), also after pickling."""

    fulls, _recorder = both
    p = model.num_prefix_tokens
    layers = [torch.from_numpy(layer.copy()) for layer in fulls[1]]
    maps = AttentionMaps.from_full(layers, (5, 7), PATCH, p)
    assert all(np.shares_memory(kept, layer.numpy()) for kept, layer in zip(maps.full_layers, layers))
    batch = [torch.from_numpy(np.stack([a, b])) for a, b in zip(fulls[0], fulls[1])]
    second = AttentionMaps.from_full([a[1] for a in batch], (5, 7), PATCH, p)
    assert not any(np.shares_memory(kept, a.numpy()) for kept, a in zip(second.full_layers, batch))
    reference = AttentionMaps.from_full(fulls[1], (5, 7), PATCH, p)
    for got in (maps, second, pickle.loads(pickle.dumps(maps))):
        for name in ("prefix_rows", "rollout_rows", "mean_distance"):
            np.testing.assert_allclose(getattr(got, name), getattr(reference, name), atol=1e-5)
        np.testing.assert_allclose(got.query_rows(3), reference.query_rows(3), atol=1e-5)
        np.testing.assert_allclose(got.query_rollout(3), reference.query_rollout(3), atol=1e-5)
        np.testing.assert_allclose(got.rollout(head_fusion="max", discard_ratio=0.5),
                                   reference.rollout(head_fusion="max", discard_ratio=0.5), atol=1e-5)
        assert got.nbytes >= fulls[1].nbytes and got.query_is_cheap
    stacked = maps.full
    np.testing.assert_array_equal(stacked, fulls[1])
    assert maps.full is stacked and all(np.shares_memory(kept, stacked) for kept in maps.full_layers)


def test_a_small_models_summary_comes_from_the_full_tensors_and_equals_the_recorders(tiny_checkpoint, photo,
                                                                                     monkeypatch):
    """Below SUMMARY_FROM_FULL_BUDGET the CLI's summary is taken from the eager pass's full tensors; above it the
    recorder computes it in the pass. Both give the same maps (within 1e-5), and neither keeps anything T x T."""
    import vitviz.engine as engine_module

    engine = Engine(tiny_checkpoint, device="cpu")
    summarised = []
    real = AttentionMaps.from_full.__func__
    monkeypatch.setattr(AttentionMaps, "from_full",
                        classmethod(lambda cls, *a, **k: summarised.append(k) or real(cls, *a, **k)))
    eager = engine.analyze(photo, attention="summary", features=True)
    assert summarised == [{"keep_full": False, "head_statistics": True, "on_demand": True}]
    monkeypatch.setattr(engine_module, "SUMMARY_FROM_FULL_BUDGET", 0)  # as for a photo model's many tokens
    in_pass = engine.analyze(photo, attention="summary", features=True)
    assert len(summarised) == 1  # the recorder's maps, not from_full
    a, b = eager.attention, in_pass.attention
    assert a.full is None and b.full is None and a.queries is None and b.queries is None
    np.testing.assert_allclose(a.prefix_rows, b.prefix_rows, atol=1e-5)
    np.testing.assert_allclose(a.rollout_rows, b.rollout_rows, atol=1e-5)
    np.testing.assert_allclose(a.mean_distance, b.mean_distance, rtol=1e-5)
    np.testing.assert_allclose(eager.probabilities, in_pass.probabilities, atol=1e-6)
