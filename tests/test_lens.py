"""The logit lens (vitviz.lens): every layer's answer through the final norm and classifier, the engine's method and
``vitviz analyze --lens``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vitviz.cli import main
from vitviz.engine import Engine
from vitviz.lens import logit_lens
from vitviz.models import zoo
from vitviz.models.reference import randomize


def test_the_lens_equals_transformers_hidden_states_through_its_norm_and_classifier(tmp_path):
    tf = pytest.importorskip("transformers", minversion="4.47")
    cfg = tf.ViTConfig(hidden_size=24, num_hidden_layers=3, num_attention_heads=3, intermediate_size=72,
                       image_size=32, patch_size=8, num_labels=5, attn_implementation="eager")
    ref = randomize(tf.ViTForImageClassification(cfg), seed=2).eval()
    ref.save_pretrained(tmp_path / "hf")
    model, _info = zoo.load(tmp_path / "hf")
    x = torch.randn(1, 3, 32, 48, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        r = ref(x, output_hidden_states=True, interpolate_pos_encoding=True)
        out = model(x, return_hidden=True)
        # transformers: hidden_states[0] is the embedding output, [l + 1] block l's output
        per_layer = torch.stack([ref.classifier(ref.vit.layernorm(hs))[0] for hs in r.hidden_states[1:]])  # [L,T,C]
    lens = logit_lens(model, torch.stack([h[0] for h in out.hidden_states]), out.grid, topk=3)
    want_cls = torch.softmax(per_layer[:, 0], dim=-1).numpy()
    np.testing.assert_allclose(lens.cls_probabilities, want_cls, atol=1e-5)
    want_patch = torch.softmax(per_layer[:, 1:], dim=-1).numpy()[..., lens.classes].reshape(3, 4, 6, 3)
    np.testing.assert_allclose(lens.patch_probabilities, want_patch, atol=1e-5)
    np.testing.assert_allclose(lens.cls_probabilities[-1], torch.softmax(r.logits[0], -1).numpy(), atol=1e-5)
    assert list(lens.classes) == list(np.argsort(-lens.cls_probabilities[-1])[:3])


def test_the_engine_lens_ends_in_the_models_own_prediction(tiny_checkpoint, photo):
    engine = Engine(tiny_checkpoint, device="cpu")
    result = engine.analyze(photo, features=True)
    lens = engine.lens(result)
    assert lens.cls_probabilities.shape == (result.num_layers, len(result.labels))
    np.testing.assert_allclose(lens.cls_probabilities[-1], result.probabilities, atol=1e-5)
    assert lens.labels[0] == result.predictions[0].label
    assert lens.patch_probabilities.shape == (result.num_layers, result.grid.rows, result.grid.cols, 5)
    assert lens.first_layer_of(int(lens.classes[0])) is not None
    from vitviz.errors import VitvizError

    with pytest.raises(VitvizError, match="features=True"):
        engine.lens(engine.analyze(photo))


def test_cli_lens_writes_lens_npz(tiny_checkpoint, photo, tmp_path):
    out = tmp_path / "out"
    assert main(["analyze", str(photo), "--out", str(out), "--model", str(tiny_checkpoint), "--lens", "--quiet",
                 "--outputs", "json"]) == 0
    folder = out / photo.stem
    with np.load(folder / "lens.npz") as npz:
        cls, patches, classes = npz["cls_probabilities"], npz["patch_probabilities"], npz["classes"]
        labels = list(npz["labels"])
    summary = json.loads((folder / "result.json").read_text())
    assert cls.dtype == np.float32 and cls.shape == (3, 5)  # the tiny model: 3 layers, 5 classes
    np.testing.assert_allclose(cls[-1][classes[0]], summary["predictions"][0]["probability"], atol=1e-5)
    assert labels[0] == summary["predictions"][0]["label"] and patches.ndim == 4
    # resumable: a second run finds the folder complete, lens.npz included
    assert main(["analyze", str(photo), "--out", str(out), "--model", str(tiny_checkpoint), "--lens", "--quiet",
                 "--outputs", "json"]) == 0


def test_cli_lens_needs_a_classifier(tmp_path, photo, capsys):
    from vitviz.models.checkpoint import ModelInfo, save_checkpoint
    from vitviz.models.vit import build_model

    from .conftest import tiny_config

    model = build_model(tiny_config(num_classes=0))
    save_checkpoint(model, ModelInfo(name="headless", config=model.config, labels=[], depth_kind="metric"),
                    tmp_path / "headless")
    out = tmp_path / "out"
    assert main(["analyze", str(photo), "--out", str(out), "--model", str(tmp_path / "headless.json"), "--lens"]) == 2
    assert "needs a model with a classifier" in capsys.readouterr().err and not out.exists()


def test_the_lens_view_plots_every_layer_and_follows_the_layer(qtbot, tiny_checkpoint, photo, tmp_path):
    pytest.importorskip("pytestqt")
    from PySide6.QtCore import QSettings

    from vitviz.app.main_window import MainWindow

    (tmp_path / "samples").mkdir()
    window = MainWindow(settings=QSettings(str(tmp_path / "v.ini"), QSettings.Format.IniFormat),
                        samples=tmp_path / "samples")
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.model_ready, timeout=30_000):
        window.load_model(str(tiny_checkpoint), "cpu")
    with qtbot.waitSignal(window.result_ready, timeout=30_000):
        window.open_image(str(photo))
    panel = window.lens_panel
    window.side_views.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: panel.plot is not None)
    lens = window.state.shown.lens
    curves = panel.plot.getPlotItem().listDataItems()
    assert len(curves) == len(lens.classes)
    np.testing.assert_allclose(curves[0].getData()[1], lens.cls_probabilities[:, lens.classes[0]], atol=1e-6)
    window.state.set_layer(0)
    np.testing.assert_allclose(panel.values, lens.patch_probabilities[0, :, :, 0], atol=1e-6)
    assert "layer 0" in panel.title.text() and panel.layer_line.value() == 0
    window.state.set_target(int(lens.classes[1]))  # another class: its map
    np.testing.assert_allclose(panel.values, lens.patch_probabilities[0, :, :, 1], atol=1e-6)
    window.close()


def test_patch_maps_are_computed_when_first_asked_for_one_layer_at_a_time(tiny_checkpoint, photo):
    engine = Engine(tiny_checkpoint, device="cpu")
    result = engine.analyze(photo, features=True)
    rows: list[int] = []
    original = engine.model.patch_logits
    engine.model.patch_logits = lambda tokens, *args: (rows.append(tokens.shape[0]), original(tokens, *args))[1]
    lens = engine.lens(result)
    assert rows == []  # the class probabilities per layer alone
    one = lens.patch_map(1)
    assert rows == [result.grid.num_patches] and one.shape == (result.grid.rows, result.grid.cols, 5)
    lens.patch_map(1)
    assert len(rows) == 1  # kept
    every = lens.patch_probabilities  # the other layers, together
    assert sum(rows) == result.num_layers * result.grid.num_patches
    np.testing.assert_array_equal(every[1], one)
    engine.model.patch_logits = original
    eager = engine.lens(result).patch_probabilities
    np.testing.assert_allclose(every, eager, atol=1e-6)
