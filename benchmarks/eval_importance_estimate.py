"""How close is the fast, first-order estimate of head importance to the knockouts it stands for, and what does it
cost? (issue 27: the knockouts of every head cost about 30 forward passes on ViT-S/16; the goal was 12.)

    python benchmarks/eval_importance_estimate.py --json benchmarks/results/importance-estimate-DATE.json

Design, fixed before any measurement (the estimate has no parameter; nothing below was tuned on these scenes):

- Model: the shipped ``weights/vitviz-mini.json`` (6 layers x 6 heads, 128 px scenes).
- Agreement, per scene: ``--n`` scenes (default 300) of ``make_dataset`` seed ``--seed`` (default 43, used by no
  other evaluation). Target: the true class. Exact: each head knocked out alone (the batched figure of
  ``eval_head_importance.importances``, the same as ``compute_head_importance``); estimate:
  :func:`vitviz.importance.estimate_head_importance`, one scene at a time, as the app and CLI run it. Per scene: the
  Spearman correlation of the 36 estimated and measured probability drops (and logit drops), whether the estimate's
  most important head is the knockouts' most important one, and how many of the estimate's top 3 are among the
  knockouts' top 3. Means with standard errors over scenes.
- Ranking for a dataset, as ``eval_head_importance.py`` ranks it: heads ordered by their mean drop over the ranking
  set (seed 41, ``--rank-n`` scenes, default 500), once by the knockouts and once by the estimate; then, on the
  held-out seed 42 (``--held-n`` scenes, default 1,000), the top-1 accuracy with the k most (least) important heads
  of each order knocked out together, k = 1, 3, 6, standard errors over scenes.
- Cost: a randomly initialised ViT-S/16 (224 px, 12 x 6 heads, 1000 classes) and vitviz-mini, on the benchmark
  photo: :meth:`Engine.head_importance` by knockout and by estimate against one bare forward pass (``model(x)`` in
  inference mode), interleaved rounds (``--runs``, default 8, after 2 warm-up rounds); medians of the per-round ratios.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import (against_forward, machine_info, paired_ratio, random_vit_s16_engine,  # noqa: E402
                                table, write_json)
from benchmarks.eval_head_importance import USED_SEEDS, _inputs, _se, correct, importances  # noqa: E402
from vitviz.engine import Engine  # noqa: E402
from vitviz.importance import estimate_head_importance, head_mask  # noqa: E402
from vitviz.models.checkpoint import load_checkpoint  # noqa: E402
from vitviz.synthetic.scenes import CLASSES, make_dataset  # noqa: E402

KS = (1, 3, 6)
RANK_SEED, HELD_SEED = 41, 42  # eval_head_importance.py's ranking and held-out sets


def _ranks(v: np.ndarray) -> np.ndarray:
    r = np.empty(v.size)
    r[np.argsort(v, kind="stable")] = np.arange(v.size)
    return r


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])


def estimates(model, x: torch.Tensor, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """``[n, heads]`` estimated probability and logit drops of the true class, one scene at a time; seconds."""
    t0 = time.perf_counter()
    prob, logit = [], []
    for i in range(x.shape[0]):
        est = estimate_head_importance(model, x[i : i + 1], list(CLASSES), int(labels[i]))
        prob.append(est.prob_drop.ravel())
        logit.append(est.logit_drop.ravel())
    return np.array(prob), np.array(logit), time.perf_counter() - t0


def exact_logit_drops(model, x: torch.Tensor, labels: np.ndarray, batch: int) -> np.ndarray:
    """``[n, heads]`` true-class logit drops, each head knocked out alone (batched over scenes)."""
    layers, nh = len(model.blocks), model.config.num_heads
    out = np.zeros((x.shape[0], layers * nh))
    with torch.inference_mode():
        for s in range(0, x.shape[0], batch):
            sl = slice(s, min(x.shape[0], s + batch))
            rows, y = torch.arange(sl.stop - s), torch.from_numpy(labels[sl])

            def logit(mask) -> torch.Tensor:
                return model.classify(model.forward_features(x[sl], head_mask=mask).tokens)[rows, y].double()

            base = logit(None)
            for i in range(layers * nh):
                out[sl, i] = (base - logit(head_mask([(i // nh, i % nh)], layers, nh))).numpy()
    return out


def agreement(model, info, n: int, seed: int, batch: int) -> dict:
    data = make_dataset(n, seed=seed, size=(model.config.image_size,) * 2)
    x, y = _inputs(data, info), data["labels"]
    exact_prob = importances(model, x, y, batch, "agreement set")
    exact_logit = exact_logit_drops(model, x, y, batch)
    est_prob, est_logit, seconds = estimates(model, x, y)
    rho_p = np.array([spearman(a, b) for a, b in zip(est_prob, exact_prob)])
    rho_l = np.array([spearman(a, b) for a, b in zip(est_logit, exact_logit)])
    top1 = (est_prob.argmax(1) == exact_prob.argmax(1)).astype(float)
    top3 = np.array([len(set(np.argsort(-a)[:3]) & set(np.argsort(-b)[:3])) / 3 for a, b in zip(est_prob, exact_prob)])
    slope = float((est_prob * exact_prob).sum() / (exact_prob**2).sum())  # estimate ~ slope x knockout
    mean = lambda v: {"mean": round(float(v.mean()), 4), "se": round(_se(v), 4)}  # noqa: E731
    return {"scenes": n, "seed": seed, "spearman_prob_drop": mean(rho_p), "spearman_logit_drop": mean(rho_l),
            "spearman_prob_drop_min": round(float(rho_p.min()), 4),
            "same_most_important_head": mean(top1), "top3_overlap": mean(top3),
            "least_squares_slope_estimate_on_knockout": round(slope, 4),
            "estimate_seconds_per_scene": round(seconds / n, 4)}


def dataset_ranking(model, info, rank_n: int, held_n: int, batch: int) -> dict:
    layers, nh = len(model.blocks), model.config.num_heads
    heads = [(layer, head) for layer in range(layers) for head in range(nh)]
    size = (model.config.image_size,) * 2
    rank_data, held_data = make_dataset(rank_n, seed=RANK_SEED, size=size), make_dataset(held_n, seed=HELD_SEED, size=size)
    xr, yr = _inputs(rank_data, info), rank_data["labels"]
    xh, yh = _inputs(held_data, info), held_data["labels"]
    orders = {"knockout": importances(model, xr, yr, batch, "ranking set").mean(0),
              "estimate": estimates(model, xr, yr)[0].mean(0)}
    out: dict = {"rank_set": {"seed": RANK_SEED, "scenes": rank_n}, "held_out_set": {"seed": HELD_SEED, "scenes": held_n},
                 "unablated": None, "spearman_of_mean_drops": round(spearman(orders["estimate"], orders["knockout"]), 4)}
    base = correct(model, xh, yh, None, batch)
    out["unablated"] = {"accuracy": round(float(base.mean()), 4), "se": round(_se(base.astype(float)), 4)}
    for method, mean_drop in orders.items():
        order = sorted(range(len(heads)), key=lambda i: (-mean_drop[i], i))
        out[method] = {}
        for k in KS:
            row = {}
            for which, chosen in (("most", order[:k]), ("least", order[-k:])):
                picked = [heads[i] for i in chosen]
                c = correct(model, xh, yh, head_mask(picked, layers, nh), batch).astype(float)
                row[which] = {"accuracy": round(float(c.mean()), 4), "se": round(_se(c), 4), "heads": picked}
            out[method][str(k)] = row
            print(f"  {method} k={k}: most {row['most']['accuracy']:.3f}, least {row['least']['accuracy']:.3f}",
                  file=sys.stderr)
    return out


def cost(runs: int, warmup: int = 2) -> dict:
    engines = {"vit-s16-random": random_vit_s16_engine(), "vitviz-mini": Engine("vitviz-mini", device="cpu")}
    out = {}
    for name, engine in engines.items():
        timed = against_forward(engine, {"knockouts": lambda r, e=engine: e.head_importance(r),
                                         "estimate": lambda r, e=engine: e.head_importance(r, method="estimate")},
                                warmup, runs)
        ratio = timed["ratios"]
        out[name] = {"input": timed["input"], "heads": len(engine.model.blocks) * engine.info.config.num_heads,
                     "timings": timed["timings"], "knockouts / forward": ratio["knockouts"],
                     "estimate / forward": ratio["estimate"],
                     "knockouts / estimate": paired_ratio(timed["raw_ms"]["knockouts"], timed["raw_ms"]["estimate"])}
        print(f"  cost {name}: forward {timed['timings']['forward']['median_ms']:.1f} ms, knockouts "
              f"{ratio['knockouts']['median']:.1f}x, estimate {ratio['estimate']['median']:.1f}x",
              file=sys.stderr)
    return out


def format_tables(result: dict) -> str:
    a = result["agreement"]
    lines = [f"per scene ({a['scenes']} scenes, seed {a['seed']}): Spearman of prob drops "
             f"{a['spearman_prob_drop']['mean']:.3f} ± {a['spearman_prob_drop']['se']:.3f}, of logit drops "
             f"{a['spearman_logit_drop']['mean']:.3f} ± {a['spearman_logit_drop']['se']:.3f}; same top head "
             f"{a['same_most_important_head']['mean']:.1%}; top-3 overlap {a['top3_overlap']['mean']:.1%}"]
    d = result["dataset"]
    rows = [[k] + [f"{d[m][k][w]['accuracy']:.3f} ± {d[m][k][w]['se']:.3f}" for m in ("knockout", "estimate")
                   for w in ("most", "least")] for k in map(str, KS)]
    lines.append(table(rows, ["k out", "most (knockout)", "least (knockout)", "most (estimate)", "least (estimate)"]))
    for name, c in result.get("cost", {}).items():
        lines.append(f"cost {name}: knockouts {c['knockouts / forward']['median']:.1f}x a forward pass, estimate "
                     f"{c['estimate / forward']['median']:.1f}x ({c['knockouts / estimate']['median']:.1f}x faster)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "weights" / "vitviz-mini.json"))
    parser.add_argument("--n", type=int, default=300, help="scenes of the per-scene agreement (default 300)")
    parser.add_argument("--seed", type=int, default=43, help="their seed (default 43)")
    parser.add_argument("--rank-n", type=int, default=500, help="ranking scenes, seed 41 (default 500)")
    parser.add_argument("--held-n", type=int, default=1000, help="held-out scenes, seed 42 (default 1000)")
    parser.add_argument("--batch", type=int, default=250, help="scenes per knockout pass")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--runs", type=int, default=8, help="timing rounds of the cost figures (0: skip them)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.seed in USED_SEEDS or args.seed in (RANK_SEED, HELD_SEED):
        raise SystemExit(f"seed {args.seed} is used by another evaluation: choose another")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model, info = load_checkpoint(args.model)
    model.eval()
    result = {"agreement": agreement(model, info, args.n, args.seed, args.batch),
              "dataset": dataset_ranking(model, info, args.rank_n, args.held_n, args.batch)}
    if args.runs:
        result["cost"] = cost(args.runs)
    result["_meta"] = {"model": info.name, "seconds": round(time.perf_counter() - t0, 1),
                       "estimate": "vitviz.importance.estimate_head_importance: derivatives of the true class's "
                                   "probability and logit in each head's mask factor",
                       "knockout": "each head's attention output zeroed alone (head_mask)"}
    result["machine"] = machine_info()
    print(format_tables(result))
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
