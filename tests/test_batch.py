"""Dataset-scale analysis: batched forward passes, inputs, --outputs, the summary table, resuming, bad images, Ray."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitviz.batch import Analyzer, result_from_row
from vitviz.cli import main
from vitviz.engine import Engine
from vitviz.export import output_files, parse_outputs
from vitviz.inputs import expand_inputs

from .hardening_cases import BAD_IMAGES

ALL_FILES = {"result.json", "input.png", "patch_grid.png", "heads_layer2.png", "rollout.png", "depth.png",
             "cls_attention.npy", "depth.npy"}


@pytest.fixture(scope="module")
def engine(tiny_checkpoint):
    return Engine(tiny_checkpoint, device="cpu")


def make_images(folder: Path, sizes: list[tuple[int, int]], seed: int = 0) -> list[Path]:
    """Random-texture PNGs of the given (width, height), named img00.png, img01.png, ..."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i, (w, h) in enumerate(sizes):
        p = folder / f"img{i:02d}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def table(out: Path) -> list[dict[str, str]]:
    with open(out / "results.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("vitviz: error:")]


def assert_results_close(a, b):
    assert a.source == b.source and a.image.shape == b.image.shape
    np.testing.assert_allclose(a.probabilities, b.probabilities, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.cls_attention, b.cls_attention, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(a.rollout(), b.rollout(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(a.depth, b.depth, rtol=1e-4, atol=1e-5)
    assert [p.index for p in a.predictions] == [p.index for p in b.predictions]


# ---------------------------------------------------------------------------------------------------- batching


def test_batched_analysis_equals_one_at_a_time(engine, tmp_path):
    """Mixed sizes in one call: same-size images share a forward pass, results come back in input order."""
    sizes = [(64, 64), (96, 64), (64, 64), (64, 96), (96, 64), (64, 64), (40, 40)]
    paths = make_images(tmp_path, sizes)
    batched = engine.analyze_batch(paths, topk=3)
    assert [r.source for r in batched] == [str(p) for p in paths]
    for path, r in zip(paths, batched):
        assert_results_close(r, engine.analyze(path, topk=3))
        assert set(r.timings) >= {"preprocess", "forward", "postprocess", "total"}


def test_two_forward_streams_write_what_one_image_at_a_time_gives(engine, tmp_path, monkeypatch):
    """On a CPU the pipeline runs two batches at once (each with its share of the cores): the written results
    must still be each image's own, equal to analysing it alone."""
    import vitviz.pipeline as pipeline

    monkeypatch.setattr(pipeline, "forward_streams", lambda device, drawing=False: 2)  # whatever this machine's core count
    paths = make_images(tmp_path / "in", [(64, 64), (96, 64), (64, 64), (64, 96), (96, 64)] * 3, seed=3)
    opts = pipeline.RunOptions(out=tmp_path / "out", outputs=parse_outputs("json,npy"), batch_size=2,
                               progress=False, topk=3)
    report = pipeline.run_local(expand_inputs([str(tmp_path / "in")]), engine, opts, lambda item, exc: str(exc))
    assert (report.analysed, report.failed) == (len(paths), 0)
    for path in paths:
        alone = engine.analyze(path, topk=3)
        written = json.loads((opts.out / path.stem / "result.json").read_text())
        assert [p["index"] for p in written["predictions"]] == [p.index for p in alone.predictions]
        assert written["predictions"][0]["probability"] == pytest.approx(alone.predictions[0].probability, rel=1e-5)
        np.testing.assert_allclose(np.load(opts.out / path.stem / "cls_attention.npy"), alone.cls_attention,
                                   rtol=1e-4, atol=1e-6)


def test_a_single_batch_runs_on_the_calling_thread(engine, tmp_path, monkeypatch):
    """One photo (one batch) runs on the thread that loaded the model: a fresh thread's first forward pass costs
    ~20 % more (benchmarks/bench_tokens.py); several batches still run on the forward threads."""
    import threading

    import vitviz.pipeline as pipeline

    threads: list[str] = []
    real = Engine.analyze_batch

    def recording(self, *args, **kwargs):
        threads.append(threading.current_thread().name)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Engine, "analyze_batch", recording)
    make_images(tmp_path / "one", [(64, 64)])
    make_images(tmp_path / "three", [(64, 64)] * 3, seed=1)
    for folder, expected in (("one", [threading.current_thread().name]), ("three", ["vitviz-forward"] * 2)):
        threads.clear()
        opts = pipeline.RunOptions(out=tmp_path / f"out-{folder}", outputs=parse_outputs("json"), batch_size=2,
                                   progress=False)
        report = pipeline.run_local(expand_inputs([str(tmp_path / folder)]), engine, opts, lambda item, exc: str(exc))
        assert (report.failed, report.analysed) == (0, 1 if folder == "one" else 3)
        assert [name.split("_")[0] for name in threads] == expected


def test_writer_processes_write_the_maps_exactly(engine, tmp_path):
    """Enough images for the pool of writer processes: their fast PNGs decode to the maps the renderer draws, and
    the run hands numpy's BLAS threads back as it found them."""
    import vitviz.pipeline as pipeline
    from threadpoolctl import threadpool_info

    from vitviz.export import write_outputs

    blas_before = [(lib["filepath"], lib["num_threads"]) for lib in threadpool_info() if lib["user_api"] == "blas"]
    paths = make_images(tmp_path / "in", [(64, 64), (96, 64)] * (pipeline.PROCESS_WRITERS_FROM // 2 + 1), seed=5)
    opts = pipeline.RunOptions(out=tmp_path / "out", outputs=parse_outputs("png"), progress=False, workers=2)
    report = pipeline.run_local(expand_inputs([str(tmp_path / "in")]), engine, opts, lambda item, exc: str(exc))
    assert (report.analysed, report.failed) == (len(paths), 0)
    assert [(lib["filepath"], lib["num_threads"]) for lib in threadpool_info()
            if lib["user_api"] == "blas"] == blas_before
    for path in paths[:2]:
        reference = tmp_path / "reference" / path.stem
        # via Pillow, from an analysis that keeps what the run keeps
        write_outputs(engine.analyze(path, attention="summary"), reference, outputs=opts.outputs, png_compress_level=6)
        for name in ("input.png", "heads_layer2.png", "rollout.png", "depth.png"):
            fast = np.asarray(Image.open(opts.out / path.stem / name))
            np.testing.assert_allclose(fast, np.asarray(Image.open(reference / name)), atol=1)  # float rounding


def test_analyzer_on_a_dict_of_arrays_matches_the_engine(tiny_checkpoint, engine, tmp_path):
    """Ray Data's batch format: an object array of differently sized images, or paths (one of them bad)."""
    paths = make_images(tmp_path, [(64, 64), (96, 64), (64, 64)])
    analyzer = Analyzer(tiny_checkpoint, device="cpu", topk=2)
    images = np.empty(3, dtype=object)
    images[:] = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    out = analyzer({"image": images, "path": np.array([str(p) for p in paths])})
    assert list(out["error"]) == ["", "", ""] and list(out["path"]) == [str(p) for p in paths]
    for i, p in enumerate(paths):
        expected = engine.analyze(p, topk=2)
        assert out["label_1"][i] == expected.predictions[0].label
        assert out["prob_1"][i] == pytest.approx(expected.predictions[0].probability, rel=1e-5)
        rebuilt = result_from_row({k: v[i] for k, v in out.items()})
        rebuilt.probabilities = expected.probabilities  # not in a row: the summary holds the top-k
        assert_results_close(rebuilt, expected)

    bad = tmp_path / "bad.jpg"
    bad.write_text("not a picture")
    out = analyzer({"path": np.array([str(paths[0]), str(bad)])})
    assert out["error"][0] == "" and "bad.jpg" in out["error"][1] and "not an image" in out["error"][1]
    assert out["rollout"][1].size == 0 and out["rollout"][0].shape == (4, 4)
    assert "attentions" not in out  # the full tensors only for attention-full
    full = Analyzer(tiny_checkpoint, device="cpu", outputs=["attention-full"])({"path": np.array([str(paths[0])])})
    assert full["attentions"][0].shape == (3, 3, 17, 17)
    only_json = Analyzer(tiny_checkpoint, device="cpu", outputs=["json"])({"path": np.array([str(paths[0])])})
    assert "attentions" not in only_json and json.loads(only_json["summary"][0])["layers"] == 3


# ------------------------------------------------------------------------------------------------------- inputs


def test_inputs_from_folders_patterns_and_lists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_images(Path("data/cats"), [(8, 8), (8, 8)])
    make_images(Path("data/dogs"), [(8, 8)])
    Path("data/.hidden").mkdir()
    Image.new("RGB", (8, 8)).save("data/.hidden/x.png")
    Path("data/notes.txt").write_text("not an image")
    Path("data/out").mkdir()
    Image.new("RGB", (8, 8)).save("data/out/old.png")  # the output folder inside the input folder is skipped
    Path("list.txt").write_text("# a comment\n\ndata/cats/img00.png\ndata/dogs/img00.png\n")

    items = expand_inputs(["data"], exclude="data/out")
    assert [(i.path, i.name) for i in items] == [
        ("data/cats/img00.png", "cats/img00"), ("data/cats/img01.png", "cats/img01"), ("data/dogs/img00.png", "dogs/img00"),
    ]
    assert [i.name for i in expand_inputs(["data/**/img00.png"])] == ["cats/img00", "dogs/img00"]
    assert [i.name for i in expand_inputs(["@list.txt"])] == ["img00", "img00-2"]  # files: their stem, as always
    assert [i.path for i in expand_inputs([], ["list.txt"])] == ["data/cats/img00.png", "data/dogs/img00.png"]
    assert expand_inputs(["data/*.jpg"])[0].error == "data/*.jpg: no files match this pattern"
    # an image file beside a folder of the same stem cannot nest one output folder in another
    Image.new("RGB", (8, 8)).save("data/cats.png")
    assert [i.name for i in expand_inputs(["data"])][:3] == ["cats", "cats-2/img00", "cats-2/img01"]


def test_cli_reads_a_folder_and_a_list_file(tiny_checkpoint, tmp_path, capsys):
    make_images(tmp_path / "data" / "a", [(40, 40), (48, 32)])
    make_images(tmp_path / "more", [(40, 40)], seed=1)
    listing = tmp_path / "list.txt"
    listing.write_text(f"{tmp_path / 'more' / 'img00.png'}\n")
    out = tmp_path / "out"
    argv = ["analyze", str(tmp_path / "data"), f"@{listing}", "--out", str(out), "--model", str(tiny_checkpoint),
            "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err
    assert {p.name for p in (out / "a").iterdir()} == {"img00", "img01"}
    assert {p.name for p in (out / "img00").iterdir()} == ALL_FILES
    assert sorted(r["name"] for r in table(out)) == ["a/img00", "a/img01", "img00"]


# ------------------------------------------------------------------------------------------------------ outputs


def test_outputs_pick_the_files(tiny_checkpoint, tmp_path, capsys):
    paths = make_images(tmp_path / "in", [(40, 40)])
    out = tmp_path / "out"
    base = ["analyze", str(paths[0]), "--out", str(out), "--model", str(tiny_checkpoint)]
    assert main([*base, "--outputs", "json,depth"]) == 0
    assert {p.name for p in (out / "img00").iterdir()} == {"result.json", "depth.png"}
    assert main([*base, "--outputs", "json,input"]) == 0  # more outputs asked for: the folder is redone
    assert {p.name for p in (out / "img00").iterdir()} == {"result.json", "input.png", "patch_grid.png"}
    assert main([*base, "--outputs", "json"]) == 0  # all it asks for is there: skipped
    assert "skipping 1 image(s)" in capsys.readouterr().err
    assert len(table(out)) == 1
    assert main([*base, "--outputs", "none", "--out", str(tmp_path / "table-only")]) == 0
    assert not any((tmp_path / "table-only" / "img00").iterdir()) and len(table(tmp_path / "table-only")) == 1
    assert main([*base, "--outputs", "json,nope"]) == 2
    assert "unknown output 'nope'" in capsys.readouterr().err
    assert parse_outputs("png,npy") == parse_outputs("all") - {"json"}
    assert output_files(parse_outputs("all"), 3, -1, True) == ALL_FILES


# ------------------------------------------------------------------------------------------ table, bad images


def test_bad_images_in_a_batch_fail_alone(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    """Unreadable files and an image whose forward pass fails: one line each, every other image is written."""
    good = make_images(tmp_path / "in", [(40, 40)] * 6)
    bad = [make(tmp_path) for make, _ in list(BAD_IMAGES.values())[:4]]
    poisoned = str(good[2])
    real = Engine._forward

    def forward(self, preps, cancelled, *options):
        if any(p.loaded.source == poisoned for p in preps):
            raise RuntimeError("simulated kernel failure")
        return real(self, preps, cancelled, *options)

    monkeypatch.setattr(Engine, "_forward", forward)
    inputs = [str(p) for pair in zip(good, bad + [None] * 2) for p in pair if p is not None]
    out = tmp_path / "out"
    code = main(["analyze", *inputs, "--out", str(out), "--model", str(tiny_checkpoint), "--batch-size", "4",
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    lines = error_lines(err)
    assert len(lines) == len(bad) + 1 and not any("Traceback" in line for line in err.splitlines())
    for path in bad:
        assert sum(str(path) in line for line in lines) == 1
    assert [line for line in lines if poisoned in line] == [
        f"vitviz: error: {poisoned}: unexpected error: RuntimeError: simulated kernel failure"]
    written = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert written == [p.stem for p in good if str(p) != poisoned]
    rows = table(out)
    ok = [r for r in rows if r["status"] == "ok"]
    assert sorted(r["name"] for r in ok) == written  # one row per analysed image
    assert all(r["label_1"] and float(r["prob_1"]) > 0 and float(r["total_ms"]) > 0 and not r["error"] for r in ok)
    failed = {r["name"]: r["error"] for r in rows if r["status"] == "error"}  # and one per failed image, with why
    assert len(failed) == len(bad) + 1 and len(rows) == len(inputs)
    assert failed[Path(poisoned).stem] == f"{poisoned}: unexpected error: RuntimeError: simulated kernel failure"
    assert f"vitviz: {len(bad) + 1} of {len(inputs)} image(s) failed" in err.splitlines()[-1]


def test_summary_table_has_one_row_per_image(tiny_checkpoint, tmp_path, capsys):
    paths = make_images(tmp_path / "in", [(40, 40), (48, 32), (40, 40), (32, 48), (40, 40)])
    out = tmp_path / "out"
    assert main(["analyze", str(tmp_path / "in"), "--out", str(out), "--model", str(tiny_checkpoint), "--quiet",
                 "--topk", "2"]) == 0
    rows = table(out)
    assert sorted(r["source"] for r in rows) == sorted(str(p) for p in paths)
    for r in rows:
        summary = json.loads((out / r["name"] / "result.json").read_text())
        assert r["label_1"] == summary["predictions"][0]["label"] and "label_3" not in r
        assert float(r["prob_2"]) == pytest.approx(summary["predictions"][1]["probability"])
        assert float(r["depth_mean"]) == pytest.approx(summary["depth"]["mean"], rel=1e-5)
        assert int(r["input_width"]) == summary["input_size"]["width"]
    pa = pytest.importorskip("pyarrow.parquet")
    assert pa.read_table(out / "results.parquet").num_rows == len(paths)


# ------------------------------------------------------------------------------------------------------ resume

KILLER = textwrap.dedent("""
    import os, signal, sys
    import vitviz.run_writing as run_writing
    from vitviz.cli import main
    real, calls = run_writing.write_outputs, []

    def write_then_die(result, folder, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # killed while the 4th image is half-written
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "result.json").write_text("{")
            os.kill(os.getpid(), signal.SIGKILL)
        return real(result, folder, **kwargs)

    run_writing.write_outputs = write_then_die
    sys.exit(main(sys.argv[1:]))
""")


def test_resume_after_a_killed_run(tiny_checkpoint, tmp_path):
    paths = make_images(tmp_path / "in", [(40, 40)] * 7)
    out = tmp_path / "out"
    argv = ["analyze", str(tmp_path / "in"), "--out", str(out), "--model", str(tiny_checkpoint), "--batch-size",
            "2", "--workers", "1", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    killed = subprocess.run([sys.executable, "-c", KILLER, *argv], capture_output=True, text=True, env=env,
                            timeout=300)
    assert killed.returncode == -9, killed.stderr
    done = sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(done) == 3  # the half-written 4th is not among them (which images came first depends on the streams)
    assert sorted(r["name"] for r in table(out)) == done
    for name in done:
        assert {f.name for f in (out / name).iterdir()} == ALL_FILES

    again = subprocess.run([sys.executable, "-m", "vitviz", *argv], capture_output=True, text=True, env=env,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    assert "skipping 3 image(s)" in again.stderr
    assert sorted(line.split(":")[0] for line in again.stdout.splitlines()) == [str(p) for p in paths
                                                                                if p.stem not in done]
    assert sorted(r["name"] for r in table(out)) == [p.stem for p in paths]
    assert {p.name for p in out.iterdir()} - {"results.parquet"} == {".vitviz-run.json", "results.csv",
                                                                 *[p.stem for p in paths]}  # no lock, no .partial
    for p in paths:
        assert {f.name for f in (out / p.stem).iterdir()} == ALL_FILES


# --------------------------------------------------------------------------------------------------------- Ray


def test_ray_option_without_ray_says_what_to_install(tiny_checkpoint, photo, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the scale extra were not installed
    code = main(["analyze", str(photo), "--out", str(tmp_path / "o"), "--model", str(tiny_checkpoint), "--ray"])
    assert code == 2
    assert capsys.readouterr().err.strip() == "vitviz: error: install the scale extra: pip install -e '.[scale]'"


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def test_ray_writes_the_same_files_as_the_local_path(local_ray, tiny_checkpoint, tmp_path, capsys):
    make_images(tmp_path / "in", [(40, 40), (48, 32), (40, 40), (32, 48)])
    bad = tmp_path / "in" / "zz-bad.png"
    bad.write_bytes(b"")
    local, remote = tmp_path / "local", tmp_path / "ray"
    base = ["analyze", str(tmp_path / "in"), "--model", str(tiny_checkpoint), "--quiet", "--batch-size", "2"]
    assert main([*base, "--out", str(local)]) == 1
    capsys.readouterr()
    assert main([*base, "--out", str(remote), "--ray"]) == 1
    err = capsys.readouterr().err
    assert error_lines(err) == [f"vitviz: error: {bad}: the file is empty (0 bytes)"]
    names = sorted(p.name for p in local.iterdir() if p.is_dir())
    assert names == sorted(p.name for p in remote.iterdir() if p.is_dir()) and len(names) == 4
    for name in names:
        files = {f.name for f in (local / name).iterdir()}
        assert files == {f.name for f in (remote / name).iterdir()} == ALL_FILES
        a, b = (json.loads((d / name / "result.json").read_text()) for d in (local, remote))
        a.pop("timings_ms"), b.pop("timings_ms")
        pa, pb = a.pop("predictions"), b.pop("predictions")
        assert [p["index"] for p in pa] == [p["index"] for p in pb]
        assert [p["probability"] for p in pa] == pytest.approx([p["probability"] for p in pb], rel=1e-5)
        da, db = a.pop("depth"), b.pop("depth")
        assert da.pop("kind") == db.pop("kind") and da == pytest.approx(db, rel=1e-5)
        assert a == b
        for f in ("cls_attention.npy", "depth.npy"):
            np.testing.assert_allclose(np.load(local / name / f), np.load(remote / name / f), rtol=1e-4, atol=1e-6)
        for f in ("input.png", "heads_layer2.png"):
            a_px, b_px = (np.asarray(Image.open(d / name / f), dtype=int) for d in (local, remote))
            assert np.abs(a_px - b_px).max() <= 1
    rows = table(remote)
    assert sorted(r["name"] for r in rows if r["status"] == "ok") == names
    assert [(r["name"], r["error"]) for r in rows if r["status"] == "error"] == [
        ("zz-bad", f"{bad}: the file is empty (0 bytes)")]


def test_resuming_with_other_settings_analyses_those_images_again(tiny_checkpoint, tmp_path, capsys):
    """A folder written with another --topk (or model, or knocked-out heads) is not 'complete' for this run."""
    paths = make_images(tmp_path / "in", [(40, 40), (48, 32)])
    out = tmp_path / "out"
    base = ["analyze", *map(str, paths), "--out", str(out), "--model", str(tiny_checkpoint), "--quiet"]
    assert main([*base, "--topk", "2"]) == 0
    capsys.readouterr()
    assert main([*base, "--topk", "2"]) == 0  # same settings: every image skipped
    assert "skipping 2 image(s)" in capsys.readouterr().err
    assert main([*base, "--topk", "3", "--ablate", "0.1"]) == 0
    err = capsys.readouterr().err
    assert "2 image(s) in" in err and "written with other settings" in err and "skipping" not in err
    summary = json.loads((out / paths[0].stem / "result.json").read_text())
    assert len(summary["predictions"]) == 3 and summary["ablated"] == [{"layer": 0, "head": 1}]
    rows = table(out)
    assert len(rows) == 2 and all(r["prob_3"] for r in rows) and len({r["settings"] for r in rows}) == 1


def test_resuming_with_features_completes_the_images_written_without_them(tiny_checkpoint, tmp_path, capsys):
    paths = make_images(tmp_path / "in", [(40, 40)])
    out = tmp_path / "out"
    base = ["analyze", *map(str, paths), "--out", str(out), "--model", str(tiny_checkpoint), "--quiet"]
    assert main(base) == 0
    folder = out / paths[0].stem
    assert not (folder / "features.npz").exists()
    capsys.readouterr()
    assert main([*base, "--features"]) == 0
    assert "skipping" not in capsys.readouterr().err
    assert (folder / "features.npz").is_file() and (folder / "head_atlas.png").is_file()
    assert main([*base, "--features"]) == 0  # now complete: skipped
    assert "skipping 1 image(s)" in capsys.readouterr().err
