"""The gallery at scale: a run of 10,000 images of the shipped model, offscreen.

    python benchmarks/bench_browse.py                    # 10,000 images, 3 launches
    python benchmarks/bench_browse.py --images 500 --launches 1 --quick
    python benchmarks/bench_browse.py --json benchmarks/results/browse-DATE.json

The run: ``vitviz analyze`` of the 12 sample images (3 photos, 9 scenes) with the shipped model and the default
outputs plus ``--explain attention``, then the same folders under 10,000 names (hard links of the files the gallery
reads: ``input.png``, ``cls_attention.npy``, ``depth.npy``, ``explain_*.npy``, ``result.json``) and a
``results.csv`` of 10,000 rows (each real row under its new name; one in 50 is a failed input). The files are
decoded for every thumbnail as for a real run; they come from the page cache, as a run just written or browsed
before does.

Each launch is a fresh ``python`` process that opens the gallery as ``vitviz browse`` does (the run read, the
thumbnail process started, then Qt imported and the window built; 1400x900) and
measures, from the moment the process was started:

* **first thumbnails** (goal <= 1.5 s; ``vitviz browse`` does not import torch): the window painted and every
  thumbnail in view drawn;
* **frame gaps while scrolling** (thumbnails are drawn in a child process, so that drawing does not hold the app's
  Python lock) (goal: none over 50 ms): the scroll bar moved by 40 px every 16 ms for
  ``--scroll-s`` seconds, then paged to 25 places across the whole run; a gap is the time between two ticks of that
  timer on the UI thread (each tick includes the repaint of the previous step);
* **head change** (goal <= 100 ms): ``set_overlay`` to another layer and head, until every thumbnail in view is
  drawn with it (eight changes, at the end of the scroll);
* **peak RSS** (goal <= 600 MB): ``ru_maxrss`` of the app's process at the end, plus the peak of the process that
  draws the thumbnails (``VmHWM``), counted together against the goal.

``import torch`` is timed in a fresh process too, for reference (the goal's "plus the torch import" is the main
window's, which the gallery opens only at a click).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, result_path, write_json  # noqa: E402

READ = ("input.png", "cls_attention.npy", "depth.npy", "result.json")


def make_run(folder: Path, images: int) -> Path:
    """A run of ``images`` images: one real analysis of the samples, linked under many names."""
    real = folder / "real"
    if not (real / "results.csv").is_file():
        code = subprocess.run([sys.executable, "-m", "vitviz", "analyze", str(ROOT / "assets" / "samples"), "--out",
                               str(real), "--quiet", "--explain", "attention", "--device", "cpu"],
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True).returncode
        if code not in (0,):
            raise SystemExit(f"bench_browse: the analysis of the samples failed (exit status {code})")
    with open(real / "results.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = list(reader.fieldnames or []), [r for r in reader if r["status"] == "ok"]
    run = folder / f"run-{images}"
    if (run / "results.csv").is_file() and (run / f"img{images - 1:05d}").exists() is (images % 50 != 0):
        return run  # made by an earlier launch of this script
    if run.is_dir():
        shutil.rmtree(run)
    run.mkdir()
    with open(run / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fields)
        writer.writeheader()
        for i in range(images):
            name = f"img{i:05d}"
            if i % 50 == 49:
                writer.writerow({"name": name, "status": "error", "error": f"data/{name}.jpg: not an image file"})
                continue
            row = rows[i % len(rows)]
            writer.writerow({**row, "name": name, "source": f"data/{name}.jpg"})
            src, dst = real / row["name"], run / name
            dst.mkdir()
            for path in src.iterdir():
                if path.name in READ or (path.name.startswith("explain_") and path.suffix == ".npy"):
                    os.link(path, dst / path.name)
    return run


CHILD = r"""
import json, os, resource, statistics, sys, time
t_start = float(sys.argv[2])
sys.path.insert(0, sys.argv[4])
from vitviz.gallery import open_run
from vitviz.thumbnails import start_thumbnail_process
run = open_run(sys.argv[1])  # in the order of vitviz.cli.browse: the run, the thumbnail process, then Qt
process = start_thumbnail_process(sys.argv[1])
from PySide6.QtCore import QEvent, QEventLoop, QObject, QPoint, QTimer
from vitviz.app import create_app
from vitviz.app.browse.window import BrowseWindow

scroll_s = float(sys.argv[3])
app = create_app()
window = BrowseWindow(run, process=process)
window.resize(1400, 900)
out = {}

class FirstPaint(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint and "window_painted_s" not in out:
            out["window_painted_s"] = time.time() - t_start
        return False

painted = FirstPaint()
window.view.viewport().installEventFilter(painted)
window.show()
model, view = window.model, window.view

def visible():
    # the rows in view: from the first item found near the top left, onwards until below the viewport
    rect = view.viewport().rect()
    found = next((view.indexAt(QPoint(x, y)).row() for y in range(2, 200, 20) for x in range(2, 200, 20)
                  if view.indexAt(QPoint(x, y)).isValid()), 0)
    rows, r = [], max(0, found - 20)
    while r < model.rowCount():
        item = view.visualRect(model.index(r))
        if item.top() > rect.bottom():
            break
        if item.intersects(rect):
            rows.append(r)
        r += 1
    return rows

def wait_drawn(limit=30.0):
    t0 = time.perf_counter()
    rows = None
    while time.perf_counter() - t0 < limit:
        app.processEvents()
        rows = rows or visible()  # (the rows in view stay while nothing scrolls)
        if rows and all(model.is_drawn(r) for r in rows):
            app.processEvents()  # their repaint
            return time.perf_counter() - t0, len(rows)
        time.sleep(0.001)
    return None, 0

_, shown = wait_drawn()
out["first_thumbnails_s"] = time.time() - t_start
out["thumbnails_in_view"] = shown
out["images"] = model.rowCount()

# smooth scrolling, then paging across the whole run
gaps, ticks = [], []
bar = view.verticalScrollBar()
state = {"phase": "scroll", "t0": time.perf_counter(), "page": 0}
pages = [int(bar.maximum() * k / 24) for k in range(25)]

def tick():
    now = time.perf_counter()
    if ticks:
        gaps.append((now - ticks[-1]) * 1000)
    ticks.append(now)
    if state["phase"] == "scroll":
        bar.setValue(bar.value() + 40)
        if now - state["t0"] > scroll_s:
            state["phase"], state["t1"] = "page", now
    else:
        if now - state.get("t_page", 0) > 0.25:
            if state["page"] >= len(pages):
                timer.stop(); loop.quit(); return
            bar.setValue(pages[state["page"]]); state["page"] += 1; state["t_page"] = now

loop = QEventLoop()  # (app.quit() would close the window: Qt 6)
timer = QTimer(); timer.setInterval(16); timer.timeout.connect(tick); timer.start()
loop.exec()
out["frame_gaps_ms"] = {"max": round(max(gaps), 2), "median": round(statistics.median(gaps), 2),
                        "p99": round(sorted(gaps)[int(0.99 * (len(gaps) - 1))], 2), "ticks": len(gaps),
                        "over_50ms": sum(g > 50 for g in gaps)} if gaps else {}
wait_drawn()
changes = []
for layer, head in [(5, 2), (3, 1), (4, 0), (5, None), (2, 3), (1, 5), (0, 0), (5, 2)]:
    t0 = time.perf_counter()
    window.set_overlay("head", layer=layer, head=head)
    took, n = wait_drawn()
    changes.append(round(took * 1000, 2) if took is not None else None)
out["head_change_ms"] = changes
out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
drawing = model.loader.process
if drawing is not None:  # the thumbnail process's own peak
    for line in open(f"/proc/{drawing.child.pid}/status"):
        if line.startswith("VmHWM:"):
            out["drawing_process_peak_rss_mb"] = round(int(line.split()[1]) / 1024, 1)
window.close()
print("RESULT " + json.dumps(out))
"""


def launch(run: Path, scroll_s: float) -> dict:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    t = time.time()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(run), repr(t), str(scroll_s), str(ROOT)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"bench_browse: the gallery process failed:\n{proc.stderr[-2000:]}")
    return json.loads(line[len("RESULT "):])


def torch_import_s() -> float:
    t = time.time()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return time.time() - t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--launches", type=int, default=3)
    parser.add_argument("--scroll-s", type=float, default=8.0)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "vitviz-bench-browse")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="a smoke test: 2 s of scrolling")
    args = parser.parse_args(argv)
    if args.quick:
        args.scroll_s = 2.0
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    run = make_run(args.work, args.images)
    made_s = time.perf_counter() - t0
    launches, torch_s = [], []
    for i in range(args.launches):  # alternating with a bare torch import, so both meet the same machine
        launches.append(launch(run, args.scroll_s))
        torch_s.append(torch_import_s())
        print(f"launch {i + 1}: {json.dumps(launches[-1])}", flush=True)

    def med(key: str) -> float:
        return round(statistics.median(x[key] for x in launches), 3)

    summary = {
        "first_thumbnails_s": med("first_thumbnails_s"),
        "window_painted_s": med("window_painted_s"),
        "import_torch_s": round(statistics.median(torch_s), 3),
        "frame_gap_max_ms": max(x["frame_gaps_ms"]["max"] for x in launches),
        "frame_gap_median_ms": statistics.median(x["frame_gaps_ms"]["median"] for x in launches),
        "frame_gaps_over_50ms": sum(x["frame_gaps_ms"]["over_50ms"] for x in launches),
        "head_change_median_ms": statistics.median(v for x in launches for v in x["head_change_ms"] if v is not None),
        "head_change_max_ms": max(v for x in launches for v in x["head_change_ms"] if v is not None),
        "peak_rss_mb_max": max(x["peak_rss_mb"] for x in launches),
        "drawing_process_peak_rss_mb_max": max((x.get("drawing_process_peak_rss_mb", 0) for x in launches)),
    }
    goals = {"first_thumbnails_s<=1.5": summary["first_thumbnails_s"] <= 1.5,
             "frame_gap_max_ms<=50": summary["frame_gap_max_ms"] <= 50,
             "head_change_max_ms<=100": summary["head_change_max_ms"] <= 100,
             "peak_rss_mb<=600": summary["peak_rss_mb_max"] + summary["drawing_process_peak_rss_mb_max"] <= 600}
    print(json.dumps(summary, indent=2))
    print("goals:", json.dumps(goals))
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    data = {"benchmark": "bench_browse", "images": args.images, "launches": launches, "summary": summary,
            "goals_met": goals, "scroll_s": args.scroll_s, "window": [1400, 900], "thumbnail_px": 160,
            "run_made_s": round(made_s, 1), "cpus": os.cpu_count(), "load_average": load,
            "platform": "Qt offscreen (software rendering)"}
    path = args.json or result_path("browse")
    write_json(data, path)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
