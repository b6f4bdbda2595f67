"""How faithful is each class-evidence method? Measured on generated scenes whose object masks are exact.

    python benchmarks/eval_explanations.py --model weights/vitviz-mini.json --n 200 --seed 11 \
        --json benchmarks/results/explanations-DATE.json

For every scene (rendered by :func:`vitviz.synthetic.scenes.make_dataset` from ``--seed``) the target is the true
class of the main object, and each method's map (:func:`vitviz.explain.evidence_map`, settings fixed in
:data:`METHOD_SETTINGS` before any evaluation) is scored by:

- ``mask_energy``: the share of the map's mass on the object's exact mask, each patch's mass weighted by the fraction
  of the patch the mask covers (as the model card's "CLS attention on the object" figure); a uniform map scores the
  mask area.
- ``deletion_auc``: patches are replaced by the image's mean colour, most relevant first, ``--steps`` equal steps
  from none to all; the area under the target-class probability curve (x = fraction of patches removed, trapezoid
  rule). Lower is better (Petsiuk et al. 2018, "RISE").
- ``insertion_auc``: patches of the image are pasted, most relevant first, onto the image's mean colour everywhere
  (the deletion curve's baseline, so insertion starts from the image deletion ends at). Higher is better. The start
  image must itself remove the class, or every order, random included, scores high: this one was chosen because its
  target-class probability alone is near chance (1/10), measured on other scenes before the reported run (48 scenes
  of seed 7: 0.093 ± 0.020; RISE's Gaussian blur, sigma = 5 px at 224 px, which this script used before: 0.851;
  a 4x stronger blur: 0.479; a black or a grey image: 0.10, as the mean colour). Each run records it as
  ``_meta.start_probability`` (the probability of the start image alone, mean over scenes, with its standard
  error). Note that the model calls any flat image ``cube``, so the start is near chance on average, not per class.
- ``random``: a random patch order per scene (its mask energy is the uniform map's): the floor.

Ties in a map (e.g. the zeros left by a discard ratio) are broken randomly. ``_paired`` holds the per-scene
differences between the class-specific methods and the others (mean and standard error), which are more precise than
comparing the means. The perturbed images are classified in
batches (encoder and classifier only). Means over scenes with their standard errors (``*_se``) are written.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import machine_info, table  # noqa: E402
from vitviz.explain import attention_gradients, evidence_map  # noqa: E402
from vitviz.models.checkpoint import load_checkpoint  # noqa: E402
from vitviz.synthetic.scenes import CLASSES, make_dataset, mask_coverage  # noqa: E402

# Fixed before evaluating: the defaults of the app and of vit-explain, not tuned on any seed.
METHOD_SETTINGS: dict[str, dict] = {
    "attention": {"layer": -1},  # last layer, mean of heads
    "rollout": {"head_fusion": "mean", "discard_ratio": 0.0},  # Abnar & Zuidema; the app's rollout view
    "grad-rollout": {"discard_ratio": 0.9},  # vit-explain's default
    "relevance": {},  # Chefer et al. 2021 (ICCV), gradient x attention rule
}
METRICS = ("mask_energy", "deletion_auc", "insertion_auc")


def ordering(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Patch indices from most to least relevant, ties broken at random."""
    v = values.reshape(-1)
    return np.lexsort((rng.random(v.size), -v))


def perturbation_aucs(model, x: torch.Tensor, orders: np.ndarray, target: int, grid: tuple[int, int], patch: int,
                      steps: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Deletion and insertion AUCs of one image for several patch orders ``[M, N]``: two arrays ``[M]``, and the
    target probability of the start image of insertion (the image's mean colour everywhere) alone."""
    m, n = orders.shape
    counts = np.round(np.linspace(0, n, steps + 1)).astype(int)
    chosen = np.zeros((m, steps + 1, n), np.float32)  # 1 where a patch is removed (deletion) / inserted
    ranks = np.empty_like(orders)
    ranks[np.arange(m)[:, None], orders] = np.arange(n)[None, :]
    chosen[:] = (ranks[:, None, :] < counts[None, :, None])
    masks = torch.from_numpy(chosen).view(m * (steps + 1), 1, *grid)
    masks = masks.repeat_interleave(patch, dim=2).repeat_interleave(patch, dim=3)  # [M*S, 1, H, W]
    mean = x.mean(dim=(2, 3), keepdim=True)
    deletion = x * (1 - masks) + mean * masks
    insertion = mean * (1 - masks) + x * masks
    with torch.inference_mode():
        out = model.forward_features(torch.cat([deletion, insertion]))
        probs = torch.softmax(model.classify(out.tokens).float(), dim=-1)[:, target].numpy()
    frac = counts / n
    curves = probs.reshape(2, m, steps + 1)
    auc = np.trapezoid if hasattr(np, "trapezoid") else np.trapz
    return auc(curves[0], frac, axis=-1), auc(curves[1], frac, axis=-1), float(curves[1, 0, 0])


def evaluate(model_path: str, n: int, seed: int, steps: int = 16, batch: int = 25, workers: int = 2,
             progress: bool = True) -> dict:
    model, info = load_checkpoint(model_path)
    model.eval()
    if model.config.num_classes != len(CLASSES):
        raise SystemExit(f"{info.name} has {model.config.num_classes} classes; the scenes have {len(CLASSES)}")
    cfg = model.config
    size = (cfg.image_size, cfg.image_size)
    t0 = time.perf_counter()
    data = make_dataset(n, seed=seed, size=size, workers=workers, progress=progress and sys.stderr.isatty())
    render_s = time.perf_counter() - t0
    grid = (size[0] // cfg.patch_size, size[1] // cfg.patch_size)
    coverage = mask_coverage(data["masks"], grid).reshape(n, -1)
    mean_t = torch.tensor(info.mean).view(1, 3, 1, 1)
    std_t = torch.tensor(info.std).view(1, 3, 1, 1)
    images = (torch.from_numpy(data["images"]).permute(0, 3, 1, 2).float() / 255.0 - mean_t) / std_t
    names = list(METHOD_SETTINGS) + ["random"]
    scores = {name: {k: np.zeros(n) for k in METRICS} for name in names}
    start_prob = np.zeros(n)
    correct = 0
    rng = np.random.default_rng(seed)
    t_evidence = t_perturb = 0.0
    for start in range(0, n, batch):
        sl = slice(start, min(n, start + batch))
        x = images[sl]
        labels = torch.from_numpy(data["labels"][sl])
        t = time.perf_counter()
        attn, grads, logits = attention_gradients(model, x, labels[:, None])
        attn, grads = attn.float().numpy(), grads[:, 0].float().numpy()
        t_evidence += time.perf_counter() - t
        correct += int((logits.argmax(-1) == labels).sum())
        t = time.perf_counter()
        for j in range(x.shape[0]):
            i = start + j
            maps = [evidence_map(attn[j], grads[j], name, model.num_prefix_tokens, grid, pooling=cfg.head_pool,
                                 **settings) for name, settings in METHOD_SETTINGS.items()]
            maps.append(np.full(grid, 1.0 / (grid[0] * grid[1]), np.float32))  # random: uniform mass
            orders = np.stack([ordering(mp, rng) for mp in maps[:-1]] + [rng.permutation(grid[0] * grid[1])])
            dele, ins, start_prob[i] = perturbation_aucs(model, x[j : j + 1], orders, int(labels[j]), grid,
                                                         cfg.patch_size, steps)
            for k, name in enumerate(names):
                scores[name]["mask_energy"][i] = float((maps[k].reshape(-1) * coverage[i]).sum())
                scores[name]["deletion_auc"][i] = dele[k]
                scores[name]["insertion_auc"][i] = ins[k]
        t_perturb += time.perf_counter() - t
        if progress:
            print(f"  {min(n, start + batch)}/{n} scenes, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    result: dict = {}
    for name in names:
        entry = {}
        for k in METRICS:
            v = scores[name][k]
            entry[k] = round(float(v.mean()), 4)
            entry[f"{k}_se"] = round(float(v.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0, 4)
        result[name] = entry
    # Paired differences (same scenes): class-specific methods minus the others; mean and standard error.
    result["_paired"] = {
        f"{a} - {b}": {k: {"mean": round(float((scores[a][k] - scores[b][k]).mean()), 4),
                           "se": round(float((scores[a][k] - scores[b][k]).std(ddof=1) / math.sqrt(n)), 4)
                           if n > 1 else 0.0} for k in METRICS}
        for a in ("grad-rollout", "relevance") for b in ("attention", "rollout", "random")
    }
    result["_meta"] = {
        "model": info.name,
        "scenes": n,
        "seed": seed,
        "size": list(size),
        "steps": steps,
        "insertion_start": "the image's mean colour everywhere (the deletion baseline)",
        "start_probability": round(float(start_prob.mean()), 4),
        "start_probability_se": round(float(start_prob.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0, 4),
        "target": "true class of the main object",
        "top1_on_these_scenes": correct / n,
        "mask_area": round(float(coverage.mean()), 4),
        "settings": METHOD_SETTINGS,
        "seconds": {"render": round(render_s, 1), "evidence": round(t_evidence, 1),
                    "perturbation": round(t_perturb, 1), "total": round(time.perf_counter() - t0, 1)},
        "machine": machine_info(),
    }
    return result


def format_table(result: dict) -> str:
    rows = []
    for name, e in result.items():
        if name.startswith("_"):
            continue
        rows.append([name] + [f"{e[k]:.3f} ± {e[k + '_se']:.3f}" if k != "mask_energy"
                              else f"{100 * e[k]:.1f} % ± {100 * e[k + '_se']:.1f}" for k in METRICS])
    return table(rows, ["method", "mask energy ↑", "deletion AUC ↓", "insertion AUC ↑"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "weights" / "vitviz-mini.json"))
    parser.add_argument("--n", type=int, default=200, help="number of generated scenes (default 200)")
    parser.add_argument("--seed", type=int, default=11, help="scene seed (default 11; the model card uses 7 and 8)")
    parser.add_argument("--steps", type=int, default=16, help="perturbation steps from none to all patches")
    parser.add_argument("--workers", type=int, default=2, help="processes rendering scenes")
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this JSON file")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    result = evaluate(args.model, args.n, args.seed, args.steps, workers=args.workers, progress=not args.quiet)
    meta = result["_meta"]
    print(f"{meta['model']}: {meta['scenes']} scenes (seed {meta['seed']}), "
          f"top-1 {100 * meta['top1_on_these_scenes']:.1f} %, mask area {100 * meta['mask_area']:.1f} %, {meta['seconds']['total']:.0f} s")
    print(f"insertion starts from {meta['insertion_start']}; its target probability alone: "
          f"{meta['start_probability']:.3f} ± {meta['start_probability_se']:.3f} (chance {1 / len(CLASSES):.3f})")
    print(format_table(result))
    for pair, diffs in result["_paired"].items():
        print(f"  {pair:28s} " + "  ".join(f"{k} {d['mean']:+.4f} ± {d['se']:.4f}" for k, d in diffs.items()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", "utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
