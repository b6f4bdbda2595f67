"""Hardening of ``vitviz analyze`` and the engine: bad images, odd images, bad checkpoints, unexpected errors, OOM.

The command line must exit 1 (image problems) or 2 (model problems) with exactly one line per failure that names the
file and the reason, never a traceback (unless ``VITVIZ_DEBUG=1``) and never a stray warning.
"""

from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from vitviz import cli
from vitviz.engine import Engine

from .hardening_cases import BAD_CHECKPOINTS, BAD_IMAGES, ODD_IMAGES, PWNED_MARKER, exif_rotated, gradient

NOISY = (DeprecationWarning, PendingDeprecationWarning)


def run_cli(argv, capsys):
    """Run ``vitviz`` in-process; returns (exit code, stdout, stderr lines, warnings a user would see)."""
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    shown = [f"{w.category.__name__}: {w.message}" for w in caught if not issubclass(w.category, NOISY)]
    return code, out, [line for line in err.splitlines() if line.strip()], shown


def error_lines(lines):
    return [line for line in lines if line.startswith("vitviz: error:")]


@pytest.fixture(scope="module")
def engine(tiny_checkpoint):
    return Engine(tiny_checkpoint, device="cpu")


# ----------------------------------------------------------------------------------------------------- images


@pytest.mark.parametrize("kind", list(BAD_IMAGES))
def test_cli_refuses_a_bad_image_with_one_line(kind, tiny_checkpoint, tmp_path, capsys):
    make, reason = BAD_IMAGES[kind]
    path = make(tmp_path)
    out = tmp_path / "out"
    code, _, err, shown = run_cli(["analyze", path, "--out", out, "--model", tiny_checkpoint], capsys)
    assert code == 1
    errors = error_lines(err)
    assert len(errors) == 1, err
    assert str(path) in errors[0] and reason in errors[0]
    assert not any("Traceback" in line for line in err)
    assert err[-1] == f"vitviz: 1 of 1 image(s) failed: {errors[0].removeprefix('vitviz: error: ')}"  # and why
    assert set(err) - set(errors) <= {err[-1]}
    assert not shown
    # nothing half-written:
    assert {p.name for p in out.iterdir()} <= {".vitviz-run.json", "results.csv", "results.parquet"}
    with open(out / "results.csv", newline="") as fh:  # but the table says which image failed, and why
        rows = list(csv.DictReader(fh))
    assert [(r["status"], r["error"]) for r in rows] == [("error", errors[0].removeprefix("vitviz: error: "))]


def test_cli_reports_each_bad_image_and_still_analyses_the_good_ones(tiny_checkpoint, photo, tmp_path, capsys):
    bad = {kind: make(tmp_path) for kind, (make, _) in BAD_IMAGES.items()}
    out = tmp_path / "out"
    code, stdout, err, shown = run_cli(
        ["analyze", *bad.values(), photo, "--out", out, "--model", tiny_checkpoint, "--quiet"], capsys
    )
    assert code == 1
    errors = error_lines(err)
    assert len(errors) == len(bad)
    for (kind, path), line in zip(bad.items(), errors):
        assert str(path) in line and BAD_IMAGES[kind][1] in line, kind
    assert f"{len(bad)} of {len(bad) + 1} image(s) failed" in err[-1]
    assert (out / "photo" / "result.json").is_file() and "photo.jpg" in stdout
    assert not shown


def test_the_end_of_run_line_names_the_most_common_reason_and_where_the_others_are(tiny_checkpoint, photo,
                                                                                  tmp_path, capsys):
    make_truncated, truncated = BAD_IMAGES["truncated-jpeg"]
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    cut = [make_truncated(tmp_path / folder) for folder in ("a", "b")]
    text = BAD_IMAGES["text-named-jpg"][0](tmp_path)
    out = tmp_path / "out"
    code, _, err, _ = run_cli(["analyze", *cut, text, photo, "--out", out, "--model", tiny_checkpoint, "--quiet"],
                              capsys)
    assert code == 1
    assert err[-1] == (f"vitviz: 3 of 4 image(s) failed; the most common reason (2 of them): the image is {truncated}; "
                       f"the others: the error column of {out / 'results.csv'}")

    code, _, err, _ = run_cli(["analyze", *cut, "--out", tmp_path / "out2", "--model", tiny_checkpoint], capsys)
    assert code == 1
    assert err[-1] == (f"vitviz: 2 of 2 image(s) failed, all: the image is {truncated} (each file's reason: the "
                       f"error column of {tmp_path / 'out2' / 'results.csv'})")


@pytest.mark.parametrize("kind", list(ODD_IMAGES))
def test_cli_analyses_odd_but_good_images(kind, tiny_checkpoint, tmp_path, capsys):
    make, notice = ODD_IMAGES[kind]
    path = make(tmp_path)
    out = tmp_path / "out"
    code, stdout, err, shown = run_cli(["analyze", path, "--out", out, "--model", tiny_checkpoint], capsys)
    assert code == 0, err
    assert err == [] and not shown
    folder = out / path.stem
    names = {p.name for p in folder.iterdir()}
    assert {"result.json", "input.png", "patch_grid.png", "heads_layer2.png", "rollout.png", "depth.png",
            "cls_attention.npy", "depth.npy"} <= names
    summary = json.loads((folder / "result.json").read_text())
    assert summary["patch_grid"]["rows"] >= 1 and summary["patch_grid"]["cols"] >= 1
    assert len(summary["predictions"]) == 5
    if notice:
        assert any(notice in n for n in summary["notices"]), summary["notices"]
    assert str(path) in stdout


def test_cli_exif_rotated_image_is_analysed_upright(tiny_checkpoint, tmp_path, capsys):
    path = exif_rotated(tmp_path)
    code, _, err, _ = run_cli(["analyze", path, "--out", tmp_path / "out", "--model", tiny_checkpoint], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "out" / "rotated" / "result.json").read_text())
    assert summary["original_size"] == {"width": 20, "height": 40}
    assert summary["input_size"]["height"] > summary["input_size"]["width"]  # portrait, as the camera saw it
    rgb = np.asarray(Image.open(tmp_path / "out" / "rotated" / "input.png"))
    assert rgb[2, rgb.shape[1] // 2, 0] > 200 and rgb[-3, rgb.shape[1] // 2, 2] > 200  # red on top, blue below


# ------------------------------------------------------------------------------------------------ checkpoints


@pytest.mark.parametrize("kind", list(BAD_CHECKPOINTS))
def test_cli_refuses_a_bad_checkpoint_with_one_line(kind, tiny_checkpoint, photo, tmp_path, capsys):
    PWNED_MARKER.unlink(missing_ok=True)
    make, reason = BAD_CHECKPOINTS[kind]
    spec = make(tiny_checkpoint, tmp_path / "ckpt")
    code, _, err, shown = run_cli(["analyze", photo, "--out", tmp_path / "out", "--model", spec], capsys)
    assert code == 2
    assert len(err) == 1 and err[0].startswith("vitviz: error:"), err
    assert reason in err[0] and str(spec.parent) in err[0]  # names the file it refused
    assert not shown, shown
    assert not PWNED_MARKER.exists()  # the pickle was refused, not run


# ----------------------------------------------------------------------------------------- unexpected errors


def test_cli_unexpected_engine_error_is_one_line_per_image(tiny_checkpoint, photo, tmp_path, capsys, monkeypatch):
    weird = tmp_path / "weird.png"
    Image.fromarray(gradient()).save(weird)
    real = Engine.prepare  # the per-image step of the batched pipeline (decoding, resizing)

    def flaky(self, image, *args, **kwargs):
        if str(image) == str(weird):
            raise RuntimeError("shape '[1, 3, -1]' is invalid for input of size 7\nsecond line of torch detail")
        return real(self, image, *args, **kwargs)

    monkeypatch.setattr(Engine, "prepare", flaky)
    monkeypatch.delenv("VITVIZ_DEBUG", raising=False)
    argv = ["analyze", weird, photo, "--out", tmp_path / "out", "--model", tiny_checkpoint, "--quiet"]
    code, stdout, err, _ = run_cli(argv, capsys)
    assert code == 1
    assert error_lines(err) == [
        f"vitviz: error: {weird}: unexpected error: RuntimeError: shape '[1, 3, -1]' is invalid for input of size 7"
    ]
    assert not any("Traceback" in line for line in err)
    assert (tmp_path / "out" / "photo" / "result.json").is_file()  # the next image still ran

    monkeypatch.setenv("VITVIZ_DEBUG", "1")
    code, _, err, _ = run_cli(argv, capsys)
    assert code == 1 and any("Traceback" in line for line in err)


def test_cli_unexpected_error_while_loading_the_model_exits_2(tiny_checkpoint, photo, tmp_path, capsys, monkeypatch):
    import vitviz.engine

    def broken(spec, progress=None):
        raise RuntimeError("CUDA driver initialization failed")

    monkeypatch.setattr(vitviz.engine, "resolve_model", broken)
    monkeypatch.delenv("VITVIZ_DEBUG", raising=False)
    code, _, err, _ = run_cli(["analyze", photo, "--out", tmp_path, "--model", tiny_checkpoint], capsys)
    assert code == 2
    assert err == ["vitviz: error: unexpected error: RuntimeError: CUDA driver initialization failed"]


def test_cli_out_of_memory_is_one_clear_line(tiny_checkpoint, photo, tmp_path, capsys, monkeypatch):
    def no_memory(self, *args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(Engine, "prepare", no_memory)
    code, _, err, _ = run_cli(["analyze", photo, "--out", tmp_path, "--model", tiny_checkpoint], capsys)
    assert code == 1
    [line] = error_lines(err)
    assert str(photo) in line and "out of memory" in line


# ------------------------------------------------------------------------------------------------------ engine


@pytest.mark.parametrize("size", [(1, 1), (7, 5), (2, 9)])
def test_engine_images_smaller_than_one_patch(engine, tmp_path, size):
    path = tmp_path / "tiny.png"
    Image.new("RGB", size, (200, 10, 10)).save(path)
    r = engine.analyze(path)
    assert r.grid.rows >= 1 and r.grid.cols >= 1
    assert r.image.shape[0] % 8 == 0 and r.image.shape[1] % 8 == 0
    assert r.grid.original_size == size
    assert np.isfinite(r.probabilities).all() and np.isfinite(r.depth).all()
    assert r.cls_attention.shape[2:] == (r.grid.rows, r.grid.cols)
    # arrays and Pillow images work the same way
    assert engine.analyze(np.full((size[1], size[0], 3), 9, np.uint8)).grid.num_patches >= 1
    assert engine.analyze(Image.new("L", size)).grid.num_patches >= 1


def test_engine_non_ascii_paths(engine, tmp_path):
    folder = tmp_path / "mes images é 日本 ü"
    folder.mkdir()
    path = folder / "photo d'été — 猫.png"
    Image.fromarray(gradient()).save(path)
    r = engine.analyze(path)
    assert r.source == str(path) and r.grid.original_size == (60, 40)
    assert "猫" in json.dumps(r.summary(), ensure_ascii=False)


def test_engine_notices_tell_about_first_frame_exif_and_downscale(engine, tmp_path):
    gif = ODD_IMAGES["animated-gif"][0](tmp_path)
    assert any("3 frames" in n and "first" in n for n in engine.analyze(gif).notices)
    rotated = engine.analyze(exif_rotated(tmp_path))
    assert any("EXIF" in n for n in rotated.notices)
    assert rotated.grid.original_size == (20, 40) and rotated.image.shape[0] > rotated.image.shape[1]
    wide = tmp_path / "wide.png"
    Image.new("RGB", (3000, 20), (0, 90, 200)).save(wide)
    r = engine.analyze(wide)
    assert any("downscaled from 3000x20 to 2048x14" in n for n in r.notices)
    assert r.grid.original_size == (3000, 20)
    assert any("downscaled" in n for n in r.summary()["notices"])
    # a plain image has nothing to tell
    plain = tmp_path / "plain.png"
    Image.fromarray(gradient()).save(plain)
    assert engine.analyze(plain).notices == []


def test_engine_cancel_stops_between_transformer_blocks(engine, photo, monkeypatch):
    ran = []
    for i, block in enumerate(engine.model.blocks):
        real = block.forward
        monkeypatch.setattr(block, "forward", lambda *a, _real=real, _i=i, **k: (ran.append(_i), _real(*a, **k))[1])
    assert engine.analyze(photo, cancelled=lambda: len(ran) >= 1) is None
    assert ran == [0]  # blocks 1 and 2 never ran
    ran.clear()
    assert engine.analyze(photo) is not None and ran == [0, 1, 2]
    assert all(not block._forward_pre_hooks for block in engine.model.blocks)  # noqa: SLF001 - hooks removed


@pytest.mark.parametrize("half", [False, True])
def test_engine_cuda_out_of_memory_retries_on_the_cpu(tiny_checkpoint, photo, monkeypatch, half):
    """A forward pass that runs out of GPU memory once is retried on the CPU; the result says so."""
    engine = Engine(tiny_checkpoint, device="cpu")
    expected = engine.analyze(photo)
    engine.device = torch.device("cuda")  # pretend: the model "is" on a GPU (no GPU needed)
    engine.half = half
    real = Engine._analyze
    calls = []

    def oom_once(self, *args, **kwargs):
        calls.append(self.device.type)
        if self.device.type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Engine, "_analyze", oom_once)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    r = engine.analyze(photo)
    assert calls == ["cuda", "cpu"]
    assert r.device == "cpu" and engine.device.type == "cpu"
    assert any("out of memory" in n and "CPU" in n for n in r.notices)
    np.testing.assert_allclose(r.probabilities, expected.probabilities, rtol=1e-5, atol=1e-6)
    # later images run on the CPU straight away, without the notice
    again = engine.analyze(photo)
    assert calls == ["cuda", "cpu", "cpu"] and again.notices == []


def test_engine_out_of_memory_on_the_cpu_is_not_retried(engine, photo, monkeypatch):
    def oom(self, *args, **kwargs):
        raise torch.cuda.OutOfMemoryError("out of memory")

    monkeypatch.setattr(Engine, "_analyze", oom)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        engine.analyze(photo)
