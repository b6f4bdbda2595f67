"""Frames per second of the engine alone on a stream of frames: what the live mode can reach on a device, without
the window or a decoder (``bench_live.py`` measures the whole app).

    python benchmarks/bench_engine_stream.py                                   # shipped model, CPU, 128 px frames
    python benchmarks/bench_engine_stream.py --device cuda --model vit-s16 --frame 640x480 --json out.json

The frames are generated scenes resized to ``--frame`` beforehand. Each is analysed as the live mode does
(``Engine.analyze(frame, traced=True, keep_display_image=True)``: resizing, on CUDA on the device; the TorchScript
trace, on CUDA replayed as a CUDA graph; results to numpy), and also with the eager model; on CUDA also without
graphs and with resizing on the CPU. The modes alternate in blocks of frames so that all meet the same machine.
Reported per mode: frames per second and the median of each stage (``preprocess``, ``forward``, ``postprocess``,
``total``, from ``AnalysisResult.timings``). Issue 17's GPU goal is ViT-S/16 at 224 px >= 60 fps in the live mode.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, machine_info, machine_line, table, write_json  # noqa: E402

sys.path.insert(0, str(ROOT))

from vitviz.engine import Engine  # noqa: E402
from vitviz.synthetic.scenes import render_scene  # noqa: E402

STAGES = ("preprocess", "forward", "postprocess", "total")


def make_engine(model: str, device: str) -> Engine:
    if model == "vitviz-mini":
        return Engine(None, device=device)
    from bench_inference import engine_model

    net, info, _ = engine_model(model)
    return Engine(loaded=(net, info), device=device)


def frames(count: int, width: int, height: int) -> list[np.ndarray]:
    side = max(width, height)
    return [np.asarray(Image.fromarray(render_scene(700_000 + i, side).image).resize((width, height),
                                                                                    Image.Resampling.BILINEAR))
            for i in range(count)]


def modes(engine: Engine) -> dict[str, dict[str, Any]]:
    """What is compared: the live mode's path (traced; on CUDA with graphs and resizing on the device), the eager
    model, and on CUDA the traced path without graphs and with resizing on the CPU."""
    out: dict[str, dict[str, Any]] = {"traced": dict(traced=True, graphs=True, resize_on_device=None),
                                      "eager": dict(traced=False, graphs=True, resize_on_device=None)}
    if engine.device.type == "cuda":
        out["traced, no CUDA graphs"] = dict(traced=True, graphs=False, resize_on_device=None)
        out["traced, resized on the CPU"] = dict(traced=True, graphs=True, resize_on_device=False)
    return out


def run(engine: Engine, stream: list[np.ndarray], seconds: float, block: int = 20) -> dict[str, Any]:
    from vitviz.models.traced import TracedForward

    compared = modes(engine)
    tracers = {graphs: TracedForward(engine.model, cuda_graphs=graphs) for graphs in (True, False)}
    samples: dict[str, dict[str, list[float]]] = {m: {s: [] for s in STAGES} for m in compared}
    busy = {m: 0.0 for m in compared}
    count = {m: 0 for m in compared}

    def analyse(mode: str, frame: np.ndarray) -> Any:
        setting = compared[mode]
        engine._traced = tracers[setting["graphs"]]  # noqa: SLF001 - the benchmark switches the traces
        engine.resize_on_device = setting["resize_on_device"]
        return engine.analyze(frame, traced=setting["traced"], keep_display_image=True)

    for mode in compared:  # warm-up: traces (and graphs) are made on first use
        for f in stream[:5]:
            analyse(mode, f)
    end = time.perf_counter() + len(compared) * seconds
    i = 0
    while time.perf_counter() < end:
        for mode in compared:
            t = time.perf_counter()
            for _ in range(block):
                result = analyse(mode, stream[i % len(stream)])
                i += 1
                for s in STAGES:
                    samples[mode][s].append(result.timings.get(s, float("nan")))
            busy[mode] += time.perf_counter() - t
            count[mode] += block
    engine.resize_on_device = None
    return {mode: {"frames": count[mode], "fps": round(count[mode] / busy[mode], 1),
                   "median_ms": {s: round(statistics.median(v), 2) for s, v in samples[mode].items()},
                   "cuda_graphs_used": bool(compared[mode]["traced"] and tracers[True].cuda_graphs
                                            and engine.device.type == "cuda" and compared[mode]["graphs"])}
            for mode in compared}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="vitviz-mini", choices=["vitviz-mini", "vit-s16"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--frame", default="128x128", help="frame size WxH (default 128x128)")
    ap.add_argument("--seconds", type=float, default=10.0, help="measured seconds per mode")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    width, height = (int(v) for v in args.frame.lower().split("x"))
    info = machine_info()
    print(machine_line(info))
    engine = make_engine(args.model, args.device)
    results = run(engine, frames(30, width, height), args.seconds)
    rows = [[mode, f"{r['fps']:.1f}", *(f"{r['median_ms'][s]:.2f}" for s in STAGES)] for mode, r in results.items()]
    print(f"\n{engine.info.name} on {engine.device}, {width}x{height} frames")
    print(table(rows, ["mode", "fps", *(f"{s} ms" for s in STAGES)]))
    if args.json:
        write_json({"machine": info, "model": args.model, "device": str(engine.device), "frame": [width, height],
                    "results": results}, args.json)
        print("wrote", args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
