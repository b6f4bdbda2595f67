"""Class evidence (vitviz.explain): gradients, the four methods, the threshold view, the CLI and refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import TINY_LABELS, tiny_config
from vitviz.cli import main
from vitviz.engine import Engine
from vitviz.errors import VitvizError
from vitviz.attention import AttentionMaps
from vitviz.explain import Evidence, attention_gradients, evidence_map, mass_threshold_mask, resolve_targets
from vitviz.models.checkpoint import ModelInfo, save_checkpoint
from vitviz.models.vit import build_model
from vitviz.render import attention_rollout


def _model(**overrides):
    torch.manual_seed(1)
    model = build_model(tiny_config(depth_head="none", **overrides)).double().eval()
    with torch.no_grad():  # random, non-trivial weights so attention and gradients are far from uniform
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model


# --------------------------------------------------------------------------------------- a second implementation


def reference_gradients(model, x: torch.Tensor, targets: list[int]):
    """A hand-written forward pass, head by head, keeping each head's attention with ``retain_grad``; one separate
    backward per target. Returns attentions ``[L, H, T, T]`` and grads ``[K, L, H, T, T]``."""
    tokens, _ = model.embed(x)
    heads_per_layer = []
    for block in model.blocks:
        att = block.attn
        h = block.norm1(tokens)
        qkv = F.linear(h, att.qkv.weight, att.qkv.bias)
        d = att.head_dim
        outs, heads = [], []
        for i in range(att.num_heads):
            q = qkv[0, :, i * d:(i + 1) * d]
            k = qkv[0, :, model.config.embed_dim + i * d:model.config.embed_dim + (i + 1) * d]
            v = qkv[0, :, 2 * model.config.embed_dim + i * d:2 * model.config.embed_dim + (i + 1) * d]
            a = torch.softmax(q @ k.T / d**0.5, dim=-1)
            a.retain_grad()
            heads.append(a)
            outs.append(a @ v)
        tokens = tokens + block.ls1(att.proj(torch.cat(outs, dim=-1)[None]))
        tokens = tokens + block.ls2(block.mlp(block.norm2(tokens)))
        heads_per_layer.append(heads)
    final = model.norm(tokens)[0]
    pooled = final[0]
    if model.config.head_pool == "cls+mean":
        pooled = torch.cat([final[0], final[model.num_prefix_tokens:].mean(0)])
    logits = model.head(pooled)
    grads = []
    for c in targets:
        for heads in heads_per_layer:
            for a in heads:
                a.grad = None
        logits[c].backward(retain_graph=True)
        grads.append(torch.stack([torch.stack([a.grad for a in heads]) for heads in heads_per_layer]))
    attn = torch.stack([torch.stack([a.detach() for a in heads]) for heads in heads_per_layer])
    return attn, torch.stack(grads)


def reference_map(attn, grad, method: str, prefix: int, pooling: str, discard: float = 0.0):
    """Relevance and grad-rollout with explicit loops over layers and heads (torch, float64)."""
    layers, heads, t, _ = attn.shape
    eye = torch.eye(t, dtype=attn.dtype)
    state = eye.clone()
    for l in range(layers):
        cam = torch.zeros(t, t, dtype=attn.dtype)
        for h in range(heads):
            cam += torch.clamp(grad[l, h] * attn[l, h], min=0)
        cam /= heads
        if method == "relevance":
            state = state + cam @ state
        else:
            flat = cam.flatten().clone()
            k = int(flat.numel() * discard)
            if k:
                idx = torch.topk(flat, k, largest=False).indices
                idx = idx[idx % t != 0]
                flat[idx] = 0
            a = (flat.view(t, t) + eye) / 2
            a = a / a.sum(dim=-1, keepdim=True)
            state = a @ state
    row = state[0] if pooling == "cls" else 0.5 * state[0] + 0.5 * state[prefix:].mean(0)
    patches = row[prefix:]
    return (patches / patches.sum()).numpy()


@pytest.mark.parametrize("overrides", [{}, {"num_register_tokens": 2, "head_pool": "cls+mean",
                                            "layer_scale_init": 0.5}])
def test_gradients_and_maps_match_a_handwritten_implementation(overrides):
    model = _model(**overrides)
    pooling, prefix = model.config.head_pool, model.num_prefix_tokens
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    targets = [3, 1]
    attn, grads, _ = attention_gradients(model, x, torch.tensor([targets]))  # batched backward for two classes
    ref_attn, ref_grads = reference_gradients(model, x, targets)
    np.testing.assert_allclose(attn[0].numpy(), ref_attn.numpy(), atol=1e-12)
    np.testing.assert_allclose(grads[0].numpy(), ref_grads.numpy(), rtol=1e-9, atol=1e-12)
    assert np.abs(ref_grads.numpy()).max() > 1e-3  # not trivially zero
    for k in range(len(targets)):
        for method, discard in [("relevance", 0.0), ("grad-rollout", 0.0), ("grad-rollout", 0.5)]:
            ours = evidence_map(attn[0].numpy(), grads[0, k].numpy(), method, prefix, (4, 4),
                                discard_ratio=discard, pooling=pooling)
            ref = reference_map(ref_attn, ref_grads[k], method, prefix, pooling, discard).reshape(4, 4)
            np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-7)


def test_repeat_fallback_matches_batched_backward(monkeypatch):
    model = _model()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    targets = torch.tensor([[0, 4], [2, 1]])
    _, batched, _ = attention_gradients(model, x, targets)
    real_grad = torch.autograd.grad

    def no_vmap(*args, **kwargs):
        if kwargs.get("is_grads_batched"):
            raise RuntimeError("vmap unsupported here")
        return real_grad(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", no_vmap)
    _, repeated, _ = attention_gradients(model, x, targets)
    _, chosen, _ = attention_gradients(model, x, targets, batched_backward=False)
    np.testing.assert_allclose(chosen.numpy(), repeated.numpy(), rtol=0, atol=0)
    np.testing.assert_allclose(batched.numpy(), repeated.numpy(), rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------------------- maps


@pytest.fixture(scope="module")
def evidence() -> Evidence:
    model = _model(num_register_tokens=1)
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    attn, grads, logits = attention_gradients(model, x, torch.tensor([[0, 2]]))
    maps = AttentionMaps.from_full(attn[0].numpy(), (4, 4), 8, model.num_prefix_tokens)
    return Evidence(maps, (4, 4), model.num_prefix_tokens, "cls", list(TINY_LABELS),
                    torch.softmax(logits[0], -1).numpy(), [0, 2], grads[0].numpy())


@pytest.mark.parametrize("method", ["attention", "rollout", "grad-rollout", "relevance"])
def test_every_map_is_a_distribution_over_the_patch_grid(evidence, method):
    for target in evidence.targets:
        m = evidence.map(method, target)
        assert m.shape == (4, 4) and m.min() >= 0 and m.sum() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("method", ["grad-rollout", "relevance"])
def test_two_classes_give_different_maps(evidence, method):
    a, b = evidence.map(method, 0), evidence.map(method, 2)
    assert np.abs(a - b).sum() > 0.05


def test_attention_and_rollout_do_not_depend_on_the_class_but_on_their_options(evidence):
    assert np.array_equal(evidence.map("rollout", 0), evidence.map("rollout", 2))
    assert not np.allclose(evidence.map("attention", layer=0), evidence.map("attention", layer=-1))
    assert not np.allclose(evidence.map("rollout", head_fusion="max", discard_ratio=0.5), evidence.map("rollout"))


@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
@pytest.mark.parametrize("discard", [0.0, 0.9])
def test_rollout_rows_sum_to_one(evidence, fusion, discard):
    joint = attention_rollout(evidence.attentions, fusion, discard)
    np.testing.assert_allclose(joint.sum(axis=-1), 1.0, atol=1e-9)
    assert joint.min() >= 0


def test_a_class_without_gradients_is_refused_clearly(evidence):
    with pytest.raises(VitvizError, match="no gradients for class 'delta'"):
        evidence.map("relevance", 3)


def test_merged_evidence_holds_both_target_sets(evidence):
    other = Evidence(evidence.attention, evidence.grid, evidence.num_prefix_tokens, labels=evidence.labels,
                     targets=[4, 0], grads=evidence.grads[::-1].copy())
    merged = evidence.merged(other)
    assert merged.targets == [0, 2, 4]
    np.testing.assert_array_equal(merged.grads[2], other.grads[0])


# --------------------------------------------------------------------------------------- threshold view


def test_threshold_keeps_the_smallest_set_holding_the_fraction():
    m = np.array([[0.1, 0.4], [0.2, 0.3]])
    assert mass_threshold_mask(m, 0.6).tolist() == [[False, True], [False, True]]  # 0.4 + 0.3 >= 0.6
    assert mass_threshold_mask(m, 0.7).sum() == 2  # exactly on the boundary
    assert mass_threshold_mask(m, 0.71).sum() == 3
    assert mass_threshold_mask(m, 1.0).sum() == 4
    assert mass_threshold_mask(np.array([0.5, 0.5, 0.0, 0.0]), 1.0).sum() == 2  # zero cells are never needed
    assert mass_threshold_mask(np.zeros((2, 2)), 0.6).sum() == 0
    rng = np.random.default_rng(0)
    for _ in range(20):
        v = rng.random((7, 9)) ** 3
        f = rng.uniform(0.05, 0.95)
        keep = mass_threshold_mask(v, f)
        assert v[keep].sum() >= f * v.sum()
        assert v[keep].sum() - v[keep].min() < f * v.sum()  # one cell fewer would not do
        assert v[keep].min() >= v[~keep].max()


def test_resolve_targets():
    probs = np.array([0.1, 0.5, 0.05, 0.3, 0.05])
    assert resolve_targets("top1", TINY_LABELS, probs) == [1]
    assert resolve_targets("top3", TINY_LABELS, probs) == [1, 3, 0]
    assert resolve_targets("top5", TINY_LABELS[:3], probs[:3]) == [1, 0, 2]
    assert resolve_targets("Gamma", TINY_LABELS) == [2]
    assert resolve_targets("4", TINY_LABELS) == [4]
    for bad in ("omega", "7", "-1", "top0"):
        with pytest.raises(VitvizError):
            resolve_targets(bad, TINY_LABELS, probs)


# --------------------------------------------------------------------------------------- engine and CLI


def test_engine_evidence_reuses_the_analysis_input(tiny_checkpoint, photo):
    engine = Engine(str(tiny_checkpoint), device="cpu")
    result = engine.analyze(photo)
    ev = engine.evidence(result, "top5")
    assert ev.targets == [p.index for p in result.predictions]
    assert ev.grads.shape == (5, *result.attentions.shape)
    np.testing.assert_allclose(ev.attentions, result.attentions, atol=1e-5)
    np.testing.assert_allclose(ev.map("rollout"), result.rollout() / result.rollout().sum(), atol=1e-5)
    one = engine.evidence(photo, "gamma")
    assert one.targets == [2]
    np.testing.assert_allclose(one.map("relevance", 2), ev.map("relevance", 2), atol=1e-5)


def test_cli_writes_the_evidence_files(tiny_checkpoint, photo, tmp_path):
    rc = main(["analyze", str(photo), "--out", str(tmp_path), "--model", str(tiny_checkpoint), "--quiet",
               "--explain", "relevance,rollout", "--target", "top5"])
    assert rc == 0
    folder = tmp_path / photo.stem
    summary = json.loads((folder / "result.json").read_text())
    targets = summary["explain"]["targets"]
    assert [t["index"] for t in targets] == [p["index"] for p in summary["predictions"]]
    for method in ("relevance", "rollout"):
        for t in targets:
            arr = np.load(folder / f"explain_{method}_{t['label']}.npy")
            assert arr.shape == (summary["patch_grid"]["rows"], summary["patch_grid"]["cols"])
            assert arr.min() >= 0 and arr.sum() == pytest.approx(1.0, abs=1e-5)
            assert (folder / f"explain_{method}_{t['label']}.png").stat().st_size > 0
    assert summary["predictions"]  # write_outputs' summary is kept


def test_cli_refuses_a_bad_target_with_exit_2(tiny_checkpoint, photo, tmp_path, capsys):
    rc = main(["analyze", str(photo), "--out", str(tmp_path), "--model", str(tiny_checkpoint), "--quiet",
               "--explain", "relevance", "--target", "omega"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--target 'omega'" in err and len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def dino_like(tmp_path_factory):
    """A model without a classifier (as DINO), with registers."""
    model = build_model(tiny_config(num_classes=0, depth_head="none", num_register_tokens=2))
    info = ModelInfo(name="dino-like", config=model.config, labels=[], description="test")
    folder = tmp_path_factory.mktemp("dino")
    save_checkpoint(model, info, folder / "dino")
    return folder / "dino.json"


def test_model_without_classifier_says_evidence_needs_one(dino_like, photo, tmp_path, capsys):
    engine = Engine(str(dino_like), device="cpu")
    result = engine.analyze(photo)
    with pytest.raises(VitvizError, match="class evidence needs a classifier"):
        engine.evidence(result)
    ev = Evidence.from_result(result)
    assert ev.map("rollout").sum() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(VitvizError, match="class evidence needs a classifier"):
        ev.map("relevance")
    rc = main(["analyze", str(photo), "--out", str(tmp_path), "--model", str(dino_like), "--quiet",
               "--explain", "grad-rollout"])
    assert rc == 2 and "class evidence needs a classifier" in capsys.readouterr().err
    rc = main(["analyze", str(photo), "--out", str(tmp_path), "--model", str(dino_like), "--quiet",
               "--explain", "attention,rollout"])
    assert rc == 0
    arr = np.load(tmp_path / photo.stem / "explain_rollout.npy")
    assert arr.sum() == pytest.approx(1.0, abs=1e-5)
