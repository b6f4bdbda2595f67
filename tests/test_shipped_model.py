"""The shipped model: it loads, it recognises generated scenes, and its model card's figures are reproducible."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from vitviz.models.checkpoint import load_checkpoint
from vitviz.synthetic.evaluate import evaluate
from vitviz.synthetic.scenes import CLASSES, render_scene

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "weights"
CONFIG = WEIGHTS / "vitviz-mini.json"


def test_shipped_files_are_small_and_complete():
    files = [CONFIG, CONFIG.with_suffix(".safetensors"), WEIGHTS / "README.md"]
    assert all(f.is_file() for f in files)
    assert sum(f.stat().st_size for f in WEIGHTS.iterdir() if f.is_file()) < 25 * 1024 * 1024
    model, info = load_checkpoint(CONFIG)
    assert info.labels == list(CLASSES)
    assert info.depth_kind == "metric"
    assert model.head is not None and model.depth_head is not None


def test_shipped_model_classifies_generated_scenes(tmp_path):
    from vitviz.engine import Engine

    engine = Engine("vitviz-mini", device="cpu")
    seeds = range(900_000, 900_200)  # not among the training, validation or model-card scenes (~10 s)
    correct, depth_errors = 0, []
    for seed in seeds:
        scene = render_scene(seed, 128)
        result = engine.analyze(scene.image)
        correct += result.predictions[0].label == CLASSES[scene.label]
        depth_errors.append(np.median(np.abs(result.depth - scene.depth) / scene.depth))
    # Issue #4: at least 85 % on a fixed set. The shipped model gets 193 of these 200 (96.5 %; 97.6 % on the card's
    # 2,000 scenes, 97.0 % on another 2,000); its closest call has a 0.028 probability margin, far above CPU-to-CPU
    # rounding differences.
    assert correct / len(seeds) >= 0.85
    assert np.mean(depth_errors) < 0.22  # metric depth in the right range (this set: 0.086; card AbsRel 0.090)


def _card_figures() -> dict[str, float]:
    text = (WEIGHTS / "README.md").read_text("utf-8")
    figures = {}
    for key, pattern in {
        "top1": r"\| top-1 accuracy \| ([\d.]+) %",
        "abs_rel": r"\| depth AbsRel \| ([\d.]+) ",
        "delta1": r"\| depth δ < 1\.25 \| ([\d.]+) %",
        "attention_last": r"\| CLS attention on the object, last layer \| ([\d.]+) %",
    }.items():
        match = re.search(pattern, text)
        assert match, f"model card lacks the {key} figure"
        figures[key] = float(match.group(1))
    return figures


@pytest.mark.slow
def test_model_card_figures_are_reproduced():
    """Re-run the card's evaluation (2,000 held-out scenes) and compare within one point."""
    card = _card_figures()
    recorded = json.loads(CONFIG.with_suffix(".eval.json").read_text())
    result = evaluate(CONFIG, n=recorded["scenes"], seed=recorded["seed"], workers=2)
    assert result["scenes"] >= 2000
    assert abs(100 * result["top1"] - card["top1"]) <= 1.0
    assert abs(100 * result["abs_rel"] - 100 * card["abs_rel"]) <= 1.0
    assert abs(100 * result["delta1"] - card["delta1"]) <= 1.0
    assert abs(100 * result["attention_on_mask"][-1] - card["attention_last"]) <= 1.0


def test_model_card_reproduce_command_recreates_the_shipped_run_configuration():
    """The card's ``python -m vitviz.synthetic.train`` command, parsed by the training script, gives the recorded settings."""
    import shlex

    from vitviz.synthetic.train import build_parser

    text = (WEIGHTS / "README.md").read_text("utf-8")
    match = re.search(r"python -m vitviz\.synthetic\.train (.*?)\n\s*python benchmarks", text, re.S)
    assert match, "model card lacks the reproduce command"
    args = vars(build_parser().parse_args(shlex.split(match.group(1).replace("\\\n", " "))))
    recorded = json.loads(CONFIG.with_suffix(".train.json").read_text())["train_config"]
    differing = {k: (args[k], v) for k, v in recorded.items() if k not in ("out", "export", "threads") and args[k] != v}
    assert differing == {}
