"""Memory and time of the first-order head importance estimate on large models, each in a fresh process.

    python benchmarks/bench_importance_memory.py [--models vit-b16-224 vit-l14-518]

The estimate (:func:`vitviz.importance.estimate_head_importance`) keeps the autograd graph of one forward pass for
its two backward passes: every block's saved activations, about 16 x T x D floats per block (the attention itself
runs in PyTorch's fused kernel, whose backward keeps one log-sum-exp per query, not T x T probabilities); above
``ESTIMATE_GRAPH_BYTES`` the blocks keep their inputs alone and run again in the backward passes (``checkpointed``).
Per model, with random weights and a 1000-class head: peak RSS after building the engine, after one analysis of a
photo, and after the estimate (``ru_maxrss``, so each figure includes the ones before), with the wall time of the
analysis and of the estimate. Writes ``results/<name>-<date>.json`` (default name: importance-memory).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# name: (image size, patch, dim, layers, heads), the shapes of ViT-B/16 and of DINOv2-L/14 at its 518 px
MODELS = {
    "vit-b16-224": (224, 16, 768, 12, 12),
    "vit-l14-518": (518, 14, 1024, 24, 16),
}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(name: str) -> dict:
    """One model in this process: the figures above."""
    import torch

    from vitviz.engine import Engine
    from vitviz.importance import ESTIMATE_GRAPH_BYTES
    from vitviz.models.checkpoint import ModelInfo
    from vitviz.models.vit import ViTConfig, build_model

    size, patch, dim, layers, heads = MODELS[name]
    torch.manual_seed(0)
    cfg = ViTConfig(image_size=size, patch_size=patch, embed_dim=dim, depth=layers, num_heads=heads,
                    num_classes=1000)
    info = ModelInfo(name=name, config=cfg, labels=[f"class {i}" for i in range(1000)], description="random")
    engine = Engine(loaded=(build_model(cfg).eval(), info), device="cpu")
    record: dict = {"model": name, "rss_engine_mb": _rss_mb()}
    photo = ROOT / "assets" / "samples" / "photo-coffee.jpg"
    t = time.perf_counter()
    result = engine.analyze(photo, attention="summary")
    record["analyze_s"] = time.perf_counter() - t
    record["model_input"] = list(result.grid.input_size)
    record["tokens"] = result.grid.num_patches + 1
    record["rss_after_analysis_mb"] = _rss_mb()
    t = time.perf_counter()
    importance = engine.head_importance(result, method="estimate")
    record["estimate_s"] = time.perf_counter() - t
    record["rss_after_estimate_mb"] = _rss_mb()
    record["estimate_extra_mb"] = record["rss_after_estimate_mb"] - record["rss_after_analysis_mb"]
    graph_bytes = 16 * record["tokens"] * dim * 4 * layers  # as estimate_head_importance reckons it
    record["checkpointed"] = graph_bytes > ESTIMATE_GRAPH_BYTES
    record["top_head"] = [int(i) for i in divmod(int(importance.logit_drop.argmax()), heads)]
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--name", default="importance-memory", help="results file name before the date")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child)))
        return 0
    records = []
    for name in args.models:
        proc = subprocess.run([sys.executable, __file__, "--child", name], capture_output=True, text=True, check=True)
        records.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(records[-1]))
    out = ROOT / "benchmarks" / "results" / f"{args.name}-{dt.date.today().isoformat()}.json"
    out.write_text(json.dumps({"date": dt.date.today().isoformat(), "models": records}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
