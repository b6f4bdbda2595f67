"""UI benchmark: the real ``vitviz.app`` MainWindow, offscreen.

    python benchmarks/bench_ui.py                  # 30 runs each, 5 launches
    python benchmarks/bench_ui.py --quick          # smoke test
    python benchmarks/bench_ui.py --name before    # also write benchmarks/results/before-<date>.json

Measured, in this process, with a prepared :class:`vitviz.engine.AnalysisResult` (synthetic but realistic: softmax
attentions, smooth depth, top-5 of 1000 / of the shipped model's classes) for a ViT-S/16-sized result (12 layers x 6
heads, 14x14 patches, 224x224) and a shipped-model-sized one (6 x 6, 8x8, 128x128):

* **result display** (goal <= 30 ms): ``ViewState.show`` -- what the session calls with the worker's answer -- makes
  every panel update: the input, every head map, the mean, the rollout, the depth map and the bar chart; timed
  alone ("handler") and together with the repaint it causes (``QApplication.processEvents()``, "with paint"). Two
  different results alternate, so nothing is reused between arrivals.
* **layer switch** (goal <= 15 ms): ``ViewState.set_layer`` to the next layer (cycling), handler and with paint.
* **comparison** (goal: a pair <= 2x one display): View → Compare with… on, a ViT-S/16-sized pair of results (A's,
  then B's, each with its repaint) against one result displayed with the comparison off (``--compare-only``: this
  case alone).
* **launch** (goal: first paint <= 0.6 x a bare ``import torch``): a fresh ``python`` process runs the real entry
  point (``vitviz.cli.main([])``, as the ``vitviz`` command does); the time from starting the process to the first
  paint of the main window, and to the first analysed image when the shipped model is installed. After each launch a
  fresh ``python -c "import torch"`` is timed the same way (``import_torch_ms``, the median), so both figures meet the
  same machine. The worker's attention maps and features are timed separately (they run on the worker thread).

``--json PATH`` writes the figures with top-level keys ``launch`` (``launch.window_shown.median_ms``),
``import_torch_ms``, ``views`` and ``machine``.

The window is 1560x940 (its default size) on Qt's offscreen platform: software rendering, no compositor.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH_IMAGE, ROOT, fmt, machine_info, machine_line, result_path, stats, table, write_json  # noqa: E402

SIZES = {
    # name: (layers, heads, grid, patch, classes)
    "vit-s16": (12, 6, 14, 16, 1000),
    "vitviz-mini": (6, 6, 8, 16, 10),
}
WIDTHS = {"vit-s16": 384, "vitviz-mini": 192}  # token width, for the hidden states of the Features view
WINDOW_SIZE = (1560, 940)
ROUNDS = 3  # comparison case: blocks of single displays and of pairs, alternating


def prepared_shown(name: str, seed: int = 0):
    """A realistic finished analysis (``Shown``: result with its attention maps and features) of the given size."""
    import numpy as np
    from PIL import Image

    from vitviz.app.worker import Shown
    from vitviz.attention import AttentionMaps
    from vitviz.engine import AnalysisResult, PatchGrid, Prediction
    from vitviz.features import FeatureSet
    from vitviz.render import cls_maps

    layers, heads, grid, patch, classes = SIZES[name]
    size = grid * patch
    rng = np.random.default_rng(seed)
    img = np.asarray(Image.open(BENCH_IMAGE).convert("RGB").resize((size, size), Image.Resampling.BICUBIC))
    t = 1 + grid * grid
    logits = rng.standard_normal((layers, heads, t, t)).astype(np.float32) * 2.0
    att = np.exp(logits - logits.max(axis=-1, keepdims=True))
    att /= att.sum(axis=-1, keepdims=True)
    yy, xx = np.mgrid[0:size, 0:size] / size
    depth = (1.5 + 3.0 * yy + 0.5 * np.sin(6 * xx + seed)).astype(np.float32)
    p = np.exp(rng.standard_normal(classes) * 3)
    p /= p.sum()
    labels = [f"class {i}" for i in range(classes)]
    order = np.argsort(-p)[:5]
    result = AnalysisResult(
        source=f"bench-{name}-{seed}.jpg", image=img, grid=PatchGrid(grid, grid, patch, (size, size), (512, 512)),
        model_name=name, device="cpu", labels=labels, probabilities=p.astype(np.float32),
        predictions=[Prediction(labels[i], int(i), float(p[i])) for i in order],
        cls_attention=cls_maps(att, (grid, grid)).astype(np.float32), depth=depth, depth_kind="metric",
        depth_model_name=name, timings={"preprocess": 1.0, "forward": 10.0, "postprocess": 1.0, "total": 12.0},
    )
    result.hidden_states = rng.standard_normal((layers, t, WIDTHS[name])).astype(np.float32)
    times, feature_times = [], []
    for _ in range(7):
        t0 = time.perf_counter()  # the attention maps of full tensors (rollout rows, head statistics)
        result.attention = AttentionMaps.from_full(att, (grid, grid), patch)
        times.append((time.perf_counter() - t0) * 1000.0)
        t0 = time.perf_counter()  # what the worker adds for the Features and Head atlas views (last layer's PCA)
        features = FeatureSet.from_result(result, pca_layers=(layers - 1,))
        feature_times.append((time.perf_counter() - t0) * 1000.0)
    return Shown(result, features=features), stats(times)["median_ms"], stats(feature_times)["median_ms"]


def none_refs_lost_per_call() -> int:
    """How many references to None one void Qt call drops (0 when the bindings are correct)."""
    from PySide6.QtCore import QPointF

    point = QPointF(1.0, 2.0)
    before = sys.getrefcount(None)
    for _ in range(100):
        point.setX(1.0)
    return round((before - sys.getrefcount(None)) / 100)


def _window(tmp: Path):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings

    from vitviz.app import create_app
    from vitviz.app.main_window import MainWindow

    app = create_app()
    (tmp / "samples").mkdir(exist_ok=True)
    settings = QSettings(str(tmp / "vitviz.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, samples=tmp / "samples")
    ready = []
    window.session.worker.environment_ready.connect(lambda _info: ready.append(True))
    window.resize(*WINDOW_SIZE)
    window.show()
    deadline = time.monotonic() + 60
    while not ready and time.monotonic() < deadline:  # let the worker finish importing torch first
        app.processEvents()
        time.sleep(0.01)
    for _ in range(5):
        app.processEvents()
    return app, window


def time_layer_switches(app: Any, window: Any, layers: int, warmup: int, runs: int) -> tuple[dict, dict]:
    """Stats of switching to the next layer (cycling): the handler alone, and with the repaint it causes."""
    handler: list[float] = []
    painted: list[float] = []
    layer = window.state.layer
    for i in range(warmup + runs):
        layer = (layer + 1) % layers
        app.processEvents()
        t0 = time.perf_counter()
        window.state.set_layer(layer)
        t1 = time.perf_counter()
        app.processEvents()
        t2 = time.perf_counter()
        assert window.state.layer == layer
        if i >= warmup:
            handler.append((t1 - t0) * 1000.0)
            painted.append((t2 - t0) * 1000.0)
    return stats(handler), stats(painted)


def bench_views(name: str, runs: int, warmup: int, app, window) -> dict[str, Any]:
    (a, roll_ms, features_ms), (b, _, _) = prepared_shown(name, 1), prepared_shown(name, 2)

    def deliver(shown) -> None:
        window.state.show(shown)  # what the session does with the worker's answer

    handler: list[float] = []
    painted: list[float] = []
    for i in range(warmup + runs):
        shown = a if i % 2 == 0 else b
        app.processEvents()
        t0 = time.perf_counter()
        deliver(shown)
        t1 = time.perf_counter()
        app.processEvents()
        t2 = time.perf_counter()
        if i >= warmup:
            handler.append((t1 - t0) * 1000.0)
            painted.append((t2 - t0) * 1000.0)
    assert window.current_result is (a if (warmup + runs - 1) % 2 == 0 else b).result
    layers = window.current_result.num_layers
    assert window.attention_panel.tile_count() == window.current_result.num_heads + 2

    layer_switch = time_layer_switches(app, window, layers, warmup, runs * 2)
    # the Features view (PCA colours): shown in place of the attention tiles, then through the layers
    window.center_views.setCurrentWidget(window.features_panel)
    app.processEvents()
    features_switch = time_layer_switches(app, window, layers, warmup, runs * 2)
    window.center_views.setCurrentWidget(window.attention_panel)
    app.processEvents()
    layers_, heads, grid, patch, _ = SIZES[name]
    return {
        "result": {"layers": layers_, "heads": heads, "grid": grid, "input": grid * patch},
        "display_handler": stats(handler),
        "display_with_paint": stats(painted),
        "layer_switch_handler": layer_switch[0],
        "layer_switch_with_paint": layer_switch[1],
        "worker_rollout_ms": round(roll_ms, 2),
        "worker_features_ms": round(features_ms, 2),
        "features_layer_switch_handler": features_switch[0],
        "features_layer_switch_with_paint": features_switch[1],
    }


def bench_compare(name: str, runs: int, warmup: int, app, window) -> dict[str, Any]:
    """Comparison mode (View → Compare with…; goal: a pair displays in <= 2x the single display time): two pairs of
    results of the size ``name`` alternate; a pair is what the window does with both answers, A's
    (``ViewState.show``, which the comparison's A side follows) and then B's (the comparison's handler of B's
    session), each followed by its repaint. The single display is timed in the same window, the comparison off, in
    ``ROUNDS`` blocks interleaved with the pairs' blocks, so that both meet the same machine."""
    (a1, _, _), (a2, _, _) = prepared_shown(name, 1), prepared_shown(name, 2)
    (b1, _, _), (b2, _, _) = prepared_shown(name, 3), prepared_shown(name, 4)
    compare = window.compare

    def timed(deliver) -> list[float]:
        painted: list[float] = []
        for i in range(warmup + runs):
            app.processEvents()
            t0 = time.perf_counter()
            deliver(i % 2)
            app.processEvents()
            if i >= warmup:
                painted.append((time.perf_counter() - t0) * 1000.0)
        return painted

    def single(i: int) -> None:
        window.state.show((a1, a2)[i])

    def pair(i: int) -> None:
        window.state.show((a1, a2)[i])
        app.processEvents()  # A's side repaints before B's answer arrives, as it does in the app
        compare._on_b_result((b1, b2)[i])

    alone: list[float] = []
    both: list[float] = []
    for _round in range(ROUNDS):  # interleaved, so that both meet the same machine
        alone += timed(single)
        compare._enter()  # comparison on, as View → Compare with… turns it on (B's model is not needed here)
        try:
            both += timed(pair)
            assert compare.view.isVisible() and compare.state_b.result is (b1, b2)[(warmup + runs - 1) % 2].result
        finally:
            compare.stop()
    ratio = stats(both)["median_ms"] / stats(alone)["median_ms"]
    return {"size": name, "single_display_with_paint": stats(alone), "pair_display_with_paint": stats(both),
            "ratio": round(ratio, 3), "goal_ratio": 2.0, "met": ratio <= 2.0}


# ------------------------------------------------------------------------------------------------ launch


LAUNCH_CHILD = r"""
import json, sys, time
marks = {}
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication
import vitviz.app.main_window as mw

class _FirstPaint(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint and "shown" not in marks:
            marks["shown"] = time.monotonic()
            QApplication.instance().removeEventFilter(self)
        return False

_filter = _FirstPaint()
_Base = mw.MainWindow

class Timed(_Base):
    def __init__(self, *a, **k):
        QApplication.instance().installEventFilter(_filter)
        super().__init__(*a, **k)
        self.model_ready.connect(lambda *_: marks.setdefault("model_ready", time.monotonic()))
        self.result_ready.connect(lambda *_: self._done("first_result"))
        self.preview_shown.connect(lambda *_: self._done("first_preview"))
        self.error_shown.connect(lambda m: marks.setdefault("error", m))
        QTimer.singleShot(int(float(sys.argv[1]) * 1000), lambda: self._done("timeout"))

    def _done(self, what):
        marks.setdefault(what, time.monotonic())
        QTimer.singleShot(0, QApplication.instance().quit)

mw.MainWindow = Timed
from vitviz.cli import main
code = main([])
print("LAUNCH " + json.dumps(marks))
"""


def import_torch_ms(env: dict[str, str]) -> float:
    """Wall time of a bare ``python -c "import torch"`` in a fresh process (the yardstick of the launch goal)."""
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", "import torch"], check=True, env=env, cwd=ROOT)
    return (time.monotonic() - t0) * 1000.0


def bench_launch(launches: int, timeout_s: float = 60.0) -> dict[str, Any]:
    """Fresh processes to the first paint (and model, first image), each launch followed by a bare torch import."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    torch_ms: list[float] = []
    shown: list[float] = []
    first: list[float] = []
    model: list[float] = []
    what = None
    with tempfile.TemporaryDirectory(prefix="vitviz-launch-") as tmp:
        env["XDG_CONFIG_HOME"] = tmp  # fresh settings: default window geometry, nothing recent
        env["HOME"] = tmp
        for _ in range(launches):
            t0 = time.monotonic()
            proc = subprocess.run([sys.executable, "-c", LAUNCH_CHILD, str(timeout_s)], capture_output=True,
                                  text=True, cwd=ROOT, env=env)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("LAUNCH ")), None)
            if line is None:
                raise RuntimeError(f"launch child failed: {proc.stderr.strip()[-2000:]}")
            marks = json.loads(line[7:])
            shown.append((marks["shown"] - t0) * 1000.0)
            if "model_ready" in marks:
                model.append((marks["model_ready"] - t0) * 1000.0)
            for key in ("first_result", "first_preview"):
                if key in marks:
                    what = key
                    first.append((marks[key] - t0) * 1000.0)
            torch_ms.append(import_torch_ms(env))  # interleaved, so both meet the same machine
    out: dict[str, Any] = {"launches": launches, "window_shown": stats(shown), "import_torch": stats(torch_ms)}
    if model:
        out["model_ready"] = stats(model)
    if first:
        out[what] = stats(first)
    return out


# ------------------------------------------------------------------------------------------------ driver


def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "ui", "window": list(WINDOW_SIZE), "settings": {"runs": args.runs,
                                                                                    "warmup": args.warmup}}
    out["none_refs_lost_per_void_qt_call"] = none_refs_lost_per_call()
    if out["none_refs_lost_per_void_qt_call"]:
        raise SystemExit("this PySide6 build leaks references to None (6.12.0 on Python < 3.12); install another "
                         "release: pip install 'PySide6-Essentials!=6.12.0'")
    if not args.compare_only:
        print("UI: launch (fresh processes) ...", flush=True)
        out["launch"] = bench_launch(args.launches)
    with tempfile.TemporaryDirectory(prefix="vitviz-ui-") as tmp:
        app, window = _window(Path(tmp))
        out["views"] = {}
        for name in [] if args.compare_only else args.sizes:
            print(f"UI: {name}-sized result ...", flush=True)
            out["views"][name] = bench_views(name, args.runs, args.warmup, app, window)
        print("UI: comparison mode, a pair of vit-s16-sized results ...", flush=True)
        out["compare"] = bench_compare("vit-s16", args.runs, args.warmup, app, window)
        window.close()
        window.shutdown() if hasattr(window, "shutdown") else None
        app.processEvents()
    return out


def report(data: dict[str, Any]) -> str:
    rows = []
    for name, v in data["views"].items():
        r = v["result"]
        rows.append([f"{name} ({r['layers']}L×{r['heads']}H, {r['grid']}×{r['grid']})",
                     fmt(v["display_handler"]["median_ms"]), fmt(v["display_with_paint"]["median_ms"]),
                     fmt(v["display_with_paint"]["p90_ms"]), fmt(v["layer_switch_handler"]["median_ms"]),
                     fmt(v["layer_switch_with_paint"]["median_ms"]), fmt(v["layer_switch_with_paint"]["p90_ms"]),
                     fmt(v["worker_rollout_ms"]), fmt(v["worker_features_ms"]),
                     fmt(v["features_layer_switch_handler"]["median_ms"]),
                     fmt(v["features_layer_switch_with_paint"]["median_ms"])])
    lines = [f"UI (offscreen Qt, window {data['window'][0]}×{data['window'][1]}, {data['settings']['runs']} runs; "
             "goals: display ≤ 30 ms, layer switch ≤ 15 ms)", ""]
    if rows:
        lines.append(table(rows, ["result size", "display ms", "+paint ms", "+paint p90", "layer ms", "+paint ms",
                                  "+paint p90", "worker rollout ms", "worker features ms",
                                  "features layer ms", "+paint ms"]))
    if "compare" in data:
        c = data["compare"]
        lines += ["", f"Comparison mode ({c['size']}-sized pair; goal ≤ {c['goal_ratio']:g} × one display): single "
                      f"display + paint median {c['single_display_with_paint']['median_ms']:.1f} ms, pair "
                      f"{c['pair_display_with_paint']['median_ms']:.1f} ms (p90 "
                      f"{c['pair_display_with_paint']['p90_ms']:.1f} ms): ratio {c['ratio']:.2f}, "
                      + ("met" if c["met"] else "not met")]
    if "launch" not in data:
        return "\n".join(lines)
    la = data["launch"]
    shown, torch_ms = la["window_shown"]["median_ms"], la["import_torch"]["median_ms"]
    lines += ["", f"Launch (fresh process → first paint of the window, {la['launches']} launches; goal ≤ 0.6 × a bare "
                  f"torch import): median {shown:.0f} ms, p90 {la['window_shown']['p90_ms']:.0f} ms; "
                  f"'import torch' {torch_ms:.0f} ms; ratio {shown / torch_ms:.2f}"]
    if "model_ready" in la:
        lines.append(f"  → shipped model loaded: median {la['model_ready']['median_ms']:.0f} ms")
    if "first_result" in la:
        lines.append(f"  → first analysed image shown: median {la['first_result']['median_ms']:.0f} ms")
    if "first_preview" in la:
        lines.append(f"  → first image shown (no model installed): median {la['first_preview']['median_ms']:.0f} ms")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--launches", type=int, default=5)
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--quick", action="store_true", help="smoke test: 3 runs, 1 warm-up, 1 launch")
    p.add_argument("--compare-only", action="store_true",
                   help="only the comparison mode's pair display against the single display (no launches)")


def finish_args(args: argparse.Namespace) -> argparse.Namespace:
    if args.quick:
        args.runs, args.warmup, args.launches = 3, 1, 1
    return args


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(p)
    p.add_argument("--name", default=None, help="write benchmarks/results/<name>-<date>.json")
    p.add_argument("--json", default=None, metavar="PATH",
                   help="write the figures to PATH (keys launch.window_shown.median_ms, import_torch_ms, views, ...)")
    args = finish_args(p.parse_args(argv))
    info = machine_info()
    print("Machine:", machine_line(info), flush=True)
    data = {"machine": info, "ui": run(args)}
    print()
    print(report(data["ui"]))
    if args.name:
        print("\nwrote", write_json(data, result_path(args.name)))
    if args.json:
        flat = {"machine": info, **data["ui"]}
        if "launch" in data["ui"]:
            flat["import_torch_ms"] = data["ui"]["launch"]["import_torch"]["median_ms"]
        print("wrote", write_json(flat, Path(args.json)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
