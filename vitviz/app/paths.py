"""Where the app finds shipped models, sample images and its icon -- without importing torch."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "IMAGE_SUFFIXES",
    "REPO_ROOT",
    "ShippedModel",
    "weights_dir",
    "shipped_models",
    "samples_dir",
    "sample_images",
    "icon_path",
    "default_sample",
    "sample_label",
    "is_image_file",
]

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
from ..paths import DEFAULT_MODEL, weights_dir  # noqa: E402  (torch-free, shared with the engine)


@dataclass(frozen=True)
class ShippedModel:
    name: str
    config: Path
    description: str
    has_depth: bool = False


def shipped_models(folder: Path | None = None) -> list[ShippedModel]:
    """vitviz checkpoints (config JSON + weights beside it) and vitviz's own Hub-layout folders (image-text models)
    in the weights folder, default model first."""
    folder = folder or weights_dir()
    found: list[ShippedModel] = []
    for cfg, data in _small_configs(folder, "*.json"):
        if data.get("format") != "vitviz-checkpoint" or not cfg.with_suffix(".safetensors").is_file():
            continue
        arch = data.get("architecture") if isinstance(data.get("architecture"), dict) else {}
        has_depth = str(arch.get("depth_head", "none")) != "none"
        found.append(ShippedModel(cfg.stem, cfg, str(data.get("description") or ""), has_depth))
    found += _shipped_folders(folder)
    found.sort(key=lambda m: (m.name != DEFAULT_MODEL, m.name))
    return found


def _shipped_folders(folder: Path) -> list[ShippedModel]:
    """vitviz's own models in the Hub's layout: a sub-folder with ``config.json`` (holding a ``vitviz`` entry) and
    ``model.safetensors``; its ``config`` is the folder, which the engine loads like any Hub folder."""
    found = []
    for cfg, data in _small_configs(folder, "*/config.json"):
        extra = data.get("vitviz")
        if not isinstance(extra, dict) or not (cfg.parent / "model.safetensors").is_file():
            continue
        vision = extra.get("vision") if isinstance(extra.get("vision"), dict) else {}
        has_depth = str(vision.get("depth_head", "none")) != "none"
        found.append(ShippedModel(cfg.parent.name, cfg.parent, str(extra.get("description") or ""), has_depth))
    return found


def _small_configs(folder: Path, pattern: str) -> list[tuple[Path, dict]]:
    """The JSON objects of the files matching ``pattern`` in ``folder`` (sorted), skipping unreadable, invalid and
    over-4-MB files and anything but an object."""
    try:
        paths = sorted(folder.glob(pattern))
    except OSError:
        return []
    out = []
    for path in paths:
        try:
            if path.stat().st_size > 4 * 1024 * 1024:
                continue
            data = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            out.append((path, data))
    return out


def samples_dir() -> Path:
    """Folder listed by the Samples menu (``$VITVIZ_SAMPLES`` overrides)."""
    env = os.environ.get("VITVIZ_SAMPLES")
    if env:
        return Path(env)
    for candidate in (REPO_ROOT / "assets" / "samples", PACKAGE_ROOT / "assets" / "samples"):
        if candidate.is_dir():
            return candidate
    return REPO_ROOT / "assets" / "samples"


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def sample_images(folder: Path | None = None) -> list[Path]:
    folder = folder or samples_dir()
    try:
        return sorted((p for p in folder.iterdir() if p.is_file() and is_image_file(p)), key=lambda p: p.name.lower())
    except OSError:
        return []


def default_sample(folder: Path | None = None) -> Path | None:
    """The image the app opens at startup: the first procedural scene (the shipped model's domain), else the first
    sample image."""
    samples = sample_images(folder)
    scenes = [p for p in samples if p.name.lower().startswith("scene")]
    return (scenes or samples or [None])[0]


def sample_label(path: Path) -> str:
    """Menu text of a sample: ``scene-star-prism.png`` -> ``scene: star prism``."""
    stem = path.stem.replace("_", "-")
    kind, _, rest = stem.partition("-")
    return f"{kind}: {rest.replace('-', ' ')}" if rest else kind


def icon_path() -> Path | None:
    for candidate in (REPO_ROOT / "assets" / "icons" / "vitviz.png", PACKAGE_ROOT / "assets" / "icons" / "vitviz.png"):
        if candidate.is_file():
            return candidate
    return None
