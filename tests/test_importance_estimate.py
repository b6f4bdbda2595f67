"""The fast, first-order estimate of head importance: it is the derivative it claims to be (checked against finite
differences of the mask factor), it ranks the shipped model's heads as the knockouts do, and it reaches the engine,
the command line and the app labelled as an estimate."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from vitviz.cli import main
from vitviz.engine import Engine
from vitviz.errors import VitvizError
from vitviz.importance import estimate_head_importance, head_mask
from vitviz.models.checkpoint import ModelInfo, save_checkpoint
from vitviz.models.reference import randomize
from vitviz.models.vit import build_model

from .conftest import tiny_config

SAMPLES = Path(__file__).resolve().parent.parent / "assets" / "samples"
EPS = 1e-4


def _finite_difference(net, x, layer: int, head: int, target: int, fixed=()) -> tuple[float, float]:
    """Central differences of the target's logit and probability in head (layer, head)'s mask factor around 1."""
    values = []
    for factor in (1 + EPS, 1 - EPS):
        masks = head_mask(list(fixed), len(net.blocks), net.config.num_heads, dtype=x.dtype) or [None] * len(net.blocks)
        mask = masks[layer] if masks[layer] is not None else torch.ones(net.config.num_heads, dtype=x.dtype)
        mask = mask.clone()
        mask[head] = factor
        masks[layer] = mask
        with torch.no_grad():
            logits = net.classify(net.forward_features(x, head_mask=masks).tokens)[0]
        values.append((float(logits[target]), float(net.probabilities(logits)[target])))
    (l1, p1), (l0, p0) = values
    return (l1 - l0) / (2 * EPS), (p1 - p0) / (2 * EPS)


@pytest.mark.parametrize("pool,registers", [("cls", 0), ("cls+mean", 0), ("cls", 2)])
def test_the_estimate_is_the_derivative_in_each_heads_mask_factor(pool, registers):
    net = build_model(tiny_config(depth_head="none", head_pool=pool, num_register_tokens=registers)).double().eval()
    randomize(net, seed=21)
    x = torch.randn(1, 3, 32, 48, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    fixed = [(1, 2)]
    est = estimate_head_importance(net, x, labels=list("abcde"), target=3, ablate=fixed)
    assert est.estimated and est.depth_absrel is None and est.target == 3 and est.ablated == fixed
    for layer in range(3):
        for head in range(3):
            if (layer, head) in fixed:
                assert est.logit_drop[layer, head] == 0 and est.prob_drop[layer, head] == 0
                continue
            logit, prob = _finite_difference(net, x, layer, head, 3, fixed)
            assert est.logit_drop[layer, head] == pytest.approx(logit, abs=1e-6)
            assert est.prob_drop[layer, head] == pytest.approx(prob, abs=1e-6)
    assert np.abs(est.logit_drop).max() > 1e-3  # the heads do matter on these weights
    with torch.no_grad():
        masks = head_mask(fixed, 3, 3, dtype=torch.float64)
        logits = net.classify(net.forward_features(x, head_mask=masks).tokens)[0]
    assert est.logit == pytest.approx(float(logits[3]), abs=1e-9)
    assert not any(p.grad is not None for p in net.parameters())  # nothing left behind on the model


def test_a_large_models_blocks_are_run_again_with_the_same_estimate(monkeypatch):
    """Above ESTIMATE_GRAPH_BYTES of activations (ViT-L at 518 px: 3 GB) the blocks keep their inputs alone and run
    again in the backward passes: the same figures, in a fraction of the memory."""
    import vitviz.importance as importance

    net = build_model(tiny_config(depth_head="none", head_pool="cls+mean", num_register_tokens=1)).double().eval()
    randomize(net, seed=22)
    x = torch.randn(1, 3, 32, 48, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    plain = estimate_head_importance(net, x, labels=list("abcde"), ablate=[(0, 1)])
    calls: list[int] = []
    hooks = [block.register_forward_pre_hook(lambda module, args, i=i: calls.append(i))
             for i, block in enumerate(net.blocks)]
    monkeypatch.setattr(importance, "ESTIMATE_GRAPH_BYTES", 0)
    checkpointed = estimate_head_importance(net, x, labels=list("abcde"), ablate=[(0, 1)])
    for hook in hooks:
        hook.remove()
    assert all(calls.count(i) > 1 for i in range(len(net.blocks)))  # run again for the backward passes
    assert checkpointed.target == plain.target
    np.testing.assert_allclose(checkpointed.logit_drop, plain.logit_drop, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(checkpointed.prob_drop, plain.prob_drop, rtol=1e-12, atol=1e-14)
    assert np.abs(plain.logit_drop).max() > 1e-3


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two flattened arrays (no ties in these figures)."""
    ranks = [np.argsort(np.argsort(v.ravel())) for v in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])


def test_it_ranks_the_shipped_models_heads_as_the_knockouts_do():
    engine = Engine("vitviz-mini", device="cpu")
    result = engine.analyze(str(SAMPLES / "scene-torus.png"))
    exact = engine.head_importance(result)
    est = engine.head_importance(result, method="estimate")
    assert est.target == exact.target and est.probability == pytest.approx(exact.probability, abs=1e-6)
    assert spearman(est.prob_drop, exact.prob_drop) > 0.5
    assert spearman(est.logit_drop, exact.logit_drop) > 0.5
    top = int(np.argmax(est.prob_drop))
    assert top in np.argsort(-exact.prob_drop.ravel())[:5]  # its most important head is among the five that matter most


def test_a_model_without_a_classifier_is_told_to_use_knockouts(photo):
    net = build_model(tiny_config(num_classes=0))
    engine = Engine(device="cpu", loaded=(net, ModelInfo(name="depth-only", config=net.config, labels=[],
                                                         depth_kind="metric", description="test")))
    with pytest.raises(VitvizError, match="depth-only has no classifier: rank the heads by knocking them out"):
        engine.head_importance(photo, method="estimate")
    with pytest.raises(VitvizError, match="unknown head importance method 'guess'"):
        engine.head_importance(photo, method="guess")


def test_an_image_text_model_is_estimated_for_the_typed_label():
    engine = Engine("vitviz-mini-text", device="cpu")
    engine.set_labels(["torus", "cube", "sphere"], templates=["a photo of a {}."])
    result = engine.analyze(str(SAMPLES / "scene-torus.png"))
    est = engine.head_importance(result, target="cube", method="estimate")
    exact = engine.head_importance(result, target="cube")
    assert est.target_label == exact.target_label == "cube"
    assert est.logit == pytest.approx(exact.logit, abs=1e-5)
    assert np.corrcoef(est.logit_drop.ravel(), exact.logit_drop.ravel())[0, 1] > 0.5


def _cli(photo, checkpoint, out, *extra):
    return main(["analyze", str(photo), "--out", str(out), "--model", str(checkpoint), "--device", "cpu", "--quiet",
                 "--outputs", "json", *extra])


def test_cli_writes_estimates_under_their_own_column_names(tiny_checkpoint, photo, tmp_path, capsys):
    out = tmp_path / "out"
    assert _cli(photo, tiny_checkpoint, out, "--head-importance-estimate") == 0
    with open(out / "photo" / "head_importance.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == ["layer", "head", "target", "logit_drop_estimate", "prob_drop_estimate"]
    est = Engine(tiny_checkpoint, device="cpu").head_importance(str(photo), method="estimate")
    for r in rows:
        layer, head = int(r["layer"]), int(r["head"])
        assert float(r["prob_drop_estimate"]) == pytest.approx(est.prob_drop[layer, head], abs=1e-7)
    # the knockouts into the same folder replace the estimates: they are other settings (the option may come first)
    capsys.readouterr()
    assert main(["analyze", "--head-importance", str(photo), "--out", str(out), "--model", str(tiny_checkpoint),
                 "--device", "cpu", "--quiet", "--outputs", "json"]) == 0
    assert "analysing them again" in capsys.readouterr().err
    with open(out / "photo" / "head_importance.csv", newline="") as f:
        assert "logit_drop" in csv.DictReader(f).fieldnames


def test_cli_refuses_the_estimate_without_a_classifier(photo, tmp_path, capsys):
    net = build_model(tiny_config(num_classes=0))
    save_checkpoint(net, ModelInfo(name="depth-only", config=net.config, labels=[], depth_kind="metric",
                                   description="test"), tmp_path / "depth")
    assert _cli(photo, tmp_path / "depth.json", tmp_path / "out", "--head-importance-estimate") == 2
    assert "use --head-importance (knockouts)" in capsys.readouterr().err

