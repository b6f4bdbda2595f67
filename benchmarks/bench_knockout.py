"""Time head importance (every head knocked out alone) and a knockout re-analysis, against the forward pass and a
normal analysis timed in the same run (interleaved rounds).

    python benchmarks/bench_knockout.py [--runs 10] [--threads N] [--device cpu] [--json OUT]

Per model, on one image:

- ``forward``: the bare forward pass, ``model(x)`` at batch 1 in inference mode (logits and depth, no attention);
- ``analyze``: :meth:`Engine.analyze` of the image (decode, resize, forward with the attention recorder, result);
- ``analyze knockout``: the same with one head knocked out (``ablate=[(L // 2, 1)]``);
- ``head importance``: :meth:`Engine.head_importance` of an analysed result (every head of every layer knocked out
  alone, batched; the unablated pass included);
- ``head importance estimate``: the same heads' first-order estimate (``method="estimate"``: one forward and
  backward pass; reported beside the knockouts, not a goal of its own);
- once, outside the rounds: ``separate analyses``, one :meth:`Engine.analyze` per knocked-out head (what head
  importance replaces).

``work_in_forwards`` is the exact work of all knockouts in forward passes: a knockout in layer ``l`` of ``L`` runs
blocks ``l..L-1`` (the blocks before it are the unablated pass's), ``sum over heads of (L - l) / L``.

``analyze`` and ``analyze knockout`` are compared in their own rounds, each call after a bare forward pass, in
alternating order: an analysis right after another one runs up to 1.6x slower on a 2-core CPU (numpy's BLAS threads
still spin-wait after the first one's rollout and take the cores from the second's forward pass), which would
otherwise favour whichever call follows a forward pass in the rotation.

Goals: head importance of vitviz-mini <= 1 s; of a random ViT-S/16 (12 layers x 6 heads = 72 knockouts) <= 12x its
forward pass (median of per-round ratios); a knockout re-analysis no slower than a normal analysis (ratio <= 1.0,
within the rounds' spread). Models: the shipped vitviz-mini at 128 px (classifier + depth head, 36 heads) and a
randomly initialised ViT-S/16 (DeiT-S shape, 1000 classes, no depth head) at 224 px.
Writes ``results/knockout-<date>.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks._common import (BENCH_IMAGE, machine_info, machine_line, paired_ratio,  # noqa: E402
                                random_vit_s16_engine, result_path,
                                stats, table, time_round_robin, write_json)
from vitviz.engine import Engine  # noqa: E402

GOALS = {"vitviz-mini": {"head importance": ("seconds", 1.0), "analyze knockout": ("ratio to analyze", 1.0)},
         "vit-s16-random": {"head importance": ("ratio to forward", 12.0),
                            "analyze knockout": ("ratio to analyze", 1.0)}}


def bench_model(engine: Engine, image: Path, runs: int, warmup: int) -> dict:
    result = engine.analyze(image)
    x = engine._tensor(result.image, engine.info)
    layers, heads = len(engine.model.blocks), engine.info.config.num_heads
    knocked = [(layers // 2, 1)]
    batches: list[int] = []
    importance = engine.head_importance(result, progress=lambda done, total: batches.append(done))
    t = time.perf_counter()
    for layer in range(layers):
        for head in range(heads):
            engine.analyze(image, ablate=[(layer, head)])
    separate_ms = (time.perf_counter() - t) * 1000.0

    def forward() -> None:
        with torch.inference_mode():
            engine.model(x)

    fns = {
        "forward": forward,
        "analyze": lambda: engine.analyze(image),
        "head importance": lambda: engine.head_importance(result),
        "head importance estimate": lambda: engine.head_importance(result, method="estimate"),
    }
    sync = torch.cuda.synchronize if engine.device.type == "cuda" else None
    raw: dict[str, list[float]] = {}
    timings = time_round_robin(fns, warmup, runs, sync=sync, raw=raw)
    pairs = {"analyze": lambda: engine.analyze(image),
             "analyze knockout": lambda: engine.analyze(image, ablate=knocked)}
    paired_raw = _after_forward(pairs, forward, warmup, 2 * runs, sync or (lambda: None))
    timings["analyze (paired)"] = stats(paired_raw["analyze"])
    timings["analyze knockout"] = stats(paired_raw["analyze knockout"])
    ratios = {
        "head importance / forward": paired_ratio(raw["head importance"], raw["forward"]),
        "head importance / analyze": paired_ratio(raw["head importance"], raw["analyze"]),
        "head importance estimate / forward": paired_ratio(raw["head importance estimate"], raw["forward"]),
        "analyze knockout / analyze": paired_ratio(paired_raw["analyze knockout"], paired_raw["analyze"]),
    }
    raw.update({f"{k} (paired)": v for k, v in paired_raw.items()})
    return {
        "model": engine.info.name,
        "device": str(engine.device),
        "input": list(result.image.shape[:2]),
        "tokens": result.num_prefix_tokens + result.grid.num_patches,
        "layers": layers,
        "heads": heads,
        "knockouts": layers * heads,
        "work_in_forwards": round(heads * sum(layers - layer for layer in range(layers)) / layers, 2),
        "separate_analyses_ms": round(separate_ms, 1),
        "importance_batches": len(batches),
        "knocked_out_in_analyze_knockout": knocked,
        "top_heads": _top_heads(importance),
        "timings": timings,
        "ratios": ratios,
        "raw_ms": {k: [round(v, 3) for v in vals] for k, vals in raw.items()},
    }


def _after_forward(fns: dict, forward, warmup: int, runs: int, sync) -> dict[str, list[float]]:
    """Time each of ``fns`` once per round, each call right after a bare forward pass, the order alternating."""
    names, samples = list(fns), {name: [] for name in fns}
    for r in range(warmup + runs):
        for name in (names if r % 2 else names[::-1]):
            forward()
            sync()
            t = time.perf_counter()
            fns[name]()
            sync()
            if r >= warmup:
                samples[name].append((time.perf_counter() - t) * 1000.0)
    return samples


def _top_heads(importance) -> list[dict]:
    """The three heads whose knockout lowers the target's probability most (what the figures look like)."""
    import numpy as np

    values = importance.prob_drop if not np.isnan(importance.prob_drop).all() else importance.depth_absrel
    order = np.argsort(-values, axis=None)[:3]
    return [{"layer": int(i // importance.num_heads), "head": int(i % importance.num_heads),
             "prob_drop": float(importance.prob_drop.flat[i])} for i in order]


def vit_s_engine(device: str = "cpu") -> Engine:
    return random_vit_s16_engine(device)


def _verdicts(r: dict) -> list[list[str]]:
    rows = []
    for name, (kind, goal) in GOALS.get(r["model"], {}).items():
        if kind == "seconds":
            value = r["timings"][name]["median_ms"] / 1000.0
            text = f"{value:.2f} s"
        elif kind == "ratio to forward":
            ratio = r["ratios"][f"{name} / forward"]
            value, text = ratio["median"], f"{ratio['median']:.2f}x ({ratio['p10']:.2f}-{ratio['p90']:.2f})"
        else:
            ratio = r["ratios"][f"{name} / analyze"]
            value, text = ratio["median"], f"{ratio['median']:.3f}x ({ratio['p10']:.3f}-{ratio['p90']:.3f})"
        r.setdefault("goals", {})[name] = {"kind": kind, "goal": goal, "value": value, "met": value <= goal}
        rows.append([name, kind, text, f"<= {goal:g}", "met" if value <= goal else "not met"])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--no-json", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine_info()
    print(machine_line(info))
    results: dict = {"machine": info, "settings": {"runs": args.runs, "warmup": args.warmup}, "models": []}
    engines = [(lambda: Engine(device=args.device), ROOT / "assets" / "samples" / "scene-cone.png"),
               (lambda: vit_s_engine(args.device), BENCH_IMAGE)]
    for make, image in engines:
        engine = make()
        r = bench_model(engine, image, args.runs, args.warmup)
        results["models"].append(r)
        rows = [[name, f"{st['median_ms']:.1f}", f"{st['p90_ms']:.1f}"] for name, st in r["timings"].items()]
        print(f"\n{r['model']} ({r['input'][1]}x{r['input'][0]}, {r['tokens']} tokens, {r['knockouts']} heads, "
              f"{r['importance_batches']} batch(es); exact work {r['work_in_forwards']} forward passes; "
              f"{r['knockouts']} separate analyses {r['separate_analyses_ms'] / 1000:.2f} s)")
        print(table(rows, ["", "median ms", "p90 ms"]))
        print(table([[k, f"{v['median']:.3f}x ({v['p10']:.3f}-{v['p90']:.3f})"] for k, v in r["ratios"].items()],
                    ["ratio (median of rounds, p10-p90)", ""]))
        print(table(_verdicts(r), ["goal", "measured as", "value", "goal", ""]))
        del engine
    try:
        results["machine"]["loadavg_at_end"] = [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        pass
    if not args.no_json:
        out = args.json or result_path("knockout")
        write_json(results, out)
        print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
