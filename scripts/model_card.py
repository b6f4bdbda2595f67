"""Write weights/README.md (the shipped model's card) from its checkpoint config, training record and evaluation.

    python -m vitviz.synthetic.train --export weights/vitviz-mini ...       # writes vitviz-mini.{safetensors,json,train.json}
    python benchmarks/eval_shipped_model.py --write                 # writes vitviz-mini.eval.json
    python benchmarks/eval_ood.py --write        # optional: vitviz-mini.ood.safetensors, results/ood-vitviz-mini.json
    python benchmarks/eval_head_importance.py --json benchmarks/results/head-importance-eval-DATE.json   # optional
    python scripts/model_card.py [--generation-minutes 8.1] [--note "..."]   # writes weights/README.md

Every figure in the card comes from those files; ``--generation-minutes`` states how long generating the training
scenes took when the run found them already cached (the training record then only holds the loading time).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vitviz.synthetic.scenes import (  # noqa: E402
    _COVER_RANGE,
    _FOV_RANGE,
    _GROUND_TEXTURE_PERIOD,
    _MAIN_RADIUS_PER_SIZE,
    _MAIN_SIZE_RANGE,
    _WALL_TEXTURE_PERIOD,
    CLASSES,
    GENERATOR_VERSION,
)
from vitviz.synthetic.train import TrainConfig  # noqa: E402

GOALS = {"top1": 0.90, "abs_rel": 0.10, "delta1": 0.90, "attention": 0.50}


def _depth_head_text(arch: dict) -> str:
    """One-line description of the shipped depth head, from the checkpoint's architecture."""
    d, p = arch["embed_dim"], arch["patch_size"]
    if arch.get("depth_head") == "fusion":
        layers = ", ".join(str(i) for i in arch["depth_head_layers"] or [arch["depth"]])
        c = arch["depth_head_channels"][0]
        return (f"the patch tokens of blocks {layers}, each layer-normalised, concatenated and mapped by one linear "
                f"layer to a 4×4 block of {c}-channel features per token (`[B, {c}, 4H/{p}, 4W/{p}]`), joined by "
                f"a {p // 4}×{p // 4}-stride image stem ({arch['depth_head_stem_channels']} channels) so edges can "
                f"fall inside a patch → two 3×3 convs → 1×1 conv → bilinear ×{p // 4} → log-depth, exponentiated "
                f"to metres")
    return (f"patch tokens → `[B, {d}, H/{p}, W/{p}]` → two transposed-conv ×2 stages → 1×1 conv → bilinear ×4 → "
            f"log-depth, exponentiated to metres")


def _reproduce_flags(tc: dict) -> str:
    """The ``python -m vitviz.synthetic.train`` flags that differ from today's defaults, wrapped as shell continuation lines."""
    defaults = TrainConfig().__dict__
    flags = [f"--{k.replace('_', '-')} {v:g}" if isinstance(v, float) else f"--{k.replace('_', '-')} {v}"
             for k, v in tc.items() if k in defaults and k not in ("out", "export", "threads") and v != defaults[k]]
    lines = [" ".join(flags[i : i + 4]) for i in range(0, len(flags), 4)]
    return "".join(f" \\\n      {line}" for line in lines)


def _minutes(m: float) -> str:
    """Minutes to one decimal below 10 (a GPU run's few minutes), else whole."""
    return f"{m:.1f}" if m < 10 else f"{m:.0f}"


def _pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def _goal(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _tan_ratio(fov_range: tuple[float, float]) -> float:
    """Spread of focal lengths over a range of fields of view, as a factor either side of the middle (1.07: +-7 %)."""
    lo, hi = (math.tan(math.radians(f) / 2) for f in fov_range)
    return math.sqrt(hi / lo)


def _ood_section(ood: dict, name: str) -> str:
    """The card's section on the out-of-domain detector, from ``benchmarks/eval_ood.py``'s results JSON."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from eval_ood import GOALS as OOD_GOALS, markdown_table

    det, fit, val, rep = ood["detector"], ood["fit"], ood["validation"], ood["report"]
    cand = val["candidates"]
    titles = {"mahalanobis/cls": "Mahalanobis distance of the CLS feature",
              "mahalanobis/patch_mean": "Mahalanobis distance of the mean patch token",
              "energy": "energy score"}
    if det["method"] == "mahalanobis":
        token = ("the final CLS token (after the last LayerNorm: what enters the classifier)" if det["feature"] == "cls"
                 else "the mean of the final patch tokens (after the last LayerNorm)")
        what = (f"the squared Mahalanobis distance of {token} to the nearest of the 10 class means, with one "
                f"covariance shared by the classes (Lee et al. 2018), fitted on {fit['scenes']:,} training scenes "
                f"(seed {fit['seed']})")
    else:
        what = "the energy score, −logsumexp of the class logits (Liu et al. 2020)"
    tried = "; ".join(f"{titles.get(m, m)} {c['auroc']:.4f} (flagging {_pct(c['flagged'])} at its threshold)"
                      for m, c in cand.items())
    wide = rep["landscape"]
    photos_goal = rep["photos_flagged"] >= OOD_GOALS["photos_flagged"]
    return f"""
## Out-of-domain detector

`{det['file']}` holds a detector that tells whether an image looks like the scenes this model knows. Its score
is {what}; an image scoring above {det['threshold']:.4g} counts as out of domain, and `vitviz analyze` then prints
a notice and writes `"domain": {{"method", "score", "threshold", "in_domain"}}` into `result.json`. The score
comes from the same forward pass as the prediction.

- Chosen by measurement on a validation split of {val['scenes']:,} scenes (seed {val['seed']}) against
  {len(val['photos'])} scikit-image photos ({", ".join(f"`{p.split('.')[-1]}`" for p in val['photos'])}) with
  {val['crops_per_photo']} random crops each and {val['textures']} textures and noise images (seed
  {val['texture_seed']}). AUROC of the candidates: {tried}; the highest was kept.
- Fitted and calibrated on square scenes only: landscape scenes ({wide['size'][1]}×{wide['size'][0]} px, what the
  app feeds the model for a 4:3 image) are counted out of domain {_pct(1 - wide['in_domain'])} of the time, against
  {_pct(1 - rep['scenes']['in_domain'])} for square ones.
- Threshold: {100 * val['keep']:.0f} % of those {val['scenes']:,} validation scenes score below it.
- Figures on images used neither to fit, nor to choose, nor to calibrate (photo sources and licences in
  `assets/samples/SOURCES.md`):

{markdown_table(ood)}

AUROC: the chance that an out-of-domain image scores higher than a held-out scene. Goals: AUROC ≥ 0.98:
{_goal(rep['auroc'] >= OOD_GOALS['auroc'])} ({rep['auroc']:.3f}); ≥ 95 % of the photos flagged (sample photos, scikit-image photos and
their crops, {rep['photos']} images): {_goal(photos_goal)} ({_pct(rep['photos_flagged'])}). Reproduce with
`pip install -e ".[eval]"`, `python benchmarks/eval_ood.py --write` (refits and stores the detector, writes
`benchmarks/results/ood-{name}.json`; the last run took {ood['seconds'] / 60:.0f} minutes on 2 busy CPU cores, most of
it rendering scenes) and `python scripts/model_card.py`.
"""


def _explain_section(data: dict) -> str:
    """The card's section on class evidence, from ``benchmarks/eval_explanations.py``'s results JSON."""
    meta = data["_meta"]
    rows = "\n".join(
        f"| {m} | {_pct(data[m]['mask_energy'])} | {data[m]['deletion_auc']:.3f} | {data[m]['insertion_auc']:.3f} |"
        for m in ("attention", "rollout", "grad-rollout", "relevance", "random"))
    plain = ("attention", "rollout")
    beats = {m: all(data[m]["deletion_auc"] < data[p]["deletion_auc"] and data[m]["insertion_auc"]
                    > data[p]["insertion_auc"] for p in plain) for m in ("relevance", "grad-rollout")}
    best = max(("attention", "rollout", "grad-rollout", "relevance"), key=lambda m: data[m]["mask_energy"])
    verdict = (" ".join(f"{m.capitalize()} {'beats' if ok else 'does not beat'} both raw attention and rollout on "
                        "deletion and insertion AUC." for m, ok in beats.items())
               + f" The most mass on the object: {best}, {_pct(data[best]['mask_energy'])} (goal ≥ 70 %: "
               f"{'met' if data[best]['mask_energy'] >= 0.7 else 'not met'}).")
    start = meta.get("insertion_start", "a Gaussian-blurred copy")
    if "start_probability" in meta:
        methods = [data[m]["insertion_auc"] for m in ("attention", "rollout", "grad-rollout", "relevance")]
        below = data["random"]["insertion_auc"] < min(methods) - 0.05
        verdict += (f"\n\nInsertion starts from {start}: that image alone gets a target-class probability of "
                    f"{meta['start_probability']:.3f} ± {meta.get('start_probability_se', float('nan')):.3f} on these "
                    f"scenes. A random order scores {data['random']['insertion_auc']:.3f}, "
                    f"{'clearly below' if below else 'not clearly below'} every method "
                    f"({min(methods):.3f}–{max(methods):.3f}).")
    return f"""
## Class evidence: how faithful each method is

Measured by `python benchmarks/eval_explanations.py --model weights/{meta['model']}.json --n {meta['scenes']} --seed
{meta['seed']}` on {meta['scenes']} generated scenes (seed {meta['seed']}, not used for any other figure here), with the
true class as the target (top-1 on these scenes {_pct(meta['top1_on_these_scenes'])}). *Mask energy*: the share of the
map on the object's exact mask, weighted by patch coverage (a uniform map gives {_pct(meta['mask_area'])}); *deletion
AUC*: the area under the class probability as patches are replaced by the image mean, most relevant first (lower is
better); *insertion AUC*: the same as patches are pasted, most relevant first, onto {start} (higher is better);
`random` is a random patch order. Methods and settings: docs/command-line.md, "Class evidence"; nothing was tuned on these scenes.

| method | mask energy ↑ | deletion AUC ↓ | insertion AUC ↑ |
| --- | --- | --- | --- |
{rows}

{verdict}
"""


def _heads_section(data: dict, source: str = "") -> str:
    """The card's section on head importance, from ``benchmarks/eval_head_importance.py``'s results JSON
    (``source``: that file's name, quoted in the text)."""
    meta, imp, paired = data["_meta"], data["importance"], data["paired"]
    rank, held = meta["ranking_set"], meta["held_out_set"]
    base = data["unablated"]

    def cell(r: dict) -> str:
        return f"{_pct(r['accuracy'])} ± {100 * r['se']:.1f}"

    rows = "\n".join(f"| {k} | {cell(r['most'])} | {cell(r['random'])} | {cell(r['least'])} |"
                     for k, r in data["k"].items())

    def gap(d: dict) -> str:
        return f"{100 * d['mean']:.1f} ± {100 * d['se']:.1f} points"

    def clear(d: dict) -> bool:  # more than two standard errors above zero
        return d["mean"] > 2 * d["se"]

    ks = list(data["k"])
    order = [k for k in ks if data["k"][k]["most"]["accuracy"] < data["k"][k]["random"]["accuracy"]
             < data["k"][k]["least"]["accuracy"]]
    holds = ("holds for every k" if len(order) == len(ks) else
             f"holds for k = {', '.join(order)} only" if order else "holds for no k")
    below = [k for k in ks if clear(paired[k]["random - most"])]
    above = [k for k in ks if clear(paired[k]["least - random"])]

    def which(sel: list[str]) -> str:
        return "every k" if len(sel) == len(ks) else f"k = {', '.join(sel)}" if sel else "no k"

    verdict = (f"The order most important < random < least important {holds}. Per scene, accuracy with random "
               "heads knocked out minus accuracy with the most important ones: "
               + "; ".join(f"{gap(paired[k]['random - most'])} (k = {k})" for k in ks)
               + f", more than two standard errors above zero for {which(below)}. With the least important ones "
               "minus with random ones: " + "; ".join(f"{gap(paired[k]['least - random'])} (k = {k})" for k in ks)
               + f", more than two standard errors above zero for {which(above)}.")
    n_heads = meta["layers"] * meta["heads_per_layer"]
    top = data["k"][ks[0]]["most"]["heads"][0]
    share = imp["share_of_positive_drop_in_top"]
    big, near0 = imp["heads_above_0.01"], imp["heads_within_2se_of_0"]
    drops = [h["prob_drop_ranking"] for h in imp["per_head"]]
    lead = drops[0] >= 3 * drops[1] > 0
    overlap, bottom = imp["top_k_overlap_ranking_vs_held_out"], imp["bottom_k_overlap_ranking_vs_held_out"]
    rho = imp["spearman_ranking_vs_held_out"]
    flat = ((f"One head stands out: knocked out alone, layer {top[0]}, head {top[1]} (0-based) lowers the true class's "
             f"probability by {drops[0]:.3f} on average over the ranking scenes, {drops[0] / drops[1]:.0f} times the "
             f"next head ({drops[1]:.3f}), and holds {_pct(share[ks[0]])} of the summed positive drops. "
             if lead else
             f"Knocked out alone, the top head (layer {top[0]}, head {top[1]}) lowers the true class's probability "
             f"by {drops[0]:.3f} on average over the ranking scenes, the next by {drops[1]:.3f}. ")
            + f"The unablated probability is {imp['base_probability_true_class_held_out']:.2f} on the held-out "
            f"scenes, and a lower probability need not change the top-1: knocking out that head costs "
            f"{100 * (base['accuracy'] - data['k'][ks[0]]['most']['accuracy']):.1f} points of accuracy. {big} of the {n_heads} heads lower it by more than 0.01 and the median head by "
            f"{imp['median_prob_drop']:.4f}; importance is flat at the bottom: {near0} heads' mean drops are within "
            f"two standard errors of zero, so the least important k are a pick among near-equals. Measured again on "
            f"{held['scenes_for_importance_and_per_image']} of the held-out scenes, the ranking has a rank "
            f"correlation of {rho:.2f} with the first; the top k of the two share "
            + ", ".join(f"{overlap[k]} of {k}" for k in ks) + " heads, the bottom k "
            + ", ".join(f"{bottom[k]} of {k}" for k in ks) + ".")
    per_image = data.get("per_image")
    if per_image:
        flat += (f" Ranking the heads by each scene's own importance instead (a separate variant that chooses the "
                 f"heads on the scene they are tested on, so not a held-out figure; "
                 f"{held['scenes_for_importance_and_per_image']} scenes) gives, with the k most important out, "
                 + ", ".join(f"{_pct(per_image[k]['most']['accuracy'])} ± {100 * per_image[k]['most']['se']:.1f} "
                             f"(k = {k})" for k in ks) + ".")
    cost = data.get("cost", {}).get("vit-s16-random")
    machine = meta.get("machine", {})
    load = machine.get("loadavg_at_start")
    cpu = (f"{machine.get('usable_cpus', '?')}-core CPU"
           + (f", load average {load[0]:.1f}, this run included, as it ended" if load else ""))
    cost_text = ("" if not cost else
                 f" Cost: the importance of every head of one image is {cost['ratio']['median']:.1f} forward passes "
                 f"on a random ViT-S/16 at 224 px ({cost['knockouts']} knockouts, batched, each starting at its own "
                 f"layer; median of {cost['ratio']['rounds']} interleaved rounds on a {cpu}), and "
                 f"{data['cost']['vitviz-mini']['ratio']['median']:.1f} on this model ({data['cost']['vitviz-mini']['knockouts']} "
                 "knockouts, whose depth head is run too).")
    return f"""
## Which heads matter

Measured by `python benchmarks/eval_head_importance.py`{f" (`benchmarks/results/{source}`)" if source else ""}.
Each head's importance is the drop of the true class's probability when it alone is knocked out (its attention
output zeroed before the block's output projection, as `vitviz analyze --head-importance` does); heads are ranked
by their mean importance over {rank['scenes']} generated scenes (seed {rank['seed']}), and the accuracy is measured
on {held['scenes']:,} other scenes (seed {held['seed']}, not used for any other figure here) with k heads knocked out
together: the k ranked most important, k at random ({meta['random_draws']} draws, the same heads for every scene),
or the k least important. Top-1 accuracy ± standard error over scenes (random: over scenes and draws); unablated:
{cell(base)}. Nothing was chosen on the held-out scenes.

| heads knocked out (k) | most important | random | least important |
| --- | --- | --- | --- |
{rows}

{verdict}

{flat}{cost_text}
"""


def _estimate_paragraph(data: dict, source: str) -> str:
    """The card's paragraph on the first-order estimate of head importance, from
    ``benchmarks/eval_importance_estimate.py``'s results JSON (``source``: its file name)."""
    a, d, cost = data["agreement"], data["dataset"], data.get("cost", {})
    ks = list(d["knockout"])

    def acc(method: str, which: str) -> str:
        return ", ".join(f"{100 * d[method][k][which]['accuracy']:.1f}" for k in ks)

    vit_s = cost.get("vit-s16-random")
    speed = (f" It costs {vit_s['estimate / forward']['median']:.1f} forward passes on a random ViT-S/16 against "
             f"{vit_s['knockouts / forward']['median']:.1f} for the knockouts, in the same run." if vit_s else "")
    return f"""
The first-order estimate (`vitviz analyze --head-importance-estimate`, Heads → Estimate head importance: the
derivative of the true class's probability in each head's output factor, from one backward pass) against these
knockouts, measured by `python benchmarks/eval_importance_estimate.py` (`benchmarks/results/{source}`): per scene
({a['scenes']} scenes, seed {a['seed']}), the rank correlation of the estimated and measured probability drops is
{a['spearman_prob_drop']['mean']:.2f} ± {a['spearman_prob_drop']['se']:.2f}, the same most important head comes first in
{100 * a['same_most_important_head']['mean']:.0f} % ± {100 * a['same_most_important_head']['se']:.0f} of the scenes, and the estimates are about
{a['least_squares_slope_estimate_on_knockout']:.2f} times the knockouts' drops. Ranked over the same
{d['rank_set']['scenes']} scenes, its k most important heads knocked out give {acc('estimate', 'most')} % (k = {', '.join(ks)};
knockout ranking: {acc('knockout', 'most')} %) and its k least important {acc('estimate', 'least')} % (knockout
ranking: {acc('knockout', 'least')} %): it finds the heads that matter, but some heads it puts at the bottom are not
harmless.{speed}
"""


def card(weights: Path, generation_minutes: float | None, note: str = "", ood: Path | None = None) -> str:
    """The model card's Markdown for the checkpoint whose config is ``weights`` (``.../name.json``).

    ``ood``: the results JSON of ``benchmarks/eval_ood.py`` (default ``benchmarks/results/ood-<name>.json`` when it
    exists), which adds the section on the out-of-domain detector.
    """
    cfg = json.loads(weights.read_text())
    train = json.loads(weights.with_suffix(".train.json").read_text())
    ev = json.loads(weights.with_suffix(".eval.json").read_text())
    arch, tc, hist = cfg["architecture"], train["train_config"], train["history"]
    name = cfg["name"]
    ood = ood or ROOT / "benchmarks" / "results" / f"ood-{name}.json"
    ood_data = json.loads(ood.read_text()) if ood.is_file() else None
    ood_section = _ood_section(ood_data, name) if ood_data else ""
    explained = sorted((ROOT / "benchmarks" / "results").glob("explanations-*.json"))
    explain_data = json.loads(explained[-1].read_text()) if explained else None
    explain_section = _explain_section(explain_data) if explain_data and explain_data["_meta"]["model"] == name else ""
    heads_runs = sorted((ROOT / "benchmarks" / "results").glob("head-importance-eval-*.json"))
    heads_data = json.loads(heads_runs[-1].read_text()) if heads_runs else None
    heads_section = (_heads_section(heads_data, heads_runs[-1].name)
                     if heads_data and heads_data["_meta"]["model"] == name else "")
    estimate_runs = sorted((ROOT / "benchmarks" / "results").glob("importance-estimate-*.json"))
    estimate_data = json.loads(estimate_runs[-1].read_text()) if estimate_runs else None
    if heads_section and estimate_data and estimate_data["_meta"]["model"] == name:
        heads_section += _estimate_paragraph(estimate_data, estimate_runs[-1].name)
    ood_file_row = (f"| `{ood_data['detector']['file']}` | the out-of-domain detector (below): class means, "
                    f"precision matrix and threshold |\n" if ood_data else "")
    ood_limit = (f" The out-of-domain detector (above) flagged {_pct(ood_data['report']['photos_flagged'])} of the "
                 f"{ood_data['report']['photos']} photos it was tested on." if ood_data else "")
    size_mb = weights.with_suffix(".safetensors").stat().st_size / 2**20
    grid = arch["image_size"] // arch["patch_size"]
    steps = train.get("steps", hist[-1]["steps"] if hist else 0)
    data_minutes = max(float(train.get("data_minutes", 0.0)), float(generation_minutes or 0.0))
    total = train["train_minutes"] + data_minutes
    att = ev["attention_on_mask"]
    conf = ev["confusion"]
    per_class = sorted(((row[i] / max(1, sum(row)), CLASSES[i]) for i, row in enumerate(conf)))
    weakest = ", ".join(f"{c} {100 * a:.0f} %" for a, c in per_class[:3])
    confusions = sorted(((conf[i][j], CLASSES[i], CLASSES[j]) for i in range(len(conf)) for j in range(len(conf))
                         if i != j), reverse=True)[:3]
    top_conf = "; ".join(f"{a} taken for {b} {n}×" for n, a, b in confusions)
    low = tc.get("low_res", 0) if tc.get("low_res_fraction", 0) > 0 else 0
    schedule = (f"the first {100 * tc['low_res_fraction']:.0f} % of the time budget at {low} px "
                f"(progressive resizing: images down-sampled with antialiasing, log-depth area-averaged, the "
                f"positional embedding interpolated to the {low // arch['patch_size']}×{low // arch['patch_size']} "
                f"grid), the rest at {tc['image_size']} px" if low else f"all at {tc['image_size']} px")
    device = train.get("device", "CPU")
    on_cpu = device.startswith("CPU")
    precision = "bfloat16 autocast for the forward pass" if tc.get("precision") == "bf16" else "float32"
    if on_cpu:
        precision += ("; attention computed explicitly rather than with PyTorch's fused kernel (the same function, "
                      "about 1.5x faster on a CPU at these short sequences: `benchmarks/train_step.py`)")
    hardware = (f"on a 2-core CPU ({train['torch']}, {tc['threads']} torch threads)" if on_cpu else
                f"on one {device} GPU ({train['torch']}; the scenes rendered by {tc['workers']} CPU processes)")
    gw = tc.get("gradient_weight", 0.0)
    gradient_text = (f" plus {gw:g} × a multi-scale gradient-matching term (the mean absolute horizontal and "
                     f"vertical differences of the log-depth error at strides 1, 2, 4 and 8, which asks for depth "
                     f"edges in the right place)" if gw else "")
    together = " for the two together" if gw else ""
    every = max(1, math.ceil(len(hist) / 20))  # at most ~20 rows; the last epoch always shown
    shown = [h for i, h in enumerate(hist) if (i + 1) % every == 0 or i == len(hist) - 1]
    history_rows = "\n".join(f"| {h['epoch']} | {h['minutes']:.1f} | {_pct(h['top1'])} | {h['abs_rel']:.3f} |"
                             for h in shown)
    history_which = "" if every == 1 else f", every {every}th epoch; all in `{name}.train.json`"
    layer_head = " | ".join(str(i) for i in range(len(att)))
    layer_sep = " | ".join("---" for _ in att)
    layer_vals = " | ".join(_pct(v) for v in att)
    over = "" if total <= 62 else " It is over the 60-minute target."
    note = f"\n- {note}" if note else ""
    wide = ev.get("landscape")
    landscape_row = "" if not wide else (
        f"| top-1 / AbsRel on landscape scenes ({wide['size'][1]}×{wide['size'][0]} px, {wide['scenes']} scenes) | "
        f"{_pct(wide['top1'])} / {wide['abs_rel']:.3f} | (trained on square images only) |\n")
    return f"""# {name} — model card

vitviz's own multi-task Vision Transformer, shipped so that the app works offline. **It was trained only on
procedurally rendered 3D scenes** (`vitviz.synthetic.scenes`, generator version {GENERATOR_VERSION}: one main object of 10 shape
classes on a ground plane in front of a wall, with distractors, random camera pose, colours, textures and lighting).
It is a teaching and demonstration model for looking at attention and depth; it is **not meant for real
photographs**: on photos its class predictions are meaningless and its depth is a rough guess. Use a pretrained
model (docs/models.md, *Pretrained models*) for real images.

## Files

| file | what |
| --- | --- |
| `{name}.safetensors` | the weights ({size_mb:.1f} MB, float32) |
| `{name}.json` | vitviz checkpoint config: architecture, preprocessing (mean = std = 0.5), labels, depth kind |
| `{name}.train.json` | the training configuration and the per-epoch history of the run that made these weights |
| `{name}.eval.json` | the figures below, as written by `benchmarks/eval_shipped_model.py --write` |
{ood_file_row}
This card is written by `scripts/model_card.py` from those files.

## Architecture

ViT with a `Conv2d` patch embedding ({arch['patch_size']}×{arch['patch_size']} patches), a learnable CLS token, a
learnable positional embedding (bicubically interpolated for other grids), {arch['depth']} pre-norm encoder blocks of
width {arch['embed_dim']} with {arch['num_heads']} heads, a classification head (LayerNorm + Linear on CLS,
{arch['num_classes']} classes) and a dense depth head ({_depth_head_text(arch)}). Trained at {arch['image_size']}×{arch['image_size']} px ({grid}×{grid} patches); other aspect ratios work
through the interpolated positional embedding. Classes: {", ".join(f"`{c}`" for c in CLASSES)}.

## Figures on held-out scenes

{ev['scenes']:,} generated scenes with seed {ev['seed']} (never seen in training, which used seed
{tc['train_seed']}, or validation, seed {tc['val_seed']}); reproduce with `python benchmarks/eval_shipped_model.py`
(about a minute on 2 CPU cores).

| figure | value | goal |
| --- | --- | --- |
| top-1 accuracy | {_pct(ev['top1'])} | ≥ 90 %: {_goal(ev['top1'] >= GOALS['top1'])} |
| depth AbsRel | {ev['abs_rel']:.3f} | ≤ 0.10: {_goal(ev['abs_rel'] <= GOALS['abs_rel'])} |
| depth δ < 1.25 | {_pct(ev['delta1'])} | ≥ 90 %: {_goal(ev['delta1'] >= GOALS['delta1'])} |
| depth AbsRel, median-scaled | {ev['abs_rel_median_scaled']:.3f} | (scale-invariant protocol) |
| depth δ < 1.25, median-scaled | {_pct(ev['delta1_median_scaled'])} | (scale-invariant protocol) |
| CLS attention on the object, last layer | {_pct(att[-1])} | ≥ 50 %: {_goal(att[-1] >= GOALS['attention'])} |
| object area (what uniform attention scores) | {_pct(ev['mask_area'])} | |
{landscape_row}
Depth figures are on metric depth (metres, z along the optical axis) against the renderer's exact depth. The
generated world has a known scale, so absolute depth can be read from one image: the main object's bounding
sphere has a radius of {_MAIN_RADIUS_PER_SIZE * _MAIN_SIZE_RANGE[0]:.2f}–{_MAIN_RADIUS_PER_SIZE * _MAIN_SIZE_RANGE[1]:.2f} m
whatever its proportions, the vertical field of view is {_FOV_RANGE[0]:g}–{_FOV_RANGE[1]:g}° (focal length within
about ±{100 * (_tan_ratio(_FOV_RANGE) - 1):.0f} %), and the ground and wall textures repeat every {_GROUND_TEXTURE_PERIOD} m and
{_WALL_TEXTURE_PERIOD} m; the camera's direction, height and distance are random (the main object covers
{100 * _COVER_RANGE[0]:.0f}–{100 * _COVER_RANGE[1]:.0f} % of the image). The median-scaled rows rescale each
prediction by `median(gt) / median(pred)`, the usual protocol of monocular depth: the gap between the two kinds of
rows is the error in absolute scale, the rest is error in the *shape* of the depth map.

CLS attention on the object, per layer (mean over heads; the attention of the CLS row to the patches, weighted by
how much of each patch the object's mask covers):

| layer | {layer_head} |
| --- | {layer_sep} |
| on object | {layer_vals} |

Weakest classes: {weakest} (top-1 per class). Most frequent confusions: {top_conf}. The full confusion matrix is in
`{name}.eval.json`.
{ood_section}{explain_section}{heads_section}
## Training

- Data: {tc['train_size']:,} generated scenes (seed {tc['train_seed']}) at {tc['image_size']} px, cached by the
  script; {tc['val_size']} validation scenes (seed {tc['val_seed']}).
- Losses: cross-entropy on CLS (label smoothing {tc['label_smoothing']}) + L1 on log-depth{gradient_text} (weight
  {tc['depth_weight']}{together}) + token labelling (weight {tc['token_weight']}): a training-only linear head
  classifies every patch token as the main object's class where its mask covers the patch, else background. It is
  not shipped; it speeds up learning of shape features (without it the CLS classifier stayed at chance for the first
  1,000 steps in trial runs).
- AdamW (lr {tc['lr']}, weight decay {tc['weight_decay']}), batch {tc['batch_size']}, {tc['warmup_steps']} warm-up
  steps, cosine decay over a wall-clock budget, gradient clipping at 1.0, horizontal flips and brightness/contrast
  jitter; {precision}; {schedule}.
- Time: {_minutes(train['train_minutes'])} minutes of training ({train['epochs']} epochs, {steps:,} steps) plus
  {_minutes(data_minutes)} minutes to generate the data: {_minutes(total)} minutes in all {hardware}.{over}{note}
- Reproduce (the schedule follows wall-clock time, so a rerun gives a similar, not bit-identical, model):

  ```bash
  python -m vitviz.synthetic.train --out runs/{name} --export weights/{name}{_reproduce_flags(tc)}
  python benchmarks/eval_shipped_model.py --write
  python scripts/model_card.py
  ```

Validation history ({tc['val_size']} scenes, at {tc['image_size']} px{history_which}):

| epoch | minutes | top-1 | AbsRel |
| --- | --- | --- | --- |
{history_rows}

## Limitations

- Synthetic domain only: 10 clean geometric shapes, one main object per image, a single light. Photographs,
  several main objects, or shapes outside the 10 classes get confident but meaningless labels.{ood_limit}
- Trained on square images: on wider scenes (the app keeps an image's aspect ratio) its accuracy is lower, see
  the landscape row above.
- {grid}×{grid} patch grid at {arch['image_size']} px: attention maps are coarse by design (fast on a CPU).
- Metric depth relies on the generated world's fixed scale (object size, focal length, texture periods): an image
  of a differently scaled world, or taken with a very different lens, gets depth off by a constant factor.
- Absolute scale is the larger part of the depth error (compare the median-scaled rows): the model leans toward
  the average distance.

Licence: same as vitviz. Data: generated by vitviz itself; no external images were used.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "weights" / "vitviz-mini.json")
    parser.add_argument("--generation-minutes", type=float, default=None,
                        help="minutes it took to generate the training scenes, when the run found them cached")
    parser.add_argument("--out", type=Path, default=ROOT / "weights" / "README.md")
    parser.add_argument("--note", default="", help="one more line for the Training section (e.g. about other runs)")
    args = parser.parse_args()
    args.out.write_text(card(args.model, args.generation_minutes, args.note), "utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
