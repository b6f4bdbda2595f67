"""The shipped image-text model (weights/vitviz-mini-text): read like any Hub CLIP folder, listed as shipped, naming
the shapes of scenes offline, and saying which typed words it has never seen."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vitviz.app import paths
from vitviz.engine import Engine
from vitviz.models import zoo
from vitviz.models.convert import detect_layout, find_foreign_checkpoint

NAME = "vitviz-mini-text"
FOLDER = paths.weights_dir() / NAME
SAMPLES = Path(__file__).resolve().parent.parent / "assets" / "samples"
SHAPES = ["sphere", "cube", "cylinder", "cone", "torus", "pyramid", "capsule", "ring", "tetrahedron", "star prism"]


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(NAME, device="cpu")


def test_the_folder_is_a_hub_clip_folder_read_by_the_same_loader(engine):
    ckpt = find_foreign_checkpoint(FOLDER)
    assert ckpt.config["model_type"] == "clip"
    assert detect_layout({}, ckpt.config) == "hf-clip"
    assert zoo.is_foreign_checkpoint(FOLDER)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json"):
        assert (FOLDER / name).is_file()
    assert engine.info.source == str(FOLDER)
    assert engine.has_text and engine.scoring == "softmax"
    assert engine.info.depth_kind is None and engine.model.depth_head is None  # see the card: depth went
    assert engine.info.domain_detector is not None
    assert engine.info.labels == SHAPES


def test_it_adds_at_most_ten_megabytes():
    size = sum(p.stat().st_size for p in FOLDER.iterdir() if p.is_file())
    assert size <= 10 * 2**20


def test_it_is_listed_as_shipped_in_the_app_and_the_cli(capsys):
    shipped = {m.name: m for m in paths.shipped_models()}
    assert NAME in shipped and shipped[NAME].config == FOLDER and not shipped[NAME].has_depth
    assert paths.shipped_models()[0].name == paths.DEFAULT_MODEL
    from vitviz.cli import main

    assert main(["models"]) == 0
    shipped_part = capsys.readouterr().out.split("Pretrained")[0]
    assert NAME in shipped_part


def test_zero_shot_it_names_the_shapes_of_the_sample_scenes(engine):
    engine.set_labels(SHAPES, templates=["a photo of a {}."])
    scenes = sorted(SAMPLES.glob("scene-*.png"))
    assert len(scenes) >= 5
    named = [engine.analyze(str(p)).predictions[0].label == p.stem[len("scene-"):].replace("-", " ")
             for p in scenes]  # scene-star-prism.png: "star prism"
    assert sum(named) >= len(scenes) - 1, named


@pytest.mark.xfail(strict=True, reason="issue 45, not met: the shipped model does not see the capsule sample's red "
                   "ball (its card: the per-word candidate trained for it was not shipped)")
def test_it_names_both_objects_of_a_two_object_sample_above_one_half(engine):
    """The README's picture: the capsule sample, with a red ball beside the capsule (2.5 % of the model's 128 px
    view). Both typed words should score above 0.5 and absent ones below it; strict, so that a model that does this
    turns the mark into a failure to remove."""
    engine.set_labels("capsule, red ball, cube, blue box, pyramid", templates=["a photo of a {}."])
    try:
        result = engine.analyze(str(SAMPLES / "scene-capsule.png"))
    finally:
        engine.set_labels(SHAPES, templates=["a photo of a {}."])
    scores = dict(zip(result.labels, result.probabilities.tolist()))
    assert max(scores["cube"], scores["blue box"], scores["pyramid"]) < 0.5, scores
    assert scores["capsule"] > 0.5 and scores["red ball"] > 0.5, scores


def test_a_word_it_has_never_seen_gets_a_notice_not_a_refusal(engine):
    notices = engine.set_labels("red ball, teapot, blue cube, Zebra")
    assert "the model has never seen: teapot, Zebra" in notices
    assert engine.info.labels == ["red ball", "teapot", "blue cube", "Zebra"]  # still asked about
    assert not [n for n in engine.set_labels("red ball, small blue box") if "never seen" in n]
    assert "the model has never seen: teapot" in engine.set_labels("cube", templates=["a teapot {}"])
    engine.set_labels(SHAPES, templates=["a photo of a {}."])


def test_its_vocabulary_and_presets_reach_the_app(engine):
    words = engine.info.tokenizer.vocabulary
    for word in ("sphere", "ball", "red", "grey", "left", "behind", "small", "object"):
        assert word in words
    assert "[UNK]" not in words and "<|endoftext|>" not in words
    presets = engine.info.presets
    assert presets["Its shapes"].split(", ")[0] == "sphere"
    for name, labels in presets.items():  # every preset is in its vocabulary
        assert not [n for n in engine.set_labels(labels, templates=["a photo of a {}."]) if "never seen" in n], name
    config = json.loads((FOLDER / "config.json").read_text())
    assert config["vitviz"]["vocabulary"] == words


def test_a_clip_tokenizer_reports_no_unknown_words(tmp_path):
    pytest.importorskip("transformers")
    from .imagetext_models import make_clip

    make_clip(tmp_path)
    clip = Engine(str(tmp_path), device="cpu")
    assert clip.info.tokenizer.unknown_words("zebra teapot") == []
    assert not [n for n in clip.set_labels("zebra, teapot") if "never seen" in n]


def test_what_it_kept_frozen_is_vitviz_minis(engine):
    """The patch embedding, CLS token and positional embedding (and any blocks the recipe froze) are vitviz-mini's."""
    from vitviz.models.checkpoint import load_checkpoint

    mini, _ = load_checkpoint(paths.weights_dir() / "vitviz-mini.json")
    frozen = json.loads((FOLDER / "train.json").read_text())["train_config"]["frozen_blocks"]
    ours, theirs = engine.model.state_dict(), mini.state_dict()
    shared = [k for k in theirs if k.startswith(("patch_embed.", "pos_embed", "cls_token"))
              or (k.startswith("blocks.") and int(k.split(".")[1]) < frozen)]
    assert {"patch_embed.proj.weight", "cls_token", "pos_embed"} <= set(shared)
    assert len(shared) == 4 + 12 * frozen  # 12 tensors a block
    for key in shared:  # stored in float16
        assert ours[key].equal(theirs[key].half().float()), key
