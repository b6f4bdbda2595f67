"""The shipped image-text model (``weights/vitviz-mini-text``) on held-out scenes: does each typed word get its own
answer, does it see every object, and does the evidence for a word lie on its object (issue 45's goals).

Held-out scenes: ``--scenes`` standard scenes (:func:`vitviz.synthetic.scenes.random_spec`, the app's sample scenes'
kind) of seed 57, which no training, validation, tuning or other evaluation used (``USED_SEEDS``). Everything runs
through the engine, as in the app: ``Engine("vitviz-mini-text")``, its labels with the default template ("a photo of
a {}."), the model's own scoring (per word: a sigmoid each).

- **two-object scenes**: those where a second object, of another shape than the main one, covers at least 3 % of
  the picture (:func:`vitviz.synthetic.captions.second_object`). The *present* shapes are those of the objects of at
  least 3 % (the main one and the second, at least); shapes of smaller visible objects are not scored either way;
  every other shape is *absent*. With the 10 shape names typed:
  - both present shapes rank above every absent shape (goal ≥ 80 %);
  - at 0.5, the per-word scores find the present shapes: F1 over present and absent shapes (goal ≥ 0.85), with
    precision and recall;
  - grounding: the Chefer relevance map (``Engine.evidence(...).map("relevance", index)``) of the second object's
    name puts more mass per pixel on that object than on the main one (goal ≥ 70 %); a patch's value is spread
    evenly over its pixels, the renderer's ``object_ids`` gives every object's pixels. Controls: the main object's
    own name (low is right) and an absent shape's name;
  - the second object's shape ranks first among the nine that are not the main one (the issue's first measure;
    chance 11 %), and its median probability.
- **every scene** (as before): zero-shot shape top-1 of the main object (goal ≥ 90 %) and its colour among the 9
  colour names, either name of a two-coloured object counted (goal ≥ 80 %); also on the scenes without a second
  salient object.
- **out of domain**: the detector beside the weights on the held-out scenes (in domain: about 95 % by construction)
  and on the sample photos; its AUROC for the held-out scenes against eval_ood.py's report set of 90 textures and
  noise images (seed 202) and the sample photos, and how many of those it flags (run it with ``--model`` on the
  previous model's folder to compare).

Standard errors are binomial, sqrt(p (1 - p) / n); the F1's is a bootstrap over scenes (1,000 resamples).

    python benchmarks/eval_imagetext_model.py [--scenes 4000]   # writes benchmarks/results/imagetext-model-DATE.json
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from _common import ROOT, code_state, machine_info, result_path, table, write_json

from vitviz.engine import Engine
from vitviz.synthetic.captions import COLOURS, SHAPE_WORDS, second_object, shape_presence
from vitviz.synthetic.scenes import mask_coverage
from vitviz.synthetic.train_text import SCENE_KINDS, as_facts, caption_data

HELD_OUT_SEED = 57
OOD_TEXTURES, OOD_TEXTURE_SEED = 90, 202  # eval_ood.py's report set of textures and noise images
USED_SEEDS = {0: "scene gallery", 1: "vitviz-mini training", 2: "vitviz-mini validation",
              3: "out-of-domain validation", 7: "vitviz-mini's held-out figures", 11: "class-evidence evaluation",
              30: "text model training (standard scenes)", 31: "text model validation",
              32: "the first text model's held-out figures", 33: "text model training (group scenes)",
              34: "text model's detector: group validation scenes",
              35: "text model training (standard scenes with a second object)",
              41: "head ranking", 42: "head knockout", 43: "importance estimate"}
# seed 58: the group scenes of the held-out check (--kind group), used by nothing else either


def rate(ok) -> dict[str, float]:
    ok = np.asarray(ok, bool)
    n = int(ok.size)
    p = float(ok.mean()) if n else float("nan")
    return {"rate": p, "se": math.sqrt(p * (1 - p) / n) if n else float("nan"), "n": n}


def fmt(r: dict[str, float]) -> str:
    return f"{100 * r['rate']:.1f} ± {100 * r['se']:.1f} % (n = {r['n']:,})"


def f1_with_se(counts: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """F1 of summed per-scene ``[tp, fp, fn]`` counts, and its bootstrap standard error over scenes."""
    def f1(c: np.ndarray) -> float:
        tp, fp, fn = c.sum(axis=0)
        return float(2 * tp / max(1, 2 * tp + fp + fn))

    boots = [f1(counts[rng.integers(0, len(counts), len(counts))]) for _ in range(1000)]
    return f1(counts), float(np.std(boots))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vitviz-mini-text")
    ap.add_argument("--scenes", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=HELD_OUT_SEED)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--kind", choices=SCENE_KINDS, default="standard",
                    help="the scenes: standard (the goals') or group (2-3 salient objects, the training's other kind)")
    ap.add_argument("--validation", action="store_true",
                    help="allow the text model's validation seed (31), to check a recipe before the held-out run")
    ap.add_argument("--out", default=None, help="results JSON (default: benchmarks/results/imagetext-model-DATE.json)")
    args = ap.parse_args()
    if args.seed in USED_SEEDS and not (args.validation and args.seed == 31):
        raise SystemExit(f"seed {args.seed} is used by {USED_SEEDS[args.seed]}: choose another")
    t0 = time.time()
    data = caption_data(args.scenes, args.seed, 128, args.workers, ROOT / "data_cache", kind=args.kind)
    facts = as_facts(data["facts"])
    images, ids = data["images"], data["ids"]
    area = int(ids.shape[1] * ids.shape[2])
    engine = Engine(args.model, device="cpu")
    engine.set_labels(list(SHAPE_WORDS))
    results = [engine.analyze(img, features=True) for img in images]
    shape_idx = np.array([SHAPE_WORDS.index(f[0].shape) for f in facts])
    shape_ok = np.array([r.predictions[0].index == s for r, s in zip(results, shape_idx)])
    in_domain = np.array([r.domain.in_domain for r in results]) if results[0].domain is not None else None
    probs = np.stack([r.probabilities for r in results])  # [N, 10] the model's own scores of the 10 shape names
    logits = np.stack([r.logits for r in results])

    engine.set_labels([f"{c} object" for c in COLOURS])  # colours: re-scored from the kept image embeddings
    colour_pred = np.array([engine.rescore(r, topk=1).predictions[0].index for r in results])
    either = np.array([COLOURS[p] in f[0].colours for p, f in zip(colour_pred, facts)])
    engine.set_labels(list(SHAPE_WORDS))

    rows = []
    for i, f in enumerate(facts):
        d = second_object(f, area)
        if d is None:
            continue
        present, moot = shape_presence(f, area)
        p_idx = [SHAPE_WORDS.index(x) for x in sorted(present)]
        a_idx = [k for k, x in enumerate(SHAPE_WORDS) if x not in present and x not in moot]
        found = probs[i] >= 0.5
        absent = SHAPE_WORDS[int(np.random.default_rng(i).choice(a_idx))]
        targets = [SHAPE_WORDS.index(d.shape), SHAPE_WORDS.index(f[0].shape), SHAPE_WORDS.index(absent)]
        ev = engine.evidence(results[i], targets=targets)
        masks = np.stack([ids[i] == d.index, ids[i] == 0])
        cover = mask_coverage(masks, (results[i].grid.rows, results[i].grid.cols))  # [2, rows, cols]
        px = masks.reshape(2, -1).sum(1)
        per_pixel = []
        for t in targets:
            m = ev.map("relevance", t)
            per_pixel.append([float((m * cover[0]).sum() / px[0]), float((m * cover[1]).sum() / px[1])])
        others = logits[i].copy()
        others[targets[1]] = -np.inf
        rows.append({"scene": i, "main": f[0].shape, "second": d.shape, "absent": absent,
                     "present": sorted(present), "moot": sorted(moot),
                     "second_pixels": int(px[0]), "main_pixels": int(px[1]),
                     "both_above": bool(logits[i, p_idx].min() > logits[i, a_idx].max()),
                     "counts": [int(found[p_idx].sum()), int(found[a_idx].sum()), int((~found[p_idx]).sum())],
                     "second_probability": float(probs[i, targets[0]]),
                     "second_first_of_the_rest": bool(others.argmax() == targets[0]),
                     "relevance_per_pixel": per_pixel})
    counts = np.array([r["counts"] for r in rows])
    f1, f1_se = f1_with_se(counts, np.random.default_rng(0))
    tp, fp, fn = counts.sum(axis=0)
    two = np.zeros(len(facts), bool)
    two[[r["scene"] for r in rows]] = True
    pp = np.array([r["relevance_per_pixel"] for r in rows])  # [n, 3 labels, (second, main)]
    photos = sorted((ROOT / "assets" / "samples").glob("photo-*"))
    photo_verdicts = {p.name: engine.analyze(str(p)).domain.in_domain for p in photos} if in_domain is not None else {}
    ood = None
    if in_domain is not None:  # the detector's scores: held-out scenes against textures, noise and the sample photos
        from ood_images import textures

        others = [np.asarray(im.convert("RGB")) for im in textures(OOD_TEXTURES, OOD_TEXTURE_SEED).values()]
        others += [str(p) for p in photos]
        verdicts = [engine.analyze(im).domain for im in others]
        out_scores = np.array([v.score for v in verdicts])
        in_scores = np.array([r.domain.score for r in results])
        auroc = float((in_scores[:, None] < out_scores[None, :]).mean()
                      + 0.5 * (in_scores[:, None] == out_scores[None, :]).mean())
        flagged = np.array([not v.in_domain for v in verdicts])
        ood = {"auroc": auroc, "out_of_domain_images": len(others), "flagged": rate(flagged)}
    report = {
        "two_object_scenes": len(rows),
        "both_present_above_every_absent": rate([r["both_above"] for r in rows]),
        "word_f1_at_half": {"f1": f1, "se": f1_se, "precision": float(tp / max(1, tp + fp)),
                            "recall": float(tp / max(1, tp + fn))},
        "grounding_per_pixel": rate(pp[:, 0, 0] > pp[:, 0, 1]),
        "control_main_label_per_pixel": rate(pp[:, 1, 0] > pp[:, 1, 1]),
        "control_absent_label_per_pixel": rate(pp[:, 2, 0] > pp[:, 2, 1]),
        "second_first_of_the_rest": rate([r["second_first_of_the_rest"] for r in rows]),
        "second_probability_median": float(np.median([r["second_probability"] for r in rows])),
        "shape_top1": rate(shape_ok),
        "shape_top1_without_second_object": rate(shape_ok[~two]),
        "colour_top1_either_name": rate(either),
        "colour_top1_either_name_without_second_object": rate(either[~two]),
        "colour_top1_first_colour": rate(colour_pred == np.array([COLOURS.index(f[0].colours[0]) for f in facts])),
        "in_domain": rate(in_domain) if in_domain is not None else None,
        "out_of_domain": ood,
    }
    lines = [
        [f"two-object scenes: both present shapes rank above every absent one (n = {len(rows)})", "≥ 80 %",
         fmt(report["both_present_above_every_absent"])],
        ["… per-word scores at 0.5 find the present shapes: F1", "≥ 0.85",
         f"{f1:.3f} ± {f1_se:.3f} (precision {report['word_f1_at_half']['precision']:.3f}, recall "
         f"{report['word_f1_at_half']['recall']:.3f})"],
        ["… grounding: the second object's name, relevance per pixel on it above the main object's", "≥ 70 %",
         fmt(report["grounding_per_pixel"])],
        ["… control: the main object's name, same measure (low is right)", "", fmt(report["control_main_label_per_pixel"])],
        ["… control: an absent shape's name, same measure", "", fmt(report["control_absent_label_per_pixel"])],
        ["… the second object's shape is first of the 9 other than the main one (chance 11 %)", "",
         fmt(report["second_first_of_the_rest"])],
        ["… its median probability", "", f"{report['second_probability_median']:.3f}"],
        ["zero-shot shape top-1 (10 names), every scene", "≥ 90 %", fmt(report["shape_top1"])],
        ["… scenes without a second salient object", "", fmt(report["shape_top1_without_second_object"])],
        ["main colour top-1 (9 names; either of two), every scene", "≥ 80 %", fmt(report["colour_top1_either_name"])],
        ["… scenes without a second salient object", "", fmt(report["colour_top1_either_name_without_second_object"])],
        ["… its first colour only", "", fmt(report["colour_top1_first_colour"])],
    ]
    if in_domain is not None:
        lines.append(["held-out scenes in domain (detector)", "≈ 95 %", fmt(report["in_domain"])])
        lines.append(["sample photos in domain", "0", f"{sum(photo_verdicts.values())} of {len(photo_verdicts)}"])
        lines.append([f"detector AUROC, these scenes against {ood['out_of_domain_images']} textures, noise images and "
                      "sample photos", "≥ the previous model's", f"{ood['auroc']:.4f}"])
        lines.append(["… of those images flagged out of domain", "", fmt(ood["flagged"])])
    print(table(lines, ["measure", "goal",
                        f"{'validation' if args.validation else 'held-out'} {args.kind} scenes (seed {args.seed})"]))
    path = write_json({
        "benchmark": "eval_imagetext_model", "model": args.model, "machine": machine_info(), "code": code_state(),
        "seed": args.seed, "scenes": args.scenes, "kind": args.kind,
        "seeds_avoided": {str(k): v for k, v in USED_SEEDS.items()},
        "scoring": engine.scoring, "report": report, "photos_in_domain": photo_verdicts, "rows": rows,
        "seconds": round(time.time() - t0, 1),
    }, Path(args.out) if args.out else result_path("imagetext-model"))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
