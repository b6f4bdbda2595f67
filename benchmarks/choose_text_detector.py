"""How to fit the image-text model's out-of-domain detector, chosen on validation data only: 1,000 standard scenes of
seed 31, 500 group scenes of seed 34, eval_ood.py's validation textures (seed 101) and its scikit-image validation
photos with 4 random crops each (``pip install -e ".[eval]"``). Never the held-out seeds 57 and 58, the report
textures (seed 202) or the sample photos.

    python benchmarks/choose_text_detector.py runs/v6     # a train_text --out folder: train_config.json, model.pt

Variants, each fitted on 2,000 training scenes of each kind it uses (spread evenly over the kind) and calibrated to
keep 95 % of its validation scenes: A standard scenes only; B both kinds, one covariance, the 10 main shapes as
classes (train_text before the parts); C both kinds, kind x shape classes; D both kinds, the kind as the class; E one
detector per kind, each with its own covariance and threshold, in domain when either takes the image
(``DomainDetector.of_parts``, what train_text fits now). Writes ``results/text-detector-choice-DATE.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ood_images import VALIDATION_SKIMAGE, random_crops, skimage_photos, textures  # noqa: E402

from vitviz.models.domain import DomainDetector, calibrate_threshold, fit_mahalanobis  # noqa: E402
from vitviz.synthetic.captions import SHAPE_WORDS  # noqa: E402
from vitviz.synthetic.text_data import as_facts, caption_data  # noqa: E402
from vitviz.synthetic.train_text import (EOS, ImageTextModel, TextTrainConfig, _frozen_tower,  # noqa: E402
                                         build_tokenizer, final_patch_mean, frozen_features)

FIT_PER_KIND, VAL_STANDARD, VAL_GROUP, VAL_TEXTURE_SEED = 2000, 1000, 500, 101


def auroc(inside: torch.Tensor, outside: torch.Tensor) -> float:
    """The chance that an out-of-domain image scores higher than an in-domain one (ties count half)."""
    a, b = inside.double()[None], outside.double()[:, None]
    return float(((b > a).double() + 0.5 * (b == a).double()).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", nargs="?", default="runs/v6", help="a train_text --out folder")
    args = ap.parse_args()
    torch.set_num_threads(2)
    run = Path(args.run)
    cfg = TextTrainConfig(**json.loads((run / "train_config.json").read_text()))
    tower, info = _frozen_tower(cfg.tower)
    tok = build_tokenizer(cfg.context_length)
    model = ImageTextModel(cfg, tower, tok.get_vocab_size(), tok.token_to_id(EOS), mean=info.mean, std=info.std)
    model.load_state_dict(torch.load(run / "model.pt", weights_only=True)["model"])
    model.eval()

    @torch.no_grad()
    def features(images: np.ndarray) -> torch.Tensor:
        return final_patch_mean(model, frozen_features(tower, images, info.mean, info.std, blocks=cfg.frozen_blocks))

    fit, labels = [], []
    for n, seed, kind in ((cfg.train_size, cfg.train_seed, "standard"), (cfg.group_size, cfg.group_seed, "group")):
        data = caption_data(n, seed, cfg.image_size, cfg.workers, kind=kind)
        pick = np.linspace(0, n - 1, FIT_PER_KIND).astype(int)
        facts = as_facts([data["facts"][i] for i in pick])
        fit.append(features(data["images"][pick]))
        labels.append(torch.tensor([SHAPE_WORDS.index(f[0].shape) for f in facts]))
        del data
    val = [features(caption_data(VAL_STANDARD, cfg.val_seed, cfg.image_size, cfg.workers)["images"]),
           features(caption_data(VAL_GROUP, 34, cfg.image_size, cfg.workers, kind="group")["images"])]
    outside = {"textures": textures(90, VAL_TEXTURE_SEED)}
    try:
        photos = skimage_photos(VALIDATION_SKIMAGE)
        outside["photos and crops"] = {**photos, **random_crops(photos, 4, VAL_TEXTURE_SEED)}
    except ImportError as exc:
        print(f"no scikit-image validation photos ({exc})")
    outside_features = {k: features(np.stack([np.asarray(im.convert("RGB").resize(
        (cfg.image_size, cfg.image_size), Image.BICUBIC)) for im in images.values()]))
        for k, images in outside.items()}

    def fitted(f: torch.Tensor, lab: torch.Tensor, classes: int, v: torch.Tensor) -> DomainDetector:
        det = fit_mahalanobis(f, lab, classes, "", feature="patch_mean")
        det.threshold = calibrate_threshold(det.scores(v, None))
        return det

    both, both_labels, both_val = torch.cat(fit), torch.cat(labels), torch.cat(val)
    kinds = torch.cat([torch.zeros_like(labels[0]), torch.ones_like(labels[1])])
    variants = {
        "A standard scenes only": fitted(fit[0], labels[0], 10, val[0]),
        "B both kinds, one covariance, 10 shape classes": fitted(both, both_labels, 10, both_val),
        "C both kinds, kind x shape classes": fitted(both, both_labels + 10 * kinds, 20, both_val),
        "D both kinds, the kind as the class": fitted(both, kinds, 2, both_val),
        "E one detector per kind (of_parts)": DomainDetector.of_parts(
            [fitted(fit[0], labels[0], 10, val[0]), fitted(fit[1], labels[1], 10, val[1])]),
    }
    rows = {}
    for name, det in variants.items():
        scores = [det.scores(v, None) for v in val]
        row = {"kept standard": float((scores[0] <= det.threshold).double().mean()),
               "kept group": float((scores[1] <= det.threshold).double().mean())}
        for k, f in outside_features.items():
            s = det.scores(f, None)
            row[f"AUROC {k}"] = auroc(torch.cat(scores), s)
            row[f"flagged {k}"] = float((s > det.threshold).double().mean())
        rows[name] = row
        print(name, {k: round(v, 4) for k, v in row.items()}, flush=True)
    dest = HERE / "results" / f"text-detector-choice-{datetime.date.today()}.json"
    dest.write_text(json.dumps({"run": str(run), "fit_per_kind": FIT_PER_KIND, "validation": {
        "standard": {"seed": cfg.val_seed, "n": VAL_STANDARD}, "group": {"seed": 34, "n": VAL_GROUP},
        "textures": {"seed": VAL_TEXTURE_SEED, "n": 90}, "photos": list(VALIDATION_SKIMAGE)},
        "variants": rows}, indent=1) + "\n")
    print("wrote", dest)


if __name__ == "__main__":
    main()
