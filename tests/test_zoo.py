"""The pretrained zoo: numerical parity with the reference implementations, loading, registry, downloads.

Parity tests build the reference model (Hugging Face ``transformers``, ``timm``) with a tiny random configuration,
save it in its library's own format, load it through vitviz and compare logits, every layer's attention probabilities
and depth maps (fp32, 1e-4) at the training size and at a 1.5:1 input. They skip when the reference libraries are not
installed (``pip install -e ".[test,reference,hub]"``). No test touches the network.
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from vitviz.engine import Engine
from vitviz.models import zoo
from vitviz.models.convert import is_foreign_checkpoint, load_foreign
from vitviz.errors import CheckpointError, ModelDownloadError
from vitviz.models.reference import import_timm, randomize

TOL = 1e-4


# ------------------------------------------------------------------------------------------------------- helpers


def _assert_close(name: str, ref: torch.Tensor, got: torch.Tensor) -> None:
    assert ref.shape == got.shape, f"{name}: shape {tuple(got.shape)} != reference {tuple(ref.shape)}"
    err = (ref - got).abs().max().item()
    assert err < TOL, f"{name}: max abs difference {err:.3g}"


def _assert_attentions(ref: list[torch.Tensor] | tuple, got: list[torch.Tensor]) -> None:
    assert ref is not None and len(ref) == len(got) and len(got) > 0
    for i, (a, b) in enumerate(zip(ref, got)):
        _assert_close(f"attention of layer {i}", a, b)


def _transformers():
    return pytest.importorskip("transformers", minversion="4.47")


SIZES = {16: [(32, 32), (32, 48)], 14: [(56, 56), (56, 84)]}  # training size, then 1.5:1


# ------------------------------------------------------------------------------------------------------- HF ViT


@pytest.mark.parametrize("classifier", [True, False], ids=["ViTForImageClassification", "ViTModel"])
def test_hf_vit_parity(tmp_path, classifier):
    tf = _transformers()
    cfg = tf.ViTConfig(
        hidden_size=24, num_hidden_layers=3, num_attention_heads=3, intermediate_size=72, image_size=32, patch_size=8,
        num_labels=5, attn_implementation="eager",
    )
    ref = randomize(tf.ViTForImageClassification(cfg) if classifier else tf.ViTModel(cfg), seed=1)
    ref.save_pretrained(tmp_path / "hf")
    model, info = zoo.load(tmp_path / "hf")
    assert info.config.embed_dim == 24 and info.config.num_heads == 3 and info.config.norm_eps == 1e-12
    assert info.config.num_classes == (5 if classifier else 0)
    for h, w in [(32, 32), (32, 48)]:
        x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(h * w))
        with torch.no_grad():
            r = ref(x, output_attentions=True, output_hidden_states=True, interpolate_pos_encoding=True)
            o = model(x, return_attention=True)
        _assert_attentions(r.attentions, o.attentions)
        if classifier:
            _assert_close("logits", r.logits, o.logits)
        else:
            _assert_close("tokens", r.last_hidden_state, o.tokens)


# ------------------------------------------------------------------------------------------------------- HF DINOv2


def test_hf_dinov2_classifier_parity(tmp_path):
    tf = _transformers()
    cfg = tf.Dinov2Config(
        hidden_size=24, num_hidden_layers=3, num_attention_heads=3, image_size=56, patch_size=14, num_labels=7,
        layerscale_value=0.7, attn_implementation="eager",
    )
    ref = randomize(tf.Dinov2ForImageClassification(cfg), seed=2)
    ref.save_pretrained(tmp_path / "hf")
    model, info = zoo.load(tmp_path / "hf")
    c = info.config
    assert c.head_pool == "cls+mean" and c.layer_scale_init is not None and c.norm_eps == 1e-6
    assert "embeddings.mask_token" not in str(model.state_dict().keys())
    for h, w in SIZES[14]:
        x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(h + w))
        with torch.no_grad():
            r = ref(x, output_attentions=True)
            o = model(x, return_attention=True)
        _assert_close("logits", r.logits, o.logits)
        _assert_attentions(r.attentions, o.attentions)


def test_hf_dinov2_input_size_from_preprocessor(tmp_path):
    """DINOv2 classifiers keep a 37x37 positional grid (518 px) but run at 224 px (the processor's crop)."""
    tf = _transformers()
    cfg = tf.Dinov2Config(hidden_size=24, num_hidden_layers=2, num_attention_heads=3, image_size=70, patch_size=14,
                          num_labels=3, attn_implementation="eager")
    ref = randomize(tf.Dinov2ForImageClassification(cfg), seed=3)
    ref.save_pretrained(tmp_path / "hf")
    pre = {"do_center_crop": True, "crop_size": {"height": 42, "width": 42}, "size": {"shortest_edge": 48},
           "image_mean": [0.4, 0.5, 0.6], "image_std": [0.2, 0.25, 0.3]}
    (tmp_path / "hf" / "preprocessor_config.json").write_text(json.dumps(pre))
    model, info = zoo.load(tmp_path / "hf")
    assert info.config.image_size == 42 and info.config.pos_grid_size == 5 and info.config.grid_size == 3
    assert info.mean == (0.4, 0.5, 0.6) and info.std == (0.2, 0.25, 0.3)
    x = torch.randn(1, 3, 42, 56)
    with torch.no_grad():
        _assert_close("logits", ref(x).logits, model(x).logits)


# ------------------------------------------------------------------------------------------------------- Depth Anything


def _tiny_depth_anything(tf, image_size: int = 70, seed: int = 4):
    backbone = tf.Dinov2Config(
        hidden_size=24, num_hidden_layers=4, num_attention_heads=3, image_size=image_size, patch_size=14,
        out_indices=[1, 2, 3, 4], reshape_hidden_states=False, layerscale_value=0.5,
    )
    cfg = tf.DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=24, neck_hidden_sizes=[8, 16, 24, 32], fusion_hidden_size=16,
        head_hidden_size=8, patch_size=14, attn_implementation="eager",
    )
    ref = randomize(tf.DepthAnythingForDepthEstimation(cfg), seed=seed)
    with torch.no_grad():
        ref.head.conv3.weight.mul_(0.2)  # most of the map above the final ReLU
        ref.head.conv3.bias.fill_(1.0)
    return ref


def test_hf_depth_anything_parity(tmp_path):
    tf = _transformers()
    ref = _tiny_depth_anything(tf)
    ref.save_pretrained(tmp_path / "hf")
    model, info = zoo.load(tmp_path / "hf")
    assert info.depth_kind == "relative_inverse" and model.config.depth_head == "dpt"
    assert model.config.dpt["layers"] == [0, 1, 2, 3]
    plain = copy.deepcopy(model)
    engine = Engine(loaded=(model, info), device="cpu")  # runs the head in the CPU's channels-last layout
    for net in (plain, engine.model):
        for h, w in [(70, 70), (84, 126)]:  # grids 5x5 and 6x9: odd sizes through the stride-2 reassemble
            x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(h * 3 + w))
            with torch.no_grad():
                r = ref(x, output_attentions=True)
                o = net(x, return_attention=True)
            assert o.depth.shape == (1, 1, h, w)
            assert (r.predicted_depth > 0).float().mean() > 0.5
            _assert_close("depth", r.predicted_depth, o.depth[:, 0])
            _assert_attentions(r.attentions, o.attentions)


# ------------------------------------------------------------------------------------------------------- timm


def _import_timm():
    timm, reason = import_timm()
    if timm is None:
        pytest.skip(reason)
    return timm


def _timm_attentions(model) -> tuple[list, list]:
    """Capture timm's attention probabilities: the non-fused path passes them through ``attn_drop``."""
    captured: list[torch.Tensor] = []
    handles = []
    for block in model.blocks:
        block.attn.fused_attn = False
        handles.append(block.attn.attn_drop.register_forward_hook(lambda m, i, o: captured.append(o.detach())))
    return captured, handles


TIMM_VARIANTS = {
    # name: (patch, training size, sizes checked: training, 1.5:1, a smaller grid where positions are down-sampled)
    "vit_small_patch16_224": (8, 32, [(32, 32), (32, 48), (16, 16)]),
    "vit_small_patch14_reg4_dinov2": (14, 56, [(56, 56), (56, 84), (28, 28)]),
}


@pytest.mark.parametrize("variant", list(TIMM_VARIANTS))
def test_timm_parity(tmp_path, variant):
    timm = _import_timm()
    pytest.importorskip("huggingface_hub")
    from timm.models._hub import save_for_hf

    patch, img, sizes = TIMM_VARIANTS[variant]
    ref = timm.create_model(variant, pretrained=False, img_size=img, patch_size=patch, embed_dim=24, depth=3,
                            num_heads=3, num_classes=5, dynamic_img_size=True)
    randomize(ref, seed=5)
    save_for_hf(ref, str(tmp_path / "timm"), safe_serialization=True)
    assert is_foreign_checkpoint(tmp_path / "timm")
    model, info = zoo.load(tmp_path / "timm")
    assert info.config.num_register_tokens == (4 if "reg4" in variant else 0)
    assert info.config.pos_embed_antialias and info.config.pos_grid_size == img // patch
    captured, handles = _timm_attentions(ref)
    try:
        for h, w in sizes:
            captured.clear()
            x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(h + 7 * w))
            with torch.no_grad():
                r = ref(x)
                o = model(x, return_attention=True)
            _assert_close("logits", r, o.logits)
            _assert_attentions(captured, o.attentions)
    finally:
        for handle in handles:
            handle.remove()


def test_timm_bare_safetensors_with_overrides(tmp_path):
    """A bare timm state dict: the architecture comes from the shapes, the head count from an override."""
    timm = _import_timm()
    from safetensors.torch import save_file

    ref = timm.create_model("vit_small_patch16_224", pretrained=False, img_size=32, patch_size=8, embed_dim=24,
                            depth=2, num_heads=2, num_classes=4, dynamic_img_size=True)
    randomize(ref, seed=6)
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(tmp_path / "vit.safetensors"))
    model, info = load_foreign(tmp_path / "vit.safetensors", overrides={"num_heads": 2})
    assert info.config.image_size == 32 and info.labels == ["class 0", "class 1", "class 2", "class 3"]
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        _assert_close("logits", ref(x), model(x).logits)


# ------------------------------------------------------------------------------------------------------- errors


def _save_vit(tf, folder: Path, **overrides) -> None:
    cfg = tf.ViTConfig(hidden_size=24, num_hidden_layers=2, num_attention_heads=3, intermediate_size=48,
                       image_size=32, patch_size=8, num_labels=5, **overrides)
    randomize(tf.ViTForImageClassification(cfg)).save_pretrained(folder)


def _edit_weights(folder: Path, edit) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    edit(state)
    save_file(state, str(folder / "model.safetensors"))


def test_missing_unexpected_and_wrong_shape_are_named(tmp_path):
    tf = _transformers()
    folder = tmp_path / "hf"
    _save_vit(tf, folder)

    def damage(state):
        del state["vit.layernorm.weight"]
        state["vit.encoder.layer.0.surprise.weight"] = torch.zeros(3)
        state["classifier.weight"] = torch.zeros(6, 24)

    _edit_weights(folder, damage)
    with pytest.raises(CheckpointError) as err:
        zoo.load(folder)
    msg = str(err.value)
    assert "missing: norm.weight" in msg
    assert "unexpected: vit.encoder.layer.0.surprise.weight" in msg
    assert "wrong shape: head.weight (6, 24) (model expects (5, 24))" in msg
    assert str(folder) in msg


def test_incomplete_attention_projection_is_named(tmp_path):
    tf = _transformers()
    folder = tmp_path / "hf"
    _save_vit(tf, folder)
    _edit_weights(folder, lambda s: s.pop("vit.encoder.layer.1.attention.attention.key.weight"))
    with pytest.raises(CheckpointError, match=r"block 1: weight of the attention key projection\(s\) missing"):
        zoo.load(folder)


def test_unsupported_configs_are_refused(tmp_path):
    tf = _transformers()
    folder = tmp_path / "hf"
    _save_vit(tf, folder, hidden_act="relu")
    with pytest.raises(CheckpointError, match="hidden_act 'relu' is not supported"):
        zoo.load(folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model_type"] = "swin"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="unsupported Hugging Face model type 'swin'"):
        zoo.load(folder)


def test_transformers5_names_are_understood(tmp_path):
    """In-memory names of transformers 5 (q_proj, o_proj, layers.N, mlp.fc1) load like the Hub's names."""
    tf = _transformers()
    folder = tmp_path / "hf"
    _save_vit(tf, folder)
    reference, _ = zoo.load(folder)
    renames = [("encoder.layer.", "layers."), ("attention.attention.query", "attention.q_proj"),
               ("attention.attention.key", "attention.k_proj"), ("attention.attention.value", "attention.v_proj"),
               ("attention.output.dense", "attention.o_proj"), ("intermediate.dense", "mlp.fc1"),
               ("output.dense", "mlp.fc2")]

    def rename(state):
        for key in list(state):
            new = key
            for a, b in renames:
                new = new.replace(a, b)
            state[new] = state.pop(key)

    _edit_weights(folder, rename)
    model, _ = zoo.load(folder)
    for k, v in reference.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k


# ------------------------------------------------------------------------------------------------------- registry


def test_registry_entries():
    names = set(zoo.REGISTRY)
    assert {"deit-small", "vit-base", "dino-vits16", "dinov2-small-imagenet", "depth-anything-v2-small"} <= names
    for name, entry in zoo.REGISTRY.items():
        assert entry.name == name and "/" in entry.repo_id and entry.summary and entry.licence and entry.size_mb > 0
        assert entry.image_size % entry.patch_size == 0
        assert zoo.is_known(name)
    assert zoo.REGISTRY["depth-anything-v2-small"].depth_kind == "relative_inverse"
    assert zoo.REGISTRY["dinov2-small-imagenet"].architecture["head_pool"] == "cls+mean"
    assert zoo.is_known("hf:someone/some-vit") and not zoo.is_known("no-such-model")


def test_imagenet_labels():
    labels = zoo.imagenet_labels()
    assert len(labels) == 1000 and len(set(labels)) == 1000
    assert labels[0] == "tench" and labels[281] == "tabby" and labels[954] == "banana"
    assert labels[134] == "crane (bird)" and labels[517] == "crane (machine)"


def _put_in_hf_cache(cache: Path, repo_id: str, folder: Path, commit: str = "0123456789abcdef" * 2 + "01234567") -> None:
    """Lay files out the way huggingface_hub's cache does (refs/main -> snapshots/<commit>/...)."""
    repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snap = repo_dir / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    for f in folder.iterdir():
        shutil.copy(f, snap / f.name)


@pytest.fixture()
def tiny_zoo(tmp_path, monkeypatch):
    """deit-small and depth-anything-v2-small replaced by tiny random stand-ins in a private, offline HF cache."""
    tf = _transformers()
    pytest.importorskip("huggingface_hub")
    cache = tmp_path / "hf-cache"
    vit = tf.ViTConfig(hidden_size=24, num_hidden_layers=2, num_attention_heads=3, intermediate_size=48,
                       image_size=32, patch_size=16, num_labels=1000)
    randomize(tf.ViTForImageClassification(vit), seed=7).save_pretrained(tmp_path / "deit")
    _tiny_depth_anything(tf, image_size=70).save_pretrained(tmp_path / "da")
    deit, da = zoo.REGISTRY["deit-small"], zoo.REGISTRY["depth-anything-v2-small"]
    _put_in_hf_cache(cache, deit.repo_id, tmp_path / "deit")
    _put_in_hf_cache(cache, da.repo_id, tmp_path / "da")
    monkeypatch.setitem(zoo.REGISTRY, "deit-small", replace(
        deit, image_size=32, architecture={**deit.architecture, "embed_dim": 24, "depth": 2, "num_heads": 3}))
    monkeypatch.setitem(zoo.REGISTRY, "depth-anything-v2-small", replace(
        da, image_size=56, architecture={**da.architecture, "embed_dim": 24, "depth": 4, "num_heads": 3}))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_registry_load_from_cache_offline(tiny_zoo):
    model, info = zoo.load("deit-small")
    assert info.name == "deit-small" and info.labels[:2] == ["tench", "goldfish"] and info.mean == (0.485, 0.456, 0.406)
    assert "facebook/deit-small-patch16-224" in info.source
    dmodel, dinfo = zoo.load("depth-anything-v2-small")
    # the entry's 56 px input keeps the checkpoint's 5x5 positional grid (70 px)
    assert dinfo.config.image_size == 56 and dinfo.config.pos_grid_size == 5
    assert dinfo.depth_kind == "relative_inverse"


def test_registry_rejects_a_different_architecture(tiny_zoo, monkeypatch):
    entry = zoo.REGISTRY["deit-small"]
    monkeypatch.setitem(zoo.REGISTRY, "deit-small", replace(entry, architecture={**entry.architecture, "depth": 12}))
    with pytest.raises(CheckpointError, match=r"does not match the registry entry 'deit-small': depth 2 \(expected 12\)"):
        zoo.load("deit-small")


def test_hf_spec_from_cache_offline(tmp_path, monkeypatch):
    """``hf:owner/repo``: any supported Hub repository; labels from id2label, preprocessing from the repo."""
    tf = _transformers()
    pytest.importorskip("huggingface_hub")
    cfg = tf.Dinov2Config(hidden_size=24, num_hidden_layers=2, num_attention_heads=3, image_size=56, patch_size=14,
                          id2label={0: "cat", 1: "dog"}, label2id={"cat": 0, "dog": 1})
    randomize(tf.Dinov2ForImageClassification(cfg), seed=8).save_pretrained(tmp_path / "repo")
    pre = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "size": {"shortest_edge": 28}}
    (tmp_path / "repo" / "preprocessor_config.json").write_text(json.dumps(pre))
    _put_in_hf_cache(tmp_path / "cache", "someone/tiny-dinov2", tmp_path / "repo")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, info = zoo.load("hf:someone/tiny-dinov2")
    assert info.labels == ["cat", "dog"] and info.config.image_size == 28 and info.config.pos_grid_size == 4
    assert info.name == "someone/tiny-dinov2"


def test_cli_analyze_with_zoo_models(tiny_zoo, photo, tmp_path):
    """``vitviz analyze --model deit-small --depth-model depth-anything-v2-small`` through engine.resolve_model."""
    from vitviz.cli import main

    out = tmp_path / "out"
    rc = main(["analyze", str(photo), "--out", str(out), "--model", "deit-small",
               "--depth-model", "depth-anything-v2-small", "--device", "cpu", "--quiet"])
    assert rc == 0
    result = json.loads((out / "photo" / "result.json").read_text())
    assert result["model"] == "deit-small" and result["depth_model"] == "depth-anything-v2-small"
    assert result["depth"]["kind"] == "relative_inverse"
    assert result["predictions"][0]["label"] in zoo.imagenet_labels()
    # 96x64 photo -> short side 32 -> 48x32 input, 3x2 patches of 16 (aspect ratio kept)
    assert result["input_size"] == {"height": 32, "width": 48}
    assert result["patch_grid"] == {"rows": 2, "cols": 3, "patch_size": 16}


def test_cli_lists_registry(capsys):
    from vitviz.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name, entry in zoo.REGISTRY.items():
        assert name in out and entry.repo_id in out


# ------------------------------------------------------------------------------------------------------- downloads


def test_offline_download_error(tmp_path, monkeypatch):
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelDownloadError) as err:
        zoo.load("deit-small")
    msg = str(err.value)
    assert msg.startswith("cannot download facebook/deit-small-patch16-224/config.json from the Hugging Face Hub:")
    assert "offline" in msg and "HF_HUB_OFFLINE" in msg


def test_offline_download_error_in_a_fresh_process(tmp_path, photo):
    """The command line, in a fresh interpreter (nothing of huggingface_hub imported beforehand)."""
    pytest.importorskip("huggingface_hub")
    import os
    import subprocess

    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "empty-cache"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "vitviz", "analyze", str(photo), "--out", str(tmp_path / "out"), "--model", "deit-small",
         "--depth-model", "depth-anything-v2-small", "--quiet"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "vitviz: error: cannot download facebook/deit-small-patch16-224/config.json from the Hugging Face Hub: " \
           "offline mode is on" in proc.stderr


def test_unreachable_endpoint_download_error(tmp_path, monkeypatch):
    pytest.importorskip("huggingface_hub")
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: connection refused
    with pytest.raises(ModelDownloadError, match=r"^cannot download depth-anything/Depth-Anything-V2-Small-hf/"
                                                 r"config.json from the Hugging Face Hub .*: no network connection"):
        zoo.load("depth-anything-v2-small")


def test_connection_failure_inside_huggingface_hub(tmp_path, monkeypatch):
    """Behind a proxy the quick probe is skipped; huggingface_hub's own connection error is translated."""
    hub = pytest.importorskip("huggingface_hub")
    from huggingface_hub.utils import LocalEntryNotFoundError

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    calls = []

    def fake_download(repo_id, filename, **kwargs):
        calls.append(kwargs.get("local_files_only", False))
        raise LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub")

    monkeypatch.setattr(hub, "hf_hub_download", fake_download)
    with pytest.raises(ModelDownloadError, match="cannot download facebook/dino-vits16/config.json from the "
                                                 "Hugging Face Hub: no network connection"):
        zoo.load("dino-vits16")
    assert calls == [True, False]  # the cache first, then the network


def test_missing_huggingface_hub(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(ModelDownloadError, match=r"needs huggingface_hub: install the optional extra"):
        zoo.load("vit-base")


def test_progress_hook_bar():
    """The bar huggingface_hub draws records progress for the calling thread, and stops a cancelled transfer
    (cancelling against a real server: tests/test_hub_download.py)."""
    pytest.importorskip("tqdm")
    from vitviz.errors import LoadCancelled
    from vitviz.models.hub import _hook_bar, _Transfer

    transfer = _Transfer()
    bar_cls = _hook_bar(transfer)
    with bar_cls(total=300, unit="B", name="huggingface_hub.http_get", disable=True) as bar:
        assert (transfer.done, transfer.total) == (0, 300)
        bar.update(100)
        assert (transfer.done, transfer.total) == (100, 300)
        transfer.cancelled.set()
        with pytest.raises(LoadCancelled):
            bar.update(100)


def test_partial_cache_downloads_one_consistent_snapshot(tmp_path, monkeypatch):
    """A stale cached config.json beside missing weights: everything is fetched again from one snapshot."""
    hub = pytest.importorskip("huggingface_hub")
    from huggingface_hub.utils import LocalEntryNotFoundError

    from vitviz.models.hub import download

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")  # skip the TCP probe
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    calls = []

    def fake_download(repo_id, filename, local_files_only=False, **kwargs):
        calls.append((filename, local_files_only))
        if local_files_only:
            if filename == "config.json":
                return str(tmp_path / "old-snapshot" / filename)
            raise LocalEntryNotFoundError("not cached")
        return str(tmp_path / "new-snapshot" / filename)

    monkeypatch.setattr(hub, "hf_hub_download", fake_download)
    folder = download("someone/model", ["config.json", ("model.safetensors", "pytorch_model.bin")], cache=tmp_path)
    assert folder == tmp_path / "new-snapshot"
    assert calls[-2:] == [("config.json", False), ("model.safetensors", False)]
