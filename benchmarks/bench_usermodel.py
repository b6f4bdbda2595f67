"""What opening your own ViT through vitviz costs (issue 44's goal: the analysis forward <= 1.25x the module's own
eval forward), on the design notes' MiniViT at ViT-S/16's size.

    python benchmarks/bench_usermodel.py [--runs 20]   # writes benchmarks/results/usermodel-<date>.json

The model is the notes' MiniViT (tests/user_models.EncoderViT: a Conv2d patch embedding, CLS, pos_embed,
``nn.TransformerEncoder`` of post-norm ``nn.TransformerEncoderLayer``s, an mlp_head) at 224 px, dim 384, 12 layers,
6 heads, FFN 1536, random weights. Interleaved rounds (benchmarks/_common.time_round_robin) of:

- ``own``: the module's own eval forward in inference mode (PyTorch's fused fast path of nn.TransformerEncoder);
- ``capture``: the wrapped module's forward as the engine runs it for an analysis (every layer's probabilities kept:
  at 197 tokens they fit the engine's full-attention budget);
- ``capture-summary``: the same with the recorder that keeps memory linear in the tokens (``attention="summary"``);
- ``analysis``: ``Engine.analyze`` of a 224x224 image (preprocessing, forward and the maps), as the CLI runs it;
- ``analysis-app``: the same with ``features=True`` and the display copy, as the app runs it.

The ratios are medians of per-round ratios against ``own``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    ROOT,
    machine_info,
    machine_line,
    paired_ratio,
    result_path,
    table,
    time_round_robin,
    write_json,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT))
    from tests.user_models import EncoderViT
    from vitviz.engine import Engine
    from vitviz.models.usermodel import wrap_model

    torch.manual_seed(0)
    module = EncoderViT(img_size=224, patch_size=16, embed_dim=384, depth=12, num_heads=6, num_classes=1000).eval()
    for layer in module.transformer.layers:  # the notes' default FFN would be 2048; ViT-S/16 has 4 x 384
        layer.linear1 = torch.nn.Linear(384, 1536)
        layer.linear2 = torch.nn.Linear(1536, 384)
    wrapped, info = wrap_model(module)
    engine = Engine(loaded=(wrapped, info), device="cpu")
    rgb = (np.random.default_rng(0).random((224, 224, 3)) * 255).astype(np.uint8)
    x = engine._tensor(rgb, info)
    from vitviz.attention import AttentionRecorder

    def own() -> None:
        with torch.inference_mode():
            module(x)

    def capture() -> None:
        with torch.inference_mode():
            wrapped(x, return_attention=True)

    def capture_summary() -> None:
        recorder = AttentionRecorder((14, 14), 16, 1, keep_queries=False, head_statistics=False, num_layers=12)
        with torch.inference_mode():
            wrapped(x, attention_recorder=recorder)

    fns = {"own": own, "capture": capture, "capture-summary": capture_summary,
           "analysis": lambda: engine.analyze(rgb),
           "analysis-app": lambda: engine.analyze(rgb, features=True, keep_display_image=True)}
    raw: dict[str, list[float]] = {}
    timings = time_round_robin(fns, args.warmup, args.runs, raw=raw)
    ratios = {name: paired_ratio(raw[name], raw["own"]) for name in fns if name != "own"}
    info_m = machine_info()
    print(machine_line(info_m))
    print(table([[n, f"{timings[n]['median_ms']:.1f}", f"{ratios[n]['median']:.2f}x" if n in ratios else ""]
                 for n in fns], ["", "median ms", "/ own forward"]))
    goal = ratios["capture"]["median"] <= 1.25
    print(f"goal (capture <= 1.25x the module's own eval forward): {'met' if goal else 'NOT met'}")
    path = args.out or result_path("usermodel")
    write_json({"benchmark": "usermodel", "machine": info_m, "model": "MiniViT (nn.TransformerEncoder) 224 px, "
                "dim 384, 12 layers, 6 heads, FFN 1536, post-norm", "timings": timings, "ratios": ratios,
                "goal_capture_le_1.25x": goal, "raw_ms": raw}, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
