"""Time class evidence against the plain forward pass with attention, in the same run (interleaved rounds).

    python benchmarks/bench_explain.py [--runs 20] [--vit-s] [--device cuda] [--json OUT]

Per model it times, on one image:

- ``forward+attention``: what :meth:`Engine.analyze` runs (``model(x, return_attention=True)`` in inference mode,
  depth head included when the model has one);
- ``evidence top1`` / ``evidence top5``: :meth:`Engine.evidence` for the first / first five predicted classes (one
  forward with gradients, one backward batched over the targets, arrays to numpy);
- ``evidence top5 (repeat)``: the same five targets with the image repeated five times instead of a batched
  backward (``attention_gradients(..., batched_backward=False)``);
- ``map <method>``: drawing one map from held gradients (:meth:`Evidence.map`), i.e. what a change of class or
  method costs a viewer;

and reports each evidence time as a ratio to ``forward+attention`` (median of per-round ratios; goals: top-1 <= 3x,
top-5 <= 5x). ``first_call_ms`` is the first top-5 call of the process, which also loads PyTorch's decompositions
for the batched backward. Models: the shipped vitviz-mini at 128 px, and with ``--vit-s`` a randomly initialised
ViT-S/16 (DeiT-S shape, 1000 classes) at 224 px.
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
                                table, time_round_robin, write_json)
from vitviz.engine import Engine  # noqa: E402
from vitviz.explain import METHODS, attention_gradients  # noqa: E402

GOALS = {"evidence top1": 3.0, "evidence top5": 5.0}


def bench_model(engine: Engine, image: Path, runs: int, warmup: int) -> dict:
    result = engine.analyze(image)
    x = engine._tensor(result.image, engine.info)
    top5 = [p.index for p in engine.analyze(image, topk=5).predictions]
    t = time.perf_counter()
    engine.evidence(result, top5)
    first_ms = (time.perf_counter() - t) * 1000.0
    evidence = engine.evidence(result, top5)

    def forward() -> None:
        with torch.inference_mode():
            engine.model(x, return_attention=True)

    def repeat5() -> None:
        attn, grads, _ = attention_gradients(engine.model, x, torch.tensor([top5]), batched_backward=False)
        attn.float().cpu().numpy(), grads.float().cpu().numpy()

    fns = {
        "forward+attention": forward,
        "evidence top1": lambda: engine.evidence(result, top5[:1]),
        "evidence top5": lambda: engine.evidence(result, top5),
        "evidence top5 (repeat)": repeat5,
    }
    sync = torch.cuda.synchronize if engine.device.type == "cuda" else None
    raw: dict[str, list[float]] = {}
    timings = time_round_robin(fns, warmup, runs, sync=sync, raw=raw)
    maps = {f"map {m}": (lambda m=m: evidence.map(m, top5[1])) for m in METHODS}
    timings.update(time_round_robin(maps, 2, runs))
    ratios = {name: paired_ratio(raw[name], raw["forward+attention"]) for name in fns if name != "forward+attention"}
    return {
        "model": engine.info.name,
        "device": str(engine.device),
        "input": list(result.image.shape[:2]),
        "tokens": int(result.attentions.shape[-1]),
        "layers": int(result.attentions.shape[0]),
        "heads": int(result.attentions.shape[1]),
        "first_call_ms": round(first_ms, 1),
        "timings": timings,
        "ratio_to_forward": ratios,
        "goals": GOALS,
    }


def vit_s_engine(device: str = "cpu") -> Engine:
    return random_vit_s16_engine(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--vit-s", action="store_true", help="also a random ViT-S/16 at 224 px")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    info = machine_info()
    print(machine_line(info))
    results = {"machine": info, "models": []}
    engines = [(Engine(device=args.device), ROOT / "assets" / "samples" / "scene-cone.png")]
    if args.vit_s:
        engines.append((vit_s_engine(args.device), BENCH_IMAGE))
    for engine, image in engines:
        r = bench_model(engine, image, args.runs, args.warmup)
        results["models"].append(r)
        rows = []
        for name, st in r["timings"].items():
            ratio = r["ratio_to_forward"].get(name)
            rows.append([name, f"{st['median_ms']:.2f}", "" if ratio is None else
                         f"{ratio['median']:.2f}x ({ratio['p10']:.2f}-{ratio['p90']:.2f})",
                         f"<= {GOALS[name]:.0f}x" if name in GOALS else ""])
        print(f"\n{r['model']} ({r['input'][1]}x{r['input'][0]}, {r['tokens']} tokens); first top-5 call "
              f"{r['first_call_ms']:.0f} ms")
        print(table(rows, ["", "median ms", "vs forward+attention", "goal"]))
    out = args.json or result_path("explain")
    write_json(results, out)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
