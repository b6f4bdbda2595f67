"""vitviz checkpoints: a safetensors file of weights plus a small JSON config beside it.

Nothing here ever unpickles data: weights are read with safetensors (or ``torch.load(weights_only=True)`` for
``.pt``/``.pth``/``.bin`` state dicts, which refuses arbitrary Python objects).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from .vit import ViTConfig, VisionTransformer

__all__ = [
    "ModelInfo",
    "load_checkpoint",
    "save_checkpoint",
    "read_state_dict",
    "check_state_dict",
    "resolve_checkpoint",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

FORMAT = "vitviz-checkpoint"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_CONFIG_BYTES = 4 * 1024 * 1024


@dataclass
class ModelInfo:
    """Everything the engine needs besides the weights: architecture, preprocessing, labels, depth semantics."""

    name: str
    config: ViTConfig
    labels: list[str] = field(default_factory=list)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    depth_kind: str | None = None  # "metric" (metres), "relative_inverse" (larger = nearer) or None
    description: str = ""
    source: str = ""
    # Out-of-domain detector stored beside the weights (vitviz.models.domain); None for models without one.
    domain_detector: Any = field(default=None, repr=False, compare=False)
    # Image-text models: the tokenizer of the text tower (vitviz.models.text.TextTokenizer); ``labels`` are then the
    # labels asked about (typed by the user), not a fixed class list.
    tokenizer: Any = field(default=None, repr=False, compare=False)
    # Image-text models: ready-made label lists that suit the model (name -> comma-separated labels), for the app.
    presets: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": 1,
            "name": self.name,
            "description": self.description,
            "architecture": self.config.to_dict(),
            "preprocessing": {"mean": list(self.mean), "std": list(self.std)},
            "labels": list(self.labels),
            "depth": {"kind": self.depth_kind} if self.depth_kind else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "") -> "ModelInfo":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CheckpointError(f"{source or 'config'}: not a vitviz checkpoint config (missing \"format\": \"{FORMAT}\")")
        try:
            config = ViTConfig.from_dict(data["architecture"])
            pre = data.get("preprocessing") or {}
            mean = tuple(float(v) for v in pre.get("mean", IMAGENET_MEAN))
            std = tuple(float(v) for v in pre.get("std", IMAGENET_STD))
            labels = [str(label) for label in data.get("labels") or []]
            depth = data.get("depth") or {}
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{source or 'config'}: invalid checkpoint config ({exc})") from exc
        if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
            raise CheckpointError(f"{source or 'config'}: preprocessing mean/std must be 3 numbers (std > 0)")
        if config.num_classes and labels and len(labels) != config.num_classes:
            raise CheckpointError(
                f"{source or 'config'}: {len(labels)} labels for a head of {config.num_classes} classes"
            )
        if config.num_classes and not labels:
            labels = [f"class {i}" for i in range(config.num_classes)]
        return cls(
            name=str(data.get("name") or Path(source).stem or "model"),
            config=config,
            labels=labels,
            mean=mean,  # type: ignore[arg-type]
            std=std,  # type: ignore[arg-type]
            depth_kind=depth.get("kind"),
            description=str(data.get("description", "")),
            source=source,
        )


def pickle_refusal(path: str | os.PathLike[str]) -> str:
    """Why a file of pickled Python objects is not opened, and what to do instead."""
    return (f"{path}: refused: the file holds Python objects other than tensors (a whole model saved with "
            "torch.save(model)?), which vitviz never unpickles: unpickling runs code named by the file; save "
            "model.state_dict() or safetensors instead, or pass --allow-pickle only if you trust the file")


def load_weights_file(path: str | os.PathLike[str], mmap: bool = False) -> Any:
    """What a weights file holds, read safely: a safetensors file's tensors, or a ``torch.save`` file loaded with
    ``weights_only=True`` (tensors and plain containers; ``mmap``: memory-mapped where the file is a zip archive).
    :class:`CheckpointError` with one line for a missing, empty, damaged or pickled-objects file."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint file")
    if p.stat().st_size == 0:
        raise CheckpointError(f"{p}: the checkpoint file is empty")
    if p.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(p), device="cpu")
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{p}: not a valid safetensors file, or it is truncated ({exc})") from exc
    if p.suffix not in (".pt", ".pth", ".bin", ".ckpt"):
        raise CheckpointError(f"{p}: unsupported checkpoint type {p.suffix!r} (use .safetensors)")
    import pickle
    import warnings
    import zipfile

    try:
        with warnings.catch_warnings():
            # e.g. "Detected pickle protocol 4": noise before the clear refusal below
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(str(p), map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(p))
    except pickle.UnpicklingError as exc:
        if not _starts_like_pickle(p):
            raise CheckpointError(
                f"{p}: not a readable PyTorch checkpoint (neither a zip archive nor a pickle stream)"
            ) from exc
        raise CheckpointError(pickle_refusal(p)) from exc
    except (RuntimeError, OSError, EOFError, ValueError, KeyError, IndexError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{p}: not a readable PyTorch checkpoint, damaged or truncated ({reason})") from exc


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read tensors from a safetensors file, or a plain state dict saved by ``torch.save`` (never unpickled freely)."""
    data = load_weights_file(path)
    if path and Path(path).suffix == ".safetensors":
        return data
    if isinstance(data, dict) and "state_dict" in data and isinstance(data["state_dict"], dict):
        data = data["state_dict"]
    if isinstance(data, dict) and "model" in data and isinstance(data["model"], dict):
        data = data["model"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(f"{Path(path)}: expected a dictionary of tensors (a state dict)")
    return data


def _starts_like_pickle(path: Path) -> bool:
    """Whether ``path`` is a zip archive (PyTorch's format) or begins with valid pickle opcodes.

    Only reads opcodes (``pickletools``): nothing is unpickled. Tells damaged or random files apart from pickles that
    ``weights_only`` refused for what they contain.
    """
    import io
    import pickletools
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            return True
        with open(path, "rb") as fh:
            head = fh.read(4096)
        for n, _ in enumerate(pickletools.genops(io.BytesIO(head))):
            if n >= 2:
                break
        return True
    except ValueError as exc:  # unknown opcode; running out of bytes means the start was fine
        return "exhausted" in str(exc) or "not enough data" in str(exc)
    except Exception:  # noqa: BLE001 - a heuristic for the message only
        return False


def check_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise :class:`CheckpointError` naming missing, unexpected and wrongly shaped tensors."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} (model expects {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    for title, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            shown = ", ".join(items[:6]) + (f" and {len(items) - 6} more" if len(items) > 6 else "")
            problems.append(f"{title}: {shown}")
    if problems:
        raise CheckpointError(f"{source}: weights do not match the architecture; " + "; ".join(problems))


def resolve_checkpoint(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Find the (config JSON, weights) pair for a path to either file or to a folder holding one pair."""
    p = Path(path)
    if p.is_dir():
        configs = sorted(c for c in p.glob("*.json") if _is_vitviz_config(c))
        if len(configs) != 1:
            raise CheckpointError(f"{p}: expected exactly one vitviz checkpoint config (*.json) in the folder")
        p = configs[0]
    if not p.exists():
        raise CheckpointError(f"{p}: no such checkpoint")
    if p.suffix == ".json":
        config_path = p
        weights = p.with_suffix(".safetensors")
    else:
        weights = p
        config_path = p.with_suffix(".json")
    if not config_path.is_file():
        raise CheckpointError(f"{weights}: the config file {config_path.name} beside it is missing")
    if not weights.is_file():
        raise CheckpointError(f"{config_path}: the weights file {weights.name} beside it is missing")
    return config_path, weights


def _is_vitviz_config(path: Path) -> bool:
    try:
        return path.stat().st_size < MAX_CONFIG_BYTES and json.loads(path.read_text("utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def read_info(config_path: str | os.PathLike[str]) -> ModelInfo:
    """Read and validate a checkpoint's JSON config."""
    p = Path(config_path)
    try:
        if p.stat().st_size > MAX_CONFIG_BYTES:
            raise CheckpointError(f"{p}: config file is implausibly large")
        data = json.loads(p.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{p}: unreadable config ({exc})") from exc
    return ModelInfo.from_json(data, source=str(p))


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[VisionTransformer, ModelInfo]:
    """Load a vitviz checkpoint (config JSON + safetensors) into an eval-mode model on the CPU."""
    config_path, weights = resolve_checkpoint(path)
    info = read_info(config_path)
    try:
        model = VisionTransformer(info.config)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{config_path}: invalid architecture ({exc})") from exc
    state = read_state_dict(weights)
    check_state_dict(model, state, str(weights))
    model.load_state_dict(state)
    info.source = str(weights)
    from .domain import load_sidecar

    info.domain_detector = load_sidecar(weights, model)
    return model.eval(), info


def save_checkpoint(model: VisionTransformer, info: ModelInfo, path: str | os.PathLike[str]) -> Path:
    """Write ``<path>.safetensors`` and ``<path>.json``; returns the weights path."""
    from safetensors.torch import save_file

    base = Path(path)
    if base.suffix in (".safetensors", ".json"):
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    weights = base.with_suffix(".safetensors")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(weights), metadata={"format": FORMAT})
    base.with_suffix(".json").write_text(json.dumps(info.to_json(), indent=2) + "\n", "utf-8")
    return weights
