"""Train the MiniViT of ``model.py`` for a few minutes on the CPU, on vitviz's procedurally rendered scenes (the
shape class of the main object, and metric depth), then save a bare ``state_dict`` and a JSON file beside it.

    python examples/minivit/train.py --minutes 6 --threads 1
    vitviz analyze IMAGE --out out --model examples/minivit/minivit.pth   # heads, classes, mean/std: minivit.json
    vitviz --model examples/minivit/model.py:build                      # the same weights, through the code

The scenes come from ``vitviz.synthetic.scenes`` (deterministic from a seed; cached under ``data_cache/``); the
validation scenes use another seed than the training scenes. The loss is cross-entropy on the classes plus L1 on
depth in metres, plus a training-only per-patch class loss on the patch tokens (the main object's class where it
covers the patch, else background), which gets a ViT off the ground sooner. Writes ``minivit.pth``,
``minivit.json`` (heads, classes, mean, std: what the weights cannot hold) and ``minivit.train.json`` (the run's
settings and validation figures); never overwrites without ``--force``.
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model import CONFIG, HERE, MEAN, STD, MiniViT  # noqa: E402

from vitviz.synthetic.scenes import CLASSES  # noqa: E402
from vitviz.synthetic.train import load_or_make_dataset, patch_labels  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "minivit.pth", help="weights file (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="overwrite existing output files")
    parser.add_argument("--minutes", type=float, default=5.0, help="training time budget (default: %(default)s)")
    parser.add_argument("--train-size", type=int, default=3000, help="training scenes (default: %(default)s)")
    parser.add_argument("--val-size", type=int, default=300, help="validation scenes (default: %(default)s)")
    parser.add_argument("--train-seed", type=int, default=1)
    parser.add_argument("--val-seed", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=0,
                        help="PyTorch threads (default: PyTorch's choice); 1 is much faster on a machine whose cores "
                             "are busy with other work")
    parser.add_argument("--workers", type=int, default=2, help="processes rendering the scenes")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def to_input(images_uint8):
    """uint8 [B, H, W, 3] -> normalised float [B, 3, H, W]."""
    x = images_uint8.permute(0, 3, 1, 2).float() / 255.0
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


@torch.no_grad()
def validate(model, val, batch=100):
    """Top-1 accuracy and AbsRel (mean |predicted - true| / true depth) on the validation scenes."""
    model.eval()
    correct, abs_rel = 0, 0.0
    for i in range(0, len(val["labels"]), batch):
        logits, depth = model(to_input(torch.from_numpy(val["images"][i:i + batch])))
        true = torch.from_numpy(val["depths"][i:i + batch].astype(np.float32))
        correct += int((logits.argmax(-1) == torch.from_numpy(val["labels"][i:i + batch])).sum())
        abs_rel += float(((depth[:, 0] - true).abs() / true).mean(dim=(1, 2)).sum())
    model.train()
    n = len(val["labels"])
    return {"top1": correct / n, "abs_rel": abs_rel / n}


def main(argv=None):
    args = parse_args(argv)
    settings_path, record_path = args.out.with_suffix(".json"), args.out.with_suffix(".train.json")
    existing = [p for p in (args.out, settings_path, record_path) if p.exists()]
    if existing and not args.force:
        raise SystemExit(f"{existing[0]} exists; pass --force to overwrite it")

    size = CONFIG["img_size"]
    t0 = time.time()
    train = load_or_make_dataset(args.train_size, args.train_seed, size, args.workers, Path("data_cache"))
    val = load_or_make_dataset(args.val_size, args.val_seed, size, args.workers, Path("data_cache"))
    print(f"{len(train['labels'])} training and {len(val['labels'])} validation scenes ready in "
          f"{time.time() - t0:.0f} s", flush=True)

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    # Dropout slows down a run of a few minutes without helping it.
    model = MiniViT(**CONFIG, dropout=0.0)
    with torch.no_grad():
        torch.nn.init.trunc_normal_(model.pos_embed, std=0.02)
        torch.nn.init.trunc_normal_(model.cls_token, std=0.02)
        model.depth_head[-1].bias.fill_(float(np.median(train["depths"][:200])))  # start at a typical depth
    # Training only (not saved): classifies each patch token as the main object's class or background.
    patch_head = torch.nn.Linear(CONFIG["embed_dim"], len(CLASSES) + 1)
    encoded = {}
    model.transformer.register_forward_hook(lambda module, inputs, output: encoded.update(tokens=output))
    params = list(model.parameters()) + list(patch_head.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.05)

    images = torch.from_numpy(train["images"])
    depths = torch.from_numpy(train["depths"])
    labels = torch.from_numpy(train["labels"])
    grid = CONFIG["img_size"] // CONFIG["patch_size"]
    patch_classes = torch.from_numpy(
        patch_labels(train["masks"], train["labels"], CONFIG["patch_size"], len(CLASSES))
    ).view(-1, grid, grid)
    gen = torch.Generator().manual_seed(args.seed)
    budget, warmup = args.minutes * 60.0, 50
    step, epoch, start, done = 0, 0, time.time(), False
    model.train()
    while not done:
        epoch += 1
        order = torch.randperm(len(labels), generator=gen)
        losses = []
        for i in range(0, len(order) - args.batch_size + 1, args.batch_size):
            progress = (time.time() - start) / budget
            if progress >= 1.0:
                done = True
                break
            idx = order[i:i + args.batch_size]
            x, depth, patches = to_input(images[idx]), depths[idx].float(), patch_classes[idx]
            flip = torch.rand(len(idx), generator=gen) < 0.5  # horizontal flips of image, depth and patch classes
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            depth = torch.where(flip.view(-1, 1, 1), depth.flip(-1), depth)
            patches = torch.where(flip.view(-1, 1, 1), patches.flip(-1), patches)
            # Linear warm-up, then cosine decay over the time budget.
            lr = args.lr * min(1.0, (step + 1) / warmup) * 0.5 * (1.0 + math.cos(math.pi * progress))
            for group in opt.param_groups:
                group["lr"] = lr
            logits, predicted = model(x)
            ce = F.cross_entropy(logits, labels[idx], label_smoothing=0.1)
            depth_loss = F.l1_loss(predicted[:, 0], depth)
            patch_logits = patch_head(encoded["tokens"][:, 1:])
            patch_loss = F.cross_entropy(patch_logits.reshape(-1, patch_logits.shape[-1]), patches.reshape(-1))
            loss = ce + depth_loss + patch_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            step += 1
            losses.append((ce.item(), depth_loss.item()))
            if step % 25 == 0:
                ce_mean, depth_mean = np.mean(losses[-25:], axis=0)
                print(f"step {step} (epoch {epoch}, {(time.time() - start) / 60:.1f} of {args.minutes:g} min): "
                      f"cross-entropy {ce_mean:.3f}, depth L1 {depth_mean:.3f} m", flush=True)
    minutes = (time.time() - start) / 60

    metrics = validate(model, val)
    median = float(np.median(train["depths"]))
    baseline = float(np.mean(np.abs(median - val["depths"].astype(np.float32)) / val["depths"].astype(np.float32)))
    print(f"validation ({len(val['labels'])} scenes, seed {args.val_seed}): top-1 {metrics['top1']:.3f} "
          f"(chance {1 / len(CLASSES):.2f}), depth AbsRel {metrics['abs_rel']:.3f} "
          f"(one constant depth for every pixel: {baseline:.3f}) after {step} steps in {minutes:.1f} min", flush=True)

    model.eval()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out)
    settings = {"heads": CONFIG["num_heads"], "classes": list(CLASSES), "mean": list(MEAN), "std": list(STD)}
    settings_path.write_text(json.dumps(settings, indent=2) + "\n")
    record = {"config": CONFIG, "args": {k: v.name if isinstance(v, Path) else v for k, v in vars(args).items()},
              "steps": step, "epochs": epoch, "train_minutes": round(minutes, 2), "validation": metrics,
              "constant_depth_abs_rel": baseline, "torch": torch.__version__, "threads": torch.get_num_threads()}
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"saved {args.out} ({args.out.stat().st_size / 1e6:.1f} MB), {settings_path.name}, {record_path.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
