"""Representation-figure benchmark: what the features views (vitviz.features) cost beyond the forward pass, and the
mean attention distance per layer on the sample images (is there a local-to-global trend?).

    python benchmarks/bench_features.py                  # vitviz-mini (shipped) and ViT-S/16 (random), 50 runs
    python benchmarks/bench_features.py --quick          # smoke test, writes nothing
    python benchmarks/bench_features.py --name features  # also write benchmarks/results/features-<date>.json

Per model, on ``assets/samples/photo-astronaut.jpg`` (ViT-S/16: 224x224, 14x14 patches; vitviz-mini: 8x8):

* ``Engine.analyze`` with and without ``features=True``, interleaved: the cost of keeping every block's output
  tokens (same single forward pass);
* each figure on that result, interleaved: mean attention distance and CLS attention entropy of every head of
  every layer, token norms of every layer, PCA-RGB of one layer (plain and foreground), PCA-RGB of every layer (what
  ``analyze --features`` writes), one patch-similarity map, the head-atlas image;
* ``feature_set_compute``: ``FeatureSet.compute(..., pca_layers=(-1,))``, what the app's worker adds per image;
* ``goal_ms``: PCA of one layer + all head statistics (distance, entropy) + token norms, the issue's
  "<= 20 ms beyond the forward pass" figure for ViT-S/16.

Trend: mean attention distance (and CLS entropy) per layer, averaged over heads and over every image in
``assets/samples``, for the shipped model and for a randomly initialised ViT-S/16 (which has no reason to show a
trend; it is a baseline), with the correlation between layer index and per-head distance.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    BENCH_IMAGE,
    ROOT,
    fmt,
    machine_info,
    machine_line,
    paired_ratio,
    result_path,
    stats,
    table,
    time_round_robin,
    write_json,
)
from bench_inference import LABELS, engine_model  # noqa: E402

SAMPLES = ROOT / "assets" / "samples"


def figure_fns(result: Any) -> dict[str, Any]:
    """One callable per figure, on one analysis result."""
    from vitviz import features as F

    a, h, g, p = result.attentions, result.hidden_states, result.grid, result.num_prefix_tokens
    mad = F.mean_attention_distance(a, g, p)
    ent = F.cls_attention_entropy(a, p)
    return {
        "mean_attention_distance": lambda: F.mean_attention_distance(a, g, p),
        "cls_attention_entropy": lambda: F.cls_attention_entropy(a, p),
        "token_norms": lambda: F.token_norms(h),
        "pca_rgb_one_layer": lambda: F.pca_rgb(h[-1], p, g),
        "pca_rgb_one_layer_foreground": lambda: F.pca_rgb(h[-1], p, g, foreground=True),
        "pca_rgb_every_layer": lambda: [F.pca_rgb(x, p, g) for x in h],
        "patch_similarity": lambda: F.patch_similarity(h[-1], g.num_patches // 2, p, g),
        "feature_set_compute": lambda: F.FeatureSet.compute(a, h, g, p, pca_layers=(-1,)),
        "head_atlas_image": lambda: F.head_atlas_image(mad, ent, F.uniform_attention_distance(g), g.num_patches),
    }


def time_figures(fns: dict[str, Any], warmup: int, runs: int) -> dict[str, dict[str, Any]]:
    """Interleaved like ``time_round_robin``, but each sample is both wall-clock and this thread's CPU time (the
    figures are single-threaded numpy: on a shared machine the CPU time is what the code costs, the wall time what
    it costs there and then)."""
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for r in range(runs):
        for n in names[r % len(names):] + names[: r % len(names)]:
            c0, w0 = time.thread_time(), time.perf_counter()
            fns[n]()
            wall[n].append((time.perf_counter() - w0) * 1000.0)
            cpu[n].append((time.thread_time() - c0) * 1000.0)
    return {n: {**stats(wall[n]), "cpu": stats(cpu[n])} for n in names}


def measure(arch: str, runs: int, warmup: int) -> dict[str, Any]:
    from vitviz.engine import Engine

    import torch

    torch.manual_seed(0)  # the random ViT-S/16: the same weights on every run
    model, info, weights = engine_model(arch)
    engine = Engine(loaded=(model, info), device="cpu")
    raw: dict[str, list[float]] = {}
    e2e = time_round_robin(
        {"analyze": lambda: engine.analyze(BENCH_IMAGE),
         "analyze_features": lambda: engine.analyze(BENCH_IMAGE, features=True)},
        warmup, runs, raw=raw,
    )
    result = engine.analyze(BENCH_IMAGE, features=True)
    figures = time_figures(figure_fns(result), warmup, runs)
    goal_parts = ("mean_attention_distance", "cls_attention_entropy", "token_norms", "pca_rgb_one_layer")
    goal = sum(figures[k]["median_ms"] for k in goal_parts)
    goal_cpu = sum(figures[k]["cpu"]["median_ms"] for k in goal_parts)
    g = result.grid
    return {
        "model": LABELS[arch],
        "weights": weights,
        "grid": [g.rows, g.cols],
        "layers": result.num_layers,
        "heads": result.num_heads,
        "hidden_states_mb": round(result.hidden_states.nbytes / 2**20, 2),
        "end_to_end": e2e,
        "features_over_plain": paired_ratio(raw["analyze_features"], raw["analyze"]),
        "figures": figures,
        "goal_ms": round(goal, 3),
        "goal_cpu_ms": round(goal_cpu, 3),
    }


def trend(arch: str) -> dict[str, Any]:
    """Mean attention distance and CLS entropy per layer over every sample image."""
    from vitviz import features as F
    from vitviz.engine import Engine

    import torch

    torch.manual_seed(0)  # the random ViT-S/16: the same weights on every run
    model, info, weights = engine_model(arch)
    engine = Engine(loaded=(model, info), device="cpu")
    images = sorted(p for p in SAMPLES.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    mads, ents, uniform, log_n = [], [], [], []
    for path in images:
        r = engine.analyze(path)
        mads.append(F.mean_attention_distance(r.attentions, r.grid, r.num_prefix_tokens))
        ents.append(F.cls_attention_entropy(r.attentions, r.num_prefix_tokens))
        uniform.append(F.uniform_attention_distance(r.grid))
        log_n.append(float(np.log(r.grid.num_patches)))
    mad = np.mean(mads, axis=0)  # [layers, heads], averaged over images
    ent = np.mean(ents, axis=0)
    layer_of_head = np.repeat(np.arange(mad.shape[0]), mad.shape[1])
    return {
        "model": LABELS[arch],
        "weights": weights,
        "images": [p.name for p in images],
        "uniform_attention_distance_px": round(float(np.mean(uniform)), 2),
        "mean_attention_distance_per_layer_px": [round(float(v), 2) for v in mad.mean(axis=1)],
        "mean_attention_distance_min_max_per_layer_px": [[round(float(v.min()), 2), round(float(v.max()), 2)]
                                                         for v in mad],
        "cls_entropy_per_layer_nats": [round(float(v), 3) for v in ent.mean(axis=1)],
        "log_num_patches": round(float(np.mean(log_n)), 3),  # the uniform entropy, averaged over the images
        "corr_layer_vs_head_distance": round(float(np.corrcoef(layer_of_head, mad.ravel())[0, 1]), 3),
        "corr_layer_vs_head_entropy": round(float(np.corrcoef(layer_of_head, ent.ravel())[0, 1]), 3),
        "per_head_distance_px": np.round(mad, 2).tolist(),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["vitviz-mini", "vit-s16"], choices=list(LABELS))
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="3 runs, 1 warm-up, no file written")
    p.add_argument("--name", default=None, help="write benchmarks/results/<name>-<date>.json")
    args = p.parse_args()
    if args.quick:
        args.runs, args.warmup = 3, 1
    info = machine_info()
    print(machine_line(info))
    data: dict[str, Any] = {"machine": info, "runs": args.runs, "speed": {}, "trend": {}}
    for arch in args.models:
        m = measure(arch, args.runs, args.warmup)
        data["speed"][arch] = m
        print(f"\n{m['model']} ({m['weights']}), {m['grid'][0]}x{m['grid'][1]} patches, median (p90) ms of {args.runs}")
        e = m["end_to_end"]
        print(f"analyze {fmt(e['analyze']['median_ms'])}, with features {fmt(e['analyze_features']['median_ms'])} "
              f"(paired ratio {m['features_over_plain']['median']})")
        print(table([[k, fmt(v["median_ms"], 2), fmt(v["p90_ms"], 2), fmt(v["cpu"]["median_ms"], 2)]
                     for k, v in m["figures"].items()], ["figure", "wall median", "wall p90", "CPU median"]))
        print(f"goal (PCA one layer + head statistics + token norms): {m['goal_ms']:.2f} ms wall, "
              f"{m['goal_cpu_ms']:.2f} ms CPU (<= 20)")
    for arch in args.models:
        t = data["trend"][arch] = trend(arch)
        print(f"\n{t['model']} ({t['weights']}), {len(t['images'])} images; uniform attention "
              f"{t['uniform_attention_distance_px']} px, log N {t['log_num_patches']} nats")
        rows = [[i, d, f"{lo}-{hi}", e] for i, (d, (lo, hi), e) in enumerate(zip(
            t["mean_attention_distance_per_layer_px"], t["mean_attention_distance_min_max_per_layer_px"],
            t["cls_entropy_per_layer_nats"]))]
        print(table(rows, ["layer", "mean distance px", "heads min-max", "CLS entropy nats"]))
        print(f"corr(layer, head distance) {t['corr_layer_vs_head_distance']}, "
              f"corr(layer, head entropy) {t['corr_layer_vs_head_entropy']}")
    info["loadavg_at_end"] = [round(v, 2) for v in os.getloadavg()]
    print(f"\nload average at start {info.get('loadavg_at_start')}, at end {info['loadavg_at_end']}")
    if args.name and not args.quick:
        print(f"\nwrote {write_json(data, result_path(args.name))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
