"""Your own ViT, unchanged (vitviz.models.usermodel): every attention style is captured and equals the module's own
probabilities; predictions, depth and hidden states equal the module's; every view works through the model
interface; bad models are refused in one line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from vitviz.engine import Engine
from vitviz.errors import VitvizError
from vitviz.models.usermodel import wrap_model
from vitviz.models.userspec import is_factory_spec, load_factory

from .user_models import BlockViT, EinsumViT, EncoderViT, encoder_attention, own_attention

ATOL = 1e-5


def _image(size: int = 64, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((size, size, 3)) * 255).astype(np.uint8)


def _batch(size: int = 64, channels: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(2, channels, size, size, generator=torch.Generator().manual_seed(seed))


def _check_capture(module: nn.Module, reference: list[torch.Tensor], x: torch.Tensor, **options) -> None:
    wrapped, info = wrap_model(module, **options)
    with torch.no_grad():
        out = wrapped(x, return_attention=True, return_hidden=True)
        own = module(x)
    logits = own if isinstance(own, torch.Tensor) else own["logits"] if isinstance(own, dict) else own[0]
    assert torch.allclose(out.logits, logits, atol=ATOL)
    assert len(out.attentions) == len(reference) == info.config.depth
    for mine, theirs in zip(out.attentions, reference):
        assert mine.shape == theirs.shape
        assert torch.allclose(mine, theirs, atol=ATOL)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_encoder_attention_equals_multihead_attentions_own(batch_first: bool, norm_first: bool) -> None:
    torch.manual_seed(0)
    model = EncoderViT(batch_first=batch_first, norm_first=norm_first).eval()
    x = _batch()
    _check_capture(model, encoder_attention(model, x), x)
    wrapped, info = wrap_model(model)
    assert (info.config.patch_size, info.config.image_size, wrapped.num_prefix_tokens) == (16, 64, 1)
    assert (info.config.depth, info.config.num_heads, info.config.embed_dim) == (3, 4, 64)
    with torch.no_grad():  # the blocks' outputs are the encoder layers' outputs, batch first whatever the layout
        hidden = wrapped(x, return_hidden=True).hidden_states
        t = torch.cat((model.cls_token.expand(2, -1, -1), model.patch_embed(x)), 1) + model.pos_embed
        t = t if batch_first else t.transpose(0, 1)
        for layer, h in zip(model.transformer.layers, hidden):
            t = layer(t)
            assert torch.allclose(h, t if batch_first else t.transpose(0, 1), atol=ATOL)


@pytest.mark.parametrize("block", ["qkv", "einsum", "sdpa", "mha"])
def test_hand_written_blocks_attention_equals_their_own(block: str) -> None:
    torch.manual_seed(1)
    model = BlockViT(block).eval()
    x = _batch()
    _check_capture(model, own_attention(model, x), x)


def test_einsum_vit_without_conv_on_one_channel_images() -> None:
    torch.manual_seed(2)
    model = EinsumViT().eval()
    x = _batch(32, channels=1)
    _check_capture(model, own_attention(model, x), x, image_size=32, channels=1)
    wrapped, info = wrap_model(model, image_size=32, channels=1)
    assert info.config.patch_size == 8 and wrapped.num_prefix_tokens == 1  # found from the tokens alone
    assert not wrapped.has_hidden_states and "block" in wrapped.lens_problem  # the residual is added outside
    # a colour image is shown to it in grey; every view that applies works
    result = Engine(loaded=(wrapped, info)).analyze(_image(48), features=True)
    assert result.image.shape == (32, 32, 3) and result.cls_attention.shape == (2, 4, 4, 4)
    assert result.hidden_states is None and len(result.predictions) == 3


def test_depth_output_and_prediction_equal_the_modules() -> None:
    torch.manual_seed(3)
    model = BlockViT("qkv", with_depth=True).eval()
    wrapped, info = wrap_model({"model": model, "labels": list("abcde"), "mean": 0.5, "std": 0.25})
    assert wrapped.has_depth and info.depth_kind == "relative" and info.labels == list("abcde")
    assert info.mean == (0.5, 0.5, 0.5) and info.std == (0.25, 0.25, 0.25)
    rgb = _image()
    result = Engine(loaded=(wrapped, info)).analyze(rgb)
    x = (torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.25
    with torch.no_grad():
        own = model(x)
    assert np.allclose(result.probabilities, torch.softmax(own["logits"], -1)[0].numpy(), atol=ATOL)
    depth = torch.nn.functional.interpolate(own["depth"][:, None], size=(64, 64), mode="bilinear",
                                            align_corners=False)[0, 0].numpy()
    assert np.allclose(result.depth, depth, atol=ATOL)


def test_every_view_of_a_wrapped_vitviz_model_equals_the_native_one() -> None:
    """vitviz's own ViT opened as if it were a user's module gives the same maps, evidence, knockouts, estimate and
    lens as the native path: the analysis reads one interface."""
    from vitviz.models.vit import ViTConfig, build_model

    torch.manual_seed(4)
    vit = build_model(ViTConfig(image_size=64, patch_size=16, embed_dim=48, depth=3, num_heads=4, num_classes=6))
    vit.eval()

    class Users(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vit = vit

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.vit(x).logits

    from vitviz.models.checkpoint import ModelInfo

    labels = [f"c{i}" for i in range(6)]
    native = Engine(loaded=(vit, ModelInfo(name="native", config=vit.config, labels=labels)))
    user = Engine(loaded=wrap_model({"model": Users(), "labels": labels}))
    rgb = _image()
    a, b = native.analyze(rgb, features=True), user.analyze(rgb, features=True)
    assert np.allclose(a.probabilities, b.probabilities, atol=ATOL)
    assert np.allclose(a.cls_attention, b.cls_attention, atol=ATOL)
    assert np.allclose(a.attention.rollout_rows, b.attention.rollout_rows, atol=ATOL)
    assert np.allclose(a.attention.mean_distance, b.attention.mean_distance, atol=1e-3)
    assert np.allclose(a.hidden_states, b.hidden_states, atol=ATOL)
    summary = user.analyze(rgb, attention="summary", features=True)  # the recorder: linear in the tokens
    assert summary.attention.full is None
    assert np.allclose(summary.cls_attention, b.cls_attention, atol=ATOL)
    assert np.allclose(summary.attention.rollout_rows, b.attention.rollout_rows, atol=ATOL)
    ea, eb = native.evidence(a, "top1"), user.evidence(b, "top1")
    for method in ("relevance", "grad-rollout"):
        assert np.allclose(ea.map(method, ea.targets[0]), eb.map(method, eb.targets[0]), atol=1e-4)
    ka, kb = native.head_importance(a), user.head_importance(b)
    assert np.allclose(ka.logit_drop, kb.logit_drop, atol=1e-4)
    sa, sb = native.head_importance(a, method="estimate"), user.head_importance(b, method="estimate")
    assert np.allclose(sa.logit_drop, sb.logit_drop, atol=1e-4)
    ablated_a, ablated_b = native.analyze(rgb, ablate=[(1, 2)]), user.analyze(rgb, ablate=[(1, 2)])
    assert np.allclose(ablated_a.probabilities, ablated_b.probabilities, atol=ATOL)
    assert not np.allclose(ablated_b.probabilities, b.probabilities, atol=ATOL)
    la, lb = native.lens(a), user.lens(b)  # the readout was found: final norm + head
    assert np.allclose(la.cls_probabilities, lb.cls_probabilities, atol=1e-4)
    assert np.allclose(la.patch_map(1), lb.patch_map(1), atol=1e-4)


def test_readout_of_the_design_notes_mlp_head_is_found() -> None:
    torch.manual_seed(5)
    engine = Engine(loaded=wrap_model(EncoderViT(norm_first=True)))
    result = engine.analyze(_image(), features=True)
    lens = engine.lens(result)
    assert np.allclose(lens.cls_probabilities[-1], result.probabilities, atol=1e-5)  # the last layer is the answer


def test_timm_model_object() -> None:
    from vitviz.models.reference import import_timm

    timm, reason = import_timm()
    if timm is None:
        pytest.skip(reason)
    torch.manual_seed(6)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=7, img_size=64).eval()
    x = _batch()
    reference: list[torch.Tensor] = []
    for block in model.blocks:  # timm's explicit path hands its probabilities to attn_drop
        block.attn.fused_attn = False
        block.attn.attn_drop.register_forward_hook(lambda m, a, o: reference.append(o.detach()))
    with torch.no_grad():
        model(x)
    for block in model.blocks:
        block.attn.fused_attn = True  # vitviz sees the fused SDPA call
    _check_capture(model, reference, x)
    wrapped, _ = wrap_model(model)
    assert wrapped.readout is not None and wrapped.has_hidden_states


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_transformers_model_object(implementation: str) -> None:
    transformers = pytest.importorskip("transformers")

    def made(attn: str) -> nn.Module:
        config = transformers.ViTConfig(image_size=64, patch_size=16, hidden_size=48, num_hidden_layers=2,
                                        num_attention_heads=4, intermediate_size=96, num_labels=3)
        config._attn_implementation = attn
        torch.manual_seed(7)
        return transformers.ViTForImageClassification(config).eval()

    x = _batch()
    with torch.no_grad():
        reference = list(made("eager")(x, output_attentions=True).attentions)
    model = made(implementation)
    _check_capture(model, reference, x)


def test_factory_file_from_the_command_line(tmp_path: Path) -> None:
    src = Path(__file__).with_name("user_models.py").read_text("utf-8")
    (tmp_path / "user_models.py").write_text(src, "utf-8")
    (tmp_path / "mine.py").write_text(textwrap.dedent("""
        import torch
        from user_models import BlockViT

        def build():
            torch.manual_seed(0)
            return {"model": BlockViT("sdpa", with_depth=True), "labels": ["a", "b", "c", "d", "e"]}

        def broken():
            raise RuntimeError("weights missing")

        def no_logits():
            return torch.nn.Conv2d(3, 8, 16, 16)
        """), "utf-8")
    sample = Path(__file__).parents[1] / "assets" / "samples" / "scene-capsule.png"
    out = tmp_path / "out"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "vitviz", "analyze", str(sample), "--out", str(out), *args],
                              capture_output=True, text=True, cwd=tmp_path)

    ok = run("--model", f"{tmp_path / 'mine.py'}:build", "--features", "--lens", "--quiet")
    assert ok.returncode == 0, ok.stderr
    assert (out / "scene-capsule" / "result.json").is_file() and "relative" in (out / "results.csv").read_text()
    for spec, message in ((f"{tmp_path / 'mine.py'}:broken", "broken() raised RuntimeError: weights missing"),
                          (f"{tmp_path / 'mine.py'}:nothing", "has no 'nothing'"),
                          (f"{tmp_path / 'nope.py'}:build", "no such file"),
                          (f"{tmp_path / 'mine.py'}:no_logits", "no attention found")):
        bad = run("--model", spec)
        assert bad.returncode != 0 and message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1


def test_refusals_in_one_line() -> None:
    class NoLogits(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = EncoderViT()

        def forward(self, x: torch.Tensor) -> str:
            self.inner(x)
            return "done"

    with pytest.raises(VitvizError, match="holds no logits"):
        wrap_model(NoLogits())
    with pytest.raises(VitvizError, match="failed on a 96x96 image"):
        wrap_model(EncoderViT(), image_size=96)  # the fixed positional embedding does not fit
    with pytest.raises(VitvizError, match="labels for a model with 5 classes"):
        wrap_model({"model": EncoderViT(), "labels": ["a", "b"]})
    with pytest.raises(VitvizError, match="torch.nn.Module"):
        wrap_model({"model": "not a module"})


@pytest.mark.parametrize("spec, expected", [
    ("model.py:build", True), ("pkg.sub:factory", True), ("C:build", False), ("weights/model.pth", False),
    ("https://example.org/x:y", False), ("vitviz-mini", False), ("a.py:", False)])
def test_factory_specs(spec: str, expected: bool) -> None:
    assert is_factory_spec(spec) is expected


def test_module_factory_by_import_path() -> None:
    model, info = load_factory("tests.user_models:EinsumViT", image_size=32, channels=1)
    assert info.config.in_chans == 1 and info.name == "EinsumViT"


def test_a_pickled_whole_model_is_refused_unless_allowed(tmp_path: Path) -> None:
    from vitviz.engine import resolve_model
    from vitviz.errors import CheckpointError
    from vitviz.models.userspec import set_options

    torch.manual_seed(8)
    model = EncoderViT().eval()
    path = tmp_path / "whole.pth"
    torch.save(model, path)
    with pytest.raises(CheckpointError, match="unpickling.*code.*--allow-pickle"):
        resolve_model(str(path))
    set_options(str(path), allow_pickle=True, labels=list("abcde"))
    wrapped, info = resolve_model(str(path))
    x = _batch()
    with torch.no_grad():
        assert torch.allclose(wrapped(x).logits, model(x), atol=ATOL)
    assert info.labels == list("abcde")


def test_multihead_attention_with_a_mask_is_recorded_and_its_heads_refuse_a_knockout() -> None:
    class Masked(nn.Module):
        """nn.MultiheadAttention called with an attention mask: vitviz lets the module compute it."""

        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Conv2d(3, 32, 16, 16)
            self.cls = nn.Parameter(torch.zeros(1, 1, 32))
            self.attn = nn.MultiheadAttention(32, 4, batch_first=True)
            self.mlp = nn.Linear(32, 32)
            self.head = nn.Linear(32, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            t = torch.cat([self.cls.expand(len(x), -1, -1), self.embed(x).flatten(2).transpose(1, 2)], 1)
            mask = torch.zeros(t.shape[1], t.shape[1])
            mask[:, -1] = -1e4  # nobody attends to the last patch
            self.weights = self.attn(t, t, t, attn_mask=mask, average_attn_weights=False)[1]
            return self.head(self.mlp(t + self.attn(t, t, t, need_weights=False)[0])[:, 0])

    torch.manual_seed(9)
    model = Masked().eval()
    x = _batch()
    with torch.no_grad():
        model(x)
    own = model.weights
    wrapped, info = wrap_model(model, image_size=64)
    with torch.no_grad():
        out = wrapped(x, return_attention=True)
    assert info.config.depth == 2 and torch.allclose(out.attentions[0], own, atol=ATOL)
    assert torch.allclose(model.weights, own, atol=ATOL)  # the module still got its weights back
    with pytest.raises(VitvizError, match="heads of layer 0 cannot be knocked out"):
        wrapped(x, head_mask=torch.zeros(2, 4))


def test_your_own_image_text_model_scores_typed_labels_as_it_does() -> None:
    from .user_models import TinyCLIP, tiny_tokenize

    torch.manual_seed(10)
    model = TinyCLIP().eval()
    engine = Engine(loaded=wrap_model({"model": model, "encode_image": model.encode_image,
                                       "encode_text": model.encode_text, "tokenize": tiny_tokenize,
                                       "labels": ["cat", "dog", "red ball"]}))
    assert engine.has_text and engine.scoring == "softmax"
    rgb = _image()
    result = engine.analyze(rgb, features=True)
    x = engine._tensor(result.image, engine.info)
    prompts = [f"a photo of a {w}." for w in ("cat", "dog", "red ball")]
    with torch.no_grad():
        image = torch.nn.functional.normalize(model.encode_image(x), dim=-1)
        text = torch.nn.functional.normalize(model.encode_text(tiny_tokenize(prompts)), dim=-1)
        own = torch.softmax(model.logit_scale.exp() * image @ text.T, dim=-1)[0].numpy()
    assert np.allclose(result.probabilities, own, atol=1e-5)
    assert result.attention.num_layers == 3 and result.image_embedding.shape == (16,)
    lens = engine.lens(result)  # the readout ends in the image embedding, scored against the labels
    assert np.allclose(lens.cls_probabilities[-1], result.probabilities, atol=1e-4)
    assert engine.evidence(result, "top1").targets == [int(np.argmax(own))]
    engine.set_labels("tree, car")  # typed words: scored from the kept image embedding, no forward pass
    rescored = engine.rescore(result)
    with torch.no_grad():
        text = torch.nn.functional.normalize(model.encode_text(tiny_tokenize(["a photo of a tree.",
                                                                              "a photo of a car."])), dim=-1)
        own = torch.softmax(model.logit_scale.exp() * image @ text.T, dim=-1)[0].numpy()
    assert rescored.labels == ["tree", "car"] and np.allclose(rescored.probabilities, own, atol=1e-5)
    with pytest.raises(VitvizError, match="needs all three"):
        wrap_model({"model": model, "encode_image": model.encode_image})
