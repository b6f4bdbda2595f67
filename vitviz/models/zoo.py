"""The pretrained model zoo: named models downloaded from the Hugging Face Hub on first use, then cached.

``vitviz models`` lists :data:`REGISTRY`; ``--model NAME`` / ``--depth-model NAME`` and :func:`load` accept a registry
name, ``hf:<owner>/<repo>`` for any supported Hub repository (HF ViT, DINOv2, Depth Anything; see
:mod:`vitviz.models.convert`), or a local folder / weights file in HF or timm layout (offline).

Every entry records where its files come from (repository, file names), the architecture it must have, its
preprocessing (mean/std, input size, patch size), labels, licence and approximate download size. The architecture is
read from the repository's ``config.json`` and checked against the entry; the preprocessing and labels are the
entry's own.

ImageNet-1k class names: ``vitviz/data/imagenet_labels.json`` holds the 1000 names in the standard class order
(WordNet synset order). It was generated from the ``imagenet_synsets.txt`` and ``imagenet_synset_to_lemma.txt`` files
in the timm wheel (``timm/data/_info/``, timm is Apache-2.0; the lemmas are WordNet 3.0's, under the WordNet licence,
which permits redistribution with attribution: "WordNet 3.0 Copyright 2006 by Princeton University"): the first
lemma of each synset, with the two repeated first lemmas told apart — 134 "crane (bird)", 517 "crane (machine)",
638 "maillot (tights)", 639 "tank suit (maillot)".
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from .checkpoint import IMAGENET_MEAN, IMAGENET_STD, ModelInfo
from .convert import is_foreign_checkpoint, load_foreign
from .imagetext import CLIP_MEAN, CLIP_STD
from ..errors import CheckpointError
from .hub import ProgressHook, cached_folder, download, remote_size
from .vit import VisionTransformer

__all__ = ["ZooEntry", "REGISTRY", "DownloadInfo", "imagenet_labels", "is_known", "download_info", "fetch", "load",
           "HF_PREFIX"]

HF_PREFIX = "hf:"
WEIGHTS = ("model.safetensors", "pytorch_model.bin")
# An image-text model's tokenizer (vitviz.models.text): CLIP's tokenizer.json, SigLIP's spiece.model, their settings.
TOKENIZER_FILES = ("tokenizer.json", "spiece.model", "tokenizer_config.json", "special_tokens_map.json")
INCEPTION_MEAN = (0.5, 0.5, 0.5)  # google/vit-* preprocessing
INCEPTION_STD = (0.5, 0.5, 0.5)
# Architecture fields an entry pins; config.json must agree on these (they decide what the weights mean).
CHECKED_FIELDS = (
    "patch_size", "embed_dim", "depth", "num_heads", "num_classes", "head_pool", "depth_head", "num_register_tokens",
)


@lru_cache(maxsize=1)
def _imagenet_labels() -> tuple[str, ...]:
    text = resources.files("vitviz.data").joinpath("imagenet_labels.json").read_text("utf-8")
    labels = json.loads(text)
    if len(labels) != 1000:
        raise CheckpointError("vitviz/data/imagenet_labels.json: expected 1000 ImageNet class names")
    return tuple(str(label) for label in labels)


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class names (short, unique, human-readable), in class-index order."""
    return list(_imagenet_labels())


@dataclass(frozen=True)
class ZooEntry:
    """One named pretrained model."""

    name: str
    repo_id: str  # Hugging Face Hub repository
    layout: str  # "hf-vit", "hf-dinov2" or "hf-depth-anything" (see vitviz.models.convert)
    task: str  # "classification", "features" (attention only), "depth" or "image-text" (labels typed by the user)
    architecture: dict[str, Any]  # the vitviz architecture (ViTConfig fields) the weights must have
    image_size: int  # input short side in pixels (the engine snaps both sides to multiples of the patch)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    labels: str | None = None  # "imagenet-1k" or None
    depth_kind: str | None = None
    licence: str = ""
    size_mb: int = 0  # approximate download size
    description: str = ""
    files: tuple[str, ...] = ("config.json",)
    optional: tuple[str, ...] = ()  # fetched when the repository has them
    weights: tuple[str, ...] = WEIGHTS  # alternatives, first found is used
    revision: str | None = None  # None: the repository's main branch
    extra_config: dict[str, Any] = field(default_factory=dict)  # ViTConfig fields set on top of config.json

    @property
    def patch_size(self) -> int:
        return int(self.architecture["patch_size"])

    @property
    def summary(self) -> str:
        """One line for ``vitviz models``."""
        return f"{self.description} ({self.repo_id}, ~{self.size_mb} MB, {self.licence})"

    def model_info_fields(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "labels": imagenet_labels() if self.labels == "imagenet-1k" else [],
            "mean": tuple(self.mean),
            "std": tuple(self.std),
            "depth_kind": self.depth_kind,
            "description": self.description,
        }


def _vit(embed_dim: int, depth: int, heads: int, patch: int, **extra: Any) -> dict[str, Any]:
    return {"patch_size": patch, "embed_dim": embed_dim, "depth": depth, "num_heads": heads, **extra}


def _clip(name: str, repo_id: str, patch: int, size_mb: int) -> ZooEntry:
    """An OpenAI CLIP ViT-B image-text model (its preprocessing, licence and tokenizer files)."""
    return ZooEntry(
        name=name, repo_id=repo_id, layout="hf-clip", task="image-text",
        architecture=_vit(768, 12, 12, patch, num_classes=0, head_pool="cls"), image_size=224, mean=CLIP_MEAN,
        std=CLIP_STD, licence="MIT", size_mb=size_mb,
        description=f"OpenAI CLIP ViT-B/{patch} image-text model: type the labels",
        files=("config.json", "preprocessor_config.json", "tokenizer.json"),
        optional=("tokenizer_config.json", "special_tokens_map.json"),
    )


REGISTRY: dict[str, ZooEntry] = {
    entry.name: entry
    for entry in (
        ZooEntry(
            name="deit-small",
            repo_id="facebook/deit-small-patch16-224",
            layout="hf-vit",
            task="classification",
            architecture=_vit(384, 12, 6, 16, num_classes=1000, head_pool="cls"),
            image_size=224,
            labels="imagenet-1k",
            licence="Apache-2.0",
            size_mb=89,
            description="DeiT-S/16 ImageNet-1k classifier, 22M params",
        ),
        ZooEntry(
            name="vit-base",
            repo_id="google/vit-base-patch16-224",
            layout="hf-vit",
            task="classification",
            architecture=_vit(768, 12, 12, 16, num_classes=1000, head_pool="cls"),
            image_size=224,
            mean=INCEPTION_MEAN,
            std=INCEPTION_STD,
            labels="imagenet-1k",
            licence="Apache-2.0",
            size_mb=346,
            description="ViT-B/16 ImageNet-1k classifier (21k pre-trained), 86M params",
        ),
        ZooEntry(
            name="dino-vits16",
            repo_id="facebook/dino-vits16",
            layout="hf-vit",
            task="features",
            architecture=_vit(384, 12, 6, 16, num_classes=0),
            image_size=224,
            licence="Apache-2.0",
            size_mb=87,
            description="DINO ViT-S/16 self-supervised, no classifier: the attention showcase",
        ),
        ZooEntry(
            name="dinov2-small-imagenet",
            repo_id="facebook/dinov2-small-imagenet1k-1-layer",
            layout="hf-dinov2",
            task="classification",
            architecture=_vit(384, 12, 6, 14, num_classes=1000, head_pool="cls+mean", layer_scale=True),
            image_size=224,
            labels="imagenet-1k",
            licence="Apache-2.0",
            size_mb=91,
            description="DINOv2-S/14 + linear ImageNet-1k head on CLS and mean patch token",
        ),
        ZooEntry(
            name="depth-anything-v2-small",
            repo_id="depth-anything/Depth-Anything-V2-Small-hf",
            layout="hf-depth-anything",
            task="depth",
            architecture=_vit(384, 12, 6, 14, num_classes=0, depth_head="dpt", layer_scale=True),
            image_size=518,
            depth_kind="relative_inverse",
            licence="Apache-2.0",
            size_mb=99,
            description="Depth Anything V2 Small: DINOv2-S/14 + DPT head, relative inverse depth",
        ),
        _clip("clip-b32", "openai/clip-vit-base-patch32", 32, 605),
        _clip("clip-b16", "openai/clip-vit-base-patch16", 16, 599),
        ZooEntry(
            name="siglip-b16",
            repo_id="google/siglip-base-patch16-224",
            layout="hf-siglip",
            task="image-text",
            architecture=_vit(768, 12, 12, 16, num_classes=0, head_pool="map"),
            image_size=224,
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.5, 0.5),
            licence="Apache-2.0",
            size_mb=813,
            description="Google SigLIP B/16 image-text model (each label scored on its own): type the labels",
            files=("config.json", "preprocessor_config.json", "spiece.model"),
            optional=("tokenizer_config.json", "special_tokens_map.json"),
        ),
    )
}


def is_known(spec: str | os.PathLike[str]) -> bool:
    """A registry name, an ``hf:owner/repo`` spec, or a local HF / timm checkpoint path."""
    s = str(spec)
    if s in REGISTRY:
        return True
    if s.startswith(HF_PREFIX) and "/" in s[len(HF_PREFIX) :]:
        return True
    return is_foreign_checkpoint(s)


def _files(spec: str) -> tuple[str, list[str | tuple[str, ...]], list[str], str | None]:
    """(repository, files, optional files, revision) of a registry name or ``hf:`` spec."""
    if spec in REGISTRY:
        entry = REGISTRY[spec]
        return entry.repo_id, [*entry.files, entry.weights], list(entry.optional), entry.revision
    if spec.startswith(HF_PREFIX):
        repo, _, revision = spec[len(HF_PREFIX) :].partition("@")
        return repo, ["config.json", WEIGHTS], ["preprocessor_config.json", *TOKENIZER_FILES], revision or None
    raise CheckpointError(f"{spec}: not a pretrained model name (see 'vitviz models') or hf:owner/repo")


def fetch(
    spec: str, progress: ProgressHook | None = None, cache: str | os.PathLike[str] | None = None
) -> Path:
    """Download (or find in the cache) the files of a registry name or ``hf:`` spec; returns their folder."""
    repo, files, optional, revision = _files(spec)
    return download(repo, files, optional=optional, revision=revision, progress=progress, cache=cache)


@dataclass(frozen=True)
class DownloadInfo:
    """What choosing a pretrained model costs before it is downloaded."""

    spec: str
    repo_id: str
    size_bytes: int | None  # still to download: 0 when cached, None when unknown
    exact: bool  # the size is the Hub's (True) or the registry's approximation (False)
    licence: str | None  # None: unknown (see the model card on the Hub)

    @property
    def cached(self) -> bool:
        return self.size_bytes == 0

    def describe(self) -> str:
        """One line for a confirmation, e.g. "download 89 MB, licence Apache-2.0"."""
        licence = f"licence {self.licence}" if self.licence else "licence: see the model card on the Hub"
        if self.cached:
            return f"already downloaded, {licence}"
        if self.size_bytes is None:
            return f"download of unknown size, {licence}"
        mb = self.size_bytes / 1e6
        return f"download {'' if self.exact else 'about '}{mb:.0f} MB, {licence}" if mb >= 1 else \
            f"download {self.size_bytes / 1e3:.0f} kB, {licence}"


def download_info(
    spec: str, network: bool = True, timeout: float = 3.0, cache: str | os.PathLike[str] | None = None
) -> DownloadInfo:
    """Size still to download and licence of a registry name or ``hf:`` spec, without downloading it.

    A cached model costs 0 bytes (no network access). Otherwise, with ``network``, HEAD requests ask the Hub for the
    exact size (``timeout`` seconds each); when they cannot (offline, unreachable, slow) a registry entry falls back
    to its approximate size, an ``hf:`` spec to None. Blocks up to a few times ``timeout`` seconds: call it off the
    GUI thread, or pass ``network=False`` for an instant answer from the cache and the registry.
    """
    repo, files, optional, revision = _files(spec)
    entry = REGISTRY.get(spec)
    licence = entry.licence if entry else None
    if cached_folder(repo, files, optional, revision, cache) is not None:
        return DownloadInfo(spec, repo, 0, True, licence)
    size = remote_size(repo, files, revision, timeout) if network else None
    if size is not None:
        return DownloadInfo(spec, repo, size, True, licence)
    return DownloadInfo(spec, repo, entry.size_mb * 10**6 if entry else None, False, licence)


def _check_architecture(entry: ZooEntry, model: VisionTransformer, source: str) -> None:
    cfg = model.config
    problems = []
    for key, want in entry.architecture.items():
        if key == "layer_scale":
            have: Any = cfg.layer_scale_init is not None
        elif key in CHECKED_FIELDS:
            have = getattr(cfg, key)
        else:
            continue
        if have != want:
            problems.append(f"{key} {have!r} (expected {want!r})")
    if problems:
        raise CheckpointError(
            f"{source}: the downloaded model does not match the registry entry {entry.name!r}: " + ", ".join(problems)
        )


def load(
    spec: str | os.PathLike[str],
    progress: ProgressHook | None = None,
    cache: str | os.PathLike[str] | None = None,
) -> tuple[VisionTransformer, ModelInfo]:
    """Load a registry model, ``hf:`` spec or local HF / timm checkpoint as an eval-mode CPU model and its info.

    Downloads on first use (needs the ``hub`` extra and a network connection once); ``progress`` receives
    (bytes done, bytes total) per file; without it huggingface_hub draws a tqdm bar on the terminal.
    """
    s = str(spec)
    if s in REGISTRY:
        entry = REGISTRY[s]
        folder = fetch(s, progress, cache)
        overrides = {"image_size": entry.image_size, **entry.extra_config}
        model, info = load_foreign(folder, name=entry.name, overrides=overrides, info=entry.model_info_fields())
        _check_architecture(entry, model, f"{entry.repo_id}")
        info.source = f"{entry.repo_id} ({folder})"
        return model, info
    if s.startswith(HF_PREFIX):
        folder = fetch(s, progress, cache)
        model, info = load_foreign(folder, name=s[len(HF_PREFIX) :])
        info.source = f"{s} ({folder})"
        return model, info
    if is_foreign_checkpoint(s):
        return load_foreign(s)
    raise CheckpointError(f"{s}: not a pretrained model name (see 'vitviz models'), hf:owner/repo or checkpoint path")
