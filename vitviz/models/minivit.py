"""The design notes' MiniViT (``nn.TransformerEncoder`` inside, optional ConvTranspose depth head), and opening
its bare ``state_dict`` without the code that trained it.

A ``state_dict`` saved from the notes' own class loads into :class:`MiniViT` unchanged: the parameter names are
the notes' (``patch_embed.proj``, ``cls_token``, ``pos_embed``, ``transformer.layers.N...``, ``mlp_head``,
``depth_head``). :func:`load_minivit` reads such a file safely (``torch.load(weights_only=True)`` or safetensors;
nothing is unpickled), works out the architecture from the tensors' shapes, and takes what a ``state_dict`` cannot
hold (heads, class names, mean/std, pre- or post-norm) from its arguments or a JSON file beside the checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError
from .checkpoint import IMAGENET_MEAN, IMAGENET_STD, check_state_dict, load_weights_file

__all__ = [
    "PatchEmbedding",
    "MiniViT",
    "is_minivit_state_dict",
    "is_minivit_file",
    "read_checkpoint_state",
    "minivit_spec",
    "load_minivit",
    "SIDECAR_KEYS",
]

ACTIVATIONS = ("relu", "gelu")
# What a JSON file beside the checkpoint may say (``minivit.pth`` -> ``minivit.json``).
SIDECAR_KEYS = ("heads", "classes", "mean", "std", "norm_first", "activation", "layer_norm_eps")
MAX_SIDECAR_BYTES = 4 * 1024 * 1024
# Wrappers training scripts put around the state dict, and prefixes that DataParallel / torch.compile add.
WRAPPER_KEYS = ("model_state_dict", "state_dict", "model")
PREFIXES = ("module.", "_orig_mod.")
REQUIRED_KEYS = (
    "patch_embed.proj.weight",
    "cls_token",
    "pos_embed",
    "transformer.layers.0.self_attn.in_proj_weight",
    "transformer.layers.0.self_attn.out_proj.weight",
    "transformer.layers.0.linear1.weight",
    "transformer.layers.0.linear2.weight",
    "transformer.layers.0.norm1.weight",
    "transformer.layers.0.norm2.weight",
    "mlp_head.0.weight",
    "mlp_head.1.weight",
)
_LAYER_KEY = re.compile(r"^transformer\.layers\.(\d+)\.")


class PatchEmbedding(nn.Module):
    """Non-overlapping ``patch_size`` patches projected to ``embed_dim`` by one strided ``Conv2d``: [B, N, D]."""

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_channels: int = 3, embed_dim: int = 768):
        super().__init__()
        self.num_patches = (img_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class MiniViT(nn.Module):
    """The design notes' ViT: patch embedding, CLS token, learned ``pos_embed``, ``nn.TransformerEncoder``, an
    ``mlp_head`` (LayerNorm + Linear) on the CLS token and, with ``depth_head=True``, the notes' ConvTranspose depth
    head on the patch tokens.

    ``forward`` returns the logits ``[B, num_classes]``, or ``(logits, depth)`` with depth ``[B, 1, H, W]`` at the
    input's size when the depth head exists. ``dim_feedforward``, ``activation``, ``norm_first``, ``layer_norm_eps``
    and ``bias`` are passed to ``nn.TransformerEncoderLayer`` (its defaults are the notes'); ``final_norm`` adds the
    encoder's optional last LayerNorm (``transformer.norm``).
    """

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_channels: int = 3,
        embed_dim: int = 768,
        num_classes: int = 10,
        depth: int = 6,
        num_heads: int = 8,
        *,
        depth_head: bool = False,
        dim_feedforward: int = 2048,
        activation: str = "relu",
        norm_first: bool = False,
        layer_norm_eps: float = 1e-5,
        bias: bool = True,
        final_norm: bool = False,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.patch_embed = PatchEmbedding(img_size, patch_size, in_channels, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, (img_size // patch_size) ** 2 + 1, embed_dim))
        layer = nn.TransformerEncoderLayer(
            d_model=embed_dim,
            nhead=num_heads,
            dim_feedforward=dim_feedforward,
            dropout=dropout,
            activation=activation,
            layer_norm_eps=layer_norm_eps,
            batch_first=True,
            norm_first=norm_first,
            bias=bias,
        )
        # Nested tensors only matter with padding masks, which images never have; off, it also keeps PyTorch from
        # warning about pre-norm layers. The parameters are the same either way.
        self.transformer = nn.TransformerEncoder(
            layer,
            num_layers=depth,
            norm=nn.LayerNorm(embed_dim, eps=layer_norm_eps, bias=bias) if final_norm else None,
            enable_nested_tensor=False,
        )
        self.mlp_head = nn.Sequential(nn.LayerNorm(embed_dim), nn.Linear(embed_dim, num_classes))
        self.depth_head = (
            nn.Sequential(
                nn.ConvTranspose2d(embed_dim, embed_dim // 2, kernel_size=2, stride=2),
                nn.ReLU(),
                nn.ConvTranspose2d(embed_dim // 2, embed_dim // 4, kernel_size=2, stride=2),
                nn.ReLU(),
                nn.Conv2d(embed_dim // 4, 1, kernel_size=1),
            )
            if depth_head
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        batch, _, height, width = x.shape
        tokens = self.patch_embed(x)  # [B, N, D]
        tokens = torch.cat((self.cls_token.expand(batch, -1, -1), tokens), dim=1)
        tokens = tokens + self.pos_embed[:, : tokens.size(1)]
        tokens = self.transformer(tokens)  # [B, N+1, D]
        logits = self.mlp_head(tokens[:, 0])  # the CLS token
        if self.depth_head is None:
            return logits
        patch = self.patch_embed.proj.kernel_size
        grid = (height // patch[0], width // patch[1])
        feat_map = tokens[:, 1:].transpose(1, 2).reshape(batch, -1, *grid)  # [B, D, H/P, W/P]
        depth = self.depth_head(feat_map)
        if depth.shape[-2:] != (height, width):
            depth = F.interpolate(depth, size=(height, width), mode="bilinear")
        return logits, depth


def _unwrap(state: Any) -> Any:
    """The state dict inside a training checkpoint's wrapper (``{"model_state_dict": ...}`` and the like)."""
    for _ in range(2):  # e.g. {"state_dict": {"model": ...}} from some trainers
        if isinstance(state, Mapping) and not any(isinstance(v, torch.Tensor) for v in state.values()):
            inner = next((state[k] for k in WRAPPER_KEYS if isinstance(state.get(k), Mapping)), None)
            if inner is not None:
                state = inner
    return state


def _strip_prefixes(state: Mapping[str, Any]) -> dict[str, Any]:
    state = dict(state)
    for prefix in PREFIXES:
        if state and all(isinstance(k, str) and k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _normalised(state: Any) -> dict[str, Any] | None:
    state = _unwrap(state)
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        return None
    return _strip_prefixes(state)


def is_minivit_state_dict(state: Mapping[str, Any]) -> bool:
    """Whether ``state`` (a state dict, possibly wrapped or ``module.``-prefixed) has the notes' MiniViT layout.

    Recognised by its keys; extra keys besides the MiniViT's still count (:func:`load_minivit` then names them).
    """
    flat = _normalised(state)
    if flat is None:
        return False
    return all(isinstance(flat.get(k), torch.Tensor) for k in REQUIRED_KEYS)


def is_minivit_file(path: str | os.PathLike[str]) -> bool:
    """Whether the checkpoint file at ``path`` holds a MiniViT state dict (see :func:`is_minivit_state_dict`).

    Cheap for large files: safetensors headers are read without the tensors, zip-format ``torch.save`` files are
    memory-mapped. Raises :class:`CheckpointError` when the file cannot be read safely at all (missing, damaged, or
    holding pickled objects), as every loader would.
    """
    p = Path(path)
    if p.suffix == ".safetensors" and p.is_file():
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(p), framework="pt") as fh:
                keys = set(_strip_prefixes(dict.fromkeys(fh.keys())))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{p}: not a valid safetensors file, or it is truncated ({exc})") from exc
        return all(k in keys for k in REQUIRED_KEYS)
    return is_minivit_state_dict(read_checkpoint_state(p))


def read_checkpoint_state(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of a state dict file, unwrapped and without a ``module.`` prefix; never unpickles objects.

    ``.safetensors`` files are read with safetensors, anything else with ``torch.load(weights_only=True)``, which
    refuses every Python object but tensors and plain containers. A whole model saved with ``torch.save(model)`` is
    refused: loading it would unpickle, which runs code named by the file.
    """
    p = Path(path)
    data = load_weights_file(p, mmap=True)  # memory-mapped: is_minivit_file reads the keys alone
    flat = _normalised(data)
    if flat is None:
        raise CheckpointError(f"{p}: expected a state dict (a dictionary of tensors), found {type(data).__name__}")
    tensors = {k: v for k, v in flat.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        keys = ", ".join(list(flat)[:6])
        raise CheckpointError(f"{p}: no state dict found in the file (its keys: {keys or 'none'})")
    return tensors


def minivit_spec(state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> dict[str, Any]:
    """The :class:`MiniViT` arguments that the weights hold: width, depth, FFN size, patch and image size, input
    channels, classes, the depth head, biases and a final encoder norm.

    The number of heads, the activation, ``norm_first`` and ``layer_norm_eps`` are not in the weights; they are
    left out of the result.
    """
    flat = _normalised(state)
    if flat is None or not is_minivit_state_dict(flat):
        missing = [k for k in REQUIRED_KEYS if flat is None or k not in flat]
        raise CheckpointError(f"{source}: not a MiniViT state dict (missing {', '.join(missing[:3])})")
    proj = flat["patch_embed.proj.weight"]
    if proj.ndim != 4 or proj.shape[2] != proj.shape[3]:
        raise CheckpointError(f"{source}: patch_embed.proj.weight {tuple(proj.shape)} is not a square patch Conv2d")
    width, channels, patch = int(proj.shape[0]), int(proj.shape[1]), int(proj.shape[2])
    pos = flat["pos_embed"]
    if pos.ndim != 3 or pos.shape[0] != 1 or pos.shape[2] != width:
        raise CheckpointError(f"{source}: pos_embed {tuple(pos.shape)} is not [1, N+1, {width}]")
    patches = int(pos.shape[1]) - 1
    grid = math.isqrt(max(patches, 0))
    if patches < 1 or grid * grid != patches:
        raise CheckpointError(f"{source}: pos_embed holds {patches} patch positions, not a square grid")
    layers = sorted({int(m.group(1)) for k in flat if (m := _LAYER_KEY.match(k))})
    if layers != list(range(len(layers))):
        raise CheckpointError(f"{source}: transformer layers are not numbered 0..N-1 ({layers[:8]})")
    return dict(
        img_size=grid * patch,
        patch_size=patch,
        in_channels=channels,
        embed_dim=width,
        num_classes=int(flat["mlp_head.1.weight"].shape[0]),
        depth=len(layers),
        depth_head=any(k.startswith("depth_head.") for k in flat),
        dim_feedforward=int(flat["transformer.layers.0.linear1.weight"].shape[0]),
        bias="transformer.layers.0.self_attn.in_proj_bias" in flat,
        final_norm="transformer.norm.weight" in flat,
    )


def _read_sidecar(path: Path) -> dict[str, Any]:
    """The JSON file beside the checkpoint (same stem, ``.json``), or ``{}`` when there is none."""
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return {}
    try:
        if sidecar.stat().st_size > MAX_SIDECAR_BYTES:
            raise CheckpointError(f"{sidecar}: implausibly large for a settings file")
        data = json.loads(sidecar.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{sidecar}: unreadable JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{sidecar}: expected a JSON object with any of {', '.join(SIDECAR_KEYS)}")
    unknown = sorted(set(data) - set(SIDECAR_KEYS))
    if unknown:
        raise CheckpointError(f"{sidecar}: unknown key {unknown[0]!r} (known: {', '.join(SIDECAR_KEYS)})")
    return data


def _floats(value: Any, name: str, count: int, where: str) -> tuple[float, ...]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value] * count
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise CheckpointError(f"{where}: {name} must be {count} numbers") from None
    if len(numbers) == 1:  # one number for every channel
        numbers *= count
    if len(numbers) != count or not all(math.isfinite(v) for v in numbers):
        raise CheckpointError(f"{where}: {name} must be {count} numbers, one per input channel (got {len(numbers)})")
    if name == "std" and any(v <= 0 for v in numbers):
        raise CheckpointError(f"{where}: std must be positive")
    return numbers


def _default_normalisation(channels: int, where: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    if channels == 1:
        return (sum(IMAGENET_MEAN) / 3,), (sum(IMAGENET_STD) / 3,)
    raise CheckpointError(f"{where}: a {channels}-channel model needs --mean and --std ({channels} numbers each)")


def _choose(argument: Any, sidecar: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """An argument when given, else the JSON file's value, else ``default``."""
    if argument is not None:
        return argument
    return sidecar.get(key, default)


def load_minivit(
    path: str | os.PathLike[str],
    heads: int | None = None,
    classes: Sequence[str] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    norm_first: bool | None = None,
    activation: str | None = None,
    layer_norm_eps: float | None = None,
) -> dict[str, Any]:
    """Open a MiniViT ``state_dict`` file: ``{"model", "labels", "mean", "std", "image_size", "channels"}``.

    The architecture comes from the weights (:func:`minivit_spec`). What they cannot hold comes from the arguments,
    else from a JSON file beside the checkpoint (``minivit.pth`` -> ``minivit.json``, keys :data:`SIDECAR_KEYS`):

    - ``heads``: required; it must divide the width;
    - ``classes``: class names, as many as the head has outputs (default ``class 0``, ``class 1``, ...);
    - ``mean``/``std``: the input normalisation, one number per channel (default ImageNet's for 3 channels, their
      averages for 1 channel);
    - ``norm_first``: ``True`` for pre-norm layers; the weights of ``nn.TransformerEncoderLayer`` look the same
      either way, so the default is ``False``, PyTorch's default and the notes' code;
    - ``activation``: ``"relu"`` (PyTorch's default) or ``"gelu"``; ``layer_norm_eps`` (default 1e-5).

    The model is returned in eval mode on the CPU. Raises :class:`CheckpointError` with a one-line message.
    """
    p = Path(path)
    state = read_checkpoint_state(p)
    if not is_minivit_state_dict(state):
        raise CheckpointError(f"{p}: not a MiniViT state dict (no patch_embed.proj / transformer.layers / mlp_head)")
    spec = minivit_spec(state, str(p))
    sidecar = _read_sidecar(p)
    where = str(p)
    width = spec["embed_dim"]

    heads = _choose(heads, sidecar, "heads")
    if heads is None:
        raise CheckpointError(
            f"{p}: a state dict does not record the number of attention heads; give --heads N (N divides the "
            f"width {width}), or \"heads\" in {p.with_suffix('.json').name} beside it"
        )
    if isinstance(heads, bool) or not isinstance(heads, int) or heads < 1:
        raise CheckpointError(f"{where}: --heads must be a positive whole number (got {heads!r})")
    if width % heads:
        divisors = [d for d in range(1, width + 1) if width % d == 0 and d <= 64]
        raise CheckpointError(
            f"{where}: --heads {heads} does not divide the width {width} (possible: {', '.join(map(str, divisors))})"
        )

    activation = _choose(activation, sidecar, "activation", "relu")
    if activation not in ACTIVATIONS:
        raise CheckpointError(f"{where}: activation must be one of {', '.join(ACTIVATIONS)} (got {activation!r})")
    norm_first = _choose(norm_first, sidecar, "norm_first", False)
    if not isinstance(norm_first, bool):
        raise CheckpointError(f"{where}: norm_first must be true or false (got {norm_first!r})")
    eps = _choose(layer_norm_eps, sidecar, "layer_norm_eps", 1e-5)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
        raise CheckpointError(f"{where}: layer_norm_eps must be a small positive number (got {eps!r})")

    num_classes = spec["num_classes"]
    names = _choose(classes, sidecar, "classes")
    if names is None:
        labels = [f"class {i}" for i in range(num_classes)]
    else:
        if isinstance(names, str) or not all(isinstance(n, str) for n in names):
            raise CheckpointError(f"{where}: classes must be a list of names")
        labels = [n.strip() for n in names]
        if len(labels) != num_classes:
            raise CheckpointError(f"{where}: {len(labels)} class names given for a head of {num_classes} classes")

    channels = spec["in_channels"]
    mean, std = _choose(mean, sidecar, "mean"), _choose(std, sidecar, "std")
    if mean is None or std is None:
        default_mean, default_std = _default_normalisation(channels, where)
        mean = default_mean if mean is None else mean
        std = default_std if std is None else std
    mean_values = _floats(mean, "mean", channels, where)
    std_values = _floats(std, "std", channels, where)

    model = MiniViT(
        **spec, num_heads=heads, activation=activation, norm_first=norm_first, layer_norm_eps=float(eps)
    )
    try:
        check_state_dict(model, state, f"{p} (MiniViT layout)")
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}; a model with other layers opens from its code: --model PATH.py:NAME") from exc
    model.load_state_dict(state)
    return {
        "model": model.eval(),
        "labels": labels,
        "mean": mean_values,
        "std": std_values,
        "image_size": spec["img_size"],
        "channels": channels,
    }
