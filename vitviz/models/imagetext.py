"""Hugging Face CLIP and SigLIP folders as vitviz models: their architecture, preprocessing and tensor names.

Read by :mod:`vitviz.models.convert` (``model_type`` "clip" or "siglip" in ``config.json``). The image tower is
vitviz's :class:`~vitviz.models.vit.VisionTransformer` with the options these families need:

* CLIP: no patch-embedding bias, a LayerNorm before the blocks (``pre_norm``), quick-GELU, the final norm
  (CLIP's ``post_layernorm``, applied here to every token; the CLS token's is the same) and the visual projection;
* SigLIP: no CLS token (``class_token=False``), the tanh GELU, and the attention-pooling head (``head_pool="map"``).

The text tower is :class:`vitviz.models.text.TextTower`; ``logit_scale`` (and SigLIP's ``logit_bias``) live there.
Keys absent from ``config.json`` take transformers' class defaults (``save_pretrained`` omits them).
"""

from __future__ import annotations

import re
from typing import Any

import torch

from ..errors import CheckpointError
from .hfconfig import preprocessing, square

__all__ = ["image_text_config", "convert_image_text", "clip_text_state_dict", "CLIP_MEAN", "CLIP_STD", "DEFAULT_LABELS",
           "DEFAULT_TEMPLATE"]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's preprocessing
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)
DEFAULT_TEMPLATE = "a photo of a {}."
# What an image-text model is asked about until the user types labels.
DEFAULT_LABELS = ("cat", "dog", "bird", "car", "person", "house", "tree", "flower", "food", "text")

_DEFAULTS: dict[str, dict[str, Any]] = {
    "clip-vision": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
                    "num_channels": 3, "image_size": 224, "patch_size": 32, "hidden_act": "quick_gelu",
                    "layer_norm_eps": 1e-5},
    "clip-text": {"vocab_size": 49408, "hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12,
                  "num_attention_heads": 8, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
                  "layer_norm_eps": 1e-5, "pad_token_id": 1, "eos_token_id": 49407},
    "siglip-vision": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                      "num_attention_heads": 12, "num_channels": 3, "image_size": 224, "patch_size": 16,
                      "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6, "vision_use_head": True},
    "siglip-text": {"vocab_size": 32000, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                    "num_attention_heads": 12, "max_position_embeddings": 64, "hidden_act": "gelu_pytorch_tanh",
                    "layer_norm_eps": 1e-6, "pad_token_id": 1, "eos_token_id": 49407, "projection_size": None},
}
_ACTS = {"quick_gelu": "quick_gelu", "gelu": "gelu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh"}


def _section(config: dict[str, Any], key: str, defaults: str) -> dict[str, Any]:
    given = config.get(key) or {}
    if not isinstance(given, dict):
        raise CheckpointError(f"config.json: {key} is not an object")
    return {**_DEFAULTS[defaults], **{k: v for k, v in given.items() if v is not None}}


def _act(name: Any) -> str:
    if name not in _ACTS:
        raise CheckpointError(f"hidden_act {name!r} is not supported (known: {', '.join(_ACTS)})")
    return _ACTS[name]


def _ratio(inner: int, dim: int) -> float:
    ratio = inner / dim
    return ratio if int(dim * ratio) == inner else (inner + 0.5) / dim


def image_text_config(config: dict[str, Any], preprocessor: dict[str, Any] | None) -> dict[str, Any]:
    """Fields of :class:`vitviz.models.convert.Converted` for a CLIP or SigLIP ``config.json``:
    ``architecture`` (ViTConfig keyword arguments, the text tower under ``text``), ``mean``, ``std``; for vitviz's
    own image-text models (a ``vitviz`` key) also ``labels``, ``depth_kind`` and label ``presets``."""
    family = str(config.get("model_type"))
    v = _section(config, "vision_config", f"{family}-vision")
    t = _section(config, "text_config", f"{family}-text")
    dim, width = int(v["hidden_size"]), int(t["hidden_size"])
    if family == "siglip" and not v.get("vision_use_head", True):
        raise CheckpointError("SigLIP without its attention-pooling head is not supported")
    if family == "clip":
        projection = int(config.get("projection_dim") or 512)
        text_projection = projection
    else:
        projection = 0
        text_projection = int(t.get("projection_size") or width)
        if text_projection != dim:
            raise CheckpointError(f"SigLIP text projection {text_projection} differs from the image width {dim}")
    eos = t.get("eos_token_id")
    if isinstance(eos, list):
        eos = eos[0]
    text = {
        "family": family,
        "vocab_size": int(t["vocab_size"]),
        "context_length": int(t["max_position_embeddings"]),
        "width": width,
        "depth": int(t["num_hidden_layers"]),
        "num_heads": int(t["num_attention_heads"]),
        "mlp_ratio": _ratio(int(t["intermediate_size"]), width),
        "act": _act(t["hidden_act"]),
        "norm_eps": float(t["layer_norm_eps"]),
        "projection_dim": text_projection,
        "eos_token_id": int(eos if eos is not None else 49407),
        "pad_token_id": int(t.get("pad_token_id") or 0),
    }
    extra = config.get("vitviz")
    if extra is not None:  # vitviz's own image-text models: an image tower CLIP's vision_config cannot describe
        return _vitviz_tower(extra, text, preprocessor)
    train_size = square(v["image_size"], "image size")
    patch = square(v["patch_size"], "patch size")
    architecture = {
        "image_size": train_size,
        "patch_size": patch,
        "in_chans": int(v["num_channels"]),
        "embed_dim": dim,
        "depth": int(v["num_hidden_layers"]),
        "num_heads": int(v["num_attention_heads"]),
        "mlp_ratio": _ratio(int(v["intermediate_size"]), dim),
        "qkv_bias": True,
        "norm_eps": float(v["layer_norm_eps"]),
        "num_classes": 0,
        "head_pool": "cls" if family == "clip" else "map",
        "class_token": family == "clip",
        "patch_bias": family == "siglip",
        "pre_norm": family == "clip",
        "mlp_act": _act(v["hidden_act"]),
        "embed_proj_dim": projection,
        "pos_embed_antialias": False,
        "text": text,
    }
    mean, std = (CLIP_MEAN, CLIP_STD) if family == "clip" else (SIGLIP_MEAN, SIGLIP_STD)
    mean, std, size = preprocessing(preprocessor, mean, std, train_size)
    architecture["pos_embed_grid"] = train_size // patch if size // patch != train_size // patch else 0
    architecture["image_size"] = size
    return {"architecture": architecture, "mean": mean, "std": std}


def _vitviz_tower(extra: Any, text: dict[str, Any], preprocessor: dict[str, Any] | None) -> dict[str, Any]:
    """The fields of a folder whose ``config.json`` holds the image tower's :class:`ViTConfig` under
    ``vitviz.vision`` (its weights under vitviz's names), its first labels and its depth unit (the shipped
    ``vitviz-mini-text``, written by :mod:`vitviz.synthetic.export_text`)."""
    if not isinstance(extra, dict) or not isinstance(extra.get("vision"), dict):
        raise CheckpointError("config.json: vitviz.vision (the image tower's architecture) is missing")
    scoring = extra.get("scoring", "softmax")
    if scoring not in ("softmax", "sigmoid"):
        raise CheckpointError(f"config.json: vitviz.scoring is {scoring!r} (softmax or sigmoid)")
    architecture = {**extra["vision"], "text": {**text, "sigmoid": scoring == "sigmoid"}}
    for key in ("depth_head_channels", "depth_head_layers"):
        if key in architecture:
            architecture[key] = tuple(int(c) for c in architecture[key])
    size = int(architecture.get("image_size", 224))
    mean, std, _size = preprocessing(preprocessor, SIGLIP_MEAN, SIGLIP_STD, size)
    depth = extra.get("depth_kind")
    presets = extra.get("presets") if isinstance(extra.get("presets"), dict) else {}
    return {"architecture": architecture, "mean": mean, "std": std,
            "labels": [str(x) for x in extra.get("labels") or []], "depth_kind": str(depth) if depth else None,
            "presets": {str(k): str(v) for k, v in presets.items()}}


_LAYER = re.compile(r"^(vision_model|text_model)\.encoder\.layers\.(\d+)\.(.+)$")
_LAYER_RULES = [
    (re.compile(r"^self_attn\.(q|k|v)_proj\.(weight|bias)$"), "qkv"),
    (re.compile(r"^self_attn\.out_proj\.(weight|bias)$"), r"attn.proj.\1"),
    (re.compile(r"^layer_norm([12])\.(weight|bias)$"), r"norm\1.\2"),
    (re.compile(r"^mlp\.(fc[12])\.(weight|bias)$"), r"mlp.\1.\2"),
]
_TOP = {
    "vision_model.embeddings.patch_embedding.weight": "patch_embed.proj.weight",
    "vision_model.embeddings.patch_embedding.bias": "patch_embed.proj.bias",
    "vision_model.pre_layrnorm.weight": "pre_norm.weight",
    "vision_model.pre_layrnorm.bias": "pre_norm.bias",
    "vision_model.post_layernorm.weight": "norm.weight",
    "vision_model.post_layernorm.bias": "norm.bias",
    "visual_projection.weight": "image_proj.weight",
    "vision_model.head.probe": "pool.probe",
    "vision_model.head.layernorm.weight": "pool.norm.weight",
    "vision_model.head.layernorm.bias": "pool.norm.bias",
    "text_model.embeddings.token_embedding.weight": "text.token_embedding.weight",
    "text_model.final_layer_norm.weight": "text.norm.weight",
    "text_model.final_layer_norm.bias": "text.norm.bias",
    "text_projection.weight": "text.proj.weight",
    "text_model.head.weight": "text.proj.weight",
    "text_model.head.bias": "text.proj.bias",
}
_DROPPED = re.compile(r"\.position_ids$")


def convert_image_text(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a CLIP / SigLIP state dict into vitviz names (query, key and value fused); unknown tensors keep their
    names (and are reported as unexpected)."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, int, str], dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if _DROPPED.search(key):
            continue
        if key in _TOP:
            out[_TOP[key]] = value
        elif key == "vision_model.embeddings.class_embedding":
            out["cls_token"] = value.reshape(1, 1, -1)
        elif key == "vision_model.embeddings.position_embedding.weight":
            out["pos_embed"] = value.unsqueeze(0)
        elif key == "text_model.embeddings.position_embedding.weight":
            out["text.pos_embed"] = value.unsqueeze(0)
        elif key in ("logit_scale", "logit_bias"):
            out[f"text.{key}"] = value.reshape(())
        elif key.startswith("vision_model.head.attention.") or key.startswith("vision_model.head.mlp."):
            out["pool." + key[len("vision_model.head."):]] = value
        elif m := _LAYER.match(key):
            tower, i, rest = m.group(1), int(m.group(2)), m.group(3)
            prefix = "blocks" if tower == "vision_model" else "text.blocks"
            for pattern, target in _LAYER_RULES:
                mm = pattern.match(rest)
                if mm is None:
                    continue
                if target == "qkv":
                    qkv.setdefault((prefix, i, mm.group(2)), {})[mm.group(1)] = value
                else:
                    out[f"{prefix}.{i}.{mm.expand(target)}"] = value
                break
            else:
                out[key] = value
        else:
            out[key] = value
    for (prefix, i, kind), parts in sorted(qkv.items()):
        if set(parts) != {"q", "k", "v"}:
            raise CheckpointError(f"{prefix} {i}: the attention's {kind} lacks a query, key or value projection")
        out[f"{prefix}.{i}.attn.qkv.{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


def clip_text_state_dict(text: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A CLIP :class:`~vitviz.models.text.TextTower`'s state dict (vitviz names, without the ``text.`` prefix) in
    the Hub's CLIP names: the inverse of :func:`convert_image_text` for the text tower (query, key and value split)."""
    inverse = {v[len("text."):]: k for k, v in _TOP.items() if v.startswith("text.") and k.startswith("text")}
    out: dict[str, torch.Tensor] = {}
    for key, value in text.items():
        if key in inverse:
            out[inverse[key]] = value
        elif key == "pos_embed":
            out["text_model.embeddings.position_embedding.weight"] = value[0]
        elif key in ("logit_scale", "logit_bias"):  # the bias only where it is learnt (sigmoid scoring)
            out[key] = value.reshape(())
        elif m := re.match(r"^blocks\.(\d+)\.(.+)$", key):
            i, rest = m.group(1), m.group(2)
            prefix = f"text_model.encoder.layers.{i}"
            if mm := re.match(r"^attn\.qkv\.(weight|bias)$", rest):
                for part, chunk in zip("qkv", value.chunk(3, dim=0)):
                    out[f"{prefix}.self_attn.{part}_proj.{mm.group(1)}"] = chunk.contiguous()
            elif mm := re.match(r"^attn\.proj\.(weight|bias)$", rest):
                out[f"{prefix}.self_attn.out_proj.{mm.group(1)}"] = value
            elif mm := re.match(r"^norm([12])\.(weight|bias)$", rest):
                out[f"{prefix}.layer_norm{mm.group(1)}.{mm.group(2)}"] = value
            elif mm := re.match(r"^mlp\.(fc[12])\.(weight|bias)$", rest):
                out[f"{prefix}.mlp.{mm.group(1)}.{mm.group(2)}"] = value
            else:
                raise ValueError(f"no CLIP name for the text tower's {key}")
        else:
            raise ValueError(f"no CLIP name for the text tower's {key}")
    return out
