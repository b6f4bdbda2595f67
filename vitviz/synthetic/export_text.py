"""Write a trained scene image-text model (:mod:`vitviz.synthetic.train_text`) as a folder in the Hub's CLIP layout.

The folder holds what :func:`vitviz.models.convert.load_foreign` reads for any CLIP folder (``config.json`` with
``model_type`` "clip" and a ``text_config``, ``model.safetensors`` with every tensor in float16, ``tokenizer.json``,
``special_tokens_map.json``, ``tokenizer_config.json``, ``preprocessor_config.json``), plus what CLIP's config
cannot say, under the key ``vitviz``: the image tower's :class:`~vitviz.models.vit.ViTConfig` (``vision``; its
weights under vitviz's own names), the labels asked about first, the depth head's unit and the vocabulary. Beside
them: the out-of-domain detector (``model.ood.safetensors``) and the training record (``train.json``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..models.domain import DomainDetector, calibrate_threshold, fit_mahalanobis, sidecar_path
from ..models.imagetext import clip_text_state_dict
from ..models.vit import ViTConfig, VisionTransformer
from .captions import BOS, COLOURS, EOS, SHAPE_WORDS, UNK, vocabulary

__all__ = ["export_folder", "vision_config", "KNOWN"]

KNOWN = "10 synthetic shapes and their colours"
# The label box's presets for this model (vitviz.app.panels.labels lists them first).
PRESETS = {
    "Its shapes": ", ".join(SHAPE_WORDS),
    "Its colours": ", ".join(f"{c} object" for c in COLOURS),
    "Coloured shapes": "red ball, blue cube, green cone, yellow torus, pink ring, purple pyramid, orange capsule",
    "Shapes by their everyday names": "ball, box, donut, star, cylinder, cone, pyramid, capsule, ring, tetrahedron",
}


def vision_config(tower_config: ViTConfig, frozen_blocks: int, new_blocks: int, embed_dim: int) -> ViTConfig:
    """The exported image tower: the frozen blocks, the new ones, CLS pooling and the projection. The depth head
    stays when every block of the tower is kept (it reads blocks 2, 4 and 6 of vitviz-mini), else it goes."""
    data = tower_config.to_dict()
    data.update(depth=frozen_blocks + new_blocks, num_classes=0, embed_proj_dim=embed_dim)
    if frozen_blocks < tower_config.depth:
        data.update(depth_head="none", depth_head_layers=[])
    else:
        data["depth_head_layers"] = [i + 1 for i in VisionTransformer(tower_config).depth_head_layers]
    return ViTConfig.from_dict(data)


def description(cfg: Any, vision: ViTConfig, trained_embedding: bool = False) -> str:
    depth = ", metric depth" if vision.depth_head != "none" else ""
    tower = (f"vitviz-mini's first {cfg.frozen_blocks} blocks (frozen) + {cfg.new_blocks} trained" if cfg.frozen_blocks
             else f"vitviz-mini's {cfg.new_blocks} blocks trained further on {vision.patch_size} px patches"
             if trained_embedding else f"vitviz-mini's {cfg.new_blocks} blocks trained further (patch embedding frozen)")
    return (f"vitviz's own image-text model of its scenes: {tower}, a {cfg.text_depth}-layer text tower; shapes, "
            f"colours, distractors{depth} (synthetic only)")


def _image_state(model: Any, tower: VisionTransformer, frozen: int) -> dict[str, torch.Tensor]:
    dropped = ("head.", "norm.") + (("depth_head.",) if frozen < tower.config.depth else ())
    state = {k: v for k, v in tower.state_dict().items()
             if not k.startswith(dropped) and not (k.startswith("blocks.") and int(k.split(".")[1]) >= frozen)}
    depth = frozen
    for i, block in enumerate(model.blocks):
        state.update({f"blocks.{depth + i}.{k}": v for k, v in block.state_dict().items()})
    state.update({f"norm.{k}": v for k, v in model.norm.state_dict().items()})
    state["image_proj.weight"] = model.proj.weight
    return {k: v.detach().half().contiguous() for k, v in state.items()}


def export_folder(model: Any, tower: VisionTransformer, info: Any, tok: Any, cfg: Any, record: dict[str, Any],
                  folder: Path, detector_data: dict[str, Any] | None = None) -> Path:
    """Write the folder; ``detector_data`` (``fit``/``val`` final-token features and main-shape labels) fits the
    out-of-domain detector."""
    from safetensors.torch import save_file


    folder.mkdir(parents=True, exist_ok=True)
    vision = vision_config(tower.config, cfg.frozen_blocks, len(model.blocks), cfg.embed_dim)
    t = model.text_config
    state = _image_state(model, tower, cfg.frozen_blocks)
    text = clip_text_state_dict(model.text.state_dict())
    state.update({k: v.detach().half().contiguous() for k, v in text.items()})
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    words = vocabulary()
    config = {
        "model_type": "clip",
        "architectures": ["CLIPModel"],
        "projection_dim": cfg.embed_dim,
        "logit_scale_init_value": 2.6592,
        "text_config": {
            "vocab_size": t.vocab_size, "hidden_size": t.width, "intermediate_size": int(t.width * t.mlp_ratio),
            "num_hidden_layers": t.depth, "num_attention_heads": t.num_heads,
            "max_position_embeddings": t.context_length, "hidden_act": "gelu", "layer_norm_eps": t.norm_eps,
            "bos_token_id": tok.token_to_id(BOS), "eos_token_id": t.eos_token_id, "pad_token_id": t.pad_token_id,
        },
        "vision_config": {  # for people reading this file; vitviz builds the tower from vitviz.vision
            "hidden_size": vision.embed_dim, "intermediate_size": int(vision.embed_dim * vision.mlp_ratio),
            "num_hidden_layers": vision.depth, "num_attention_heads": vision.num_heads,
            "image_size": vision.image_size, "patch_size": vision.patch_size, "hidden_act": "gelu",
            "layer_norm_eps": vision.norm_eps,
        },
        "vitviz": {
            "name": "vitviz-mini-text",
            "description": description(cfg, vision, getattr(model, "embedding", None) is not None),
            "vision": vision.to_dict(),
            "labels": list(SHAPE_WORDS),
            "depth_kind": "metric" if vision.depth_head != "none" else None,
            "vocabulary": words,
            "colours": list(COLOURS),
            "presets": PRESETS,
            "scoring": t.scoring,  # "sigmoid": each typed word judged alone (CLIP's config cannot say it)
        },
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", "utf-8")
    pre = {"image_processor_type": "CLIPImageProcessor", "do_resize": True,
           "size": {"shortest_edge": vision.image_size},
           "do_center_crop": True, "crop_size": {"height": vision.image_size, "width": vision.image_size},
           "do_normalize": True, "image_mean": list(info.mean), "image_std": list(info.std), "resample": 3}
    (folder / "preprocessor_config.json").write_text(json.dumps(pre, indent=2) + "\n", "utf-8")
    tok.no_truncation()
    tok.save(str(folder / "tokenizer.json"))
    (folder / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": BOS, "eos_token": EOS, "unk_token": UNK, "pad_token": EOS}, indent=2) + "\n", "utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"model_max_length": t.context_length, "do_lower_case": True}, indent=2) + "\n", "utf-8")
    if detector_data is not None:
        fit_detector(detector_data, folder)
    (folder / "train.json").write_text(json.dumps(record, indent=2) + "\n", "utf-8")
    return folder


def fit_detector(data: dict[str, Any], folder: Path) -> None:
    """vitviz-mini's kind of detector (Mahalanobis distance of the mean final patch token to the main shapes'
    means, shared covariance) on this tower's final tokens; threshold: 95 % of the validation scenes in domain.
    ``data``: ``fit`` and ``val`` mean final patch tokens ``[N, D]``, ``fit_labels`` the fit scenes' main shapes; or
    ``parts``, a list of such dicts (one per kind of scene), each fitted and calibrated on its own scenes
    (:meth:`DomainDetector.of_parts`: one covariance for scenes of both kinds took two of the three sample photos for
    scenes)."""
    parts = []
    for part in data.get("parts", [data]):
        detector = fit_mahalanobis(part["fit"], part["fit_labels"], len(SHAPE_WORDS), KNOWN, feature="patch_mean")
        detector.threshold = calibrate_threshold(detector.scores(part["val"], None))
        parts.append(detector)
    detector = parts[0] if len(parts) == 1 else DomainDetector.of_parts(parts)
    detector.save(sidecar_path(folder / "model.safetensors"))
