"""Engine results and the command line, on a real image file and a tiny checkpoint made by the tests."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from vitviz.cli import main
from vitviz.engine import Engine, PatchGrid, display_copy, prepare_image, select_device
from vitviz.errors import ImageLoadError, VitvizError

from .conftest import TINY_LABELS, box_downsample


@pytest.fixture(scope="module")
def engine(tiny_checkpoint):
    return Engine(tiny_checkpoint, device="cpu")


def test_result_object_holds_every_output(engine, photo):
    r = engine.analyze(photo, topk=3)
    # 96x64 photo, short side -> 32, keeps aspect: 48x32 -> grid 4 rows x 6 cols of 8 px patches
    assert r.image.shape == (32, 48, 3)
    assert (r.grid.rows, r.grid.cols, r.grid.patch_size) == (4, 6, 8)
    assert r.grid.original_size == (96, 64)
    assert [p.label for p in r.predictions] == [TINY_LABELS[i] for i in np.argsort(-r.probabilities)[:3]]
    assert r.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert r.attentions.shape == (3, 3, 25, 25)
    assert r.cls_attention.shape == (3, 3, 4, 6)
    np.testing.assert_allclose(r.cls_attention[1, 2].ravel(), r.attentions[1, 2, 0, 1:], rtol=1e-6)
    assert r.depth.shape == (32, 48) and (r.depth > 0).all()
    assert r.display_image is None and r.detail_image()[1] == 1  # kept only when asked for (the app does)
    kept = engine.analyze(photo, keep_display_image=True)
    assert kept.detail_image()[1] == 2 and kept.display_image.shape == (64, 96, 3)
    assert r.device == "cpu"
    assert set(r.timings) >= {"preprocess", "forward", "postprocess", "total"}
    assert r.query_attention(0, 5).shape == (3, 4, 6)
    roll = r.rollout()
    assert roll.shape == (4, 6) and 0 < roll.sum() < 1  # the rest of CLS's joint attention stays on CLS
    json.dumps(r.summary())


def test_engine_matches_direct_model_call(engine, photo):
    r = engine.analyze(photo)
    x = torch.from_numpy(r.image).permute(2, 0, 1).float().div(255)
    mean = torch.tensor(engine.info.mean).view(3, 1, 1)
    std = torch.tensor(engine.info.std).view(3, 1, 1)
    with torch.no_grad():
        out = engine.model(((x - mean) / std)[None])
    np.testing.assert_allclose(r.probabilities, torch.softmax(out.logits[0], -1).numpy(), rtol=1e-5, atol=1e-6)


def test_cancel_returns_none(engine, photo):
    assert engine.analyze(photo, cancelled=lambda: True) is None


@pytest.mark.parametrize(
    "size, expected_hw",
    [((640, 480), (32, 40)), ((480, 640), (40, 32)), ((1, 1), (32, 32)), ((3, 5000), (128, 8)), ((32, 32), (32, 32))],
)
def test_prepare_image_keeps_aspect_and_patch_multiple(size, expected_hw):
    """Short side to the model size, long side capped at 4x, both snapped to whole patches."""
    out = prepare_image(Image.new("RGB", size), 32, 8)
    assert out.shape == (*expected_hw, 3)


@pytest.mark.parametrize(
    "size, expected_hw",
    [((640, 480), (192, 240)), ((4000, 3000), (192, 240)), ((60, 40), None), ((96, 64), (64, 96))],
)
def test_display_copy_frames_the_model_input_sharper(size, expected_hw):
    """The enlarged views' copy: k x the model input (k whole), within the size cap, never upsampled past the
    original, framed exactly like the input; None when it would be no sharper."""
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    rgb = np.stack([255 * x / size[0], 255 * y / size[1], 128 + 100 * np.sin(x / size[0] * 6)], -1)
    img = Image.fromarray(rgb.astype(np.uint8))
    model_input = prepare_image(img, 32, 8)
    copy = display_copy(img, model_input.shape[:2], max_side=256)
    if expected_hw is None:
        assert copy is None
        return
    assert copy.shape == (*expected_hw, 3)
    k = copy.shape[0] // model_input.shape[0]
    assert copy.shape[1] == k * model_input.shape[1] and k * model_input.shape[1] <= size[0]
    assert np.abs(box_downsample(copy, k) - model_input).mean() < 3


@pytest.fixture(scope="module")
def shipped_engine():
    return Engine(None, device="cpu")


def test_frames_resized_on_the_device_analyse_like_the_cpu_path(shipped_engine):
    """The live path on an accelerator (here forced on the CPU): an RGB frame resized by torch gives the model
    input, display copy and predictions of Pillow's path to within resampling differences, and the model sees
    exactly the pixels the result draws."""
    from vitviz.synthetic.scenes import render_scene

    frame = np.asarray(Image.fromarray(render_scene(123_456, 400).image).resize((400, 300)))
    engine = shipped_engine
    engine.resize_on_device = False
    reference = engine.analyze(frame, keep_display_image=True)
    engine.resize_on_device = True
    try:
        prep = engine.prepare(frame, display=True)
        result = engine.analyze(frame, keep_display_image=True)
    finally:
        engine.resize_on_device = None
    assert prep.tensor is not None and prep.loaded.original_size == (400, 300)
    torch.testing.assert_close(prep.tensor, engine._tensor(prep.rgb, engine.info))
    assert result.image.shape == reference.image.shape and result.grid == reference.grid
    assert np.abs(result.image.astype(float) - reference.image).mean() < 0.5  # grey levels
    assert result.display_image.shape == reference.display_image.shape
    assert np.abs(result.display_image.astype(float) - reference.display_image).mean() < 0.5
    assert result.predictions[0].label == reference.predictions[0].label
    np.testing.assert_allclose(result.probabilities, reference.probabilities, atol=0.01)
    assert np.abs(result.cls_attention - reference.cls_attention).max() < 0.02
    # prepared for another device (the engine moved to the CPU after running out of GPU memory): made again
    prep.tensor = torch.zeros((1, 3, 1, 1), device="meta")
    moved = engine.analyze(prep)
    np.testing.assert_allclose(moved.probabilities, result.probabilities, atol=1e-5)


def test_arrays_the_device_path_does_not_take_go_through_pillow(shipped_engine):
    """Grey, RGBA and float frames are converted on the CPU as before, even when frames are resized on the device."""
    engine = shipped_engine
    engine.resize_on_device = True
    try:
        for frame in (np.full((90, 120), 128, np.uint8), np.full((90, 120, 4), 200, np.uint8)):
            prep = engine.prepare(frame)
            assert prep.tensor is None and prep.loaded.image is not None and prep.rgb.shape[2] == 3
    finally:
        engine.resize_on_device = None


def test_patch_grid_geometry():
    g = PatchGrid(rows=4, cols=6, patch_size=8, input_size=(32, 48), original_size=(96, 64))
    assert g.patch_at(0, 0) == 0
    assert g.patch_at(47.5, 31.9) == 23
    assert g.patch_at(9, 17) == 2 * 6 + 1
    assert g.patch_at(48, 0) is None
    assert g.patch_box(7) == (8, 8, 16, 16)


def test_device_selection():
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(VitvizError, match="CUDA"):
            select_device("cuda")


def test_cli_writes_all_outputs(tiny_checkpoint, photo, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["analyze", str(photo), "--out", str(out), "--model", str(tiny_checkpoint), "--topk", "2"]) == 0
    folder = out / "photo"
    names = {p.name for p in folder.iterdir()}
    assert names >= {
        "result.json", "input.png", "patch_grid.png", "heads_layer2.png", "rollout.png", "depth.png",
        "cls_attention.npy", "depth.npy",
    }
    assert "attentions.npy" not in names  # the full tensors only when asked for (attention-full)
    summary = json.loads((folder / "result.json").read_text())
    assert len(summary["predictions"]) == 2 and summary["predictions"][0]["label"] in TINY_LABELS
    assert summary["patch_grid"] == {"rows": 4, "cols": 6, "patch_size": 8}
    assert summary["timings_ms"]["total"] > 0
    assert np.load(folder / "cls_attention.npy").shape == (3, 3, 4, 6)
    assert np.load(folder / "depth.npy").shape == (32, 48)
    heads = np.asarray(Image.open(folder / "heads_layer2.png"))
    assert heads.shape[0] > 32 and heads.shape[1] > 48 * 2
    assert "photo.jpg" in capsys.readouterr().out


def test_cli_attention_full_writes_the_full_tensors(tiny_checkpoint, photo, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["analyze", str(photo), "--out", str(out), "--model", str(tiny_checkpoint),
                 "--outputs", "json,attention-npy,attention-full"]) == 0
    err = capsys.readouterr().err
    assert "attention-full writes" in err and "GB for 1 image" in err  # the size is said before writing
    full = np.load(out / "photo" / "attentions.npy")
    assert full.shape == (3, 3, 25, 25)
    engine = Engine(tiny_checkpoint, device="cpu")
    with torch.inference_mode():
        x = engine._tensor(engine.prepare(photo).rgb, engine.info)
        reference = torch.stack([a[0] for a in engine.model(x, return_attention=True).attentions]).numpy()
    np.testing.assert_allclose(full, reference, atol=1e-6)
    np.testing.assert_allclose(np.load(out / "photo" / "cls_attention.npy"),
                               reference[:, :, 0, 1:].reshape(3, 3, 4, 6), atol=1e-6)


def test_cli_fails_cleanly_on_corrupt_image(tiny_checkpoint, photo, tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(photo.read_bytes()[:200])
    code = main(["analyze", str(bad), "--out", str(tmp_path / "o"), "--model", str(tiny_checkpoint)])
    assert code == 1
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "damaged or truncated" in err
    assert "Traceback" not in err


def test_cli_bad_model_exits_2(photo, tmp_path, capsys):
    assert main(["analyze", str(photo), "--out", str(tmp_path), "--model", str(tmp_path / "nope.safetensors")]) == 2
    assert "no such" in capsys.readouterr().err


def test_cli_layer_out_of_range(tiny_checkpoint, photo, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["analyze", str(photo), "--out", str(out), "--model", str(tiny_checkpoint), "--layer", "9"]) == 2
    assert "out of range" in capsys.readouterr().err and not out.exists()  # refused before the first image


def test_console_script_runs_as_module(tiny_checkpoint, photo, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "vitviz", "analyze", str(photo), "--out", str(tmp_path), "--model", str(tiny_checkpoint)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "photo" / "depth.png").is_file()


def test_loading_a_text_file_named_jpg_is_refused(engine, tmp_path):
    fake = tmp_path / "notes.jpg"
    fake.write_text("hello, not an image")
    with pytest.raises(ImageLoadError, match="not an image"):
        engine.analyze(fake)


def test_version_prints_the_package_version(capsys):
    import vitviz

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"vitviz {vitviz.__version__}"
