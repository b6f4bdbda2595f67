"""The evaluation behind the model card: its metrics mean what the card says they mean."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vitviz.models.checkpoint import ModelInfo, save_checkpoint
from vitviz.synthetic.evaluate import evaluate, evaluate_arrays
from vitviz.models.vit import ViTOutput, build_model
from vitviz.synthetic.scenes import CLASSES

from .conftest import tiny_config


class _Oracle(torch.nn.Module):
    """Predicts the given classes and ``scale`` x the true depth, attends uniformly; ignores the image."""

    def __init__(self, labels, depths, scale, num_classes=3, layers=2, heads=2, patch=8):
        super().__init__()
        self.config = SimpleNamespace(patch_size=patch, depth=layers, num_classes=num_classes)
        self.labels, self.depths, self.scale, self.heads = labels, depths, scale, heads
        self.seen = 0

    def forward(self, x, return_attention=False):
        b, _, h, w = x.shape
        sl = slice(self.seen, self.seen + b)
        self.seen += b
        logits = torch.nn.functional.one_hot(torch.as_tensor(self.labels[sl]), self.config.num_classes).float()
        depth = torch.as_tensor(self.depths[sl]).float().unsqueeze(1) * torch.as_tensor(self.scale[sl]).view(-1, 1, 1, 1)
        t = 1 + (h // self.config.patch_size) * (w // self.config.patch_size)
        att = torch.full((b, self.heads, t, t), 1.0 / t)
        return ViTOutput(tokens=torch.zeros(b, t, 4), logits=logits, depth=depth, attentions=[att] * self.config.depth)


def _data(n=6, h=16, w=24):
    rng = np.random.default_rng(0)
    masks = np.zeros((n, h, w), bool)
    masks[:, :8, :8] = True  # one of the 6 patches fully covered
    return {
        "images": rng.integers(0, 255, (n, h, w, 3), dtype=np.uint8),
        "depths": rng.uniform(0.5, 5.0, (n, h, w)).astype(np.float32),
        "masks": masks,
        "labels": np.array([0, 1, 2, 0, 1, 2]),
    }


def test_metrics_of_a_known_prediction():
    data = _data()
    predicted = np.array([0, 1, 2, 0, 2, 1])  # 4 of 6 right
    scale = np.array([1.0, 1.0, 2.0, 2.0, 0.5, 1.0])  # exact, exact, twice, twice, half, exact
    model = _Oracle(predicted, data["depths"], scale)
    result = evaluate_arrays(model, data, mean=(0.5,) * 3, std=(0.5,) * 3, batch=4)
    assert result["scenes"] == 6 and result["top1"] == pytest.approx(4 / 6)
    # AbsRel per scene: 0, 0, 1, 1, 0.5, 0 -> mean 2.5 / 6; delta < 1.25 holds on the 3 exact scenes only
    assert result["abs_rel"] == pytest.approx(2.5 / 6, rel=1e-5)
    assert result["delta1"] == pytest.approx(0.5)
    # a per-image scale error disappears after median scaling
    assert result["abs_rel_median_scaled"] == pytest.approx(0.0, abs=1e-6)
    assert result["delta1_median_scaled"] == pytest.approx(1.0)
    # uniform attention scores the object's share of the patches, in every layer
    assert result["mask_area"] == pytest.approx(1 / 6)
    assert result["attention_on_mask"] == pytest.approx([1 / 6, 1 / 6])
    assert np.array(result["confusion"]).sum() == 6 and np.trace(np.array(result["confusion"])) == 4


def test_evaluate_renders_scenes_at_a_requested_size(tmp_path, tiny_checkpoint):
    with pytest.raises(ValueError, match="has 5 classes; the generated scenes have 10"):
        evaluate(tiny_checkpoint, n=2)
    torch.manual_seed(0)
    model = build_model(tiny_config(num_classes=len(CLASSES)))
    info = ModelInfo(name="tiny10", config=model.config, labels=list(CLASSES), depth_kind="metric")
    save_checkpoint(model, info, tmp_path / "tiny10")
    square = evaluate(tmp_path / "tiny10.json", n=3, seed=11)
    wide = evaluate(tmp_path / "tiny10.json", n=3, seed=11, size=(32, 48))
    assert square["size"] == [32, 32] and wide["size"] == [32, 48]
    assert square["scenes"] == wide["scenes"] == 3
    assert len(wide["attention_on_mask"]) == 3 and 0.0 <= wide["top1"] <= 1.0
    assert wide["abs_rel"] > 0
