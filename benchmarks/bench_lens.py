"""What the logit lens adds to an analysis (issue 27's goal: <= 10 %), on the shipped model and a random ViT-S/16.

    python benchmarks/bench_lens.py [--runs 20]      # writes benchmarks/results/lens-<date>.json

Per model, interleaved rounds (benchmarks/_common.time_round_robin) of:

- ``analysis``: ``Engine.analyze(image)``, the plain analysis the CLI runs;
- ``analysis+lens``: ``Engine.analyze(image, features=True)`` (the hidden states the lens reads) then
  ``Engine.lens(result)`` and the patch maps of one layer (what the app computes: the others when shown);
- ``analysis+lens.npz``: the same with every layer's patch maps (what ``vitviz analyze --lens`` writes);
- ``lens``: ``Engine.lens`` alone on a kept result, every layer's maps;
- ``lens-app``: the same with one layer's maps (the app's cost, the steadier figure).

The added share is the median of the per-round ratios minus one; the lens alone over the analysis's median is the
steadier figure on a noisy machine. ViT-S/16 has random weights, a 1000-class head and
the simple depth head (as in bench_inference.py); its lens computes 1000 logits for each of the 196 patch tokens of
each of the 12 layers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    BENCH_IMAGE,
    machine_info,
    machine_line,
    paired_ratio,
    random_vit_s16_engine,
    result_path,
    table,
    time_round_robin,
    write_json,
)


def engines() -> dict:
    from vitviz.engine import Engine

    return {"vitviz-mini": Engine(None, device="cpu"), "vit-s16": random_vit_s16_engine("cpu", depth_head="simple")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--name", default="lens")
    args = parser.parse_args(argv)
    info = machine_info()
    print("Machine:", machine_line(info), flush=True)
    out: dict = {"machine": info, "runs": args.runs, "models": {}}
    rows = []
    for name, engine in engines().items():
        image = str(BENCH_IMAGE)
        raw: dict[str, list[float]] = {}
        kept = engine.analyze(image, features=True)
        timings = time_round_robin({
            "analysis": lambda e=engine: e.analyze(image),
            # what the app pays: the class probabilities per layer and the patch maps of the layer on screen
            "analysis+lens": lambda e=engine: e.lens(e.analyze(image, features=True)).patch_map(-1),
            # what `vitviz analyze --lens` pays: every layer's patch maps, for lens.npz
            "analysis+lens.npz": lambda e=engine: e.lens(e.analyze(image, features=True)).patch_probabilities,
            "lens": lambda e=engine: e.lens(kept).patch_probabilities,
            "lens-app": lambda e=engine: e.lens(kept).patch_map(-1),
        }, args.warmup, args.runs, raw=raw)
        ratio = paired_ratio(raw["analysis+lens"], raw["analysis"])
        npz_ratio = paired_ratio(raw["analysis+lens.npz"], raw["analysis"])
        alone = timings["lens"]["median_ms"] / timings["analysis"]["median_ms"]
        app_alone = timings["lens-app"]["median_ms"] / timings["analysis"]["median_ms"]
        out["models"][name] = {"timings": timings, "ratio": ratio, "added": round(ratio["median"] - 1.0, 3),
                               "npz_ratio": npz_ratio, "npz_added": round(npz_ratio["median"] - 1.0, 3),
                               "lens_alone_over_analysis": round(alone, 3),
                               "app_lens_alone_over_analysis": round(app_alone, 3)}
        rows.append([name, f"{timings['analysis']['median_ms']:.1f}", f"{timings['analysis+lens']['median_ms']:.1f}",
                     f"{100 * (ratio['median'] - 1):+.1f} % ({100 * (ratio['p10'] - 1):+.1f}…"
                     f"{100 * (ratio['p90'] - 1):+.1f})", f"{100 * (npz_ratio['median'] - 1):+.1f} %",
                     f"{timings['lens']['median_ms']:.1f} ({100 * alone:.1f} %)",
                     f"{timings['lens-app']['median_ms']:.1f} ({100 * app_alone:.1f} %)"])
        print(name, rows[-1], flush=True)
    print()
    print(table(rows, ["model", "analysis ms", "+ lens ms (app)", "added (p10…p90 of rounds)",
                       "added with every layer's maps (--lens)", "every layer's lens alone ms",
                       "the app's lens alone ms"]))
    print("wrote", write_json(out, result_path(args.name)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
