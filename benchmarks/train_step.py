"""Seconds per training step of vitviz-mini on this machine: fused vs explicit attention, at 96 and 128 px, with
the fusion depth head that training uses and the older simple one.

    python benchmarks/train_step.py [--threads 2] [--batch 64] [--steps 8]

One step is the bf16-autocast forward, the classification + log-depth loss, backward and an AdamW update on random
data (the shipped recipe's shapes). Writes benchmarks/results/train_step.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from vitviz.models.vit import VisionTransformer
from vitviz.synthetic.train import TrainConfig, model_config


def seconds_per_step(size: int, fused: bool, batch: int, steps: int, compiled: bool = False,
                     depth_head: str = "fusion") -> float:
    torch.manual_seed(0)
    model = VisionTransformer(model_config(TrainConfig(depth_head=depth_head), num_classes=10))
    model.set_fused_attention(fused)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    forward = torch.compile(model) if compiled else model
    x = torch.randn(batch, 3, size, size)
    labels = torch.randint(0, 10, (batch,))
    depth = torch.rand(batch, size, size) + 1.0
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = forward(x)
        loss = F.cross_entropy(out.logits.float(), labels) + (out.depth[:, 0].float().log() - depth.log()).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    warm = times[3:] or times  # the first steps include warm-up (and compilation)
    return sum(warm) / len(warm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd explicit attention")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for size in (96, 128):
        for head in ("fusion", "simple"):
            for fused in (True, False):
                s = seconds_per_step(size, fused, args.batch, args.steps, depth_head=head)
                rows.append({"image_size": size, "depth_head": head, "fused_attention": fused,
                             "seconds_per_step": round(s, 4)})
                print(f"{size} px  {head:6s} depth head, {'fused   ' if fused else 'explicit'} attention: "
                      f"{s:.3f} s/step", flush=True)
        if args.compile:
            s = seconds_per_step(size, False, args.batch, args.steps, compiled=True)
            rows.append({"image_size": size, "depth_head": "fusion", "fused_attention": False, "compiled": True,
                         "seconds_per_step": round(s, 4)})
            print(f"{size} px  explicit attention, torch.compile: {s:.3f} s/step", flush=True)
    result = {"threads": args.threads, "batch": args.batch, "torch": torch.__version__,
              "processor": platform.processor() or platform.machine(), "rows": rows}
    out = Path(__file__).parent / "results" / "train_step.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
