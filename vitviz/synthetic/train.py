"""Train the shipped multi-task ViT (shape class + metric depth) on procedurally generated 3D scenes.

    python -m vitviz.synthetic.train --out runs/vitviz-mini --minutes 50 --export weights/vitviz-mini

Scenes come from :mod:`vitviz.synthetic.scenes` (deterministic from a seed) and are cached under ``data_cache/``. Training is
joint: cross-entropy on the CLS head plus an L1 loss on log-depth from the dense head, on a CUDA GPU when there is
one (``--device``), else on the CPU. A state file is written after every epoch so an interrupted run resumes with
``--resume``. The finished model is exported as a vitviz checkpoint (safetensors + JSON) with the training
configuration recorded beside it only where ``--export`` names one: without it a run never touches the shipped
``weights/vitviz-mini``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..models.checkpoint import ModelInfo, save_checkpoint
from ..models.vit import ViTConfig, VisionTransformer
from .scenes import mask_coverage

__all__ = ["TrainConfig", "build_parser", "load_or_make_dataset", "train", "main", "MEAN", "STD"]

MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


@dataclass
class TrainConfig:
    out: str = "runs/vitviz-mini"
    export: str | None = None  # the checkpoint to write (weights/vitviz-mini replaces the shipped model); None: none
    train_size: int = 40000
    train_seed: int = 1
    val_size: int = 500
    val_seed: int = 2
    image_size: int = 128
    patch_size: int = 16
    embed_dim: int = 192
    depth: int = 6
    num_heads: int = 6
    depth_head: str = "fusion"  # "fusion" (FusionDepthHead) or "simple" (SimpleDepthHead, runs 1-4)
    depth_head_layers: str = ""  # "fusion": comma-separated 1-based blocks feeding the depth head ("": thirds)
    depth_head_channels: int = 32  # "fusion": hidden channels
    batch_size: int = 64
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup_steps: int = 300
    label_smoothing: float = 0.1
    depth_weight: float = 3.0  # runs 1-6: 2.0
    gradient_weight: float = 0.5  # multi-scale gradient matching on log-depth, within the depth term (runs 1-5: 0)
    token_weight: float = 1.0  # token labelling: an auxiliary per-patch class loss that speeds up learning
    minutes: float = 50.0  # wall-clock training budget; the learning-rate schedule follows it
    precision: str = "bf16"  # "bf16": bfloat16 autocast for the forward pass (faster on CPUs with AVX512-BF16), or "fp32"
    low_res: int = 96  # progressive resizing: image size used for the first part of the budget (0: off)
    low_res_fraction: float = 0.6  # fraction of the time budget trained at ``low_res`` before switching to full size
    max_epochs: int = 200
    workers: int = 2
    threads: int = 0  # torch threads (0: torch's default)
    device: str = "auto"  # "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N"
    seed: int = 0


def load_or_make_dataset(n: int, seed: int, size: int, workers: int, cache_dir: Path) -> dict[str, np.ndarray]:
    """Generated scenes, cached as an .npz (images uint8, depths float16, masks bool, labels int64)."""
    from .scenes import GENERATOR_VERSION, make_dataset

    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"scenes-v{GENERATOR_VERSION}-s{seed}-n{n}-{size}px.npz"
    if path.is_file():
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    data = make_dataset(n, seed=seed, size=size, workers=workers, progress=True)
    data = {
        "images": data["images"].astype(np.uint8),
        "depths": data["depths"].astype(np.float16),
        "masks": data["masks"].astype(bool),
        "labels": data["labels"].astype(np.int64),
    }
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **data)
    tmp.replace(path)
    return data


def model_config(cfg: TrainConfig, num_classes: int) -> ViTConfig:
    return ViTConfig(
        image_size=cfg.image_size,
        patch_size=cfg.patch_size,
        embed_dim=cfg.embed_dim,
        depth=cfg.depth,
        num_heads=cfg.num_heads,
        num_classes=num_classes,
        depth_head=cfg.depth_head,
        **(
            {"depth_head_layers": depth_head_layers(cfg), "depth_head_channels": (cfg.depth_head_channels,)}
            if cfg.depth_head == "fusion" else {}
        ),
    )


def depth_head_layers(cfg: TrainConfig) -> tuple[int, ...]:
    """The blocks feeding a "fusion" depth head: ``cfg.depth_head_layers``, or the blocks ending each third of
    the encoder (2, 4, 6 for 6 blocks)."""
    if cfg.depth_head_layers.strip():
        return tuple(int(i) for i in cfg.depth_head_layers.split(","))
    return tuple(sorted({max(1, round(cfg.depth * k / 3)) for k in (1, 2, 3)}))


def to_input(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> normalised float [B, 3, H, W] (on the input's device)."""
    x = images_uint8.permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def patch_labels_resized(masks: np.ndarray, labels: np.ndarray, grid: int | tuple[int, int],
                          background: int) -> np.ndarray:
    """Token labels for a ``grid`` (rows, cols) of patches over images of any size: each patch gets the main
    object's class where the mask covers at least half of its area, else ``background``."""
    rows, cols = (grid, grid) if isinstance(grid, int) else grid
    cover = mask_coverage(masks, (rows, cols))
    return np.where(cover >= 0.5, labels[:, None, None], background).astype(np.int64)


def patch_labels(masks: np.ndarray, labels: np.ndarray, patch: int, background: int) -> np.ndarray:
    """Token labels for the model's own patch grid (``patch`` x ``patch`` pixel patches)."""
    _, h, w = masks.shape
    return patch_labels_resized(masks, labels, (h // patch, w // patch), background)


def resize_batch(x: torch.Tensor, depth: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Down-sample images (antialiased bilinear) and depth maps (area mean of log-depth) to ``size`` x ``size``."""
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    log_d = F.interpolate(depth.log().unsqueeze(1), size=(size, size), mode="area")
    return x, log_d[:, 0].exp()


def augment(
    x: torch.Tensor, depth: torch.Tensor, tokens: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Horizontal flips (image, depth and token labels together) and brightness/contrast jitter (image only).

    The random numbers come from ``gen``, a CPU generator, so a seed draws the same flips and jitter on any device.
    """
    b = x.shape[0]
    flip = (torch.rand(b, generator=gen) < 0.5).to(x.device, non_blocking=True)
    x = torch.where(flip.view(b, 1, 1, 1), x.flip(-1), x)
    depth = torch.where(flip.view(b, 1, 1), depth.flip(-1), depth)
    tokens = torch.where(flip.view(b, 1, 1), tokens.flip(-1), tokens)
    contrast = (1.0 + (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 0.4).to(x.device, non_blocking=True)
    brightness = ((torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 0.3).to(x.device, non_blocking=True)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * contrast + mean + brightness, depth, tokens


def lr_at(step: int, progress: float, cfg: TrainConfig) -> float:
    """Linear warm-up over the first steps, then cosine decay (to 2 %) over the fraction of the time budget used."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps)
    progress = min(1.0, max(0.0, progress))
    return cfg.lr * warm * (0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def gradient_matching_loss(log_err: torch.Tensor, scales: int = 4) -> torch.Tensor:
    """Mean absolute horizontal + vertical difference of the log-depth error ``[B, H, W]`` at strides 1, 2, 4, ...

    Zero when the prediction is right up to a per-image scale, so it only asks for the right *shape*: depth edges in
    the right place with the right relative step, which a per-pixel loss under-weights (edge pixels are few).
    """
    total = log_err.new_zeros(())
    for k in range(scales):
        e = log_err[:, :: 2**k, :: 2**k]
        total = total + (e[:, :, 1:] - e[:, :, :-1]).abs().mean() + (e[:, 1:, :] - e[:, :-1, :]).abs().mean()
    return total / scales


def losses(
    model: VisionTransformer,
    token_head: torch.nn.Linear,
    x: torch.Tensor,
    labels: torch.Tensor,
    depth: torch.Tensor,
    tokens: torch.Tensor,
    cfg: TrainConfig,
):
    """Cross-entropy on CLS + L1 on log-depth (+ gradient matching) + token labelling (per-patch class) on the patch
    tokens.

    The forward pass runs under bfloat16 autocast when ``cfg.precision == "bf16"``; the losses are computed in fp32.
    """
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
        out = model(x)
        patch_logits = token_head(out.tokens[:, model.num_prefix_tokens :])
    ce = F.cross_entropy(out.logits.float(), labels, label_smoothing=cfg.label_smoothing)
    log_err = torch.log(out.depth[:, 0].float()) - torch.log(depth)
    depth_loss = log_err.abs().mean()  # reported as "dlog"
    depth_total = depth_loss
    if cfg.gradient_weight:
        depth_total = depth_total + cfg.gradient_weight * gradient_matching_loss(log_err)
    patch_logits = patch_logits.float()
    token_loss = F.cross_entropy(patch_logits.reshape(-1, patch_logits.shape[-1]), tokens.reshape(-1))
    total = ce + cfg.depth_weight * depth_total + cfg.token_weight * token_loss
    return total, ce, depth_loss, out


@torch.no_grad()
def quick_validation(model: VisionTransformer, val: dict[str, np.ndarray], batch: int = 100) -> dict[str, float]:
    model.eval()
    device = next(model.parameters()).device
    correct, abs_rel, n = 0, 0.0, 0
    for i in range(0, len(val["labels"]), batch):
        x = to_input(torch.from_numpy(val["images"][i : i + batch]).to(device))
        gt = torch.from_numpy(val["depths"][i : i + batch].astype(np.float32)).to(device)
        out = model(x)
        labels = torch.from_numpy(val["labels"][i : i + batch]).to(device)
        correct += int((out.logits.argmax(-1) == labels).sum())
        abs_rel += float(((out.depth[:, 0] - gt).abs() / gt).mean(dim=(1, 2)).sum())
        n += len(gt)
    model.train()
    return {"top1": correct / n, "abs_rel": abs_rel / n}


def training_device(name: str) -> torch.device:
    """``"auto"``: the first CUDA GPU when there is one, else the CPU; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: this PyTorch build sees no CUDA GPU")
    return device


def device_description(device: torch.device) -> str:
    """What the run trained on, for the record beside the weights (GPU name, or CPU and thread count)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads)"


def train(cfg: TrainConfig, resume: bool = False) -> Path:
    """Train, export and return the path of the exported weights (or of the run's state file without export)."""
    from tqdm import tqdm

    from .scenes import CLASSES

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path("data_cache")
    device = training_device(cfg.device)  # before the data: a missing GPU fails at once, not after rendering
    t_data = time.time()
    data = load_or_make_dataset(cfg.train_size, cfg.train_seed, cfg.image_size, cfg.workers, cache)
    val = load_or_make_dataset(cfg.val_size, cfg.val_seed, cfg.image_size, cfg.workers, cache)
    data_minutes = (time.time() - t_data) / 60
    print(f"data ready in {60 * data_minutes:.0f} s: {len(data['labels'])} train, {len(val['labels'])} val", flush=True)

    print(f"training on {device_description(device)}", flush=True)
    torch.manual_seed(cfg.seed)
    model = VisionTransformer(model_config(cfg, len(CLASSES)))
    # The explicit softmax(QK^T)V is faster for CPU training at these short sequences (benchmarks/train_step.py);
    # on a GPU the fused kernel is.
    model.set_fused_attention(device.type != "cpu")
    # Training-only head: classifies every patch token as the main object's class or background (not exported).
    token_head = torch.nn.Linear(cfg.embed_dim, len(CLASSES) + 1)
    torch.nn.init.constant_(model.depth_head.out.bias, math.log(float(np.median(data["depths"][:200]))))
    model.to(device)
    token_head.to(device)
    named = list(model.named_parameters()) + [(f"token_head.{n}", p) for n, p in token_head.named_parameters()]
    decay = [p for n, p in named if p.ndim >= 2 and "pos_embed" not in n and "_token" not in n]
    no_decay = [p for n, p in named if not (p.ndim >= 2 and "pos_embed" not in n and "_token" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr,
        fused=device.type == "cuda",
    )
    n = len(data["labels"])
    steps_per_epoch = n // cfg.batch_size
    state_path = out / "state.pt"
    epoch, step, elapsed, history = 0, 0, 0.0, []
    if resume and state_path.is_file():
        state = torch.load(state_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        token_head.load_state_dict(state["token_head"])
        opt.load_state_dict(state["optimizer"])
        epoch, step = int(state["epoch"]), int(state["step"])
        elapsed = float(state["elapsed"])
        history = json.loads(state["history"])
        print(f"resumed at epoch {epoch} (step {step}, {elapsed / 60:.1f} min trained)", flush=True)
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")

    gen = torch.Generator().manual_seed(cfg.seed)
    model.train()
    # The whole training set lives on the training device (about 2.5 GB on a GPU for 40,000 scenes at 128 px), so a
    # GPU never waits for host-to-device copies.
    images = torch.from_numpy(data["images"]).to(device)
    depths = torch.from_numpy(data["depths"]).to(device)
    labels = torch.from_numpy(data["labels"]).to(device)
    token_labels = torch.from_numpy(patch_labels(data["masks"], data["labels"], cfg.patch_size, len(CLASSES)))
    token_labels = token_labels.to(device)
    budget = cfg.minutes * 60.0
    low_res_until = cfg.low_res_fraction * budget if cfg.low_res else 0.0  # seconds trained at ``low_res``
    if low_res_until > 0:
        if cfg.low_res % cfg.patch_size:
            raise ValueError(f"--low-res {cfg.low_res} is not a multiple of the patch size {cfg.patch_size}")
        low_grid = cfg.low_res // cfg.patch_size
        token_labels_low = torch.from_numpy(
            patch_labels_resized(data["masks"], data["labels"], low_grid, len(CLASSES))
        ).to(device)
    # The learning-rate schedule follows wall-clock progress through the budget, so a machine that is busier or
    # faster than expected still gets a complete warm-up + cosine schedule that ends when the time is up.
    segment_start, segment_base = time.time(), elapsed
    done = elapsed >= budget
    while not done and epoch < cfg.max_epochs:
        gen.manual_seed(cfg.seed + epoch)
        order = torch.randperm(n, generator=gen).to(device)
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}", file=sys.stdout, mininterval=10)
        sums, steps_done = torch.zeros(3, device=device), 0  # read back every 20 steps: no per-step GPU sync
        for it in bar:
            elapsed = segment_base + time.time() - segment_start
            if elapsed >= budget:
                done = True
                break
            idx = order[it * cfg.batch_size : (it + 1) * cfg.batch_size]
            low = elapsed < low_res_until
            tok = token_labels_low[idx] if low else token_labels[idx]
            x, d, tok = augment(to_input(images[idx]), depths[idx].float(), tok, gen)
            if low:
                x, d = resize_batch(x, d, cfg.low_res)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, elapsed / budget, cfg)
            loss, ce, dl, _ = losses(model, token_head, x, labels[idx], d, tok, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            steps_done += 1
            sums += torch.stack((loss.detach(), ce.detach(), dl.detach()))
            if it % 20 == 0:
                k, mean = steps_done, sums.tolist()
                bar.set_postfix(loss=f"{mean[0] / k:.3f}", ce=f"{mean[1] / k:.3f}", dlog=f"{mean[2] / k:.3f}",
                                min=f"{elapsed / 60:.1f}/{cfg.minutes:g}")
        bar.close()
        if steps_done == 0:
            break
        epoch += 1
        elapsed = segment_base + time.time() - segment_start
        metrics = quick_validation(model, val)
        mean_loss = float(sums[0]) / max(1, steps_done)
        history.append({"epoch": epoch, "steps": step, "loss": mean_loss, **metrics, "minutes": elapsed / 60})
        print(f"epoch {epoch} ({steps_done} steps): loss {mean_loss:.3f} val top1 {metrics['top1']:.3f} "
              f"AbsRel {metrics['abs_rel']:.3f} ({elapsed / 60:.1f} of {cfg.minutes:g} min)", flush=True)
        torch.save(
            {
                "model": model.state_dict(),
                "token_head": token_head.state_dict(),
                "optimizer": opt.state_dict(),
                "epoch": epoch,
                "step": step,
                "elapsed": elapsed,
                "history": json.dumps(history),
            },
            state_path,
        )
        (out / "history.json").write_text(json.dumps(history, indent=2) + "\n")

    model.eval()
    info = ModelInfo(
        name="vitviz-mini",
        config=model.config,
        labels=list(CLASSES),
        mean=MEAN,
        std=STD,
        depth_kind="metric",
        description=(f"vitviz's own {cfg.depth}-layer ViT (dim {cfg.embed_dim}, patch {cfg.patch_size}) at "
                     f"{cfg.image_size} px: 10 procedural 3D shapes + metric depth (synthetic only)"),
    )
    if not cfg.export:
        print(f"not exported (no --export): the trained state is {state_path}", flush=True)
        return state_path
    weights = save_checkpoint(model, info, cfg.export)
    record = {"train_config": asdict(cfg), "history": history, "epochs": epoch, "steps": step,
              "train_minutes": elapsed / 60, "data_minutes": data_minutes, "torch": torch.__version__,
              "device": device_description(device)}
    Path(cfg.export).with_suffix(".train.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"exported {weights}", flush=True)
    return weights


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags: one per :class:`TrainConfig` field (``--train-size`` for ``train_size``) and ``--resume``."""
    parser = argparse.ArgumentParser(prog="python -m vitviz.synthetic.train", description=__doc__.split("\n\n")[0])
    defaults = TrainConfig()
    for name, value in asdict(defaults).items():
        flag = "--" + name.replace("_", "-")
        kind = type(value) if value is not None else str
        note = ("write the trained checkpoint here (weights/vitviz-mini replaces the shipped model); without it "
                "the model stays in --out") if name == "export" else f"(default: {value})"
        parser.add_argument(flag, type=kind, default=value, help=note)
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's state.pt")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    resume = args.pop("resume")
    train(TrainConfig(**args), resume=resume)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
