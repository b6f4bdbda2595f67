"""The ViT core: shapes, attention correctness, fused vs observable path, positional-embedding interpolation."""

import math

import pytest
import torch

from vitviz.models.vit import ViTConfig, build_model, interpolate_pos_embed

from .conftest import tiny_config

# The two trainable depth heads (tiny_config's default is the shipped kind, "fusion").
HEADS = {
    "fusion": {},
    "simple": {"depth_head": "simple", "depth_head_channels": (16, 8), "depth_head_layers": ()},
}


@pytest.fixture(params=["fusion", "simple"])
def model(request):
    torch.manual_seed(1)
    m = build_model(tiny_config(**HEADS[request.param]))
    with torch.no_grad():
        m.pos_embed.normal_(0, 0.5)
    return m.eval()


@pytest.mark.parametrize("size", [(32, 32), (64, 32), (24, 56), (8, 8), (48, 80)])
def test_shapes_through_pipeline(model, size):
    h, w = size
    x = torch.randn(2, 3, h, w)
    out = model(x, return_attention=True)
    gh, gw = h // 8, w // 8
    t = gh * gw + 1
    assert out.grid == (gh, gw)
    assert out.tokens.shape == (2, t, 24)
    assert out.logits.shape == (2, 5)
    assert out.depth.shape == (2, 1, h, w)
    assert (out.depth > 0).all()
    assert len(out.attentions) == 3
    for attn in out.attentions:
        assert attn.shape == (2, 3, t, t)


def test_attention_rows_sum_to_one(model):
    out = model(torch.randn(1, 3, 40, 32), return_attention=True)
    for attn in out.attentions:
        assert torch.allclose(attn.sum(-1), torch.ones(attn.shape[:-1]), atol=1e-5)
        assert (attn >= 0).all()


def test_attention_equals_reference_softmax(model):
    """The returned probabilities are softmax(QK^T / sqrt(d)) computed from the block's own weights."""
    x = torch.randn(1, 3, 32, 48)
    tokens, _ = model.embed(x)
    for block in model.blocks:
        h = block.norm1(tokens)
        w, b = block.attn.qkv.weight, block.attn.qkv.bias
        d = model.config.embed_dim
        heads = model.config.num_heads
        hd = d // heads
        q = (h @ w[:d].T + b[:d]).view(1, -1, heads, hd).transpose(1, 2)
        k = (h @ w[d : 2 * d].T + b[d : 2 * d]).view(1, -1, heads, hd).transpose(1, 2)
        expected = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1)
        tokens_next, attn = block(tokens, return_attention=True)
        assert torch.allclose(attn, expected, atol=1e-6)
        tokens = tokens_next


@pytest.mark.parametrize("cfg", [{}, {"layer_scale_init": 0.1, "num_register_tokens": 2, "head_pool": "cls+mean"}])
def test_fused_and_observable_paths_agree(cfg):
    torch.manual_seed(2)
    m = build_model(tiny_config(**cfg)).eval()
    x = torch.randn(2, 3, 40, 24)
    with torch.no_grad():
        fused = m(x, return_attention=False)
        observed = m(x, return_attention=True)
    assert fused.attentions is None
    assert torch.allclose(fused.tokens, observed.tokens, atol=1e-5)
    assert torch.allclose(fused.logits, observed.logits, atol=1e-5)
    assert torch.allclose(fused.depth, observed.depth, rtol=1e-5, atol=1e-5)


def test_explicit_attention_trains_like_the_fused_kernel():
    """Turning the fused kernel off (what training on a CPU does) changes speed, not the outputs or gradients."""
    torch.manual_seed(3)
    m = build_model(tiny_config())
    x = torch.randn(2, 3, 32, 40)
    grads = []
    for fused in (True, False):
        m.set_fused_attention(fused)
        m.zero_grad()
        out = m(x)
        assert out.attentions is None
        (out.logits.square().sum() + out.depth.log().sum()).backward()
        grads.append([p.grad.clone() for p in m.parameters()])
    for g_fused, g_explicit in zip(*grads):
        assert torch.allclose(g_fused, g_explicit, rtol=1e-4, atol=1e-6)


def test_register_tokens_extend_the_prefix():
    m = build_model(tiny_config(num_register_tokens=4)).eval()
    out = m(torch.randn(1, 3, 32, 32), return_attention=True)
    assert out.num_prefix_tokens == 5
    assert out.attentions[0].shape[-1] == 16 + 5


def test_pos_embed_interpolation_identity_at_training_grid(model):
    pe = model.pos_embed
    assert torch.equal(interpolate_pos_embed(pe, (4, 4), (4, 4)), pe)


def test_pos_embed_interpolation_resamples_grid(model):
    pe = model.pos_embed
    out = interpolate_pos_embed(pe, (4, 4), (6, 3))
    assert out.shape == (1, 1 + 18, 24)
    assert torch.equal(out[:, 0], pe[:, 0])  # CLS embedding untouched
    # a constant field stays constant under bicubic resampling
    const = torch.ones(1, 17, 5)
    assert torch.allclose(interpolate_pos_embed(const, (4, 4), (7, 9)), torch.ones(1, 64, 5), atol=1e-5)


def test_patch_size_must_divide_image(model):
    with pytest.raises(ValueError, match="multiple of the patch size"):
        model(torch.randn(1, 3, 30, 32))


def test_config_round_trip():
    cfg = tiny_config(layer_scale_init=1e-5)
    assert cfg.depth_head_layers == (1, 3)
    assert ViTConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown architecture option"):
        ViTConfig.from_dict({**cfg.to_dict(), "bogus": 1})


def test_fusion_head_reads_every_chosen_block_and_the_image():
    """The depth map depends on each selected block's tokens and, through the stem, on sub-patch image detail."""
    torch.manual_seed(0)
    model = build_model(tiny_config()).eval()
    x = torch.randn(1, 3, 32, 32, requires_grad=True)
    hidden = {}
    hooks = [model.blocks[i].register_forward_hook(lambda m, a, out, i=i: hidden.__setitem__(i, out[0]))
             for i in range(3)]
    out = model(x)
    for h in hooks:
        h.remove()
    grads = torch.autograd.grad(out.depth.log().sum(), [hidden[0], hidden[1], hidden[2]], allow_unused=True)
    # block 1 reaches the head directly and through blocks 2-3; block 2 only through block 3: all non-zero
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    # Changing one pixel changes the depth most near that pixel (stem at 1/4 of the 8-px patch: 2-px cells),
    # not uniformly over its patch as a token-only head would.
    with torch.no_grad():
        base = model(x).depth[0, 0]
        bumped = x.detach().clone()
        bumped[0, :, 1, 1] += 3.0
        delta = (model(bumped).depth[0, 0] - base).abs()
    assert delta[:4, :4].mean() > 2 * delta[4:8, 4:8].mean()


def test_fusion_head_rejects_blocks_the_model_does_not_have():
    with pytest.raises(ValueError, match="depth_head_layers"):
        build_model(tiny_config(depth_head_layers=(1, 4)))


@pytest.mark.parametrize("overrides", [
    {},  # CLS pooling, fusion depth head
    {"num_register_tokens": 2, "head_pool": "cls+mean", "layer_scale_init": 0.1, "depth_head": "dpt",
     "dpt": {"layers": [0, 1, 2, 2], "neck_channels": [4, 8, 8, 8], "fusion_channels": 8, "head_channels": 4}},
    {"num_classes": 0, "depth_head": "none"},  # a DINO-like encoder: tokens and attentions only
])
def test_traced_forward_equals_the_eager_model(overrides):
    """The live mode's traced pass gives the eager model's outputs, for new pixels of a traced size (nothing
    value-dependent is baked in) and for a new size (traced again)."""
    from vitviz.models.traced import TracedForward

    torch.manual_seed(0)
    model = build_model(tiny_config(**overrides)).eval()
    with torch.no_grad():
        model.pos_embed.normal_(0, 0.5)
    traced = TracedForward(model)
    for shape in [(1, 3, 32, 32), (1, 3, 32, 32), (2, 3, 48, 32)]:
        x = torch.randn(shape)
        with torch.inference_mode():
            got, want = traced(x), model(x, return_attention=True)
        assert got.grid == want.grid and got.num_prefix_tokens == want.num_prefix_tokens
        for a, b in [(got.tokens, want.tokens), (got.logits, want.logits), (got.depth, want.depth),
                     *zip(got.attentions, want.attentions)]:
            assert (a is None) == (b is None)
            if a is not None:
                torch.testing.assert_close(a, b)
        assert len(got.attentions) == len(want.attentions) == model.config.depth
    assert not traced.failed and len(traced._traces) == 2


class _ReplayOnCpu:
    """Stands in for a CUDA graph on a machine without CUDA: records the call, replays it (optionally wrongly)."""

    made: list[tuple[int, ...]] = []
    skew = 0.0

    def __init__(self, fn, x):
        type(self).made.append(tuple(x.shape))
        self.fn = fn

    def __call__(self, x):
        return tuple(t + self.skew for t in self.fn(x))


@pytest.mark.parametrize("skew, graphs_kept", [(0.0, True), (1.0, False)])
def test_cuda_graphs_are_checked_when_recorded_and_dropped_if_wrong(monkeypatch, capsys, skew, graphs_kept):
    """Each traced shape is recorded once; a recording whose replay differs from the trace is dropped (with a line
    on stderr) and the traces run alone, so the outputs are the eager model's either way. The graph itself needs a
    GPU (benchmarks/check_cuda.py compares it there); this checks what surrounds it."""
    from vitviz.models import traced as traced_module

    monkeypatch.setattr(traced_module, "_graphable", lambda x: True)
    monkeypatch.setattr(traced_module, "_GraphedCall", type("Fake", (_ReplayOnCpu,), {"made": [], "skew": skew}))
    torch.manual_seed(0)
    model = build_model(tiny_config()).eval()
    traced = traced_module.TracedForward(model, cuda_graphs=True)
    for shape in [(1, 3, 32, 32), (1, 3, 32, 32), (1, 3, 48, 32)]:
        x = torch.randn(shape)
        with torch.inference_mode():
            got, want = traced(x), model(x, return_attention=True)
        torch.testing.assert_close(got.logits, want.logits)
        torch.testing.assert_close(got.attentions[-1], want.attentions[-1])
    made = traced_module._GraphedCall.made
    assert made == ([(1, 3, 32, 32), (1, 3, 48, 32)] if graphs_kept else [(1, 3, 32, 32)])
    assert traced.cuda_graphs is graphs_kept
    assert ("without CUDA graphs" in capsys.readouterr().err) is not graphs_kept


def test_cuda_graphs_can_be_turned_off(monkeypatch):
    from vitviz.models import traced as traced_module

    monkeypatch.setenv("VITVIZ_CUDA_GRAPHS", "0")
    monkeypatch.setattr(traced_module, "_graphable", lambda x: True)
    monkeypatch.setattr(traced_module, "_GraphedCall", type("Fake", (_ReplayOnCpu,), {"made": []}))
    traced = traced_module.TracedForward(build_model(tiny_config()).eval())
    with torch.inference_mode():
        traced(torch.randn(1, 3, 32, 32))
    assert traced_module._GraphedCall.made == []
