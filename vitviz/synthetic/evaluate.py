"""Evaluate a model on held-out generated scenes: accuracy, depth error and where the CLS token attends.

    python -m vitviz.synthetic.evaluate --model weights/vitviz-mini.json --n 2000 --seed 7 --json figures.json

Metrics (each scene rendered by :func:`vitviz.synthetic.scenes.render_scene` from a seed derived from ``--seed``):

- ``top1``: fraction of scenes whose main object's class is predicted first.
- ``abs_rel``: mean over scenes of the per-pixel mean of ``|pred - gt| / gt`` (metric depth, no rescaling).
- ``delta1``: fraction of all pixels with ``max(pred / gt, gt / pred) < 1.25``.
- ``abs_rel_median_scaled`` / ``delta1_median_scaled``: the same after scaling each prediction by
  ``median(gt) / median(pred)`` (the usual scale-invariant protocol of monocular depth): the gap to the plain figures
  is the error in absolute scale.
- ``attention_on_mask[l]``: for layer ``l``, the CLS row's attention to the patches (mean over heads,
  renormalised over patches) weighted by how much of each patch the main object's mask covers, averaged over
  scenes; ``mask_area`` is what uniform attention would score.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from ..models.checkpoint import load_checkpoint
from ..models.vit import VisionTransformer
from .scenes import mask_coverage

__all__ = ["evaluate_arrays", "evaluate", "main"]


def _depth_errors(pred: torch.Tensor, gt: torch.Tensor) -> tuple[float, int]:
    """Sum over images of the per-image AbsRel, and the number of pixels with ``max(pred/gt, gt/pred) < 1.25``."""
    abs_rel = float(((pred - gt).abs() / gt).mean(dim=(1, 2)).sum())
    hits = int((torch.maximum(pred / gt, gt / pred) < 1.25).sum())
    return abs_rel, hits


@torch.no_grad()
def evaluate_arrays(
    model: VisionTransformer,
    data: dict[str, np.ndarray],
    mean: tuple[float, ...],
    std: tuple[float, ...],
    batch: int = 100,
) -> dict[str, object]:
    """Metrics of ``model`` on arrays of images (uint8 NHWC), depths, masks and labels."""
    model.eval()
    n = len(data["labels"])
    patch = model.config.patch_size
    mean_t = torch.tensor(mean).view(1, 3, 1, 1)
    std_t = torch.tensor(std).view(1, 3, 1, 1)
    correct = 0
    abs_rel_sum = 0.0
    delta_hits = 0
    abs_rel_ms_sum = 0.0
    delta_ms_hits = 0
    pixels = 0
    layers = model.config.depth
    att_on_mask = np.zeros(layers)
    h, w = data["masks"].shape[1:]
    coverage = mask_coverage(data["masks"], (h // patch, w // patch)).reshape(n, -1)
    confusion = np.zeros((model.config.num_classes, model.config.num_classes), dtype=np.int64)
    for i in range(0, n, batch):
        sl = slice(i, min(n, i + batch))
        x = torch.from_numpy(data["images"][sl]).permute(0, 3, 1, 2).float().div(255.0)
        x = (x - mean_t) / std_t
        out = model(x, return_attention=True)
        labels = torch.from_numpy(data["labels"][sl])
        pred = out.logits.argmax(-1)
        correct += int((pred == labels).sum())
        np.add.at(confusion, (labels.numpy(), pred.numpy()), 1)
        gt = torch.from_numpy(data["depths"][sl].astype(np.float32))
        d = out.depth[:, 0]
        a, h = _depth_errors(d, gt)
        abs_rel_sum, delta_hits = abs_rel_sum + a, delta_hits + h
        scale = gt.flatten(1).median(dim=1).values / d.flatten(1).median(dim=1).values
        a, h = _depth_errors(d * scale.view(-1, 1, 1), gt)
        abs_rel_ms_sum, delta_ms_hits = abs_rel_ms_sum + a, delta_ms_hits + h
        pixels += gt.numel()
        cov = torch.from_numpy(coverage[sl])
        p0 = out.num_prefix_tokens
        for layer, attn in enumerate(out.attentions):
            cls_to_patches = attn[:, :, 0, p0:].mean(dim=1)  # [B, N]
            cls_to_patches = cls_to_patches / cls_to_patches.sum(-1, keepdim=True)
            att_on_mask[layer] += float((cls_to_patches * cov).sum())
    return {
        "scenes": n,
        "top1": correct / n,
        "abs_rel": abs_rel_sum / n,
        "delta1": delta_hits / pixels,
        "abs_rel_median_scaled": abs_rel_ms_sum / n,
        "delta1_median_scaled": delta_ms_hits / pixels,
        "attention_on_mask": [float(v / n) for v in att_on_mask],
        "mask_area": float(coverage.mean()),
        "confusion": confusion.tolist(),
    }


def evaluate(model_path: str | Path, n: int = 2000, seed: int = 7, workers: int = 1,
             size: tuple[int, int] | None = None) -> dict[str, object]:
    """Render ``n`` held-out scenes and evaluate the checkpoint at ``model_path`` on them.

    ``size`` (height, width; multiples of the patch size) defaults to the model's square training size.
    """
    from .scenes import CLASSES, make_dataset

    model, info = load_checkpoint(model_path)
    if model.config.num_classes != len(CLASSES):
        raise ValueError(f"{info.name} has {model.config.num_classes} classes; the generated scenes have "
                         f"{len(CLASSES)} ({', '.join(CLASSES)})")
    size = size or (model.config.image_size, model.config.image_size)
    data = make_dataset(n, seed=seed, size=size, workers=workers, progress=sys.stderr.isatty())
    result = evaluate_arrays(model, data, info.mean, info.std)
    result.update({"model": info.name, "seed": seed, "size": list(size)})
    return result


def format_table(result: dict[str, object]) -> str:
    att = result["attention_on_mask"]
    lines = [
        f"held-out scenes        {result['scenes']} (seed {result.get('seed')})",
        f"top-1 accuracy         {100 * result['top1']:.1f} %",
        f"depth AbsRel           {result['abs_rel']:.3f}",
        f"depth delta<1.25       {100 * result['delta1']:.1f} %",
        f"  median-scaled AbsRel {result['abs_rel_median_scaled']:.3f}",
        f"  median-scaled d<1.25 {100 * result['delta1_median_scaled']:.1f} %",
        f"mask area (uniform)    {100 * result['mask_area']:.1f} %",
    ]
    lines += [f"CLS attention on mask, layer {i}: {100 * v:.1f} %" for i, v in enumerate(att)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vitviz.synthetic.evaluate", description="Evaluate on held-out scenes.")
    parser.add_argument("--model", default="weights/vitviz-mini.json")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    result = evaluate(args.model, args.n, args.seed, args.workers)
    print(format_table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
