"""Fault injection for ``vitviz analyze``, end to end: each case runs the real command in its own processes and says
what was lost, which must be nothing (issue 48).

Cases: someone else's folder (and ``--force``), two runs into one folder, a full disk, a read-only folder (before and
during a run), ``kill -9`` and resume, the folder removed while running. The full disk and the read-only folder are
real small file systems (tmpfs) when this runs as root on Linux, else simulated (``ENOSPC``/``EROFS`` raised by the
writer after some images); the result file says which.

    python benchmarks/fault_injection.py [--images 100] [--name fault-injection]

"Lost" means: a file that was there before and is gone or changed (the user's, or an image a run had completed), an
image that a finished run (or its rerun) does not hold complete, a table row missing or twice, a table that is not
one valid CSV (and, with pyarrow, one valid Parquet file equal to it), or a half-written leftover.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import RESULTS, ROOT, machine_info

import numpy as np

SIMULATED_FAULT = """
import errno, os, sys
import vitviz.run_writing as run_writing
from vitviz.cli import main
import time
real, calls, after, code = run_writing.write_outputs, [0], int(os.environ["FAULT_AFTER"]), int(os.environ["FAULT_ERRNO"])
pause = float(os.environ.get("FAULT_SLEEP", "0"))
def faulty(result, folder, **kwargs):
    calls[0] += 1
    if code and calls[0] > after:
        raise OSError(code, os.strerror(code), str(folder))
    time.sleep(pause)  # a slow disk
    return real(result, folder, **kwargs)
run_writing.write_outputs = faulty
sys.exit(main(sys.argv[1:]))
"""


class Bench:
    def __init__(self, work: Path, n: int, python: str) -> None:
        self.work, self.n, self.python = work, n, python
        self.model = self._model()
        self.images = self._images(work / "in", n)
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "VITVIZ_DEBUG": "0"}

    def _model(self) -> Path:
        import torch

        from vitviz.models.checkpoint import ModelInfo, save_checkpoint
        from vitviz.models.vit import ViTConfig, build_model

        torch.manual_seed(0)
        config = ViTConfig(image_size=32, patch_size=8, embed_dim=24, depth=3, num_heads=3, num_classes=5,
                           depth_head="fusion", depth_head_channels=(8,), depth_head_layers=(1, 3),
                           depth_head_stem_channels=4)
        model = build_model(config)
        info = ModelInfo(name="tiny", config=config, labels=["a", "b", "c", "d", "e"], depth_kind="metric",
                         description="fault injection")
        save_checkpoint(model, info, self.work / "tiny")
        return self.work / "tiny.json"

    @staticmethod
    def _images(folder: Path, n: int) -> list[Path]:
        from PIL import Image

        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        paths = []
        for i in range(n):
            path = folder / f"img{i:04d}.png"
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
            paths.append(path)
        return paths

    def argv(self, out: Path, *extra: str, images: Path | None = None) -> list[str]:
        return ["analyze", str(images or self.work / "in"), "--out", str(out), "--model", str(self.model), "--quiet",
                *extra]

    def start(self, out: Path, *extra: str, fault: tuple[int, int] | None = None,
              images: Path | None = None, slow: float = 0.0) -> subprocess.Popen:
        env = dict(self.env)
        if slow and fault is None:
            fault = (0, 0)
        if fault is not None:
            env["FAULT_ERRNO"], env["FAULT_AFTER"], env["FAULT_SLEEP"] = str(fault[0]), str(fault[1]), str(slow)
            cmd = [self.python, "-c", SIMULATED_FAULT, *self.argv(out, *extra, images=images)]
        else:
            cmd = [self.python, "-m", "vitviz", *self.argv(out, *extra, images=images)]
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                                start_new_session=True)

    def run(self, out: Path, *extra: str, **kwargs: Any) -> dict[str, Any]:
        t0 = time.perf_counter()
        proc = self.start(out, *extra, **kwargs)
        _, err = proc.communicate(timeout=600)
        return {"exit": proc.returncode, "stderr": err.strip().splitlines(),
                "seconds": round(time.perf_counter() - t0, 2)}


# ------------------------------------------------------------------------------------------------------ checks


def snapshot(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def complete_images(out: Path, exclude: frozenset[str] = frozenset()) -> dict[str, dict[str, str]]:
    """The image folders holding result.json (not under the names in ``exclude``), with their files' hashes."""
    found = {}
    for result in out.rglob("result.json") if out.is_dir() else []:
        folder = result.parent
        if ".partial" in folder.parts or folder.relative_to(out).parts[0] in exclude:
            continue
        found[str(folder.relative_to(out))] = snapshot(folder)
    return found


def table_problems(out: Path, expected: set[str] | None = None, exclude: frozenset[str] = frozenset(),
                   killed: bool = False) -> list[str]:
    """What is wrong with the run folder's results.csv (and results.parquet) and leftovers; empty when nothing.
    ``exclude``: the user's own folders; ``killed``: right after ``kill -9`` (its lock and temporary folder are left
    for the next run to clear, and results.parquet is the last finished run's)."""
    problems = []
    table = out / "results.csv"
    if not table.is_file():
        return ["no results.csv"] if expected else []
    text = table.read_text("utf-8")
    if not text.endswith("\n"):
        problems.append("results.csv ends in a cut row")
    if text.count("name,status,error") != 1:
        problems.append(f"results.csv has {text.count('name,status,error')} header lines")
    with open(table, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    if any(len(r) != len(header) for r in rows):
        problems.append("results.csv has rows of the wrong length")
    names = [r[0] for r in rows]
    if len(names) != len(set(names)):
        problems.append(f"results.csv repeats {len(names) - len(set(names))} row(s)")
    ok = {r[0] for r in rows if r[1] == "ok"}
    done = set(complete_images(out, exclude))
    if ok != done:
        problems.append(f"results.csv's ok rows ({len(ok)}) are not the complete folders ({len(done)})")
    if expected is not None and set(names) != expected:
        problems.append(f"results.csv holds {len(set(names) & expected)} of the {len(expected)} images")
    try:
        import pyarrow.parquet as pq
    except ImportError:
        pq = None
    if pq is not None and (out / "results.parquet").exists() and not killed:
        try:
            parquet = pq.read_table(out / "results.parquet").to_pydict()
            if sorted(map(str, parquet["name"])) != sorted(names):
                problems.append("results.parquet does not hold the rows of results.csv")
        except Exception as exc:  # noqa: BLE001 - the finding
            problems.append(f"results.parquet cannot be read ({exc})")
    leftovers = [p.name for p in out.iterdir() if p.name in (".partial", ".vitviz-run.lock") or p.name.endswith(".tmp")]
    if leftovers and not killed:
        problems.append(f"leftovers: {', '.join(leftovers)}")
    return problems


def lost_files(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(k for k, v in before.items() if after.get(k) != v)


def lost_images(before: dict[str, dict[str, str]], after: dict[str, dict[str, str]]) -> list[str]:
    """Images complete before that are not complete, with the same bytes, after."""
    return sorted(name for name, files in before.items() if after.get(name) != files)


def one_line(result: dict[str, Any]) -> bool:
    return len([line for line in result["stderr"] if line.startswith("vitviz: error:")]) == 1


# ------------------------------------------------------------------------------------------------ file systems


def can_mount() -> bool:
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        return False
    probe = Path(tempfile.mkdtemp(prefix="vitviz-probe-"))
    try:
        return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
                              capture_output=True).returncode == 0 and _umount(probe)
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def _umount(path: Path) -> bool:
    return subprocess.run(["umount", str(path)], capture_output=True).returncode == 0


def mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)


def remount(path: Path, options: str) -> bool:
    return subprocess.run(["mount", "-o", f"remount,{options}", str(path)], capture_output=True).returncode == 0


# ------------------------------------------------------------------------------------------------------- cases


def case_foreign_folder(b: Bench) -> dict[str, Any]:
    out = b.work / "foreign"
    (out / "scene-cube").mkdir(parents=True)
    (out / "notes.txt").write_text("my notes\n")
    (out / "results.csv").write_text("experiment,score\nA,0.9\n")
    (out / "scene-cube" / "result.json").write_text('{"mine": true}\n')
    users = snapshot(out)
    plain = b.run(out)
    forced_clash = b.run(out, "--force")
    after_refusals = snapshot(out)
    (out / "results.csv").rename(b.work / "my-results.csv")  # the user moves their table away
    users_left = snapshot(out)
    forced = b.run(out, "--force")
    after = snapshot(out)
    lost = lost_files(users, after_refusals) + lost_files(users_left, after)
    return {
        "refused": plain, "force_with_a_clashing_results_csv": forced_clash, "force": forced,
        "checks": {"refused_exit_2_one_line": plain["exit"] == 2 and one_line(plain),
                   "message_names_folder_and_force": bool(plain["stderr"]) and str(out) in plain["stderr"][0]
                   and "--force" in plain["stderr"][0],
                   "refusals_changed_nothing": after_refusals == users,
                   "force_clash_refused": forced_clash["exit"] == 2,
                   "force_wrote_beside": forced["exit"] == 0
                   and len(complete_images(out, frozenset({"scene-cube"}))) == b.n},
        "table_problems": table_problems(out, exclude=frozenset({"scene-cube"})),
        "lost": lost,
    }


def case_two_runs(b: Bench) -> dict[str, Any]:
    out_a = b.work / "two-together"
    procs = [b.start(out_a), b.start(out_a)]
    together = [(p.wait(timeout=600), p.stderr.read().strip().splitlines()) for p in procs]
    out_b = b.work / "two-overlapping"
    first = b.start(out_b, slow=0.1)  # a slow disk: the first run still writes when the second starts
    deadline = time.time() + 120
    while not (out_b / ".vitviz-run.lock").exists() and time.time() < deadline and first.poll() is None:
        time.sleep(0.02)
    held = (out_b / ".vitviz-run.lock").exists()
    second = b.run(out_b)
    first_exit = first.wait(timeout=600)
    expected = {p.stem for p in b.images}
    codes = sorted(code for code, _ in together)
    return {
        "started_together": [{"exit": c, "stderr": e} for c, e in together],
        "second_while_first_writes": {"lock_held_when_started": held, "first_exit": first_exit, "second": second},
        "checks": {"together_one_ran": codes in ([0, 0], [0, 2]),  # [0, 0]: the second started after the first
                   "together_refused_one": codes == [0, 2],
                   "overlapping_second_refused": second["exit"] == 2 and one_line(second)
                   and "in use by another vitviz run" in second["stderr"][-1],
                   "overlapping_first_ok": first_exit == 0},
        "table_problems": table_problems(out_a, expected) + table_problems(out_b, expected),
        "lost": [],
    }


def case_full_disk(b: Bench, real: bool) -> dict[str, Any]:
    mount = b.work / "small"
    out = mount / "out"
    if real:
        mount_tmpfs(mount, "1536k")
        first = b.run(out)
    else:
        mount.mkdir()
        first = b.run(out, fault=(28, b.n // 3))
    kept = complete_images(out)
    problems = table_problems(out)
    if real:
        remount(mount, "size=64m")  # space freed
    again = b.run(out)
    after = complete_images(out)
    result = {
        "filesystem": "tmpfs of 1.5 MiB" if real else "simulated ENOSPC after a third of the images",
        "first": first, "rerun": again,
        "images_written_before_full": len(kept),
        "checks": {"stopped_exit_2_one_line": first["exit"] == 2 and one_line(first),
                   "message_says_full_count_and_resume": bool(first["stderr"]) and "full" in first["stderr"][-1]
                   and f"stopped after writing {len(kept)} of {b.n}" in first["stderr"][-1]
                   and "resume" in first["stderr"][-1],
                   "did_not_try_every_image": len(kept) < b.n,
                   "rerun_completes": again["exit"] == 0 and len(after) == b.n},
        "table_problems": problems + table_problems(out, {p.stem for p in b.images}),
        "lost": lost_images(kept, after),
    }
    if real:
        _umount(mount)
    return result


def case_read_only(b: Bench, real: bool) -> dict[str, Any]:
    mount = b.work / "ro"
    out = mount / "out"
    half = b.work / "in-half"
    half.mkdir()
    for p in b.images[: b.n // 2]:
        shutil.copy(p, half / p.name)
    if real:
        mount_tmpfs(mount, "64m")
    else:
        mount.mkdir()
    earlier = b.run(out, images=half)
    before = snapshot(out)
    kept = complete_images(out)
    result: dict[str, Any] = {"earlier_run": earlier}
    if real:
        result["filesystem"] = "tmpfs remounted read-only"
        result["read_only_at_start"] = start = {"remounted": remount(mount, "ro")}
        start |= b.run(out)
        unchanged = snapshot(out) == before
        remount(mount, "rw")
    else:
        result["filesystem"] = "simulated EROFS"
        start = result["read_only_at_start"] = b.run(out, fault=(30, 0))
        unchanged = complete_images(out) == kept  # (the folder is writable: its marker is updated)
    # read-only in the middle of a run: tmpfs refuses to go read-only under open files (EBUSY), so simulated
    during = result["read_only_during_run"] = b.run(out, fault=(30, b.n // 6))
    during_kept = complete_images(out)
    problems = table_problems(out)
    again = result["rerun"] = b.run(out)
    after = complete_images(out)
    result["checks"] = {
        "at_start_exit_2_one_line": start["exit"] == 2 and one_line(start),
        "at_start_names_cause": bool(start["stderr"]) and ("read-only" in start["stderr"][-1].lower()
                                                            or "Read-only" in start["stderr"][-1]),
        "at_start_changed_nothing": unchanged,
        "during_exit_2_one_line": during["exit"] == 2 and one_line(during),
        "during_says_read_only_count_and_resume": bool(during["stderr"]) and "read-only" in during["stderr"][-1]
        and "resume" in during["stderr"][-1],
        "rerun_completes": again["exit"] == 0 and len(after) == b.n,
    }
    result["table_problems"] = problems + table_problems(out, {p.stem for p in b.images})
    result["lost"] = lost_images(kept, during_kept) + lost_images(during_kept, after)
    if real:
        _umount(mount)
    return result


def case_kill_and_resume(b: Bench) -> dict[str, Any]:
    out = b.work / "killed"
    (b.work / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot an image")  # a per-image failure row
    proc = b.start(out)
    deadline = time.time() + 300
    rows = 0
    while time.time() < deadline and proc.poll() is None:
        try:
            rows = (out / "results.csv").read_text().count("\n") - 1
        except OSError:
            rows = 0
        if rows >= b.n // 3:
            break
        time.sleep(0.01)
    killed_while_running = proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = complete_images(out)
    problems = table_problems(out, killed=True)
    again = b.run(out)
    after = complete_images(out)
    expected = {p.stem for p in b.images} | {"broken"}
    (b.work / "in" / "broken.png").unlink()
    return {
        "killed_after_rows": rows, "killed_while_running": killed_while_running, "rerun": again,
        "checks": {"rerun_not_blocked_by_the_dead_runs_lock": again["exit"] in (0, 1)
                   and not any("in use" in line for line in again["stderr"]),
                   "rerun_skipped_the_complete": any(f"skipping {len(kept)} image(s)" in line
                                                      for line in again["stderr"]),
                   "corrupt_image_is_one_failed_row": again["exit"] == 1 and one_line(again),
                   "all_images_complete": len(after) == b.n},
        "table_problems": problems + table_problems(out, expected),
        "lost": lost_images(kept, after),
    }


def case_folder_removed(b: Bench) -> dict[str, Any]:
    out = b.work / "removed"
    proc = b.start(out)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        try:
            if (out / "results.csv").read_text().count("\n") > b.n // 4:
                break
        except OSError:
            pass
        time.sleep(0.01)
    for _ in range(50):  # rm -rf races the writers: repeat until the folder is gone
        shutil.rmtree(out, ignore_errors=True)
        if not out.exists():
            break
    _, err = proc.communicate(timeout=300)
    first = {"exit": proc.returncode, "stderr": err.strip().splitlines()}
    recreated = out.exists()
    again = b.run(out)
    return {
        "first": first, "rerun": again,
        "checks": {"stopped_exit_2_one_line": first["exit"] == 2 and one_line(first),
                   "message_says_removed": bool(first["stderr"]) and "was removed" in first["stderr"][-1],
                   "folder_not_made_again": not recreated,
                   "rerun_completes": again["exit"] == 0 and len(complete_images(out)) == b.n},
        "table_problems": table_problems(out, {p.stem for p in b.images}),
        "lost": [],  # the user removed the folder: nothing of the run is kept, by the user's choice
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--name", default="fault-injection")
    parser.add_argument("--simulate", action="store_true", help="simulate the full disk and read-only folder even "
                                                                 "where a tmpfs could be mounted")
    args = parser.parse_args()
    real = can_mount() and not args.simulate
    work = Path(tempfile.mkdtemp(prefix="vitviz-faults-"))
    try:
        bench = Bench(work, args.images, sys.executable)
        cases = {}
        for name, run in [("foreign_folder", lambda: case_foreign_folder(bench)),
                          ("two_runs_one_folder", lambda: case_two_runs(bench)),
                          ("full_disk", lambda: case_full_disk(bench, real)),
                          ("read_only_folder", lambda: case_read_only(bench, real)),
                          ("kill_9_and_resume", lambda: case_kill_and_resume(bench)),
                          ("folder_removed_while_running", lambda: case_folder_removed(bench))]:
            t0 = time.perf_counter()
            cases[name] = run()
            cases[name]["case_seconds"] = round(time.perf_counter() - t0, 1)
            c = cases[name]
            passed = all(c["checks"].values()) and not c["table_problems"] and not c["lost"]
            c["passed"] = passed
            print(f"{name:32s} {'ok' if passed else 'FAILED'}  lost: {len(c['lost'])}  "
                  f"failed checks: {[k for k, v in c['checks'].items() if not v] or 'none'}  "
                  f"table: {c['table_problems'] or 'valid'}", flush=True)
    finally:
        for mount in ("small", "ro"):
            if os.path.ismount(work / mount):
                _umount(work / mount)
        shutil.rmtree(work, ignore_errors=True)
    try:
        import pyarrow  # noqa: F401
        parquet = True
    except ImportError:
        parquet = False
    report = {
        "benchmark": "fault_injection", "date": datetime.date.today().isoformat(), "images": args.images,
        "real_filesystems": real, "parquet_checked": parquet, "machine": machine_info(),
        "nothing_lost": all(not c["lost"] for c in cases.values()),
        "all_passed": all(c["passed"] for c in cases.values()), "cases": cases,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{args.name}-{report['date']}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"nothing lost: {report['nothing_lost']}; all checks passed: {report['all_passed']} -> {path}")
    return 0 if report["all_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
