"""Live-mode benchmark: the real pipeline (capture thread -> one-slot buffer -> engine on the controller's analysis
thread -> UI thread -> the vitviz window, offscreen, whose panels draw every result), measured in one process.

    python benchmarks/bench_live.py --source scene --model vitviz-mini --seconds 30 --json out.json
    python benchmarks/bench_live.py --source clip.mp4 --seconds 60            # any video, GIF or WebP
    python benchmarks/bench_live.py --make-video scene-128.mp4 --frames 240   # write a 128 px test video, then stop

The window is the app's own ``MainWindow`` (1560x940, fresh settings) with the model loaded through it; each frame
goes through ``LiveMode`` into the ``ViewState`` and every visible panel redraws (input, predictions, every head map,
mean, rollout, depth, details); the event loop then paints the window as it does in the app, and a 1-pixel widget
raised above the others (painted last in each paint pass) takes the time the panels were drawn.

JSON keys (goals from issue 17 in brackets):
* ``fps``: frames shown per second, each with its own result [>= 25 for vitviz-mini at 128 px on 2 cores];
* ``latency_ms_median``, ``latency_ms_p90``: from the capture thread handing the frame over to the first paint of
  the window showing it [<= 2 frame intervals];
* ``dropped``: frames captured but never analysed because the engine was busy with a newer one;
* ``engine_ms_median``: ``Engine.analyze`` per frame in this run; ``plumbing_efficiency`` = fps / (1000 /
  engine_ms_median) [>= 0.8];
* ``rss_mb_start`` (after the warm-up), ``rss_mb_end`` [within 5 %];
* for the built-in scene the measurement starts once its loop is fully rendered (``scene_loop_rendered_after_s``):
  until then the rendering process shares the CPU with the engine;
* ``max_paint_gap_ms``: the longest gap between paints of a widget asked to repaint every 10 ms, i.e. the longest
  stall of the UI thread [<= 100 ms].
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info, machine_line, stats, write_json  # noqa: E402


def rss_mb() -> float:
    """Resident set size of this process in MiB (Linux /proc; psutil elsewhere when installed)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        return float("nan")


def make_video(path: Path, frames: int, fps: float, size: int, seed: int | None) -> Path:
    """Write the built-in scene's loop as a video (or GIF) with the live recorder, at ``fps``."""
    from vitviz.live import Recorder
    from vitviz.live.scene import SceneSource

    scene = SceneSource(seed=seed, frames=frames, fps=fps, size=size)
    rec = Recorder(path, fps_hint=fps)
    for i in range(frames):
        image, _ = scene.render(i)
        rec.add(image, i / fps, block=True)
    return rec.close()


def make_window(model: str | None, device: str) -> tuple[Any, Any, Any]:
    """The real vitviz window (offscreen, fresh settings) with ``model`` loaded, and a probe that times every live
    frame until the panels have painted it, plus a 10 ms heartbeat whose paint gaps are the UI thread's stalls."""
    import tempfile

    from PySide6.QtCore import QEventLoop, QSettings, Qt, QTimer
    from PySide6.QtWidgets import QLabel, QWidget

    from vitviz.app.main_window import MainWindow

    class Heartbeat(QLabel):
        def __init__(self) -> None:
            super().__init__("●")
            self.paints: list[float] = []
            self.timer = QTimer(self)
            self.timer.setInterval(10)
            self.timer.timeout.connect(self.update)
            self.timer.start()

        def paintEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
            super().paintEvent(event)
            self.paints.append(time.perf_counter())

    class Marker(QWidget):
        """A 1-pixel child of the window, raised above everything: Qt paints it last in a paint pass, so its
        paint time is when the panels have been drawn. Asked to repaint with every live frame."""

        def __init__(self, parent: Any, probe: Any) -> None:
            super().__init__(parent)
            self.probe = probe
            self.setGeometry(0, 0, 1, 1)
            self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
            self.raise_()
            self.show()

        def paintEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
            self.probe.painted()

    class Probe:
        def __init__(self, window: Any) -> None:
            self.window = window
            self.latencies_ms: list[float] = []
            self.shown_at: list[float] = []
            self.waiting: Any = None  # the frame handed to the panels, until a paint pass has drawn it
            self.heartbeat = Heartbeat()
            window.status_bar.addPermanentWidget(self.heartbeat)
            self.marker = Marker(window, self)
            window.live.controller.frame_ready.connect(self.taken)

        def taken(self, frame: Any, shown: Any) -> None:
            """Connected after the window's own slot: the panels have taken the frame and asked to be repainted;
            the event loop paints them (as in the app: no forced repaint here)."""
            self.waiting = frame
            self.marker.update()

        def painted(self) -> None:
            if self.waiting is None:
                return
            now = time.perf_counter()
            self.latencies_ms.append((now - self.waiting.captured) * 1000.0)
            self.shown_at.append(now)
            self.waiting = None

    settings_dir = tempfile.mkdtemp(prefix="vitviz-bench-live-")
    window = MainWindow(settings=QSettings(f"{settings_dir}/v.ini", QSettings.Format.IniFormat),
                        samples=Path(settings_dir))
    window.resize(1560, 940)
    window.show()
    loop = QEventLoop()
    window.model_ready.connect(lambda _m: loop.quit())
    window.error_shown.connect(lambda m: (print("bench_live:", m, file=sys.stderr), loop.quit()))
    window.load_model(model or "vitviz-mini", device)
    loop.exec()
    if window.session.worker.engine is None:
        raise SystemExit("bench_live: the model did not load")
    return window, window.live.controller, Probe(window)


def run(source: str, model: str | None, seconds: float, warmup: float, device: str,
        record: Path | None = None) -> dict[str, Any]:
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from vitviz.app.live import qimage_to_rgb

    app = QApplication.instance() or QApplication([sys.argv[0]])
    window, controller, view = make_window(model, device)
    engine = window.session.worker.engine
    engine_ms: list[tuple[float, float]] = []
    errors: list[str] = []
    controller.frame_ready.connect(lambda f, s: s is not None and engine_ms.append((time.perf_counter(), s.worker_ms)))
    controller.error.connect(lambda message, fatal: errors.append(message))
    from vitviz.live import open_source

    src = open_source(source)
    t_start = time.perf_counter()
    controller.start(src)

    def spin(duration: float) -> None:
        """Run the Qt event loop for ``duration`` seconds, as the app would."""
        loop = QEventLoop()
        QTimer.singleShot(int(duration * 1000), loop.quit)
        loop.exec()

    spin(warmup)
    prerender_s = None
    if hasattr(src, "rendered"):  # the built-in scene: measure the steady state, once its loop is rendered
        while src.rendered < src.frame_count and time.perf_counter() - t_start < 300:
            spin(0.25)
        prerender_s = round(time.perf_counter() - t_start, 1)
    if record is not None:  # what the window shows, grabbed after each frame (as the app's Record does)
        controller.start_recording(record, grab=lambda: qimage_to_rgb(window.centralWidget().grab().toImage()))
    rss_start = rss_mb()
    t0 = time.perf_counter()
    dropped0 = controller._slot.dropped if controller._slot is not None else 0
    n_lat0, n_shown0 = len(view.latencies_ms), len(view.shown_at)
    spin(seconds)
    t1 = time.perf_counter()
    dropped = (controller._slot.dropped if controller._slot is not None else 0) - dropped0
    rss_end = rss_mb()
    recorded = str(controller.stop_recording()) if record is not None else None
    ok = controller.stop()
    window.close()  # stops the worker thread too
    shown = [t for t in view.shown_at[n_shown0:] if t0 <= t <= t1]
    lat = view.latencies_ms[n_lat0:]
    eng = [ms for t, ms in engine_ms if t0 <= t <= t1]
    beats = [t for t in view.heartbeat.paints if t0 <= t <= t1]
    gaps = [(b - a) * 1000.0 for a, b in zip(beats, beats[1:])]
    fps = (len(shown) - 1) / (shown[-1] - shown[0]) if len(shown) > 1 else 0.0
    eng_med = statistics.median(eng) if eng else float("nan")
    lat_stats = stats(lat) if lat else {"median_ms": float("nan"), "p90_ms": float("nan")}
    info = controller.source_info
    return {
        "fps": round(fps, 2),
        "latency_ms_median": lat_stats["median_ms"],
        "latency_ms_p90": lat_stats["p90_ms"],
        "dropped": int(dropped),
        "engine_ms_median": round(eng_med, 2),
        "rss_mb_start": round(rss_start, 1),
        "rss_mb_end": round(rss_end, 1),
        "max_paint_gap_ms": round(max(gaps), 1) if gaps else float("nan"),
        "plumbing_efficiency": round(fps / (1000.0 / eng_med), 3) if eng else None,
        "latency_frame_intervals_median": round(lat_stats["median_ms"] * fps / 1000.0, 2) if fps else None,
        "frames_shown": len(shown),
        "source": source,
        "source_fps": info.fps if info else None,
        "source_size": None if controller.last is None else list(controller.last[0].image.shape[:2]),
        "model": engine.name,
        "device": str(engine.device),
        "seconds": seconds,
        "warmup_s": warmup,
        "scene_loop_rendered_after_s": prerender_s,
        "threads_stopped_within_1s": ok,
        "recorded": recorded,
        "errors": errors[:10],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default="scene", help="scene, scene:SEED, or a video / GIF / WebP file")
    ap.add_argument("--model", default=None, help="model name or checkpoint (default: the shipped model)")
    ap.add_argument("--seconds", type=float, default=30.0, help="measured seconds (after the warm-up)")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds run before measuring (default 3)")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda, auto")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    ap.add_argument("--json", type=Path, default=None, help="write the result here")
    ap.add_argument("--note", default="", help="stored in the JSON")
    ap.add_argument("--record", type=Path, default=None, metavar="PATH",
                    help="also record the window to PATH (.mp4 or .gif) while measuring (costs time on the UI thread)")
    ap.add_argument("--make-video", type=Path, default=None, metavar="PATH",
                    help="write the built-in scene's loop to PATH (.mp4 or .gif) and stop")
    ap.add_argument("--frames", type=int, default=240, help="frames of --make-video (default 240)")
    ap.add_argument("--fps", type=float, default=30.0, help="frame rate of --make-video (default 30)")
    ap.add_argument("--size", type=int, default=128, help="frame size of --make-video (default 128)")
    ap.add_argument("--seed", type=int, default=None, help="scene seed of --make-video")
    args = ap.parse_args(argv)
    if args.make_video is not None:
        path = make_video(args.make_video, args.frames, args.fps, args.size, args.seed)
        print(f"wrote {path} ({args.frames} frames, {args.size} px, {args.fps:g} fps)")
        return 0
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    result = run(args.source, args.model, args.seconds, args.warmup, args.device, args.record)
    machine = machine_info()
    result["machine"] = machine
    result["note"] = args.note
    print(machine_line(machine))
    for key in ("fps", "latency_ms_median", "latency_ms_p90", "dropped", "engine_ms_median", "plumbing_efficiency",
                "rss_mb_start", "rss_mb_end", "max_paint_gap_ms", "frames_shown", "threads_stopped_within_1s"):
        print(f"{key:>28}: {result[key]}")
    if result["errors"]:
        print("errors:", *result["errors"], sep="\n  ")
    if args.json is not None:
        print(f"wrote {write_json(result, args.json)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
