"""The training script: a tiny run exports a loadable checkpoint, resumes, and its resizing helpers keep labels right."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitviz.models.checkpoint import load_checkpoint
from vitviz.synthetic.scenes import mask_coverage
from vitviz.synthetic.train import TrainConfig, patch_labels, patch_labels_resized, resize_batch, train


def _tiny_config(tmp_path, **kw) -> TrainConfig:
    base = dict(
        out=str(tmp_path / "run"), export=str(tmp_path / "weights" / "tiny"), train_size=24, val_size=8,
        image_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, batch_size=8, warmup_steps=2,
        minutes=0.05, max_epochs=2, workers=1, threads=1, low_res=16, low_res_fraction=0.5,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_tiny_training_run_exports_loadable_model_and_resumes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the scene cache goes to ./data_cache
    cfg = _tiny_config(tmp_path)
    weights = train(cfg)
    model, info = load_checkpoint(weights)
    assert info.config.image_size == 32 and len(info.labels) == 10
    out = model(torch.zeros(1, 3, 32, 32))
    assert out.logits.shape == (1, 10) and out.depth.shape == (1, 1, 32, 32)
    assert torch.isfinite(out.depth).all() and (out.depth > 0).all()
    record = json.loads((tmp_path / "weights" / "tiny.train.json").read_text())
    assert record["train_config"]["low_res"] == 16 and record["epochs"] == 2
    assert len(record["history"]) == 2
    assert list((tmp_path / "data_cache").glob("scenes-v*-s1-n24-32px.npz"))

    # resuming a finished run trains one more epoch on top of the saved state instead of starting over
    more = _tiny_config(tmp_path, max_epochs=3, minutes=0.1, precision="fp32")
    train(more, resume=True)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[2]["steps"] > history[1]["steps"]


def test_token_labels_follow_the_mask_coverage_of_each_patch():
    rng = np.random.default_rng(0)
    masks = rng.random((5, 32, 32)) < 0.5
    masks[:, :16, :16] = True
    masks[:, 16:, 16:] = False
    labels = np.arange(5)
    tokens = patch_labels(masks, labels, patch=8, background=10)
    block_cover = masks.reshape(5, 4, 8, 4, 8).mean(axis=(2, 4))
    assert np.array_equal(tokens, np.where(block_cover >= 0.5, labels[:, None, None], 10))
    assert (tokens[:, :2, :2] == labels[:, None, None]).all() and (tokens[:, 2:, 2:] == 10).all()
    assert (patch_labels_resized(masks, labels, grid=2, background=10)[:, 0, 0] == labels).all()


@pytest.mark.parametrize("grid", [(4, 4), (6, 6), (3, 5), (7, 2)])
def test_mask_coverage_pools_like_adaptive_average_pooling(grid):
    masks = np.random.default_rng(1).random((3, 32, 24)) < 0.3
    expected = F.adaptive_avg_pool2d(torch.from_numpy(masks).float().unsqueeze(1), grid)[:, 0].numpy()
    np.testing.assert_allclose(mask_coverage(masks, grid, chunk=2), expected, atol=1e-6)


def test_resize_batch_keeps_depth_within_the_original_range():
    x = torch.rand(2, 3, 32, 32)
    depth = torch.rand(2, 32, 32) * 5 + 0.5
    xs, ds = resize_batch(x, depth, 16)
    assert xs.shape == (2, 3, 16, 16) and ds.shape == (2, 16, 16)
    assert float(ds.min()) >= float(depth.min()) - 1e-5 and float(ds.max()) <= float(depth.max()) + 1e-5
    const = torch.full((1, 32, 32), 2.5)
    assert torch.allclose(resize_batch(x[:1], const, 16)[1], torch.full((1, 16, 16), 2.5))


def test_gradient_matching_ignores_scale_and_penalises_misplaced_depth_edges():
    from vitviz.synthetic.train import gradient_matching_loss

    gt = torch.ones(1, 32, 32)
    gt[:, :, 16:] = 3.0  # a depth edge between columns 15 and 16
    scaled = 1.3 * gt  # right shape, wrong overall distance
    shifted = torch.ones(1, 32, 32)
    shifted[:, :, 20:] = 3.0  # the same edge, four pixels off
    err = lambda pred: pred.log() - gt.log()  # noqa: E731
    assert float(gradient_matching_loss(err(scaled))) == pytest.approx(0.0, abs=1e-6)
    assert float(gradient_matching_loss(err(shifted))) > 0.01
    # a smooth error costs less than the same error magnitude concentrated at a wrong edge
    ramp = torch.linspace(0, 1.0986, 32).view(1, 1, 32).expand(1, 32, 32)
    assert float(gradient_matching_loss(ramp)) < float(gradient_matching_loss(err(shifted)))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_asking_for_a_gpu_without_one_fails_with_a_clear_message():
    from vitviz.synthetic.train import training_device

    assert training_device("auto").type == "cpu"
    with pytest.raises(SystemExit, match="sees no CUDA GPU"):
        training_device("cuda")


def test_a_run_without_export_leaves_the_shipped_weights_alone(tmp_path, monkeypatch, capsys):
    from vitviz.synthetic.train import main

    monkeypatch.chdir(tmp_path)  # as from the repository root: weights/ beside runs/ and data_cache/
    shipped = tmp_path / "weights" / "vitviz-mini.safetensors"
    shipped.parent.mkdir()
    shipped.write_bytes(b"the shipped weights")
    flags = {k: v for k, v in vars(_tiny_config(tmp_path, out="runs/tiny")).items() if k != "export"}
    argv = [x for k, v in flags.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    assert main(argv) == 0
    assert sorted(p.name for p in shipped.parent.iterdir()) == ["vitviz-mini.safetensors"]
    assert shipped.read_bytes() == b"the shipped weights"
    assert (tmp_path / "runs" / "tiny" / "state.pt").is_file()
    assert "not exported (no --export)" in capsys.readouterr().out


def test_the_image_text_trainer_exports_only_where_asked():
    from vitviz.synthetic.train_text import build_parser

    assert build_parser().parse_args([]).export is None
    assert build_parser().parse_args(["--export", "weights/vitviz-mini-text"]).export == "weights/vitviz-mini-text"
