"""Where the full attention tensors stop paying: an analysis summarising them after the eager forward pass against
one whose recorder computes the attention in the pass, by the number of tokens.

    python benchmarks/bench_attention_strategy.py                 # ViT-S/16, 65 ... 1,025 tokens
    python benchmarks/bench_attention_strategy.py --sides 14 24 --rounds 9 --name attention-strategy

For a random ViT-S/16 (12 layers, 6 heads, dim 384, 1000 classes) at square inputs of ``side`` patches (T =
1 + side²) it times, in one process, alternating round by round, ``Engine.analyze`` of a PNG the way the CLI asks
(``attention="summary"``) both ways: the engine's summary budget set so that the eager forward pass returns the
full tensors (``AttentionMaps.from_full`` summarises them), and set to 0 (an ``AttentionRecorder`` in the pass).
Each round's ratio is eager / recorder; the medians say where the crossover lies, which
``vitviz.attention.SUMMARY_FROM_FULL_BUDGET`` is set from. ``--threads 1 --clock cpu`` times the work itself (the
process's CPU time on one thread), which a machine shared with other busy processes does not change much, where wall
times then vary tenfold. Writes ``results/<name>-<date>.json`` with ``--name``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info, machine_line, result_path, stats, wait_for_idle, write_json  # noqa: E402


def measure(side: int, rounds: int, warmup: int, folder: Path, dim: int, heads: int, clock=time.perf_counter,
            min_idle: float = 0.0) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    import vitviz.engine as engine_module
    from vitviz.attention import full_attention_bytes
    from vitviz.engine import Engine
    from vitviz.models.checkpoint import ModelInfo
    from vitviz.models.vit import ViTConfig, VisionTransformer

    torch.manual_seed(0)
    size = 16 * side
    cfg = ViTConfig(image_size=size, patch_size=16, embed_dim=dim, depth=12, num_heads=heads, num_classes=1000)
    info = ModelInfo(name="random", config=cfg, labels=[f"class {i}" for i in range(1000)], description="random")
    engine = Engine(loaded=(VisionTransformer(cfg).eval(), info), device="cpu")
    path = folder / f"{side}.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    budget = engine_module.SUMMARY_FROM_FULL_BUDGET
    ways = {"eager": float("inf"), "recorder": 0}
    samples: dict[str, list[float]] = {way: [] for way in ways}
    stages: dict[str, dict[str, list[float]]] = {way: {} for way in ways}
    idle: list[float] = []
    try:
        for r in range(warmup + rounds):
            if min_idle and r >= warmup:
                idle.append(wait_for_idle(min_idle))
            for way in (list(ways) if r % 2 == 0 else list(ways)[::-1]):
                engine_module.SUMMARY_FROM_FULL_BUDGET = ways[way]
                t = clock()
                result = engine.analyze(path, attention="summary")
                if r >= warmup:
                    samples[way].append((clock() - t) * 1000.0)
                    for stage, ms in result.timings.items():
                        stages[way].setdefault(stage, []).append(ms)
    finally:
        engine_module.SUMMARY_FROM_FULL_BUDGET = budget
    tokens = 1 + side * side
    ratios = [e / r for e, r in zip(samples["eager"], samples["recorder"])]
    return {
        "side": side, "tokens": tokens, "full_tensor_mb": round(full_attention_bytes(12, heads, tokens) / 2**20, 1),
        "eager": stats(samples["eager"]), "recorder": stats(samples["recorder"]),
        "stages_median_ms": {way: {k: round(statistics.median(v), 2) for k, v in st.items()}
                             for way, st in stages.items()},
        "ratio_eager_over_recorder": {"median": round(statistics.median(ratios), 3),
                                      "all": [round(x, 3) for x in ratios]},
        "idle_before_rounds": idle,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[8, 14, 20, 24, 28, 32])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--base", action="store_true", help="ViT-B/16's width (768, 12 heads) instead of ViT-S/16's")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: the process's CPU time, which other processes on a busy machine hardly change "
                             "(with --threads 1 only: idle threads of a team spin and count)")
    parser.add_argument("--min-idle", type=float, default=0.0,
                        help="before each round, wait until the CPUs are this idle over a second (e.g. 0.8)")
    parser.add_argument("--name", help="write results/<name>-<date>.json")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    dim, heads = (768, 12) if args.base else (384, 6)
    info = machine_info()
    print(machine_line(info))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for side in args.sides:
            m = measure(side, args.rounds, args.warmup, Path(tmp), dim, heads, clock, args.min_idle)
            rows.append(m)
            print(f"T={m['tokens']:5d} ({m['full_tensor_mb']:6.1f} MB): eager {m['eager']['median_ms']:8.1f} ms  "
                  f"recorder {m['recorder']['median_ms']:8.1f} ms  eager/recorder (median of rounds) "
                  f"{m['ratio_eager_over_recorder']['median']:.3f}; fastest rounds: eager {m['eager']['min_ms']:.1f} "
                  f"ms, recorder {m['recorder']['min_ms']:.1f} ms", flush=True)
    if args.name:
        path = write_json({"machine": info, "model": {"dim": dim, "heads": heads, "layers": 12},
                           "rounds": args.rounds, "clock": args.clock, "threads": args.threads,
                           "min_idle": args.min_idle, "cases": rows},
                          result_path(args.name))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
