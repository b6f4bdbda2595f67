"""Read checkpoints of other libraries into vitviz models: Hugging Face ``transformers`` and ``timm`` layouts.

Supported, offline, from a local folder or weights file:

* **HF ViT** (``model_type: vit``): ``ViTModel`` / ``ViTForImageClassification`` (google/vit-*, facebook/deit-*
  without distillation token, facebook/dino-vit*). Separate query/key/value projections are fused into one ``qkv``,
  ``layernorm_before/after`` become ``norm1/2``, ``intermediate/output.dense`` become ``mlp.fc1/fc2``, the unused
  pooler is dropped.
* **HF DINOv2** (``model_type: dinov2``): ``Dinov2Model`` / ``Dinov2ForImageClassification`` (classifier on the
  concatenated CLS and mean patch token, ``head_pool="cls+mean"``); ``layer_scale1/2.lambda1`` become
  ``ls1/2.gamma``, the pre-training ``mask_token`` is dropped.
* **HF Depth Anything** (``model_type: depth_anything``, DINOv2 backbone): the backbone as above plus the DPT
  neck and head, mapped onto :class:`vitviz.models.dpt.DPTHead`.
* **timm** ``VisionTransformer`` state dicts (class token, optional registers, layer scale), whose names are vitviz's
  own; the architecture comes from the shapes, timm's ``config.json`` (``model_args``, ``pretrained_cfg``) and the
  architecture name.

Both the names on the Hub (transformers 4.x: ``encoder.layer.N.attention.attention.query``) and the in-memory names of
transformers 5 (``layers.N.attention.q_proj``, ``o_proj``, ``mlp.fc1``) are understood.

The architecture is read from HF's ``config.json`` (class defaults filled in for keys it omits, as ``save_pretrained``
writes only non-default values) and the preprocessing from ``preprocessor_config.json``. Nothing here needs
``transformers`` or ``timm`` installed.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .checkpoint import IMAGENET_MEAN, IMAGENET_STD, ModelInfo, check_state_dict, read_state_dict
from .hfconfig import labels_from_id2label, preprocessing, square
from .imagetext import DEFAULT_LABELS, convert_image_text, image_text_config
from ..errors import CheckpointError
from .vit import ViTConfig, VisionTransformer

__all__ = [
    "ForeignCheckpoint",
    "find_foreign_checkpoint",
    "is_foreign_checkpoint",
    "detect_layout",
    "config_from_hf",
    "config_from_timm",
    "convert_state_dict",
    "load_foreign",
]

HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
SUPPORTED_TYPES = "supported: vit, dinov2, depth_anything, clip, siglip"
HF_INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
MAX_JSON_BYTES = 16 * 1024 * 1024
IMAGENET_STANDARD = (0.5, 0.5, 0.5)  # transformers' ViTImageProcessor default

# Class defaults of the HF configs (save_pretrained omits keys equal to them).
HF_VIT_DEFAULTS: dict[str, Any] = {
    "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
    "hidden_act": "gelu", "layer_norm_eps": 1e-12, "image_size": 224, "patch_size": 16, "num_channels": 3,
    "qkv_bias": True,
}
HF_DINOV2_DEFAULTS: dict[str, Any] = {
    "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "mlp_ratio": 4, "hidden_act": "gelu",
    "layer_norm_eps": 1e-6, "image_size": 224, "patch_size": 14, "num_channels": 3, "qkv_bias": True,
    "layerscale_value": 1.0, "use_swiglu_ffn": False, "apply_layernorm": True,
}
HF_DEPTH_ANYTHING_DEFAULTS: dict[str, Any] = {
    "patch_size": 14, "reassemble_hidden_size": 384, "reassemble_factors": [4, 2, 1, 0.5],
    "neck_hidden_sizes": [48, 96, 192, 384], "fusion_hidden_size": 64, "head_in_index": -1, "head_hidden_size": 32,
    "depth_estimation_type": "relative", "max_depth": 1,
}
HF_DEPTH_ANYTHING_BACKBONE_DEFAULTS: dict[str, Any] = {
    "image_size": 518, "hidden_size": 384, "num_attention_heads": 6, "out_indices": [9, 10, 11, 12],
}
# timm ViT sizes: name -> (embed_dim, depth, num_heads)
TIMM_VIT_SIZES = {
    "tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12), "large": (1024, 24, 16),
    "huge": (1280, 32, 16), "giant": (1408, 40, 16),
}


@dataclass
class ForeignCheckpoint:
    """The files of a checkpoint in another library's layout."""

    weights: list[Path]  # one file, or the shards of a sharded checkpoint
    config: dict[str, Any] | None = None  # config.json (HF or timm)
    preprocessor: dict[str, Any] | None = None  # preprocessor_config.json (HF)
    root: Path | None = None

    @property
    def source(self) -> str:
        return str(self.root if self.root is not None else self.weights[0])


@dataclass
class Converted:
    config: ViTConfig
    layout: str
    labels: list[str] = field(default_factory=list)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    depth_kind: str | None = None
    presets: dict[str, str] = field(default_factory=dict)  # label lists that suit an image-text model


# ---------------------------------------------------------------------------------------------------------- files


def _read_json(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise CheckpointError(f"{path}: implausibly large JSON file")
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


def _is_vitviz_json(path: Path) -> bool:
    try:
        return path.stat().st_size < MAX_JSON_BYTES and json.loads(path.read_text("utf-8")).get("format") == (
            "vitviz-checkpoint"
        )
    except (OSError, ValueError, AttributeError):
        return False


def find_foreign_checkpoint(path: str | os.PathLike[str]) -> ForeignCheckpoint:
    """Locate weights, ``config.json`` and ``preprocessor_config.json`` of an HF / timm folder or weights file."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such file or folder")
    if p.is_dir():
        root = p
        weights: list[Path] = []
        for name in HF_WEIGHT_FILES:
            if (p / name).is_file():
                weights = [p / name]
                break
        if not weights:
            for name in HF_INDEX_FILES:
                if (p / name).is_file():
                    index = _read_json(p / name)
                    shards = sorted(set((index.get("weight_map") or {}).values()))
                    if not shards:
                        raise CheckpointError(f"{p / name}: the index lists no weight files")
                    weights = [p / s for s in shards]
                    missing = [s for s in shards if not (p / s).is_file()]
                    if missing:
                        raise CheckpointError(f"{p}: weight shard(s) missing: {', '.join(missing)}")
                    break
        if not weights:
            candidates = sorted(p.glob("*.safetensors"))
            if len(candidates) == 1:
                weights = candidates
        if not weights:
            raise CheckpointError(
                f"{p}: no weights found (expected {' or '.join(HF_WEIGHT_FILES)} or a single *.safetensors file)"
            )
    else:
        root = None
        weights = [p]
    folder = p if p.is_dir() else p.parent
    config = None
    cfg_path = folder / "config.json"
    if cfg_path.is_file() and not _is_vitviz_json(cfg_path):
        config = _read_json(cfg_path)
    pre = folder / "preprocessor_config.json"
    preprocessor = _read_json(pre) if pre.is_file() else None
    return ForeignCheckpoint(weights=weights, config=config, preprocessor=preprocessor, root=root)


def is_foreign_checkpoint(path: str | os.PathLike[str]) -> bool:
    """True for a folder or weights file in HF / timm layout (not a vitviz checkpoint)."""
    p = Path(path)
    try:
        if p.is_dir():
            if any(_is_vitviz_json(c) for c in p.glob("*.json") if c.name != "config.json"):
                return False
            return (p / "config.json").is_file() and not _is_vitviz_json(p / "config.json")
        if p.is_file() and p.suffix in (".safetensors", ".bin", ".pt", ".pth"):
            vitviz_json = p.with_suffix(".json")
            return not (vitviz_json.is_file() and _is_vitviz_json(vitviz_json))
    except OSError:
        return False
    return False


def _read_weights(ckpt: ForeignCheckpoint) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for w in ckpt.weights:
        state.update(read_state_dict(w))
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}


# ---------------------------------------------------------------------------------------------------------- layouts


def detect_layout(state: dict[str, torch.Tensor], config: dict[str, Any] | None = None) -> str:
    """``hf-vit``, ``hf-dinov2``, ``hf-depth-anything`` or ``timm``, from config.json and the key names."""
    model_type = (config or {}).get("model_type")
    if model_type == "vit":
        return "hf-vit"
    if model_type == "dinov2":
        return "hf-dinov2"
    if model_type == "depth_anything":
        return "hf-depth-anything"
    if model_type in ("clip", "siglip"):
        return f"hf-{model_type}"
    if model_type:
        raise CheckpointError(f"unsupported Hugging Face model type {model_type!r} ({SUPPORTED_TYPES})")
    keys = list(state)
    if any(k.startswith("neck.fusion_stage.") for k in keys):
        return "hf-depth-anything"
    if any(".layer_scale1.lambda1" in k for k in keys):
        return "hf-dinov2"
    if any(k.endswith("embeddings.cls_token") for k in keys):
        return "hf-vit"
    if "cls_token" in state and any(k.startswith("blocks.") for k in keys):
        return "timm"
    raise CheckpointError("unrecognised checkpoint layout (not a Hugging Face ViT/DINOv2/Depth Anything or timm ViT)")


_BLOCK_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"attention\.attention\.(query|key|value)\.(weight|bias)$"), "qkv"),
    (re.compile(r"attention\.(q|k|v)_proj\.(weight|bias)$"), "qkv"),
    (re.compile(r"attention\.output\.dense\.(weight|bias)$"), r"attn.proj.\1"),
    (re.compile(r"attention\.o_proj\.(weight|bias)$"), r"attn.proj.\1"),
    (re.compile(r"(?:layernorm_before|norm1)\.(weight|bias)$"), r"norm1.\1"),
    (re.compile(r"(?:layernorm_after|norm2)\.(weight|bias)$"), r"norm2.\1"),
    (re.compile(r"(?:intermediate\.dense|mlp\.fc1)\.(weight|bias)$"), r"mlp.fc1.\1"),
    (re.compile(r"(?:output\.dense|mlp\.fc2)\.(weight|bias)$"), r"mlp.fc2.\1"),
    (re.compile(r"layer_scale1\.lambda1$"), "ls1.gamma"),
    (re.compile(r"layer_scale2\.lambda1$"), "ls2.gamma"),
]
_QKV_INDEX = {"query": 0, "q": 0, "key": 1, "k": 1, "value": 2, "v": 2}
_NECK_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^neck\.reassemble_stage\.layers\.(\d+)\.projection\.(weight|bias)$"), r"depth_head.reassemble.\1.proj.\2"),
    (re.compile(r"^neck\.reassemble_stage\.layers\.(\d+)\.resize\.(weight|bias)$"), r"depth_head.reassemble.\1.resample.\2"),
    (re.compile(r"^neck\.convs\.(\d+)\.(weight|bias)$"), r"depth_head.project.\1.\2"),
    (re.compile(r"^neck\.fusion_stage\.layers\.(\d+)\.projection\.(weight|bias)$"), r"depth_head.fusion.\1.out_proj.\2"),
    (
        re.compile(r"^neck\.fusion_stage\.layers\.(\d+)\.residual_layer([12])\.convolution([12])\.(weight|bias)$"),
        r"depth_head.fusion.\1.res\2.conv\3.\4",
    ),
    (re.compile(r"^head\.conv([123])\.(weight|bias)$"), r"depth_head.head_conv\1.\2"),
]
_DROPPED = re.compile(r"(^|\.)(embeddings\.mask_token|pooler\.dense\.(weight|bias))$")


def _hf_prefix(state: dict[str, torch.Tensor]) -> str:
    for k in state:
        if k.endswith("embeddings.cls_token"):
            return k[: -len("embeddings.cls_token")]
    raise CheckpointError("no embeddings.cls_token in the checkpoint: not a Hugging Face ViT layout")


def _convert_hf(state: dict[str, torch.Tensor], layout: str) -> dict[str, torch.Tensor]:
    prefix = _hf_prefix(state)
    block_re = re.compile(rf"^{re.escape(prefix)}(?:encoder\.layer|layers)\.(\d+)\.(.+)$")
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[int, str], dict[int, tuple[str, torch.Tensor]]] = {}
    top = {
        f"{prefix}embeddings.cls_token": "cls_token",
        f"{prefix}embeddings.position_embeddings": "pos_embed",
        f"{prefix}embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
        f"{prefix}embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
        f"{prefix}layernorm.weight": "norm.weight",
        f"{prefix}layernorm.bias": "norm.bias",
    }
    if layout != "hf-depth-anything":
        top.update({"classifier.weight": "head.weight", "classifier.bias": "head.bias"})
    for key, value in state.items():
        if _DROPPED.search(key):
            continue
        if key in top:
            out[top[key]] = value
            continue
        m = block_re.match(key)
        if m:
            i, rest = int(m.group(1)), m.group(2)
            for pattern, target in _BLOCK_RULES:
                mm = pattern.match(rest)
                if not mm:
                    continue
                if target == "qkv":
                    part, kind = mm.group(1), mm.group(2)
                    qkv.setdefault((i, kind), {})[_QKV_INDEX[part]] = (key, value)
                else:
                    out[f"blocks.{i}.{mm.expand(target)}"] = value
                break
            else:
                out[key] = value  # unknown: reported as unexpected under its own name
            continue
        if layout == "hf-depth-anything":
            for pattern, target in _NECK_RULES:
                mm = pattern.match(key)
                if mm:
                    out[mm.expand(target)] = value
                    break
            else:
                out[key] = value
            continue
        out[key] = value
    for (i, kind), parts in sorted(qkv.items()):
        if len(parts) != 3:
            have = next(iter(parts.values()))[0]
            names = {0: "query", 1: "key", 2: "value"}
            absent = [names[j] for j in range(3) if j not in parts]
            raise CheckpointError(
                f"block {i}: {kind} of the attention {', '.join(absent)} projection(s) missing "
                f"(found {have} but not its siblings)"
            )
        out[f"blocks.{i}.attn.qkv.{kind}"] = torch.cat([parts[j][1] for j in range(3)], dim=0)
    return out


def _convert_timm(state: dict[str, torch.Tensor], config: ViTConfig) -> dict[str, torch.Tensor]:
    out = dict(state)
    pe = out.get("pos_embed")
    if pe is not None and pe.ndim == 3 and pe.shape[1] == config.pos_grid_size**2:
        # no_embed_class (DeiT III, registers): the prefix tokens carry no position; a zero entry is the same
        out["pos_embed"] = torch.cat([pe.new_zeros(1, 1, pe.shape[2]), pe], dim=1)
    return out


def convert_state_dict(state: dict[str, torch.Tensor], layout: str, config: ViTConfig) -> dict[str, torch.Tensor]:
    """Rename (and fuse) tensors of ``layout`` into vitviz names; unknown tensors keep their original names."""
    if layout == "timm":
        return _convert_timm(state, config)
    if layout in ("hf-vit", "hf-dinov2", "hf-depth-anything"):
        return _convert_hf(state, layout)
    if layout in ("hf-clip", "hf-siglip"):
        return convert_image_text(state)
    raise CheckpointError(f"unknown checkpoint layout {layout!r}")


# ---------------------------------------------------------------------------------------------------------- configs


def _encoder_options(c: dict[str, Any], family: str) -> dict[str, Any]:
    act = c.get("hidden_act", "gelu")
    if act != "gelu":
        raise CheckpointError(f"hidden_act {act!r} is not supported (only exact GELU)")
    dim = int(c["hidden_size"])
    if family == "vit":
        inter = int(c["intermediate_size"])
        ratio = inter / dim
        if int(dim * ratio) != inter:
            ratio = (inter + 0.5) / dim
        layer_scale = None
    else:
        if c.get("use_swiglu_ffn"):
            raise CheckpointError("DINOv2 with a SwiGLU MLP (giant) is not supported")
        ratio = float(c["mlp_ratio"])
        layer_scale = float(c.get("layerscale_value") or 1.0)
    return {
        "patch_size": square(c["patch_size"], "patch size"),
        "in_chans": int(c.get("num_channels", 3)),
        "embed_dim": dim,
        "depth": int(c["num_hidden_layers"]),
        "num_heads": int(c["num_attention_heads"]),
        "mlp_ratio": ratio,
        "qkv_bias": bool(c.get("qkv_bias", True)),
        "layer_scale_init": layer_scale,
        "norm_eps": float(c["layer_norm_eps"]),
    }


def config_from_hf(config: dict[str, Any], preprocessor: dict[str, Any] | None = None) -> Converted:
    """vitviz architecture, labels and preprocessing from HF ``config.json`` (+ ``preprocessor_config.json``)."""
    model_type = config.get("model_type")
    archs = [str(a) for a in config.get("architectures") or []]
    if model_type in ("clip", "siglip"):
        fields = image_text_config(config, preprocessor)
        try:
            cfg = ViTConfig(**fields["architecture"])
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"config.json: invalid {model_type} architecture ({exc})") from exc
        return Converted(cfg, f"hf-{model_type}", fields.get("labels", []), fields["mean"], fields["std"],
                         fields.get("depth_kind"), fields.get("presets", {}))
    if model_type == "depth_anything":
        c = {**HF_DEPTH_ANYTHING_DEFAULTS, **{k: v for k, v in config.items() if v is not None or k == "max_depth"}}
        given_backbone = config.get("backbone_config")
        if config.get("backbone") or (given_backbone and given_backbone.get("model_type", "dinov2") != "dinov2"):
            raise CheckpointError("Depth Anything with a backbone other than DINOv2 is not supported")
        b = {**HF_DINOV2_DEFAULTS, **HF_DEPTH_ANYTHING_BACKBONE_DEFAULTS}
        if given_backbone:
            b = {**HF_DINOV2_DEFAULTS, **given_backbone}
            if given_backbone.get("out_indices") is None:
                features = given_backbone.get("out_features")
                if not features:
                    raise CheckpointError("config.json: backbone_config names no out_indices / out_features")
                b["out_indices"] = [int(str(f).replace("stage", "")) for f in features]
        stages = [int(i) for i in b["out_indices"]]
        if any(s < 1 for s in stages):
            raise CheckpointError(f"Depth Anything reading the patch embeddings (stage 0) is not supported: {stages}")
        if int(c["reassemble_hidden_size"]) != int(b["hidden_size"]):
            raise CheckpointError("reassemble_hidden_size differs from the backbone's hidden size")
        enc = _encoder_options(b, "dinov2")
        mean, std, size = preprocessing(preprocessor, IMAGENET_MEAN, IMAGENET_STD, 518)
        pos_grid = square(b["image_size"], "image size") // enc["patch_size"]
        max_depth = c.get("max_depth")
        dpt = {
            "layers": [s - 1 for s in stages],
            "neck_channels": [int(v) for v in c["neck_hidden_sizes"]],
            "reassemble_factors": [float(v) for v in c["reassemble_factors"]],
            "fusion_channels": int(c["fusion_hidden_size"]),
            "head_channels": int(c["head_hidden_size"]),
            "head_in_index": int(c["head_in_index"]),
            "output": str(c["depth_estimation_type"]),
            "max_depth": float(max_depth) if max_depth is not None else 1.0,
            "apply_norm": bool(b.get("apply_layernorm", True)),
        }
        cfg = ViTConfig(
            image_size=size, **enc, num_classes=0, depth_head="dpt", dpt=dpt,
            pos_embed_grid=pos_grid if pos_grid != size // enc["patch_size"] else 0,
        )
        kind = "metric" if dpt["output"] == "metric" else "relative_inverse"
        return Converted(cfg, "hf-depth-anything", [], mean, std, kind)  # type: ignore[arg-type]

    if model_type not in ("vit", "dinov2"):
        raise CheckpointError(f"unsupported Hugging Face model type {model_type!r} ({SUPPORTED_TYPES})")
    family = str(model_type)
    defaults = HF_VIT_DEFAULTS if family == "vit" else HF_DINOV2_DEFAULTS
    c = {**defaults, **{k: v for k, v in config.items() if v is not None}}
    enc = _encoder_options(c, family)
    classifier = any(a.endswith("ForImageClassification") for a in archs)
    unsupported = [a for a in archs if a not in ("ViTModel", "ViTForImageClassification", "Dinov2Model",
                                                 "Dinov2ForImageClassification", "Dinov2Backbone")]
    if unsupported:
        raise CheckpointError(f"unsupported architecture {', '.join(unsupported)}")
    num_classes = 0
    if classifier:
        num_classes = int(config.get("num_labels") or len(config.get("id2label") or {}) or 2)
    labels = labels_from_id2label(config, num_classes) if num_classes else []
    train_size = square(c["image_size"], "image size")
    if family == "vit":  # transformers' ViTImageProcessor defaults
        mean, std, size = preprocessing(preprocessor, IMAGENET_STANDARD, IMAGENET_STANDARD, train_size)
    else:
        mean, std, size = preprocessing(preprocessor, IMAGENET_MEAN, IMAGENET_STD, train_size)
    pos_grid = train_size // enc["patch_size"]
    cfg = ViTConfig(
        image_size=size, **enc, num_classes=num_classes,
        head_pool="cls+mean" if family == "dinov2" and classifier else "cls",
        pos_embed_grid=pos_grid if pos_grid != size // enc["patch_size"] else 0,
    )
    return Converted(cfg, f"hf-{family}", labels, mean, std, None)  # type: ignore[arg-type]


def config_from_timm(state: dict[str, torch.Tensor], config: dict[str, Any] | None = None) -> Converted:
    """vitviz architecture of a timm ``VisionTransformer`` from its tensors, its ``config.json`` and its name."""
    config = config or {}
    args = dict(config.get("model_args") or {})
    pcfg = dict(config.get("pretrained_cfg") or {})
    try:
        dim = int(state["cls_token"].shape[-1])
        patch = int(state["patch_embed.proj.weight"].shape[-1])
        in_chans = int(state["patch_embed.proj.weight"].shape[1])
        depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
        hidden = int(state["blocks.0.mlp.fc1.weight"].shape[0])
    except (KeyError, ValueError, IndexError) as exc:
        raise CheckpointError(f"not a timm VisionTransformer state dict (missing {exc})") from exc
    if "fc_norm.weight" in state or config.get("global_pool", args.get("global_pool", "token")) not in ("token", ""):
        raise CheckpointError("timm ViTs pooled other than by the class token (global_pool='avg') are not supported")
    if "blocks.0.mlp.fc1.weight" in state and "blocks.0.mlp.fc2.weight" not in state:
        raise CheckpointError("timm ViTs with gated MLPs are not supported")
    num_regs = int(state["reg_token"].shape[1]) if "reg_token" in state else 0
    arch = str(config.get("architecture", ""))
    heads = args.get("num_heads")
    if heads is None:
        m = re.match(r"vit_(tiny|small|base|large|huge|giant)_", arch)
        if m and TIMM_VIT_SIZES[m.group(1)][0] == dim:
            heads = TIMM_VIT_SIZES[m.group(1)][2]
        else:
            heads = max(1, dim // 64)
    n_pos = int(state["pos_embed"].shape[1])

    def issquare(n: int) -> bool:
        return n > 0 and int(round(math.sqrt(n))) ** 2 == n

    if issquare(n_pos - 1):
        grid_tokens = n_pos - 1  # class token with a position (original timm / DeiT / DINO / DINOv2)
    elif issquare(n_pos):
        grid_tokens = n_pos  # no_embed_class: prefix tokens carry no position
    elif num_regs and issquare(n_pos - 1 - num_regs):
        raise CheckpointError("timm ViTs with positional embeddings on register tokens are not supported")
    else:
        raise CheckpointError(f"positional embedding of {n_pos} tokens is not a square grid")
    pos_grid = int(round(math.sqrt(grid_tokens)))
    if pcfg.get("input_size"):
        size = int(pcfg["input_size"][-1])
    elif args.get("img_size") is not None:
        size = square(args["img_size"], "image size")
    else:
        size = pos_grid * patch
    ls = args.get("init_values")
    num_classes = int(state["head.weight"].shape[0]) if "head.weight" in state else 0
    cfg = ViTConfig(
        image_size=size, patch_size=patch, in_chans=in_chans, embed_dim=dim, depth=depth, num_heads=int(heads),
        mlp_ratio=hidden / dim if int(dim * (hidden / dim)) == hidden else (hidden + 0.5) / dim,
        qkv_bias="blocks.0.attn.qkv.bias" in state,
        layer_scale_init=float(ls or 1e-5) if "blocks.0.ls1.gamma" in state else None,
        num_register_tokens=num_regs, norm_eps=float(args.get("norm_eps", 1e-6)), num_classes=num_classes,
        pos_embed_antialias=True,  # timm's resample_abs_pos_embed default
        pos_embed_grid=pos_grid if pos_grid != size // patch else 0,
    )
    labels: list[str] = []
    names = config.get("label_names")
    if isinstance(names, list) and len(names) == num_classes:
        descriptions = config.get("label_descriptions") or {}
        labels = [str(descriptions.get(n, n)) for n in names]
    mean = tuple(float(v) for v in pcfg.get("mean", IMAGENET_MEAN))
    std = tuple(float(v) for v in pcfg.get("std", IMAGENET_STD))
    return Converted(cfg, "timm", labels, mean, std, None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------- loading


def load_foreign(
    path: str | os.PathLike[str],
    name: str | None = None,
    overrides: dict[str, Any] | None = None,
    info: dict[str, Any] | None = None,
) -> tuple[VisionTransformer, ModelInfo]:
    """Load an HF / timm checkpoint folder or file into an eval-mode vitviz model (CPU, float32), offline.

    ``overrides`` replace architecture options (e.g. ``{"num_heads": 6}`` for a bare timm file, or the input size);
    ``info`` replaces :class:`ModelInfo` fields (labels, mean, std, description, depth_kind).
    """
    ckpt = find_foreign_checkpoint(path)
    state = _read_weights(ckpt)
    layout = detect_layout(state, ckpt.config)
    if layout == "timm":
        conv = config_from_timm(state, ckpt.config)
    else:
        if ckpt.config is None:
            raise CheckpointError(f"{ckpt.source}: config.json is missing (needed for a Hugging Face checkpoint)")
        conv = config_from_hf(ckpt.config, ckpt.preprocessor)
    config = conv.config
    if overrides:
        data = config.to_dict()
        data.update(overrides)
        if "pos_embed_grid" not in overrides:  # a new input size keeps the stored positional-embedding grid
            p = int(data["patch_size"])
            data["pos_embed_grid"] = config.pos_grid_size if config.pos_grid_size != int(data["image_size"]) // p else 0
        try:
            config = ViTConfig.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{ckpt.source}: invalid architecture override ({exc})") from exc
    try:
        model = VisionTransformer(config)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{ckpt.source}: invalid architecture ({exc})") from exc
    converted = convert_state_dict(state, layout, config)
    check_state_dict(model, converted, ckpt.source)
    model.load_state_dict(converted)
    labels = conv.labels or ([f"class {i}" for i in range(config.num_classes)] if config.num_classes else [])
    tokenizer = None
    if model.text is not None:
        from .text import load_tokenizer

        folder = ckpt.root if ckpt.root is not None else ckpt.weights[0].parent
        tokenizer = load_tokenizer(folder, model.text.config)
    fields = {
        "name": name or Path(ckpt.source).name,
        "config": config,
        "labels": labels,
        "mean": conv.mean,
        "std": conv.std,
        "depth_kind": conv.depth_kind,
        "description": f"{layout} checkpoint",
        "source": ckpt.source,
        "presets": dict(conv.presets),
    }
    if len(ckpt.weights) == 1 and ckpt.weights[0].suffix == ".safetensors":
        from .domain import load_sidecar  # a detector beside the weights (vitviz's own image-text model has one)

        fields["domain_detector"] = load_sidecar(ckpt.weights[0], model)
    fields.update(info or {})
    fields["tokenizer"] = tokenizer
    if tokenizer is not None and not fields["labels"]:  # asked about until the user types labels
        fields["labels"] = list(DEFAULT_LABELS)
    if config.num_classes and len(fields["labels"]) != config.num_classes:
        raise CheckpointError(
            f"{ckpt.source}: {len(fields['labels'])} labels for a head of {config.num_classes} classes"
        )
    return model.eval(), ModelInfo(**fields)
