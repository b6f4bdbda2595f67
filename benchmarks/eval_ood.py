"""Fit, choose, calibrate and measure the shipped model's out-of-domain detector; print the model card's table.

    python benchmarks/eval_ood.py            # measure the stored detector (weights/vitviz-mini.ood.safetensors)
    python benchmarks/eval_ood.py --write    # refit it, store it beside the weights and write the results JSON

Needs scikit-image for its bundled photos (``pip install -e ".[eval]"``). Four kinds of images, kept apart so that
nothing reported was used to choose or calibrate:

- fit: 3,000 training scenes (seed 1, the training seed): the class means and shared covariance;
- validation: 1,000 scenes of seed 3 (used by neither training, nor validation, nor the model card) and the
  validation out-of-domain images (5 scikit-image photos with 4 random crops each, 90 textures and noise images of
  seed 101). They choose among three candidates (Mahalanobis distance of the CLS feature that enters the classifier,
  Mahalanobis distance of the mean patch token, energy score) by AUROC and set the threshold (95 % of these scenes
  in domain);
- report: the card's 2,000 held-out scenes (seed 7) and 500 landscape ones (176x128 px, seed 7), against the sample
  photos, 7 other scikit-image photos (4 random crops each) and 90 textures and noise images of seed 202.

Most of the time goes to rendering 6,500 scenes (about 25 ms each per core): the recorded run took 22 minutes on 2
CPU cores shared with other work.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ood_images import (  # noqa: E402
    REPORT_SKIMAGE,
    VALIDATION_SKIMAGE,
    random_crops,
    sample_photos,
    skimage_photos,
    textures,
)

from vitviz.engine import Engine, prepare_image  # noqa: E402
from vitviz.models.checkpoint import load_checkpoint  # noqa: E402
from vitviz.models.domain import (  # noqa: E402
    FEATURES,
    DomainDetector,
    calibrate_threshold,
    fit_mahalanobis,
    token_features,
    sidecar_path,
)
from vitviz.synthetic.scenes import CLASSES, make_dataset  # noqa: E402

FIT_SEED, FIT_SCENES = 1, 3000
VAL_SEED, VAL_SCENES = 3, 1000
REPORT_SEED, REPORT_SCENES = 7, 2000
WIDE_SCENES, WIDE_SIZE = 500, (128, 176)
VAL_TEXTURE_SEED, REPORT_TEXTURE_SEED, TEXTURES = 101, 202, 90
CROPS = 4
KEEP = 0.95  # fraction of in-domain scenes the threshold keeps in domain
KNOWN = f"{len(CLASSES)} synthetic shapes"
GOALS = {"auroc": 0.98, "photos_flagged": 0.95}


def _outputs(model, batches) -> dict[str, torch.Tensor]:
    """Every candidate feature (:data:`FEATURES`) and the logits of batches of normalised images."""
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in (*FEATURES, "logits")}
    for x in batches:
        out = model(x)
        for f in FEATURES:
            parts[f].append(token_features(model, out.tokens, f))
        parts["logits"].append(out.logits)
    return {k: torch.cat(v) for k, v in parts.items()}


@torch.no_grad()
def scene_outputs(model, info, n: int, seed: int, workers: int, size=None) -> dict[str, torch.Tensor]:
    """Features, logits and labels of ``n`` generated scenes (prepared as the engine would)."""
    size = size or (model.config.image_size, model.config.image_size)
    data = make_dataset(n, seed=seed, size=size, workers=workers, progress=sys.stderr.isatty())
    mean, std = torch.tensor(info.mean).view(1, 3, 1, 1), torch.tensor(info.std).view(1, 3, 1, 1)
    images = torch.from_numpy(data["images"]).permute(0, 3, 1, 2)
    out = _outputs(model, ((images[i : i + 250].float() / 255.0 - mean) / std for i in range(0, n, 250)))
    return out | {"labels": torch.from_numpy(data["labels"])}


@torch.no_grad()
def image_outputs(model, info, images: dict) -> dict[str, torch.Tensor]:
    """Features and logits of PIL images, each resized as :class:`vitviz.engine.Engine` does."""
    mean, std = torch.tensor(info.mean).view(1, 3, 1, 1), torch.tensor(info.std).view(1, 3, 1, 1)
    rgbs = (prepare_image(img, model.config.image_size, model.config.patch_size) for img in images.values())
    return _outputs(model, ((torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0 - mean) / std
                            for rgb in rgbs))


def scores(detector: DomainDetector, outputs: dict[str, torch.Tensor]) -> np.ndarray:
    return detector.scores(outputs[detector.feature], outputs["logits"]).numpy()


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """Probability that an out-of-domain image scores above an in-domain one (ties count half)."""
    a, b = np.asarray(in_scores)[None, :], np.asarray(out_scores)[:, None]
    return float((b > a).mean() + 0.5 * (b == a).mean())


def candidates(fit: dict[str, torch.Tensor]) -> dict[str, DomainDetector]:
    """The detectors to choose from, fitted on the ``fit`` scenes (thresholds still unset)."""
    maha = {f"mahalanobis/{f}": fit_mahalanobis(fit[f], fit["labels"], len(CLASSES), known=KNOWN, feature=f)
            for f in FEATURES}
    return maha | {"energy": DomainDetector("energy", float("inf"), known=KNOWN)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "weights" / "vitviz-mini.json"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--write", action="store_true",
                        help="store the fitted detector beside the weights and write benchmarks/results/ood-NAME.json")
    args = parser.parse_args()
    torch.set_num_threads(max(1, args.workers))
    t0 = time.time()
    model, info = load_checkpoint(args.model)
    stored = sidecar_path(info.source)

    # Validation: fit both candidates, choose by AUROC, calibrate the threshold.
    fit = scene_outputs(model, info, FIT_SCENES, FIT_SEED, args.workers)
    val_in = scene_outputs(model, info, VAL_SCENES, VAL_SEED, args.workers)
    val_photos = skimage_photos(VALIDATION_SKIMAGE)
    val_ood = {**val_photos, **random_crops(val_photos, CROPS, seed=VAL_TEXTURE_SEED),
               **textures(TEXTURES, VAL_TEXTURE_SEED)}
    val_out = image_outputs(model, info, val_ood)
    tried = candidates(fit)
    validation = {}
    for name, det in tried.items():
        s_in, s_out = scores(det, val_in), scores(det, val_out)
        det.threshold = calibrate_threshold(torch.from_numpy(s_in), KEEP)
        validation[name] = {"auroc": auroc(s_in, s_out), "threshold": det.threshold,
                            "flagged": float((s_out > det.threshold).mean())}
        print(f"validation {name:22s} AUROC {validation[name]['auroc']:.4f}, flagged "
              f"{100 * validation[name]['flagged']:.1f} % of {len(s_out)} at threshold {det.threshold:.4g}")
    chosen = max(validation, key=lambda m: validation[m]["auroc"])
    print(f"chosen: {chosen}")
    if args.write:
        tried[chosen].save(stored)
        print(f"wrote {stored}")
    if not stored.is_file():
        print(f"{stored} does not exist: run with --write to store a detector", file=sys.stderr)
        return 1
    detector = DomainDetector.load(stored)

    # Report: the stored detector, on images used neither to fit nor to choose.
    rep_in = scene_outputs(model, info, REPORT_SCENES, REPORT_SEED, args.workers)
    wide_in = scene_outputs(model, info, WIDE_SCENES, REPORT_SEED, args.workers, size=WIDE_SIZE)
    samples = sample_photos()
    others = skimage_photos(REPORT_SKIMAGE)
    groups = {
        "sample photos (assets/samples)": samples,
        "scikit-image photos": others,
        f"random crops of those photos ({CROPS} each)": random_crops({**samples, **others}, CROPS,
                                                                      seed=REPORT_TEXTURE_SEED),
        f"textures and noise (seed {REPORT_TEXTURE_SEED})": textures(TEXTURES, REPORT_TEXTURE_SEED),
    }
    s_in, s_wide = scores(detector, rep_in), scores(detector, wide_in)
    rows, all_out, photo_flags, per_image = [], [], [], {}
    for title, images in groups.items():
        s = scores(detector, image_outputs(model, info, images))
        flagged = s > detector.threshold
        rows.append({"set": title, "images": len(s), "flagged": float(flagged.mean()), "auroc": auroc(s_in, s)})
        all_out.append(s)
        if "texture" not in title:
            photo_flags.append(flagged)
        if len(images) <= 20:
            per_image.update({name: float(v) for name, v in zip(images, s)})
    out = np.concatenate(all_out)
    photo_flags = np.concatenate(photo_flags)
    # The engine's own path gives the same verdicts (one forward pass per image, sidecar loaded with the weights).
    engine = Engine(args.model, device="cpu")
    for name, img in samples.items():
        got = engine.analyze(img).domain
        assert got is not None and abs(got.score - per_image[name]) <= 1e-3 * max(1.0, abs(got.score)), name
    result = {
        "model": info.name,
        "date": _dt.date.today().isoformat(),
        "torch": torch.__version__,
        "detector": {"method": detector.method, "feature": detector.feature, "threshold": detector.threshold,
                     "known": detector.known, "file": stored.name},
        "fit": {"seed": FIT_SEED, "scenes": FIT_SCENES},
        "validation": {"seed": VAL_SEED, "scenes": VAL_SCENES, "keep": KEEP, "photos": list(val_photos),
                       "crops_per_photo": CROPS, "textures": TEXTURES, "texture_seed": VAL_TEXTURE_SEED,
                       "candidates": validation, "chosen": chosen},
        "report": {
            "scenes": {"seed": REPORT_SEED, "n": REPORT_SCENES, "size": [128, 128],
                       "in_domain": float((s_in <= detector.threshold).mean())},
            "landscape": {"seed": REPORT_SEED, "n": WIDE_SCENES, "size": list(WIDE_SIZE),
                          "in_domain": float((s_wide <= detector.threshold).mean()), "auroc": auroc(s_wide, out)},
            "out_of_domain": rows,
            "auroc": auroc(s_in, out),
            "tpr": float((out > detector.threshold).mean()),
            "fpr": float((s_in > detector.threshold).mean()),
            "photos_flagged": float(photo_flags.mean()),
            "photos": int(len(photo_flags)),
            "per_image_scores": per_image,
        },
        "seconds": round(time.time() - t0, 1),
    }
    print(markdown_table(result))
    print(f"({result['seconds']:.0f} s)")
    if args.write:
        path = ROOT / "benchmarks" / "results" / f"ood-{info.name}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {path}")
    return 0


def _pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def markdown_table(result: dict) -> str:
    """The model card's table of a result written by this script."""
    rep = result["report"]
    sc, wide = rep["scenes"], rep["landscape"]
    lines = [
        "| images | count | counted out of domain | AUROC against the held-out scenes |",
        "| --- | --- | --- | --- |",
        f"| held-out scenes (seed {sc['seed']}, {sc['size'][1]}×{sc['size'][0]} px) | {sc['n']:,} | "
        f"{_pct(1 - sc['in_domain'])} (false positives) | |",
        f"| landscape scenes (seed {wide['seed']}, {wide['size'][1]}×{wide['size'][0]} px) | {wide['n']:,} | "
        f"{_pct(1 - wide['in_domain'])} | |",
    ]
    lines += [f"| {r['set']} | {r['images']} | {_pct(r['flagged'])} | {r['auroc']:.3f} |" for r in rep["out_of_domain"]]
    n_out = sum(r["images"] for r in rep["out_of_domain"])
    lines.append(f"| **all out-of-domain images** | {n_out} | **{_pct(rep['tpr'])}** (true positives) | "
                 f"**{rep['auroc']:.3f}** |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
