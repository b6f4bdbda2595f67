"""examples/minivit: the trainer writes a state dict and its JSON that vitviz opens, from the checkpoint and from the
code alike, and never overwrites without --force."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from vitviz.models.minivit import load_minivit
from vitviz.synthetic.scenes import CLASSES

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "minivit"


def _import(name: str):
    spec = importlib.util.spec_from_file_location(f"example_minivit_{name}", EXAMPLE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_trained_example_opens_from_checkpoint_and_from_code(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the scene cache (data_cache/) goes here
    # train.py puts its folder on sys.path and imports model.py as "model": undone after the test.
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setitem(sys.modules, "model", None)
    monkeypatch.delitem(sys.modules, "model")
    train = _import("train")
    out = tmp_path / "run" / "minivit.pth"
    args = ["--out", str(out), "--minutes", "0.01", "--train-size", "8", "--val-size", "4", "--batch-size", "4",
            "--workers", "1"]
    assert train.main(args) == 0
    assert "validation (4 scenes, seed 2): top-1" in capsys.readouterr().out
    settings = json.loads(out.with_suffix(".json").read_text())
    assert settings["heads"] == train.CONFIG["num_heads"] and settings["classes"] == list(CLASSES)
    record = json.loads(out.with_suffix(".train.json").read_text())
    assert set(record["validation"]) == {"top1", "abs_rel"}

    opened = load_minivit(out)  # everything from the weights and the JSON beside them
    built = _import("model").build(out)
    assert opened["labels"] == built["labels"] == list(CLASSES)
    assert tuple(opened["mean"]) == tuple(built["mean"]) and opened["image_size"] == 128
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        (a_logits, a_depth), (b_logits, b_depth) = opened["model"](x), built["model"](x)
    assert torch.allclose(a_logits, b_logits, atol=1e-5) and torch.allclose(a_depth, b_depth, atol=1e-5)

    before = out.read_bytes()
    with pytest.raises(SystemExit, match="exists; pass --force"):
        train.main(args)
    assert out.read_bytes() == before
