"""Image-text models (CLIP, SigLIP): parity with transformers on random weights, typed labels, the CLI and downloads.

The folders are built by tests/imagetext_models.py with transformers' ``save_pretrained`` and tokenizers trained in
the test (a byte-level BPE for CLIP, a SentencePiece model for SigLIP).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from vitviz.errors import VitvizError

tf = pytest.importorskip("transformers", minversion="4.47")
pytest.importorskip("tokenizers")
pytest.importorskip("sentencepiece")

from .imagetext_models import TEXTS, make_clip, make_siglip  # noqa: E402

FAMILIES = ("clip", "siglip")


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, tuple[Path, torch.nn.Module]]:
    root = tmp_path_factory.mktemp("imagetext")
    out = {}
    for name, make in (("clip", make_clip), ("siglip", make_siglip)):
        ref = make(root / name)
        ref.set_attn_implementation("eager")  # per-head attention probabilities
        out[name] = (root / name, ref)
    return out


@pytest.fixture
def picture() -> np.ndarray:
    return np.random.default_rng(5).integers(0, 256, (40, 56, 3), dtype=np.uint8)


def _engine(folder: Path):
    from vitviz.engine import Engine

    return Engine(str(folder), device="cpu")


# ------------------------------------------------------------------------------------------------------- parity


@pytest.mark.parametrize("family", FAMILIES)
def test_embeddings_probabilities_and_attentions_equal_transformers(folders, family):
    from vitviz.models.convert import load_foreign

    folder, ref = folders[family]
    model, info = load_foreign(folder)
    texts = ["a photo of a cat.", "a red ball beside a blue capsule", "zebra"]
    tokens = info.tokenizer(texts)
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        text_emb = model.text(tokens.ids)
        model.text.set_labels(text_emb)
        out = model(x, return_attention=True)
        mask = None if family == "clip" else None  # SigLIP is run padded to its context, as it was trained
        r = ref(input_ids=tokens.ids, pixel_values=x, attention_mask=mask, output_attentions=True)
    norm = torch.nn.functional.normalize
    assert torch.allclose(text_emb, norm(r.text_embeds, dim=-1), atol=1e-4)
    assert torch.allclose(norm(model.pooled(out.tokens), dim=-1), norm(r.image_embeds, dim=-1), atol=1e-4)
    expected = r.logits_per_image.softmax(-1) if family == "clip" else torch.sigmoid(r.logits_per_image)
    assert torch.allclose(model.probabilities(out.logits), expected, atol=1e-4)
    assert len(out.attentions) == len(r.vision_model_output.attentions)
    for mine, theirs in zip(out.attentions, r.vision_model_output.attentions):
        assert torch.allclose(mine, theirs, atol=1e-5)


def test_clip_tokenizer_equals_transformers(folders):
    from vitviz.models.text import TextConfig, load_tokenizer

    folder, _ = folders["clip"]
    mine = load_tokenizer(folder, TextConfig(context_length=16))
    theirs = tf.CLIPTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), model_max_length=16)
    texts = [*TEXTS, "a cat " * 30]
    expected = theirs(texts, padding=True, truncation=True, max_length=16)["input_ids"]
    got = mine(texts)
    assert got.truncated == [i for i, t in enumerate(texts) if len(theirs(t)["input_ids"]) > 16]
    assert len(texts) - 1 in got.truncated
    for row, ids in zip(got.ids.tolist(), expected):
        assert row[: len(ids)] == ids


def test_siglip_tokenizer_equals_transformers(folders):
    from vitviz.models.text import TextConfig, load_tokenizer

    folder, _ = folders["siglip"]
    mine = load_tokenizer(folder, TextConfig(family="siglip", context_length=16))
    theirs = tf.SiglipTokenizer(vocab_file=str(folder / "spiece.model"), model_max_length=16)
    texts = ["a photo of a cat.", "Hello, World", "zebra yak", "the  lazy   dog!"]
    expected = theirs(texts, padding="max_length", truncation=True, max_length=16)["input_ids"]
    assert mine(texts).ids.tolist() == expected


# ------------------------------------------------------------------------------------------------------- labels


@pytest.mark.parametrize("family", FAMILIES)
def test_editing_labels_rescores_without_running_the_image_tower(folders, family, picture):
    engine = _engine(folders[family][0])
    assert engine.has_text and engine.info.labels  # a few everyday words until the user types some
    first = engine.analyze(picture)
    calls: list[int] = []
    hook = engine.model.blocks[0].register_forward_pre_hook(lambda *_: calls.append(1))
    encoded: list[int] = []
    text_hook = engine.model.text.register_forward_pre_hook(lambda _m, args: encoded.append(args[0].shape[0]))
    engine.set_labels("a cat, a dog, a teapot")
    rescored = engine.rescore(first)
    assert calls == []  # no forward pass of the image tower
    assert [p.label for p in rescored.predictions] and {p.label for p in rescored.predictions} == {
        "a cat", "a dog", "a teapot"}
    engine.set_labels(["a cat", "a dog", "a teapot", "a ball"])
    assert encoded == [3, 1]  # cached per template and label: only the new label is encoded
    hook.remove()
    text_hook.remove()
    fresh = engine.analyze(picture)
    rescored = engine.rescore(first)
    np.testing.assert_allclose(rescored.probabilities, fresh.probabilities, atol=1e-6)
    assert rescored.labels == fresh.labels == ["a cat", "a dog", "a teapot", "a ball"]
    total = float(fresh.probabilities.sum())
    if family == "clip":
        assert total == pytest.approx(1.0, abs=1e-5)  # shared among the labels
        assert fresh.summary()["scoring"] == "softmax"
    else:
        assert fresh.summary()["scoring"] == "sigmoid"  # each label judged alone
        assert not np.isclose(total, 1.0)


def test_templates_are_averaged_and_checked(folders, picture):
    engine = _engine(folders["clip"][0])
    engine.set_labels("cat, dog", ["a photo of a {}.", "{}"])
    both = engine.analyze(picture).probabilities
    engine.set_labels("cat, dog", ["{}"])
    verbatim = engine.analyze(picture).probabilities
    assert not np.allclose(both, verbatim)
    with pytest.raises(VitvizError, match="exactly one"):
        engine.set_labels("cat", ["a photo"])
    assert engine.templates == ["{}"]  # a refused template changes nothing


def test_bad_label_lists_get_a_message_and_keep_the_labels(folders):
    engine = _engine(folders["siglip"][0])
    engine.set_labels("cat, dog")
    for bad in ("", " , ,\n", []):
        with pytest.raises(VitvizError, match="no labels"):
            engine.set_labels(bad)
        assert engine.info.labels == ["cat", "dog"]
    notices = engine.set_labels("cat,, Cat, dog")
    assert engine.info.labels == ["cat", "dog"]
    assert "1 empty label ignored" in notices and "1 repeated label merged" in notices
    notices = engine.set_labels(["a " + "very " * 40 + "long label", "dog"])
    assert any("cut to the text model's 16 tokens" in n for n in notices)


def test_thousands_of_labels_are_encoded_in_batches_with_progress(folders, picture):
    from vitviz.prompts import TEXT_BATCH

    engine = _engine(folders["clip"][0])
    labels = [f"thing {i}" for i in range(2 * TEXT_BATCH + 5)]
    seen: list[tuple[int, int]] = []
    engine.set_labels(labels, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(TEXT_BATCH, len(labels)), (2 * TEXT_BATCH, len(labels)), (len(labels), len(labels))]
    result = engine.analyze(picture, topk=7)
    assert result.probabilities.shape == (len(labels),) and len(result.predictions) == 7


def test_a_classifier_takes_no_labels(picture):
    from vitviz.engine import Engine

    engine = Engine(device="cpu")
    assert not engine.has_text
    with pytest.raises(VitvizError, match="no text tower"):
        engine.set_labels("cat")


def test_evidence_for_one_label_differs_from_another(folders, picture):
    engine = _engine(folders["clip"][0])
    engine.set_labels("a red ball, a blue capsule")
    result = engine.analyze(picture)
    ev = engine.evidence(result, targets=[0, 1])
    a, b = ev.map("relevance", 0), ev.map("relevance", 1)
    assert a.shape == b.shape == (result.grid.rows, result.grid.cols)
    assert not np.allclose(a, b)


# ------------------------------------------------------------------------------------------------------- maps


def test_siglip_maps_are_the_attention_each_patch_receives_and_the_pooling_probe(folders, picture):
    engine = _engine(folders["siglip"][0])
    full = engine.analyze(picture, attention="full")
    summary = engine.analyze(picture, attention="summary")
    a = full.attentions  # [L, H, T, T], no CLS token: T = patches
    assert full.num_prefix_tokens == 0 and a.shape[-1] == full.grid.num_patches
    received = a.mean(axis=2).reshape(a.shape[0], a.shape[1], full.grid.rows, full.grid.cols)
    np.testing.assert_allclose(full.cls_attention, received, atol=1e-6)
    np.testing.assert_allclose(summary.cls_attention, received, atol=1e-5)
    np.testing.assert_allclose(summary.rollout(), full.rollout(), atol=1e-5)
    assert full.pool_attention.shape == (a.shape[1], full.grid.rows, full.grid.cols)
    np.testing.assert_allclose(full.pool_attention.sum(axis=(1, 2)), 1.0, atol=1e-5)


# ------------------------------------------------------------------------------------------------------- CLI


def test_cli_labels_template_and_scoring(folders, tmp_path, picture):
    from PIL import Image

    from vitviz.cli import main

    image = tmp_path / "pic.png"
    Image.fromarray(picture).save(image)
    labels = tmp_path / "labels.txt"
    labels.write_text("a cat\na dog\n\na teapot\na dog\n", "utf-8")
    out = tmp_path / "out"
    assert main(["analyze", str(image), "--model", str(folders["siglip"][0]), "--out", str(out), "--quiet",
                 "--labels", f"@{labels}", "--template", "{}", "--topk", "2"]) == 0
    data = json.loads((out / "pic" / "result.json").read_text("utf-8"))
    assert data["labels"] == ["a cat", "a dog", "a teapot"] and data["templates"] == ["{}"]
    assert data["scoring"] == "sigmoid" and len(data["predictions"]) == 2
    assert {p["label"] for p in data["predictions"]} <= {"a cat", "a dog", "a teapot"}
    assert main(["analyze", str(image), "--out", str(tmp_path / "o2"), "--quiet", "--labels", "a cat"]) == 2
    assert main(["analyze", str(image), "--model", str(folders["clip"][0]), "--out", str(tmp_path / "o3"),
                 "--quiet", "--labels", " , "]) == 2
    assert main(["analyze", str(image), "--model", str(folders["clip"][0]), "--out", str(tmp_path / "o4"),
                 "--quiet", "--labels", "a cat, a dog", "--explain", "relevance", "--target", "a dog"]) == 0
    assert (tmp_path / "o4" / "pic" / "explain_relevance_a_dog.png").is_file()
    assert not (tmp_path / "o2").exists() or not any((tmp_path / "o2").rglob("result.json"))


# ------------------------------------------------------------------------------------------------------- downloads


def test_clip_and_siglip_download_with_their_tokenizers(folders, tmp_path, monkeypatch, picture):
    pytest.importorskip("huggingface_hub")
    from vitviz.engine import Engine
    from vitviz.models import zoo

    from .hub_server import HubServer

    server = HubServer()
    for family in FAMILIES:
        folder = folders[family][0]
        server.add_repo(f"tiny/{family}", {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()})
    server.add_repo("openai/clip-vit-base-patch32",
                    {p.name: p.read_bytes() for p in folders["clip"][0].iterdir() if p.is_file()})
    server.start()
    try:
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HTTPS_PROXY", "https_proxy"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        entry = zoo.REGISTRY["clip-b32"]
        monkeypatch.setitem(zoo.REGISTRY, "clip-b32", replace(entry, image_size=32, architecture={
            **entry.architecture, "patch_size": 8, "embed_dim": 48, "depth": 2, "num_heads": 4}))
        seen: list[tuple[int, int]] = []
        engine = Engine("clip-b32", device="cpu", progress=lambda done, total: seen.append((done, total)))
        assert seen and engine.has_text and server.count("GET", "tokenizer.json") == 1
        engine.set_labels("a cat, a dog")
        assert {p.label for p in engine.analyze(picture).predictions} == {"a cat", "a dog"}
        for family in FAMILIES:
            engine = Engine(f"hf:tiny/{family}", device="cpu")
            assert engine.scoring == ("softmax" if family == "clip" else "sigmoid")
            assert engine.analyze(picture).predictions
        assert server.count("GET", "spiece.model") == 1
    finally:
        server.stop()


@pytest.mark.parametrize("family, library, install", [
    ("clip", "tokenizers", "reinstall vitviz or pip install tokenizers"),  # a core dependency
    ("siglip", "sentencepiece", 'pip install "vitviz[text]"'),
])
def test_without_its_tokenizer_library_the_message_says_what_to_install(folders, monkeypatch, family, library,
                                                                        install):
    import re

    from vitviz.engine import Engine

    monkeypatch.setitem(sys.modules, library, None)  # import fails as if it were not installed
    with pytest.raises(VitvizError, match=re.escape(install)):
        Engine(str(folders[family][0]), device="cpu")


def test_cli_compare_two_image_text_models_on_the_same_labels(folders, tmp_path, picture):
    from PIL import Image

    from vitviz.cli import main

    image = tmp_path / "pic.png"
    Image.fromarray(picture).save(image)
    out = tmp_path / "out"
    assert main(["analyze", str(image), "--model", str(folders["clip"][0]), "--compare", str(folders["siglip"][0]),
                 "--labels", "a cat, a dog, a teapot", "--out", str(out), "--quiet"]) == 0
    data = json.loads((out / "pic" / "compare.json").read_text("utf-8"))
    labels = {"a cat", "a dog", "a teapot"}
    assert {p["label"] for p in data["a"]["predictions"]} == labels == {p["label"] for p in data["b"]["predictions"]}
    assert isinstance(data["top1_agree"], bool)  # the same labels: agreement is defined


def test_labels_and_templates_with_braces_are_taken_as_text(folders, picture):
    engine = _engine(folders["clip"][0])
    engine.set_labels("a {curly} cat, dog", ["a {photo} of {}"])  # only {} is the label's place
    assert engine.info.labels == ["a {curly} cat", "dog"] and engine.analyze(picture).predictions
