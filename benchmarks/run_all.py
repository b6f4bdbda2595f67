"""Run the inference and the UI benchmarks in one go, print every table and write one JSON file.

    python benchmarks/run_all.py --name baseline        # -> benchmarks/results/baseline-<date>.json
    python benchmarks/run_all.py --quick                # smoke test, nothing written unless --name is given
    python benchmarks/compare.py benchmarks/results/A.json benchmarks/results/B.json

Run it on an otherwise idle machine: every number is a wall-clock time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_inference  # noqa: E402
import bench_ui  # noqa: E402
from _common import machine_info, machine_line, result_path, write_json  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bench_inference.add_arguments(p)
    p.add_argument("--ui-runs", type=int, default=30)
    p.add_argument("--launches", type=int, default=5)
    p.add_argument("--skip-ui", action="store_true")
    p.add_argument("--skip-inference", action="store_true")
    p.add_argument("--name", default=None, help="write benchmarks/results/<name>-<date>.json")
    p.add_argument("--note", default="", help="free text stored in the JSON (what changed)")
    args = p.parse_args(argv)
    args = bench_inference.finish_args(args)
    ui_args = argparse.Namespace(runs=args.ui_runs, warmup=args.warmup, launches=args.launches,
                                 sizes=list(bench_ui.SIZES), quick=args.quick)
    ui_args = bench_ui.finish_args(ui_args)
    info = machine_info()
    print("Machine:", machine_line(info), flush=True)
    t0 = time.time()
    data: dict = {"machine": info, "note": args.note, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    if not args.skip_ui:  # first: the launch measurement wants a cold-ish machine, before the heavy models run
        data["ui"] = bench_ui.run(ui_args)
    if not args.skip_inference:
        data["inference"] = bench_inference.run(args)
    data["duration_s"] = round(time.time() - t0, 1)
    try:
        data["loadavg_at_end"] = [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        pass
    print()
    if "inference" in data:
        print(bench_inference.report(data["inference"]))
        print()
    if "ui" in data:
        print(bench_ui.report(data["ui"]))
    if args.name:
        print("\nwrote", write_json(data, result_path(args.name)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
