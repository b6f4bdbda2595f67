"""Can a 128 px, patch-16 image tower name the small distractors' shapes at all? A probe for the grounding goal of
the shipped image-text model (whose distractor patches name their shape in ~21 % of validation scenes, chance 10 %).

    python benchmarks/probe_distractor_patches.py --minutes 25 [--freeze-embedding] [--no-shift]

vitviz-mini (its weights as shipped), reading every patch token after the final norm with its own classifier (as the
logit lens's last-layer map does; "before" is that map of the shipped model), is trained further on one task alone:
each patch an object covers (at least a quarter of it) names that object's shape among the 10, every object of a
scene weighing the same (``train_text.patch_targets``): the per-patch half of the shipped recipe's loss, with nothing
else competing for the tower. Options: the patch embedding frozen as in the shipped
recipe (``--freeze-embedding``); random shifts of up to 8 px (image and object masks together, wrapping around) so
that objects fall across the patch grid in new ways every epoch (default on; ``--no-shift``). Trained on the
training scenes (seed 30, 16,000) for ``--minutes``; measured on the validation scenes (seed 31, 1,000): the share of
labelled patches named right, for the main objects and for the distractors, and the share of distractors whose
best-covered patch is named right, by the distractor's size (under and at least one patch of pixels). The held-out
seed 32 is not read. Writes ``results/probe-distractor-patches-<options>-<date>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vitviz.models.checkpoint import load_checkpoint  # noqa: E402
from vitviz.synthetic.captions import SHAPE_WORDS  # noqa: E402
from vitviz.synthetic.train_text import as_facts, caption_data, patch_targets  # noqa: E402

SHIFT = 8  # pixels, at most, either way


def _normalise(images: torch.Tensor, mean, std) -> torch.Tensor:
    x = images.permute(0, 3, 1, 2).float().div_(255.0)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def _patch_logits(tower, x: torch.Tensor) -> torch.Tensor:
    """``[B, N, 10]``: the classifier's logits of every patch token, each read as the pooled token."""
    tokens = tower.forward_features(x).tokens  # [B, T, D], after the final norm
    return tower.patch_logits(tokens[:, tower.num_prefix_tokens :], pair=tower.config.head_pool == "cls+mean")


def evaluate(tower, data: dict, grid: tuple[int, int], mean, std, patch_px: int) -> dict:
    """Per-patch and per-distractor shape accuracy on ``data`` (see the module docstring)."""
    facts = as_facts(data["facts"])
    shape, _, _ = patch_targets(data["ids"], facts, grid, 0.25)
    predictions = []
    with torch.no_grad():
        for i in range(0, len(shape), 250):
            x = _normalise(torch.from_numpy(data["images"][i : i + 250]), mean, std)
            predictions.append(_patch_logits(tower, x).argmax(-1).numpy())
    predicted = np.concatenate(predictions)
    from vitviz.synthetic.scenes import mask_coverage

    main_hits, distractor_hits = [], []
    by_size: dict[str, list[bool]] = {"under_a_patch": [], "at_least_a_patch": []}
    for i, objects in enumerate(facts):
        for o in objects:
            cover = mask_coverage((data["ids"][i] == o.index)[None], grid)[0].ravel()
            labelled = (shape[i] == SHAPE_WORDS.index(o.shape)) & (cover >= 0.25)
            right = predicted[i][labelled] == SHAPE_WORDS.index(o.shape)
            (main_hits if o.index == 0 else distractor_hits).extend(right.tolist())
            if o.index != 0 and cover.max() > 0:
                best = int(cover.argmax())
                size = "at_least_a_patch" if o.pixels >= patch_px else "under_a_patch"
                by_size[size].append(bool(predicted[i][best] == SHAPE_WORDS.index(o.shape)))

    def rate(values: list[bool]) -> dict:
        v = np.asarray(values, dtype=float)
        return {"rate": float(v.mean()) if len(v) else None, "se": float(v.std() / np.sqrt(len(v))) if len(v) else None,
                "n": int(len(v))}

    return {"main_patches": rate(main_hits), "distractor_patches": rate(distractor_hits),
            **{f"distractor_best_patch_{k}": rate(v) for k, v in by_size.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=25.0)
    parser.add_argument("--freeze-embedding", action="store_true")
    parser.add_argument("--no-shift", action="store_true")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    tower, info = load_checkpoint(str(ROOT / "weights" / "vitviz-mini.json"))
    assert [label.replace("_", " ") for label in info.labels] == list(SHAPE_WORDS), "class order != SHAPE_WORDS"
    tower.set_fused_attention(False)  # faster for 65 tokens on a CPU, above all backwards
    tower.train()
    size, patch = tower.config.image_size, tower.config.patch_size
    grid = (size // patch, size // patch)
    if args.freeze_embedding:
        tower.patch_embed.requires_grad_(False)
    params = [p for p in tower.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.05)

    t0 = time.time()
    train = caption_data(16000, 30, size, cache_dir=ROOT / "data_cache", progress=True)
    validation = caption_data(1000, 31, size, cache_dir=ROOT / "data_cache")
    train_facts = as_facts(train["facts"])
    fixed_targets = None if not args.no_shift else patch_targets(train["ids"], train_facts, grid, 0.25)
    data_s = time.time() - t0
    record: dict = {"benchmark": "probe_distractor_patches", "options": vars(args), "data_seconds": data_s,
                    "before": evaluate(tower.eval(), validation, grid, info.mean, info.std, patch * patch)}
    tower.train()
    print("before training:", json.dumps(record["before"]), flush=True)

    start, steps, epoch, history = time.time(), 0, 0, []
    n = len(train["images"])
    while time.time() - start < args.minutes * 60:
        order = rng.permutation(n)
        losses = []
        for b in range(0, n - args.batch_size + 1, args.batch_size):
            if time.time() - start >= args.minutes * 60:
                break
            idx = np.sort(order[b : b + args.batch_size])
            images, ids = train["images"][idx], train["ids"][idx]
            if fixed_targets is None:
                dy, dx = (int(v) for v in rng.integers(-SHIFT, SHIFT + 1, size=2))
                images = np.roll(images, (dy, dx), axis=(1, 2))
                ids = np.roll(ids, (dy, dx), axis=(1, 2))
                shape, _, weight = patch_targets(ids, [train_facts[i] for i in idx], grid, 0.25)
            else:
                shape, weight = fixed_targets[0][idx], fixed_targets[2][idx]
            target, w = torch.from_numpy(shape), torch.from_numpy(weight)
            logits = _patch_logits(tower, _normalise(torch.from_numpy(images), info.mean, info.std))
            labelled = target >= 0
            loss = (F.cross_entropy(logits[labelled], target[labelled], reduction="none") * w[labelled]).sum()
            loss = loss / w[labelled].sum().clamp_min(1.0)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
            steps += 1
        epoch += 1
        history.append({"epoch": epoch, "steps": steps, "loss": float(np.mean(losses)) if losses else None,
                        "minutes": (time.time() - start) / 60})
        print(json.dumps(history[-1]), flush=True)

    record.update(steps=steps, epochs=epoch, train_minutes=(time.time() - start) / 60, history=history,
                  after=evaluate(tower.eval(), validation, grid, info.mean, info.std, patch * patch))
    print("after training:", json.dumps(record["after"]), flush=True)
    tag = "frozen-embedding" if args.freeze_embedding else "trained-embedding"
    tag += "-no-shift" if args.no_shift else ""
    out = ROOT / "benchmarks" / "results" / f"probe-distractor-patches-{tag}-{dt.date.today().isoformat()}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
