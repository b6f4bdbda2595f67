"""Images per second of dataset-scale ``vitviz analyze``: serial batch 1 (the command before batching), the batched
pipeline with its default outputs, ``--outputs json``, Ray on this machine, and the forward pass alone.

The inputs are the sample images of ``assets/samples`` copied to ``--images`` files (3 photos at 128x192 and 9 scenes
at 128x128 model input for the shipped model). The configurations run in rounds, in rotating order, so that a change
in the machine's speed hits them alike; each ratio is taken within a round, and the table reports medians.

    python benchmarks/bench_batch.py                       # 240 images, 2 rounds, writes results/batch-<date>.json
    python benchmarks/bench_batch.py --images 480 --rounds 3 --no-ray
    python benchmarks/bench_batch.py --device cuda --model vit-s16 --no-ray   # the GPU goal: batched >= 10x batch 1

``--model vit-s16`` is the ViT-S/16 architecture at 224 px with random weights (saved as a vitviz checkpoint in the
work folder, so that Ray's actors load it too); the forward passes at batch 1 and at the default batch size give the
batching gain.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from _common import ROOT, machine_info, machine_line, result_path, table, write_json

sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from vitviz.engine import Engine  # noqa: E402
from vitviz.export import parse_outputs, write_outputs  # noqa: E402
from vitviz.inputs import expand_inputs  # noqa: E402
from vitviz.pipeline import RunOptions, default_batch_size, forward_streams, run_local, run_ray  # noqa: E402


def make_inputs(folder: Path, n: int) -> list[Path]:
    samples = sorted(p for p in (ROOT / "assets" / "samples").iterdir() if p.suffix in (".png", ".jpg"))
    paths = []
    for i in range(n):
        src = samples[i % len(samples)]
        dst = folder / f"{i:05d}-{src.name}"
        shutil.copyfile(src, dst)
        paths.append(dst)
    return paths


def serial(engine: Engine, paths: list[Path], out: Path) -> None:
    """What ``vitviz analyze`` did before batching: one image at a time, analyse then write (PNG level 6)."""
    for p in paths:
        write_outputs(engine.analyze(p), out / p.stem)


def forward_only(engine: Engine, paths: list[Path], batch_size: int) -> float:
    """Seconds for the batched forward passes alone (attention maps returned, as analysis needs), inputs ready."""
    preps = [engine.prepare(p) for p in paths]
    groups: dict[Any, list] = {}
    for prep in preps:
        groups.setdefault(prep.size_key, []).append(prep)
    batches = [g[i : i + batch_size] for g in groups.values() for i in range(0, len(g), batch_size)]
    t = time.perf_counter()
    for b in batches:
        engine._forward(b, None)  # noqa: SLF001 - the forward pass alone is what is measured
    return time.perf_counter() - t


def bench_model(name: str, folder: Path) -> str | None:
    """The model to run: None (the shipped one), or a random-weight ViT-S/16 checkpoint written into ``folder``."""
    if name == "vitviz-mini":
        return None
    from bench_inference import engine_model

    from vitviz.models.checkpoint import save_checkpoint

    model, info, _ = engine_model(name)
    return str(save_checkpoint(model, info, folder / name))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=240)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray configuration")
    ap.add_argument("--name", default="batch", help="results/NAME-<date>.json")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--note", default="same-run ratios", help="stored in the JSON (say whether the machine was idle)")
    ap.add_argument("--model", default="vitviz-mini", choices=["vitviz-mini", "vit-s16"])
    ap.add_argument("--device", default="cpu", help="cpu, cuda, ... (the engine's device)")
    args = ap.parse_args()

    info = machine_info()
    print(machine_line(info))
    work = Path(tempfile.mkdtemp(prefix="vitviz-bench-batch-"))
    model = bench_model(args.model, work)
    engine = Engine(model, device=args.device)
    bs = default_batch_size(engine.device.type)
    try:
        (work / "in").mkdir()
        paths = make_inputs(work / "in", args.images)
        items = expand_inputs([str(work / "in")])
        quiet = lambda item, exc: f"{item.path}: {exc}"  # noqa: E731

        def local(outputs: str, **kw: Any) -> Callable[[Path], None]:
            def run(out: Path) -> None:
                opts = RunOptions(out=out, outputs=parse_outputs(outputs), progress=False, **kw)
                report = run_local(items, engine, opts, quiet)
                assert report.analysed == len(items), report

            return run

        def serial_threads(n: int) -> Callable[[Path], None]:
            def run(out: Path) -> None:
                before = torch.get_num_threads()
                torch.set_num_threads(n)
                try:
                    serial(engine, paths, out)
                finally:
                    torch.set_num_threads(before)

            return run

        configs: dict[str, Callable[[Path], None]] = {
            "serial batch 1 (before)": lambda out: serial(engine, paths, out),
            "serial batch 1, 1 torch thread": serial_threads(1),
            "default (all outputs)": local("all"),
            "default, PNG level 6": local("all", png_compress_level=6),
            "--outputs json": local("json"),
        }
        ray_init_s = None
        if not args.no_ray:
            try:
                import ray

                t = time.perf_counter()
                ray.init(num_cpus=len(__import__("os").sched_getaffinity(0)), include_dashboard=False,
                         log_to_driver=False, logging_level="ERROR")
                ray_init_s = time.perf_counter() - t

                def on_ray(out: Path) -> None:
                    opts = RunOptions(out=out, outputs=parse_outputs("all"), progress=False)
                    report = run_ray(items, None, model, None, args.device, False, opts, quiet)
                    assert report.analysed == len(items), report

                configs["Ray, this machine (all outputs)"] = on_ray
            except ImportError:
                print("ray is not installed: no Ray row (pip install -e '.[scale]')")

        rates: dict[str, list[float]] = {name: [] for name in configs}
        rates["forward only"] = []
        rates["forward only, batch 1"] = []
        names = list(configs)
        for r in range(args.rounds):
            order = names[r % len(names):] + names[: r % len(names)]
            for name in order:
                out = work / "out"
                t = time.perf_counter()
                with contextlib.redirect_stdout(io.StringIO()):  # the per-image lines
                    configs[name](out)
                rates[name].append(len(paths) / (time.perf_counter() - t))
                shutil.rmtree(out)
                print(f"round {r + 1}: {name}: {rates[name][-1]:.1f} images/s", flush=True)
            # the faster of 1 thread and torch's default: on a busy machine, spinning threads make 2 slower than 1
            for name, size in (("forward only", bs), ("forward only, batch 1", 1)):
                fwd_s = []
                for n in sorted({1, torch.get_num_threads()}) if engine.device.type == "cpu" else [None]:
                    before = torch.get_num_threads()
                    torch.set_num_threads(n or before)
                    fwd_s.append(forward_only(engine, paths, size))
                    torch.set_num_threads(before)
                rates[name].append(len(paths) / min(fwd_s))
                print(f"round {r + 1}: {name}: {rates[name][-1]:.1f} images/s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if "ray" in sys.modules and sys.modules["ray"].is_initialized():
            sys.modules["ray"].shutdown()

    base = rates["serial batch 1 (before)"]
    fwd = rates["forward only"]
    rows, results = [], {}
    for name, values in rates.items():
        vs_serial = [v / b for v, b in zip(values, base)]
        vs_forward = [v / f for v, f in zip(values, fwd)]
        results[name] = {"images_per_s": [round(v, 2) for v in values],
                         "median_images_per_s": round(statistics.median(values), 2),
                         "x_serial_same_round": [round(v, 2) for v in vs_serial],
                         "of_forward_only_same_round": [round(v, 3) for v in vs_forward]}
        rows.append([name, f"{statistics.median(values):.1f}", f"{statistics.median(vs_serial):.2f}x",
                     f"{statistics.median(vs_forward):.0%}"])
    print()
    print(table(rows, ["configuration", "images/s (median)", "vs serial batch 1", "of forward-only"]))
    goals = {
        "default >= 3x serial": statistics.median(results["default (all outputs)"]["x_serial_same_round"]) >= 3,
        "--outputs json >= 60 % of forward-only":
            statistics.median(results["--outputs json"]["of_forward_only_same_round"]) >= 0.6,
    }
    batching = [b / one for b, one in zip(fwd, rates["forward only, batch 1"])]
    print(f"forward passes, batch {bs} vs batch 1: {statistics.median(batching):.1f}x")
    if engine.device.type == "cuda":
        goals["GPU: batched forward >= 10x batch 1"] = statistics.median(batching) >= 10
    print("goals:", goals)
    data = {"machine": info, "model": args.model, "device": str(engine.device), "images": len(paths),
            "rounds": args.rounds, "batch_size": bs, "forward_batched_x_batch1": [round(x, 2) for x in batching],
            "torch_threads": torch.get_num_threads(), "ray_init_s": ray_init_s, "results": results, "goals": goals,
            "forward_streams": {"json": forward_streams("cpu"), "all": forward_streams("cpu", drawing=True)}, "note": args.note}
    if not args.no_write:
        print("wrote", write_json(data, result_path(args.name)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
