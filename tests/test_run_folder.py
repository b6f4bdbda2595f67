"""The ``--out`` folder of ``vitviz analyze``: someone else's folder is refused, one run writes at a time, files are
never half-written, and a full, read-only or removed disk stops the run at once with one line (issue 48)."""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import vitviz.run_writing as run_writing
from vitviz.cli import main
from vitviz.runfolder import LOCK, MARKER, RunLock
from vitviz.store import OutputStore

from .test_batch import ALL_FILES, error_lines, make_images, table

ROOT = Path(__file__).resolve().parents[1]


def run(argv, capsys):
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with a hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def users_folder(tmp_path: Path) -> Path:
    """A folder of the user's own: notes, a results.csv and a scene-cube/result.json that are not vitviz's."""
    folder = tmp_path / "mine"
    (folder / "scene-cube").mkdir(parents=True)
    (folder / "notes.txt").write_text("my notes\n")
    (folder / "results.csv").write_text("experiment,score\nA,0.9\n")
    (folder / "scene-cube" / "result.json").write_text('{"mine": true}\n')
    return folder


@pytest.fixture
def images(tmp_path):
    return make_images(tmp_path / "in", [(40, 40)] * 6)


def analyze(images_folder, out, model, *extra):
    return ["analyze", images_folder, "--out", out, "--model", model, "--batch-size", "2", "--workers", "1",
            "--quiet", *extra]


# ------------------------------------------------------------------------------------------ someone else's folder


def test_a_folder_vitviz_did_not_write_is_refused_before_any_work(tiny_checkpoint, images, tmp_path, capsys,
                                                                     monkeypatch):
    out = users_folder(tmp_path)
    before = snapshot(out)
    loaded = []
    monkeypatch.setattr("vitviz.engine.Engine.__init__", lambda *a, **k: loaded.append(1))
    code, stdout, err = run(analyze(images[0].parent, out, tiny_checkpoint), capsys)
    assert code == 2 and not loaded  # refused before the model loads
    assert err.splitlines() == [err.strip()] and str(out) in err and "--force" in err
    assert snapshot(out) == before and sorted(p.name for p in out.iterdir()) == ["notes.txt", "results.csv",
                                                                                  "scene-cube"]


def test_force_writes_beside_the_users_files_and_never_over_them(tiny_checkpoint, images, tmp_path, capsys):
    out = users_folder(tmp_path)
    before = snapshot(out)
    argv = analyze(images[0].parent, out, tiny_checkpoint, "--force")
    code, _, err = run(argv, capsys)
    assert code == 2 and "results.csv is not vitviz's" in err  # the run would have replaced the user's table
    assert snapshot(out) == before

    (out / "results.csv").rename(tmp_path / "my-results.csv")
    before = snapshot(out)
    code, _, err = run(argv, capsys)
    assert code == 0, err
    assert {k: v for k, v in snapshot(out).items() if k in before} == before  # the user's files, untouched
    assert len(table(out)) == len(images)
    code, _, err = run(analyze(images[0].parent, out, tiny_checkpoint), capsys)  # now a run folder: no --force
    assert code == 0 and "skipping 6 image(s)" in err
    assert {k: v for k, v in snapshot(out).items() if k in before} == before

    cube = make_images(tmp_path / "cubes", [(40, 40)])[0].rename(tmp_path / "cubes" / "scene-cube.png")
    code, _, err = run(analyze(cube, out, tiny_checkpoint), capsys)  # would write into the user's scene-cube/
    assert code == 2 and "scene-cube is not vitviz's" in err
    assert (out / "scene-cube" / "result.json").read_text() == '{"mine": true}\n'


def test_new_empty_and_earlier_run_folders_are_accepted(tiny_checkpoint, images, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(analyze(images[0].parent, empty, tiny_checkpoint), capsys)[0] == 0
    marker = json.loads((empty / MARKER).read_text())
    assert marker["format"] == "vitviz-run" and marker["settings"] == table(empty)[0]["settings"]
    (empty / MARKER).unlink()  # a folder written by a vitviz from before the marker: its results.csv says so
    code, _, err = run(analyze(images[0].parent, empty, tiny_checkpoint), capsys)
    assert code == 0 and "skipping 6 image(s)" in err
    assert run(analyze(images[0].parent, tmp_path / "new" / "deeper", tiny_checkpoint), capsys)[0] == 0


# ------------------------------------------------------------------------------------------------ one writer


def test_a_live_run_holds_the_folder_and_a_dead_ones_lock_is_taken_over(tiny_checkpoint, images, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    other = RunLock(out)
    other.acquire()  # another run, alive
    try:
        code, _, err = run(analyze(images[0].parent, out, tiny_checkpoint), capsys)
        assert code == 2 and "in use by another vitviz run" in err and f"pid {os.getpid()}" in err
        assert len(err.splitlines()) == 1 and not (out / "results.csv").exists()
    finally:
        other.release()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / LOCK).write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(),
                                        "started": "2026-01-01T00:00:00"}))  # left by a killed run
    code, _, err = run(analyze(images[0].parent, out, tiny_checkpoint), capsys)
    assert code == 0, err
    assert not (out / LOCK).exists() and len(table(out)) == len(images)


SLOW_WRITES = """
import sys, time
import vitviz.run_writing as run_writing
from vitviz.cli import main
real = run_writing.write_outputs
def slow(result, folder, **kwargs):
    time.sleep(0.4)  # a slow disk: the two runs overlap however fast they start
    return real(result, folder, **kwargs)
run_writing.write_outputs = slow
sys.exit(main(sys.argv[1:]))
"""


def test_two_runs_started_together_one_writes_the_other_is_refused(tiny_checkpoint, tmp_path):
    make_images(tmp_path / "in", [(40, 40)] * 12)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-c", SLOW_WRITES, *analyze(tmp_path / "in", out, tiny_checkpoint)]
    runs = [subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env) for _ in range(2)]
    results = sorted((p.wait(timeout=300), p.stderr.read()) for p in runs)
    assert [code for code, _ in results] == [0, 2], results
    assert "in use by another vitviz run" in results[1][1] and len(results[1][1].strip().splitlines()) == 1
    text = (out / "results.csv").read_text()
    assert text.count("name,status,error") == 1  # one header: one valid table
    assert sorted(r["name"] for r in table(out)) == [f"img{i:02d}" for i in range(12)]


# ---------------------------------------------------------------------------------------- fatal write errors


@pytest.mark.parametrize("code_, words", [(errno.ENOSPC, "is full"), (errno.EROFS, "read-only"),
                                          (errno.EACCES, "not writable")])
def test_a_full_or_read_only_disk_stops_the_run_at_once_and_rerunning_resumes(code_, words, tiny_checkpoint, tmp_path,
                                                                              capsys, monkeypatch):
    paths = make_images(tmp_path / "in", [(40, 40)] * 10)
    out = tmp_path / "out"
    real, calls = run_writing.write_outputs, []

    def full_after_three(result, folder, **kwargs):
        calls.append(1)
        if len(calls) > 3:
            (folder / "result.json").write_text("{")  # half-written, then the disk is full
            raise OSError(code_, os.strerror(code_), str(folder / "input.png"))
        return real(result, folder, **kwargs)

    monkeypatch.setattr(run_writing, "write_outputs", full_after_three)
    code, stdout, err = run(analyze(tmp_path / "in", out, tiny_checkpoint), capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err  # one line, not one per image
    assert words in err and str(out) in err and "stopped after writing 3 of 10 image(s)" in err
    assert "run the same command again to resume" in err
    assert len(calls) < 10  # it did not try them all
    done = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert len(done) == 3 and sorted(r["name"] for r in table(out)) == done  # whole images only, no failure rows
    assert not (out / ".partial").exists() and not (out / LOCK).exists()

    monkeypatch.setattr(run_writing, "write_outputs", real)  # space freed
    code, _, err = run(analyze(tmp_path / "in", out, tiny_checkpoint), capsys)
    assert code == 0 and "skipping 3 image(s)" in err
    assert sorted(r["name"] for r in table(out)) == [p.stem for p in paths]  # every image once
    for p in paths:
        assert {f.name for f in (out / p.stem).iterdir()} == ALL_FILES


def test_the_folder_removed_while_running_stops_the_run_without_making_it_again(tiny_checkpoint, tmp_path, capsys,
                                                                                monkeypatch):
    make_images(tmp_path / "in", [(40, 40)] * 8)
    out = tmp_path / "out"
    real, calls = run_writing.write_outputs, []

    def removed_while_writing_the_second(result, folder, **kwargs):
        calls.append(1)
        written = real(result, folder, **kwargs)
        if len(calls) == 2:
            while out.exists():  # as rm -rf, racing the run's next temporary folders
                shutil.rmtree(out, ignore_errors=True)
        return written

    monkeypatch.setattr(run_writing, "write_outputs", removed_while_writing_the_second)
    code, _, err = run(analyze(tmp_path / "in", out, tiny_checkpoint), capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "was removed while the run was writing" in err and "stopped after writing 1 of 8" in err
    assert not out.exists()


def test_a_corrupt_image_is_still_one_failed_row(tiny_checkpoint, tmp_path, capsys):
    make_images(tmp_path / "in", [(40, 40)] * 3)
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    out = tmp_path / "out"
    code, _, err = run(analyze(tmp_path / "in", out, tiny_checkpoint), capsys)
    assert code == 1 and len(error_lines(err)) == 1 and "broken.png" in error_lines(err)[0]
    assert sorted((r["name"], r["status"]) for r in table(out)) == [("broken", "error"), ("img00", "ok"),
                                                                    ("img01", "ok"), ("img02", "ok")]


def test_a_table_row_cut_short_by_a_full_disk_is_cut_back_off(tmp_path, monkeypatch):
    store = OutputStore(tmp_path / "out", {"result.json"}, topk=1, settings="k")
    store.start()
    store.record_failure("a", "a.png: unreadable")
    real_write = os.write

    def half_then_full(fd, data):
        real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("vitviz.store.os.write", half_then_full)
    with pytest.raises(OSError):
        store.record_failure("b", "b.png: unreadable")
    monkeypatch.setattr("vitviz.store.os.write", real_write)
    store.record_failure("c", "c.png: unreadable")
    store.finish()
    with open(tmp_path / "out" / "results.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert [r[0] for r in rows] == ["name", "a", "c"] and all(len(r) == len(rows[0]) for r in rows)


def test_without_flock_the_pid_decides_whether_a_lock_is_alive(tmp_path, monkeypatch):
    import vitviz.runfolder as runfolder

    monkeypatch.setattr(runfolder, "fcntl", None)  # Windows, or a file system without flock
    out = tmp_path / "out"
    out.mkdir()
    alive = {"pid": os.getppid(), "host": socket.gethostname(), "started": "2026-01-01T00:00:00"}
    (out / LOCK).write_text(json.dumps(alive))
    with pytest.raises(runfolder.RunFolderError, match=f"pid {os.getppid()}"):
        RunLock(out).acquire()
    assert RunLock.holder(out)["pid"] == os.getppid()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / LOCK).write_text(json.dumps({**alive, "pid": int(dead.stdout)}))
    assert RunLock.holder(out) is None
    lock = RunLock(out)
    lock.acquire()  # taken over
    assert json.loads((out / LOCK).read_text())["pid"] == os.getpid()
    lock.release()
    assert not (out / LOCK).exists()
