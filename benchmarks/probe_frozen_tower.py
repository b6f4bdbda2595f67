"""Does vitviz-mini's frozen tower carry what captions say? Probes of its final tokens, to choose the image side of
the shipped image-text model (issue 30).

vitviz-mini was trained to name the main object's shape. Its image-text sibling must also match colours and the
small distractors. Three read-outs of the frozen tower's tokens are trained on the same targets, then scored on
validation scenes:

- ``cls``: a linear layer on the frozen final CLS token (what a LiT projection of the CLS would see);
- ``patch_mean``: a linear layer on the mean of the final patch tokens;
- ``new_block``: one new trainable transformer block on the frozen sixth block's outputs, a final norm, and a linear
  layer on its CLS token (what ``vitviz.synthetic.train_text`` trains with ``--new-blocks 1``).

Targets: the main object's shape (10-way) and first colour name (9-way), and for each shape and colour whether a
visible distractor has it (multi-label; mean ROC AUC over the labels present). Scenes: 4,000 of the text model's
training seed (30) to fit, 1,000 of its validation seed (31) to score; the held-out seed of the evaluation (32) is
not touched.

    python benchmarks/probe_frozen_tower.py            # writes benchmarks/results/probe-frozen-tower-DATE.json
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _common import ROOT, code_state, machine_info, result_path, table, write_json

from vitviz.models.checkpoint import load_checkpoint
from vitviz.models.vit import Block
from vitviz.synthetic.captions import COLOURS, SHAPE_WORDS
from vitviz.synthetic.train_text import as_facts, caption_data, frozen_features


def targets(facts) -> dict[str, np.ndarray]:
    n = len(facts)
    shape = np.array([SHAPE_WORDS.index(f[0].shape) for f in facts])
    colour = np.array([COLOURS.index(f[0].colours[0]) for f in facts])
    d_shape = np.zeros((n, len(SHAPE_WORDS)), np.float32)
    d_colour = np.zeros((n, len(COLOURS)), np.float32)
    for i, f in enumerate(facts):
        for d in f[1:]:
            d_shape[i, SHAPE_WORDS.index(d.shape)] = 1
            for c in d.colours:
                d_colour[i, COLOURS.index(c)] = 1
    return {"shape": shape, "colour": colour, "d_shape": d_shape, "d_colour": d_colour}


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC by ranks (ties averaged)."""
    pos, neg = labels > 0.5, labels <= 0.5
    if not pos.any() or not neg.any():
        return float("nan")
    order = scores.argsort()
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for v in np.unique(scores):  # average tied ranks
        tie = scores == v
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return float((ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * neg.sum()))


class Readout(nn.Module):
    def __init__(self, kind: str, tower, outputs: int, init_block: int = -1) -> None:
        super().__init__()
        self.kind = kind
        dim = tower.config.embed_dim
        self.norm = nn.LayerNorm(dim, eps=tower.config.norm_eps)
        self.norm.load_state_dict(tower.norm.state_dict())
        if kind == "new_block":
            self.block = Block(dim, tower.config.num_heads, 4.0, True, None, tower.config.norm_eps)
            self.block.load_state_dict(tower.blocks[init_block].state_dict())  # start from the next frozen block
        else:
            self.norm.requires_grad_(False)
        self.linear = nn.Linear(dim, outputs)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.kind == "new_block":
            tokens = self.block(tokens)[0]
        tokens = self.norm(tokens)
        x = tokens[:, 0] if self.kind in ("cls", "new_block") else tokens[:, 1:].mean(dim=1)
        return self.linear(x)


def fit(kind, tower, feats, t, epochs: int, seed: int = 0, init_block: int = -1) -> Readout:
    torch.manual_seed(seed)
    model = Readout(kind, tower, 10 + 9 + 10 + 9, init_block)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.01)
    n = len(feats)
    steps = epochs * math.ceil(n / 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-3, total_steps=steps, pct_start=0.1)
    shape, colour = torch.from_numpy(t["shape"]), torch.from_numpy(t["colour"])
    ds, dc = torch.from_numpy(t["d_shape"]), torch.from_numpy(t["d_colour"])
    for _ in range(epochs):
        for idx in torch.randperm(n).split(128):
            out = model(feats[idx].float())
            loss = (F.cross_entropy(out[:, :10], shape[idx]) + F.cross_entropy(out[:, 10:19], colour[idx])
                    + F.binary_cross_entropy_with_logits(out[:, 19:29], ds[idx]) * 10
                    + F.binary_cross_entropy_with_logits(out[:, 29:], dc[idx]) * 9)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def score(model, feats, t) -> dict[str, float]:
    with torch.no_grad():
        out = torch.cat([model(feats[i : i + 250].float()) for i in range(0, len(feats), 250)]).numpy()
    n = len(feats)
    shape_ok = out[:, :10].argmax(1) == t["shape"]
    colour_ok = out[:, 10:19].argmax(1) == t["colour"]
    d_shape = [auc(out[:, 19 + k], t["d_shape"][:, k]) for k in range(10)]
    d_colour = [auc(out[:, 29 + k], t["d_colour"][:, k]) for k in range(9)]
    return {
        "shape_top1": float(shape_ok.mean()), "shape_se": float(shape_ok.std(ddof=1) / math.sqrt(n)),
        "colour_top1": float(colour_ok.mean()), "colour_se": float(colour_ok.std(ddof=1) / math.sqrt(n)),
        "distractor_shape_auc": float(np.nanmean(d_shape)), "distractor_colour_auc": float(np.nanmean(d_colour)),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit", type=int, default=4000)
    ap.add_argument("--val", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--from-blocks", default="", help="also: new_block read-outs on the output of these frozen "
                    "blocks, comma-separated (e.g. 2,3,4), to find where colour and distractors are still carried")
    ap.add_argument("--only-from-blocks", action="store_true", help="skip the read-outs of the last block")
    args = ap.parse_args()
    t0 = time.time()
    torch.set_num_threads(2)
    tower, info = load_checkpoint(ROOT / "weights" / "vitviz-mini.json")
    train = caption_data(16000, 30, 128, args.workers, ROOT / "data_cache")  # the text model's training scenes
    val = caption_data(1000, 31, 128, args.workers, ROOT / "data_cache")
    f_train = frozen_features(tower, train["images"][: args.fit], info.mean, info.std)
    f_val = frozen_features(tower, val["images"][: args.val], info.mean, info.std)
    t_train = targets(as_facts(train["facts"][: args.fit]))
    t_val = targets(as_facts(val["facts"][: args.val]))
    rows, results = [], {}
    runs = [] if args.only_from_blocks else [(kind, f_train, f_val) for kind in ("cls", "patch_mean", "new_block")]
    for k in [int(b) for b in args.from_blocks.split(",") if b.strip()]:
        runs.append((f"new_block after block {k}",
                     frozen_features(tower, train["images"][: args.fit], info.mean, info.std, blocks=k),
                     frozen_features(tower, val["images"][: args.val], info.mean, info.std, blocks=k)))
    for kind, fit_feats, val_feats in runs:
        after = int(kind.split("block ")[-1]) if " after" in kind else len(tower.blocks) - 1
        s = score(fit(kind.split(" after")[0], tower, fit_feats, t_train, args.epochs, init_block=min(
            after, len(tower.blocks) - 1)), val_feats, t_val)
        results[kind] = s
        rows.append([kind, f"{100 * s['shape_top1']:.1f} ± {100 * s['shape_se']:.1f}",
                     f"{100 * s['colour_top1']:.1f} ± {100 * s['colour_se']:.1f}",
                     f"{s['distractor_shape_auc']:.3f}", f"{s['distractor_colour_auc']:.3f}"])
        print(rows[-1], file=sys.stderr, flush=True)
    print(table(rows, ["read-out", "main shape top-1 %", "main colour top-1 %", "distractor shape AUC",
                       "distractor colour AUC"]))
    name = "probe-frozen-tower" + ("-blocks" if args.only_from_blocks else "")
    path = write_json({
        "benchmark": "probe_frozen_tower", "machine": machine_info(), "code": code_state(),
        "fit": {"seed": 30, "scenes": args.fit}, "val": {"seed": 31, "scenes": args.val}, "epochs": args.epochs,
        "results": results, "seconds": round(time.time() - t0, 1)}, result_path(name))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
