"""Does head importance pick the heads that matter? Knock out the k heads ranked most important, k random heads and
the k least important, and compare the accuracy on held-out scenes (issue 27, "Evaluation").

    python benchmarks/eval_head_importance.py --json benchmarks/results/head-importance-eval-DATE.json

Design, fixed before any measurement (nothing below was tuned on the reported scenes):

- Model: the shipped ``weights/vitviz-mini.json`` (6 layers x 6 heads = 36 heads, 128 px scenes).
- Ranking set: ``--rank-n`` scenes (default 500) of ``make_dataset`` seed ``--rank-seed`` (default 41). For every
  scene, every head is knocked out alone and the drop of the **true class's** probability is measured (the
  ``prob_drop`` of :func:`vitviz.importance.compute_head_importance`, computed here one pass per head over a batch
  of scenes, encoder and classifier only; the run compares it with ``compute_head_importance`` on its first 8
  ranking scenes and records the largest difference); the heads are ranked by their mean drop over the ranking set
  (ties, if any, by layer and head). The k most important are the first k of that order, the k least important the last k.
- Held-out set: ``--n`` scenes (default 1,000) of seed ``--seed`` (default 42), disjoint from the ranking set (another
  seed) and from every other seed the model card uses (training 1, validation 2, the out-of-domain detector's
  validation 3, the card's held-out figures 7, the class-evidence evaluation 11; ``scene_gallery.py`` shows seed 0).
- For k in 1, 3, 6, on the held-out scenes: top-1 accuracy (top-1 = true class) with the k most important heads
  knocked out together, with the k least important, and with k random heads (``--draws`` draws, default 20, each a
  uniform choice of k of the 36 heads without replacement, the same heads for every scene; numpy generator seeded
  with ``--draw-seed``, default 27); and the unablated accuracy.
- Standard errors: over scenes (``std(ddof=1) / sqrt(n)``) for the unablated, most and least important rows; for
  random heads, over scenes and draws: ``sqrt(var(per-scene mean over draws) / n + var(per-draw accuracy) / draws)``
  (the crossed two-way estimate, slightly conservative). ``paired`` holds per-scene differences (random minus most,
  least minus random) with the same kind of standard error: the comparisons the verdict rests on.
- Flatness of importance: per head, the mean probability drop over the ranking set with its standard error, and the
  same on the first ``--diag-n`` held-out scenes (default 300; computed after the ranking, only to report how stable
  it is: the rank correlation between the two sets and the overlap of their top-k sets; nothing is chosen from it).
- Per-image variant (separate, optional, ``per_image``): on each of those ``--diag-n`` held-out scenes, the k heads most (least) important
  for *that scene's* true class, by its own importance, knocked out together. It uses the scene's label to choose
  the heads, so it is an upper bound of what a per-image ranking can do, not a held-out figure.
- Cost: on a randomly initialised ViT-S/16 (224 px, 12 layers x 6 heads, 1000 classes, torch seed 0),
  :meth:`Engine.head_importance` of one image (72 knockouts, batched) against one bare forward pass at batch 1
  (``model(x)`` in inference mode), interleaved rounds (``--runs``, default 6, after 2 warm-up rounds), the median
  of the per-round ratios. The same for vitviz-mini (36 knockouts). Its accuracy is not measured (random weights).

Knockouts zero a head's attention output before its block's output projection (``head_mask`` of the model); the
held-out passes run the encoder and classifier only, in batches of ``--batch`` scenes, ``--threads`` torch threads.
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

from benchmarks._common import against_forward, machine_info, random_vit_s16_engine, table, write_json  # noqa: E402
from vitviz.importance import compute_head_importance, head_mask  # noqa: E402
from vitviz.models.checkpoint import load_checkpoint  # noqa: E402
from vitviz.synthetic.scenes import CLASSES, make_dataset  # noqa: E402

KS = (1, 3, 6)
CHECK_SCENES = 8  # ranking scenes whose batched importance is compared with compute_head_importance
# seeds the model card and the other evaluations use: the ranking and held-out seeds must differ from all of them
USED_SEEDS = {0: "scene gallery", 1: "training", 2: "validation", 3: "out-of-domain validation",
              7: "the card's held-out figures", 11: "class-evidence evaluation"}


def _se(v: np.ndarray) -> float:
    return float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else 0.0


def _two_way_se(m: np.ndarray) -> float:
    """Standard error of the mean of a ``[draws, scenes]`` matrix with both draws and scenes random."""
    d, n = m.shape
    return math.sqrt(m.mean(0).var(ddof=1) / n + (m.mean(1).var(ddof=1) / d if d > 1 else 0.0))


def _inputs(data: dict, info) -> torch.Tensor:
    mean = torch.tensor(info.mean).view(1, 3, 1, 1)
    std = torch.tensor(info.std).view(1, 3, 1, 1)
    return (torch.from_numpy(data["images"]).permute(0, 3, 1, 2).float() / 255.0 - mean) / std


def importances(model, x: torch.Tensor, labels: np.ndarray, batch: int, what: str) -> np.ndarray:
    """``[n, layers * heads]`` true-class probability drops, each head knocked out alone: the figure of
    :func:`vitviz.importance.compute_head_importance`, computed here for many scenes at once (one pass per head
    over a batch of scenes, encoder and classifier only; :func:`check_importance` compares the two)."""
    t0 = time.perf_counter()
    layers, nh = len(model.blocks), model.config.num_heads
    n = x.shape[0]
    out = np.zeros((n, layers * nh))
    with torch.inference_mode():
        for s in range(0, n, batch):
            sl = slice(s, min(n, s + batch))
            y = torch.from_numpy(labels[sl])
            rows = torch.arange(y.shape[0])

            def prob(mask) -> torch.Tensor:
                logits = model.classify(model.forward_features(x[sl], head_mask=mask).tokens).float()
                return torch.softmax(logits, -1)[rows, y].double()

            base = prob(None)
            for i in range(layers * nh):
                out[sl, i] = (base - prob(head_mask([(i // nh, i % nh)], layers, nh))).numpy()
            print(f"  importance ({what}): {sl.stop}/{n}, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return out


def check_importance(model, x: torch.Tensor, labels: np.ndarray, batched: np.ndarray) -> float:
    """Largest absolute difference between :func:`importances` and
    :func:`vitviz.importance.compute_head_importance` (one scene at a time) over the scenes of ``x``."""
    diffs = [np.abs(compute_head_importance(model, x[i : i + 1], list(CLASSES), int(labels[i])).prob_drop.reshape(-1)
                    - batched[i]).max() for i in range(x.shape[0])]
    return float(max(diffs))


def correct(model, x: torch.Tensor, labels: np.ndarray, masks, batch: int) -> np.ndarray:
    """Per scene, whether the top-1 is the true class with ``masks`` (None, per-block masks shared by every scene, or
    a ``[layers, n, heads]`` tensor of per-scene masks)."""
    out = np.zeros(x.shape[0], bool)
    with torch.inference_mode():
        for s in range(0, x.shape[0], batch):
            sl = slice(s, min(x.shape[0], s + batch))
            m = masks[:, sl] if isinstance(masks, torch.Tensor) else masks
            logits = model.classify(model.forward_features(x[sl], head_mask=m).tokens)
            out[sl] = (logits.argmax(-1).numpy() == labels[sl])
    return out


def _per_image_masks(heads: np.ndarray, layers: int, num_heads: int) -> torch.Tensor:
    """``[layers, n, heads]`` masks knocking out, per scene, the flat head indices ``heads[i]``."""
    flat = torch.ones(heads.shape[0], layers * num_heads)
    flat[torch.arange(heads.shape[0])[:, None], torch.from_numpy(heads)] = 0
    return flat.view(-1, layers, num_heads).permute(1, 0, 2).contiguous()


def _row(acc: np.ndarray) -> dict:
    return {"accuracy": round(float(acc.mean()), 4), "se": round(_se(acc.astype(float)), 4)}


def evaluate(model_path: str, rank_n: int, rank_seed: int, n: int, seed: int, draws: int, draw_seed: int,
             batch: int, workers: int, per_image: bool = True, diag_n: int = 300) -> dict:
    for s in (rank_seed, seed):
        if s in USED_SEEDS:
            raise SystemExit(f"seed {s} is used by {USED_SEEDS[s]}: choose another")
    if rank_seed == seed:
        raise SystemExit("the ranking and held-out sets need different seeds")
    t0 = time.perf_counter()
    model, info = load_checkpoint(model_path)
    model.eval()
    cfg = model.config
    layers, nh = cfg.depth, cfg.num_heads
    total = layers * nh
    size = (cfg.image_size, cfg.image_size)
    heads = [(layer, head) for layer in range(layers) for head in range(nh)]
    seconds: dict[str, float] = {}

    t = time.perf_counter()
    rank_data = make_dataset(rank_n, seed=rank_seed, size=size, workers=workers)
    held_data = make_dataset(n, seed=seed, size=size, workers=workers)
    seconds["render"] = time.perf_counter() - t
    xr, yr = _inputs(rank_data, info), rank_data["labels"]
    xh, yh = _inputs(held_data, info), held_data["labels"]

    # 1. the ranking, from the ranking set alone
    t = time.perf_counter()
    imp_rank = importances(model, xr, yr, batch, "ranking set")
    seconds["importance_ranking"] = time.perf_counter() - t
    check = check_importance(model, xr[:CHECK_SCENES], yr[:CHECK_SCENES], imp_rank)
    mean_rank = imp_rank.mean(0)
    order = sorted(range(total), key=lambda i: (-mean_rank[i], i))  # most important first
    most = {k: [heads[i] for i in order[:k]] for k in KS}
    least = {k: [heads[i] for i in order[-k:]] for k in KS}

    # 2. knockouts on the held-out set
    t = time.perf_counter()
    base = correct(model, xh, yh, None, batch)
    rng = np.random.default_rng(draw_seed)
    table_rows: dict[str, dict] = {}
    paired: dict[str, dict] = {}
    for k in KS:
        c_most = correct(model, xh, yh, head_mask(most[k], layers, nh), batch)
        c_least = correct(model, xh, yh, head_mask(least[k], layers, nh), batch)
        drawn = [sorted(heads[i] for i in rng.choice(total, size=k, replace=False)) for _ in range(draws)]
        c_rand = np.stack([correct(model, xh, yh, head_mask(h, layers, nh), batch) for h in drawn]).astype(float)
        per_draw = c_rand.mean(1)
        rand_scene = c_rand.mean(0)
        draw_var = per_draw.var(ddof=1) / draws if draws > 1 else 0.0
        table_rows[str(k)] = {
            "most": {**_row(c_most), "heads": most[k]},
            "random": {"accuracy": round(float(c_rand.mean()), 4), "se": round(_two_way_se(c_rand), 4),
                       "se_scenes_only": round(_se(rand_scene), 4), "draws": draws,
                       "per_draw": [round(float(a), 4) for a in per_draw], "heads_drawn": drawn},
            "least": {**_row(c_least), "heads": least[k]},
        }
        for name, d in (("random - most", rand_scene - c_most), ("least - random", c_least - rand_scene)):
            paired.setdefault(str(k), {})[name] = {"mean": round(float(d.mean()), 4),
                                                   "se": round(math.sqrt(_se(d) ** 2 + draw_var), 4)}
        d = c_least.astype(float) - c_most
        paired[str(k)]["least - most"] = {"mean": round(float(d.mean()), 4), "se": round(_se(d), 4)}
        print(f"  k={k}: most {c_most.mean():.3f}, random {c_rand.mean():.3f}, least {c_least.mean():.3f}",
              file=sys.stderr)
    seconds["knockouts"] = time.perf_counter() - t

    # 3. flatness and stability of the ranking (reported only; chosen from nothing)
    t = time.perf_counter()
    diag_n = min(diag_n, n)
    xd, yd = xh[:diag_n], yh[:diag_n]
    imp_held = importances(model, xd, yd, batch, "held-out set")
    seconds["importance_held_out"] = time.perf_counter() - t
    mean_held = imp_held.mean(0)
    se_rank = imp_rank.std(0, ddof=1) / math.sqrt(rank_n)
    order_held = sorted(range(total), key=lambda i: (-mean_held[i], i))
    ranks_a = np.empty(total)
    ranks_a[order] = np.arange(total)
    ranks_b = np.empty(total)
    ranks_b[order_held] = np.arange(total)
    spearman = float(np.corrcoef(ranks_a, ranks_b)[0, 1])
    positive = np.clip(mean_rank, 0, None)
    flat = {
        "per_head": [{"layer": heads[i][0], "head": heads[i][1], "rank": r + 1,
                      "prob_drop_ranking": round(float(mean_rank[i]), 5),
                      "prob_drop_ranking_se": round(float(se_rank[i]), 5),
                      "prob_drop_held_out": round(float(mean_held[i]), 5)} for r, i in enumerate(order)],
        "max_prob_drop": round(float(mean_rank.max()), 5),
        "median_prob_drop": round(float(np.median(mean_rank)), 5),
        "min_prob_drop": round(float(mean_rank.min()), 5),
        "heads_above_0.01": int((mean_rank > 0.01).sum()),
        "heads_above_0.001": int((mean_rank > 0.001).sum()),
        "heads_within_2se_of_0": int((np.abs(mean_rank) < 2 * se_rank).sum()),
        "share_of_positive_drop_in_top": {str(k): round(float(positive[order[:k]].sum() / positive.sum()), 4)
                                          if positive.sum() > 0 else None for k in KS},
        "spearman_ranking_vs_held_out": round(spearman, 4),
        "top_k_overlap_ranking_vs_held_out": {str(k): len(set(order[:k]) & set(order_held[:k])) for k in KS},
        "bottom_k_overlap_ranking_vs_held_out": {str(k): len(set(order[-k:]) & set(order_held[-k:])) for k in KS},
        "base_probability_true_class_held_out": None,
    }
    with torch.inference_mode():
        probs = torch.cat([torch.softmax(model.classify(model.forward_features(xh[s : s + batch]).tokens), -1)
                           for s in range(0, n, batch)])
    flat["base_probability_true_class_held_out"] = round(float(probs[torch.arange(n), torch.from_numpy(yh)].mean()), 4)

    result = {
        "unablated": _row(base),
        "k": table_rows,
        "paired": paired,
        "importance": flat,
    }

    # 4. optional per-image variant (separate: chooses heads from the scene's own label)
    if per_image:
        t = time.perf_counter()
        own = np.argsort(-imp_held, axis=1, kind="stable")
        result["per_image"] = {"note": "heads ranked by each held-out scene's own importance for its true class; "
                                       "not a held-out figure (the heads are chosen on the scene they are tested on)"}
        for k in KS:
            c_m = correct(model, xd, yd, _per_image_masks(own[:, :k], layers, nh), batch)
            c_l = correct(model, xd, yd, _per_image_masks(own[:, -k:], layers, nh), batch)
            result["per_image"][str(k)] = {"most": _row(c_m), "least": _row(c_l)}
        seconds["per_image"] = time.perf_counter() - t

    seconds["total"] = time.perf_counter() - t0
    result["_meta"] = {
        "model": info.name,
        "layers": layers,
        "heads_per_layer": nh,
        "image_size": list(size),
        "importance": "drop of the true class's probability, each head knocked out alone "
                      "(vitviz.importance.compute_head_importance's prob_drop, batched over scenes)",
        "importance_check_max_abs_diff": check,
        "importance_check_scenes": CHECK_SCENES,
        "ranking_set": {"seed": rank_seed, "scenes": rank_n,
                        "top1": round(float(correct(model, xr, yr, None, batch).mean()), 4)},
        "held_out_set": {"seed": seed, "scenes": n, "scenes_for_importance_and_per_image": diag_n},
        "seeds_avoided": {str(s): w for s, w in USED_SEEDS.items()},
        "random_draws": draws,
        "draw_seed": draw_seed,
        "ks": list(KS),
        "se": "over scenes; random: sqrt(var(per-scene mean over draws)/n + var(per-draw accuracy)/draws)",
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }
    return result


def cost(runs: int, warmup: int = 2) -> dict:
    """Head importance against one forward pass, for a random ViT-S/16 and for vitviz-mini (timing only)."""
    from vitviz.engine import Engine

    engines = {"vit-s16-random": random_vit_s16_engine(),
               "vitviz-mini": Engine(str(ROOT / "weights" / "vitviz-mini.json"), device="cpu")}
    out = {}
    for name, engine in engines.items():
        timed = against_forward(engine, {"head importance": lambda r, e=engine: e.head_importance(r)}, warmup, runs)
        out[name] = {"input": timed["input"], "knockouts": len(engine.model.blocks) * engine.info.config.num_heads,
                     "timings": timed["timings"], "ratio": timed["ratios"]["head importance"]}
        print(f"  cost {name}: forward {timed['timings']['forward']['median_ms']:.1f} ms, head importance "
              f"{timed['timings']['head importance']['median_ms']:.1f} ms, ratio {out[name]['ratio']['median']:.2f}",
              file=sys.stderr)
    return out


def format_table(result: dict) -> str:
    rows = [["0 (unablated)", f"{result['unablated']['accuracy']:.3f} ± {result['unablated']['se']:.3f}", "", ""]]
    for k, r in result["k"].items():
        rows.append([k] + [f"{r[c]['accuracy']:.3f} ± {r[c]['se']:.3f}" for c in ("most", "random", "least")])
    return table(rows, ["k heads out", "most important", "random", "least important"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "weights" / "vitviz-mini.json"))
    parser.add_argument("--rank-n", type=int, default=500, help="ranking scenes (default 500)")
    parser.add_argument("--rank-seed", type=int, default=41, help="seed of the ranking scenes (default 41)")
    parser.add_argument("--n", type=int, default=1000, help="held-out scenes (default 1000)")
    parser.add_argument("--diag-n", type=int, default=300,
                        help="held-out scenes whose own importance is measured (stability, per-image variant)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the held-out scenes (default 42)")
    parser.add_argument("--draws", type=int, default=20, help="random draws of k heads (default 20)")
    parser.add_argument("--draw-seed", type=int, default=27, help="seed of the random draws (default 27)")
    parser.add_argument("--batch", type=int, default=250, help="scenes per knockout pass")
    parser.add_argument("--workers", type=int, default=1, help="processes rendering scenes")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--runs", type=int, default=6, help="timing rounds of the cost figure (0: skip it)")
    parser.add_argument("--no-per-image", action="store_true", help="skip the per-image variant")
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = evaluate(args.model, args.rank_n, args.rank_seed, args.n, args.seed, args.draws, args.draw_seed,
                      args.batch, args.workers, not args.no_per_image, args.diag_n)
    if args.runs > 0:
        result["cost"] = cost(args.runs)
    result["_meta"]["machine"] = machine_info()
    meta = result["_meta"]
    print(f"{meta['model']}: ranking {meta['ranking_set']['scenes']} scenes (seed {meta['ranking_set']['seed']}), "
          f"held out {meta['held_out_set']['scenes']} scenes (seed {meta['held_out_set']['seed']}), "
          f"{meta['random_draws']} random draws, {meta['seconds']['total']:.0f} s")
    print(format_table(result))
    imp = result["importance"]
    print(f"importance (mean true-class probability drop): max {imp['max_prob_drop']:.4f}, median "
          f"{imp['median_prob_drop']:.4f}, {imp['heads_above_0.01']} heads above 0.01; rank correlation with the "
          f"held-out set {imp['spearman_ranking_vs_held_out']:.2f}")
    if "cost" in result:
        for name, c in result["cost"].items():
            print(f"cost {name}: head importance / forward = {c['ratio']['median']:.2f} "
                  f"({c['timings']['head importance']['median_ms']:.0f} ms / {c['timings']['forward']['median_ms']:.1f} ms)")
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
