"""Head knockout and head importance: parity with timm and transformers, every attention path, the engine, the CLI.

A knocked-out head's attention output is zeroed before its block's output projection. The references do the same
to timm's ``VisionTransformer`` and transformers' ``ViTForImageClassification`` / ``ViTModel`` with a forward
pre-hook on the output projection that zeroes the head's ``head_dim`` input columns, on random weights loaded into
vitviz through its converters (as in test_zoo.py).
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from vitviz.attention import AttentionRecorder
from vitviz.cli import main
from vitviz.engine import Engine
from vitviz.errors import VitvizError
from vitviz.importance import check_heads, compute_head_importance, head_mask
from vitviz.models import zoo
from vitviz.models.checkpoint import ModelInfo
from vitviz.models.reference import import_timm, randomize
from vitviz.models.vit import build_model

from .conftest import TINY_LABELS, tiny_config

TOL = 1e-5
KNOCKED = [(0, 1), (1, 0), (1, 2), (2, 1)]  # heads knocked out in the parity tests (3 layers of 3 heads)


def _zero_heads_hook(heads: list[int], head_dim: int):
    """A forward pre-hook on an output projection that zeroes the input columns of ``heads``."""

    def hook(_module: torch.nn.Module, args: tuple) -> tuple:
        x = args[0].clone()
        for h in heads:
            x[..., h * head_dim : (h + 1) * head_dim] = 0
        return (x, *args[1:])

    return hook


def _hooked(projections: list[torch.nn.Module], knocked: list[tuple[int, int]], head_dim: int) -> list:
    by_layer: dict[int, list[int]] = {}
    for layer, head in knocked:
        by_layer.setdefault(layer, []).append(head)
    return [projections[layer].register_forward_pre_hook(_zero_heads_hook(heads, head_dim))
            for layer, heads in by_layer.items()]


def _mask(model, knocked: list[tuple[int, int]]):
    return head_mask(knocked, len(model.blocks), model.config.num_heads)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().max().item()


# ------------------------------------------------------------------------------------------------ parity


def test_knockout_matches_timm(tmp_path):
    timm, reason = import_timm()
    if timm is None:
        pytest.skip(reason)
    pytest.importorskip("huggingface_hub")
    from timm.models._hub import save_for_hf

    ref = timm.create_model("vit_small_patch16_224", pretrained=False, img_size=32, patch_size=8, embed_dim=24,
                            depth=3, num_heads=3, num_classes=5, dynamic_img_size=True)
    randomize(ref, seed=11)
    save_for_hf(ref, str(tmp_path / "timm"), safe_serialization=True)
    model, _ = zoo.load(tmp_path / "timm")
    x = torch.randn(2, 3, 32, 48, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        plain = ref(x)
        handles = _hooked([b.attn.proj for b in ref.blocks], KNOCKED, 8)
        try:
            expected = ref(x)
        finally:
            for handle in handles:
                handle.remove()
        got = model(x, head_mask=_mask(model, KNOCKED)).logits
    assert _max_diff(plain, expected) > 1e-2  # the knockout changes the answer
    assert _max_diff(expected, got) < TOL


@pytest.mark.parametrize("classifier", [True, False], ids=["ViTForImageClassification", "ViTModel"])
def test_knockout_matches_transformers(tmp_path, classifier):
    tf = pytest.importorskip("transformers", minversion="4.47")
    cfg = tf.ViTConfig(hidden_size=24, num_hidden_layers=3, num_attention_heads=3, intermediate_size=72,
                       image_size=32, patch_size=8, num_labels=5)
    ref = randomize(tf.ViTForImageClassification(cfg) if classifier else tf.ViTModel(cfg), seed=12)
    ref.save_pretrained(tmp_path / "hf")
    model, _ = zoo.load(tmp_path / "hf")
    vit = ref.vit if classifier else ref
    layers = vit.layers if hasattr(vit, "layers") else vit.encoder.layer  # transformers 5 / 4
    projections = [layer.attention.o_proj if hasattr(layer.attention, "o_proj") else layer.attention.output.dense
                   for layer in layers]
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        handles = _hooked(projections, KNOCKED, 8)
        try:
            r = ref(x)
        finally:
            for handle in handles:
                handle.remove()
        o = model(x, head_mask=_mask(model, KNOCKED))
    if classifier:
        assert _max_diff(r.logits, o.logits) < TOL
    else:
        assert _max_diff(r.last_hidden_state, o.tokens) < TOL


# ------------------------------------------------------------------------------------------------ the model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(1)
    net = build_model(tiny_config()).eval()
    randomize(net, seed=13)
    return net


@pytest.fixture(scope="module")
def x():
    return torch.randn(1, 3, 32, 48, generator=torch.Generator().manual_seed(5))


def _recorded(net, x, mask):
    recorder = AttentionRecorder((x.shape[-2] // 8, x.shape[-1] // 8), 8, net.num_prefix_tokens)
    return net(x, attention_recorder=recorder, head_mask=mask), recorder


def test_no_knockout_changes_nothing(model, x):
    with torch.no_grad():
        for attention in (False, True):  # the fused and the explicit path, each against itself unablated
            plain = model(x, return_attention=attention)
            for mask in ([None] * 3, torch.ones(3, 3), torch.ones(3, 1, 3)):
                out = model(x, return_attention=attention, head_mask=mask)
                assert torch.equal(out.logits, plain.logits) and torch.equal(out.depth, plain.depth)
        out = model(x, return_attention=True, head_mask=torch.ones(3, 3))
        assert all(torch.equal(a, b) for a, b in zip(out.attentions, plain.attentions))


def test_a_whole_layer_knocked_out_on_every_path(model, x):
    """Every head of layer 1 out: the fused, explicit and recorder paths agree, the attention maps are unchanged,
    and the block's attention branch adds only the output projection's bias."""
    mask = [None, torch.zeros(3), None]
    with torch.no_grad():
        plain = model(x, return_attention=True, return_hidden=True)
        fused = model(x, return_hidden=True, head_mask=mask)
        explicit = model(x, return_attention=True, head_mask=mask)
        recorded, recorder = _recorded(model, x, mask)
        model.set_fused_attention(False)
        try:
            unfused = model(x, head_mask=mask)
        finally:
            model.set_fused_attention(True)
        block = model.blocks[1]
        h0 = plain.hidden_states[0]
        mid = h0 + block.attn.proj.bias
        expected = mid + block.mlp(block.norm2(mid))
    assert _max_diff(fused.hidden_states[1], expected) < TOL
    for other in (explicit, recorded, unfused):
        assert _max_diff(other.logits, fused.logits) < TOL and _max_diff(other.depth, fused.depth) < TOL
    assert _max_diff(fused.logits, plain.logits) > 1e-3
    # the knocked-out layer still computes its attention: layers 0 and 1 see what they saw unablated
    for layer in (0, 1):
        assert torch.equal(explicit.attentions[layer], plain.attentions[layer])
        assert _max_diff(recorder.prefix_rows[layer][0], plain.attentions[layer][0, :, :1]) < TOL
    assert _max_diff(explicit.attentions[2], plain.attentions[2]) > 1e-4


def test_a_mask_per_batch_element_equals_separate_knockouts(model, x):
    singles = [[(0, 2)], [(1, 1), (2, 0)], []]
    batch = x.expand(3, -1, -1, -1)
    per_element = [torch.ones(3, 3) for _ in range(3)]  # per block [B, H]
    for row, heads in enumerate(singles):
        for layer, head in heads:
            per_element[layer][row, head] = 0
    with torch.no_grad():
        outs = [model(batch, head_mask=per_element), model(batch, return_attention=True, head_mask=per_element),
                _recorded(model, batch, per_element)[0]]
        for row, heads in enumerate(singles):
            alone = model(x, head_mask=_mask(model, heads))
            for out in outs:
                assert _max_diff(out.logits[row : row + 1], alone.logits) < TOL
                assert _max_diff(out.depth[row : row + 1], alone.depth) < TOL


def test_head_mask_must_cover_every_block(model, x):
    with pytest.raises(ValueError, match="2 entries for 3 blocks"):
        model(x, head_mask=[None, None])


def test_heads_are_checked_against_the_model():
    assert check_heads([(2, 1), (0, 0), (2, 1)], 3, 3) == [(0, 0), (2, 1)]
    with pytest.raises(VitvizError, match=r"--ablate 9\.0: layer 9 is out of range: the model has 3 layers \(0\.\.2\)"):
        check_heads([(9, 0)], 3, 3, "--ablate")
    with pytest.raises(VitvizError, match=r"head 0\.99: head 99 is out of range: each layer has 3 heads \(0\.\.2\)"):
        check_heads([(0, 99)], 3, 3)
    with pytest.raises(VitvizError, match="is not a \\(layer, head\\) pair"):
        check_heads([(1,)], 3, 3)
    with pytest.raises(VitvizError, match="layer -1 is out of range"):
        check_heads([(-1, 0)], 3, 3)


# ------------------------------------------------------------------------------------------------ the engine


@pytest.fixture(scope="module")
def engine(tiny_checkpoint):
    return Engine(tiny_checkpoint, device="cpu")


def test_knocking_out_no_head_is_the_plain_analysis(engine, photo):
    plain, again = engine.analyze(photo), engine.analyze(photo, ablate=[])
    for name in ("logits", "probabilities", "depth", "cls_attention"):
        assert np.array_equal(getattr(plain, name), getattr(again, name)), name
    assert again.ablated == [] and "ablated" not in again.summary()


def test_analysis_with_knocked_out_heads(engine, photo):
    plain = engine.analyze(photo)
    r = engine.analyze(photo, ablate=[(2, 1), (0, 2), (2, 1)])
    assert r.ablated == [(0, 2), (2, 1)]
    assert r.summary()["ablated"] == [{"layer": 0, "head": 2}, {"layer": 2, "head": 1}]
    json.dumps(r.summary())
    assert np.abs(r.logits - plain.logits).max() > 1e-5  # the tiny checkpoint's small weights: small effects
    np.testing.assert_allclose(r.probabilities, torch.softmax(torch.from_numpy(r.logits), -1).numpy(), rtol=1e-6)
    assert np.array_equal(r.cls_attention[0], plain.cls_attention[0])  # the knocked-out head still attends
    x = engine._tensor(r.image, engine.info)
    with torch.no_grad():
        direct = engine.model(x, head_mask=head_mask(r.ablated, 3, 3)).logits[0].numpy()
    np.testing.assert_allclose(r.logits, direct, atol=TOL)
    batch = engine.analyze_batch([photo, photo], ablate=[(0, 2), (2, 1)])
    for b in batch:
        np.testing.assert_allclose(b.logits, r.logits, atol=TOL)
        assert b.ablated == r.ablated
    traced = engine.analyze(photo, ablate=[(0, 2), (2, 1)], traced=True)  # a knockout runs the eager model
    np.testing.assert_allclose(traced.logits, r.logits, atol=TOL)


def test_heads_out_of_range_are_refused(engine, photo):
    with pytest.raises(VitvizError, match="layer 3 is out of range: the model has 3 layers"):
        engine.analyze(photo, ablate=[(3, 0)])
    with pytest.raises(VitvizError, match="head 5 is out of range"):
        engine.analyze_batch([photo], ablate=[(0, 5)])


def _assert_figures(imp, figures):
    """The tiny checkpoint's small weights make small effects (logit drops ~1e-4): the tolerances are tighter."""
    np.testing.assert_allclose(imp.logit_drop, figures[0], atol=1e-6)
    np.testing.assert_allclose(imp.prob_drop, figures[1], atol=1e-6)
    np.testing.assert_allclose(imp.depth_absrel, figures[2], atol=1e-8, rtol=1e-3)


def _separate_figures(engine, photo, target, fixed=()):
    """Logit drop, probability drop and depth absrel of every head from one analysis per knockout."""
    base = engine.analyze(photo, ablate=list(fixed))
    figures = np.zeros((3, 3, 3))
    for layer in range(3):
        for head in range(3):
            r = engine.analyze(photo, ablate=[*fixed, (layer, head)])
            figures[:, layer, head] = (base.logits[target] - r.logits[target],
                                       base.probabilities[target] - r.probabilities[target],
                                       np.mean(np.abs(r.depth - base.depth) / base.depth))
    return base, figures


def test_head_importance_equals_separate_knockouts(engine, photo):
    calls = []
    imp = engine.head_importance(photo, progress=lambda done, total: calls.append((done, total)))
    base, figures = _separate_figures(engine, photo, int(np.argmax(engine.analyze(photo).probabilities)))
    assert imp.target == base.predictions[0].index and imp.target_label == base.predictions[0].label
    assert imp.logit == pytest.approx(float(base.logits[imp.target]), abs=TOL)
    assert imp.probability == pytest.approx(base.predictions[0].probability, abs=TOL)
    _assert_figures(imp, figures)
    assert np.abs(imp.logit_drop).max() > 1e-4 and (imp.depth_absrel > 1e-7).all()
    assert calls[-1] == (9, 9)
    # in batches of two heads (batches that cross layers), from the result's own model input, another class
    small = engine.head_importance(base, target=TINY_SECOND, batch_size=2, progress=lambda d, t: calls.append(d))
    assert calls[-5:] == [2, 4, 6, 8, 9]
    assert small.target == TINY_LABELS.index(TINY_SECOND) != imp.target
    _, figures = _separate_figures(engine, photo, small.target)
    _assert_figures(small, figures)


TINY_SECOND = "gamma"


def test_head_importance_on_top_of_knocked_out_heads(engine, photo):
    fixed = [(1, 1)]
    imp = engine.head_importance(photo, ablate=fixed)
    base, figures = _separate_figures(engine, photo, imp.target, fixed)
    assert imp.target == base.predictions[0].index and imp.ablated == fixed
    _assert_figures(imp, figures)
    assert imp.logit_drop[1, 1] == 0 and imp.depth_absrel[1, 1] == 0


def _engine_of(config, name: str) -> Engine:
    torch.manual_seed(2)
    net = build_model(config)
    info = ModelInfo(name=name, config=net.config, labels=[], depth_kind="metric", description="test")
    return Engine(device="cpu", loaded=(net, info))


def test_head_importance_without_classifier_or_depth(photo):
    depth_only = _engine_of(tiny_config(num_classes=0), "depth-only")
    imp = depth_only.head_importance(photo)
    assert np.isnan(imp.logit_drop).all() and np.isnan(imp.prob_drop).all() and imp.target is None
    assert np.isfinite(imp.depth_absrel).all() and (imp.depth_absrel > 0).all()
    assert all(row["target"] is None and math.isnan(row["logit_drop"]) for row in imp.rows())
    with pytest.raises(VitvizError, match="depth-only has no classifier"):
        depth_only.head_importance(photo, target=0)
    bare = _engine_of(tiny_config(num_classes=0, depth_head="none"), "bare")
    with pytest.raises(VitvizError, match="bare has neither a classifier nor a depth head"):
        bare.head_importance(photo)


@pytest.mark.parametrize("pool", ["cls", "cls+mean"])
def test_head_importance_of_a_classifier_alone(x, pool):
    """No depth head: no depth column; the last block computes CLS alone for a "cls" head (all tokens for
    "cls+mean"); registers are handled like the rest."""
    net = build_model(tiny_config(depth_head="none", head_pool=pool, num_register_tokens=2)).eval()
    randomize(net, seed=14)
    imp = compute_head_importance(net, x, labels=list("abcde"), batch_size=4)
    assert imp.depth_absrel is None and "depth_absrel" not in imp.rows()[0]
    with torch.no_grad():
        base = net(x).logits[0]
        probs = torch.softmax(base, -1)
        for layer in range(3):
            for head in range(3):
                alone = net(x, head_mask=_mask(net, [(layer, head)])).logits[0]
                drop = float(base[imp.target] - alone[imp.target])
                assert imp.logit_drop[layer, head] == pytest.approx(drop, abs=TOL)
                drop = float(probs[imp.target] - torch.softmax(alone, -1)[imp.target])
                assert imp.prob_drop[layer, head] == pytest.approx(drop, abs=TOL)
    assert np.abs(imp.logit_drop).max() > 0.05


def test_a_block_can_compute_the_first_tokens_alone(model, x):
    with torch.no_grad():
        tokens, _ = model.embed(x)
        block = model.blocks[1]
        mask = torch.tensor([[1.0, 0.0, 1.0]])
        for fused in (True, False):
            block.attn.fused = fused
            try:
                full, _ = block(tokens, head_mask=mask)
                first, _ = block(tokens, head_mask=mask, queries=2)
            finally:
                block.attn.fused = True
            assert first.shape == (1, 2, 24) and _max_diff(first, full[:, :2]) < TOL
        first, attn = block(tokens, return_attention=True, queries=1)
        full, full_attn = block(tokens, return_attention=True)
        assert _max_diff(first, full[:, :1]) < TOL and _max_diff(attn, full_attn[:, :, :1]) < TOL


# ------------------------------------------------------------------------------------------------ the command line


def _cli(photo, checkpoint, out, *extra):
    return main(["analyze", str(photo), "--out", str(out), "--model", str(checkpoint), "--device", "cpu", "--quiet",
                 *extra])


def test_cli_ablate_lists_the_heads_in_result_json(tiny_checkpoint, photo, tmp_path, engine):
    out = tmp_path / "out"
    assert _cli(photo, tiny_checkpoint, out, "--ablate", "2.1,0.2", "--outputs", "json") == 0
    summary = json.loads((out / "photo" / "result.json").read_text())
    assert summary["ablated"] == [{"layer": 0, "head": 2}, {"layer": 2, "head": 1}]
    expected = engine.analyze(photo, ablate=[(0, 2), (2, 1)])
    assert summary["predictions"][0]["label"] == expected.predictions[0].label
    assert summary["predictions"][0]["probability"] == pytest.approx(expected.predictions[0].probability, abs=1e-6)
    assert _cli(photo, tiny_checkpoint, tmp_path / "plain", "--outputs", "json") == 0
    assert "ablated" not in json.loads((tmp_path / "plain" / "photo" / "result.json").read_text())


def test_cli_head_importance_writes_the_table(tiny_checkpoint, photo, tmp_path, engine, capsys):
    out = tmp_path / "out"
    assert _cli(photo, tiny_checkpoint, out, "--head-importance", "--outputs", "json") == 0
    with open(out / "photo" / "head_importance.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == ["layer", "head", "target", "logit_drop", "prob_drop", "depth_absrel"]
    assert [(int(r["layer"]), int(r["head"])) for r in rows] == [(lay, head) for lay in range(3) for head in range(3)]
    imp = engine.head_importance(photo)
    assert {r["target"] for r in rows} == {imp.target_label}
    for r in rows:
        layer, head = int(r["layer"]), int(r["head"])
        assert float(r["logit_drop"]) == pytest.approx(imp.logit_drop[layer, head], abs=1e-7)
        assert float(r["prob_drop"]) == pytest.approx(imp.prob_drop[layer, head], abs=1e-7)
        assert float(r["depth_absrel"]) == pytest.approx(imp.depth_absrel[layer, head], rel=1e-5)
    # a resumed run counts the folder as complete; one without the table in it is analysed again
    capsys.readouterr()
    assert _cli(photo, tiny_checkpoint, out, "--head-importance", "--outputs", "json") == 0
    assert "skipping 1 image(s)" in capsys.readouterr().err
    plain = tmp_path / "plain"
    assert _cli(photo, tiny_checkpoint, plain, "--outputs", "json") == 0
    assert not (plain / "photo" / "head_importance.csv").exists()
    assert _cli(photo, tiny_checkpoint, plain, "--head-importance", "--outputs", "json") == 0
    assert "skipping" not in capsys.readouterr().err and (plain / "photo" / "head_importance.csv").is_file()


def test_cli_head_importance_of_a_classifier_without_depth(photo, tmp_path):
    from vitviz.models.checkpoint import save_checkpoint

    net = build_model(tiny_config(depth_head="none"))
    save_checkpoint(net, ModelInfo(name="classifier", config=net.config, labels=TINY_LABELS, description="test"),
                    tmp_path / "classifier")
    assert _cli(photo, tmp_path / "classifier.json", tmp_path / "out", "--head-importance", "--outputs", "none") == 0
    with open(tmp_path / "out" / "photo" / "head_importance.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert len(list(reader)) == 9
    assert reader.fieldnames == ["layer", "head", "target", "logit_drop", "prob_drop"]


@pytest.mark.parametrize("value, message", [
    ("9.0", "vitviz: error: --ablate 9.0: layer 9 is out of range: the model has 3 layers (0..2)"),
    ("0.99", "vitviz: error: --ablate 0.99: head 99 is out of range: each layer has 3 heads (0..2)"),
    ("x", "vitviz analyze: error: argument --ablate: 'x' is not LAYER.HEAD"),
    ("1", "vitviz analyze: error: argument --ablate: '1' is not LAYER.HEAD"),
    ("0.1,2", "vitviz analyze: error: argument --ablate: '2' is not LAYER.HEAD"),
])
def test_cli_bad_ablate_values_exit_2_and_write_nothing(tiny_checkpoint, photo, tmp_path, capsys, value, message):
    out = tmp_path / "out"
    assert _cli(photo, tiny_checkpoint, out, "--ablate", value) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_cli_head_importance_needs_a_classifier_or_depth(photo, tmp_path, capsys):
    from vitviz.models.checkpoint import save_checkpoint

    net = build_model(tiny_config(num_classes=0, depth_head="none"))
    save_checkpoint(net, ModelInfo(name="bare", config=net.config, labels=[], description="test"), tmp_path / "bare")
    out = tmp_path / "out"
    assert _cli(photo, tmp_path / "bare.json", out, "--head-importance") == 2
    assert "--head-importance: head importance measures" in capsys.readouterr().err and not out.exists()
