"""Reference implementations for parity checks (tests and benchmarks): timm imported without torchvision, and
random weights that make comparisons meaningful.

Not used by the app. timm's VisionTransformer needs nothing from torchvision, but importing timm imports it, and a
torchvision build that does not match the installed torch fails on import; :func:`import_timm` lets stub modules
stand in for torchvision while timm is imported.
"""

from __future__ import annotations

import enum
import importlib.machinery
import sys
import types
from typing import Any

__all__ = ["import_timm", "randomize"]

_TORCHVISION_MODULES = (
    "torchvision", "torchvision.ops", "torchvision.ops.misc", "torchvision.transforms",
    "torchvision.transforms.functional", "torchvision.datasets", "torchvision.utils", "torchvision.models",
    "torchvision.models.feature_extraction",
)


class _InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


class _AnyType(type):
    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return cls


class _Stub(metaclass=_AnyType):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("torchvision is not available (vitviz.models.reference stub)")


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _InterpolationMode if name == "InterpolationMode" else _Stub


def import_timm() -> tuple[types.ModuleType | None, str]:
    """``(timm, "")`` with timm's ViT importable, or ``(None, reason)`` when timm is missing or cannot be imported."""
    try:
        import timm.models.vision_transformer  # noqa: F401

        return sys.modules["timm"], ""
    except ModuleNotFoundError as exc:
        if not str(exc.name or "").startswith("torchvision"):
            return None, f"timm is not installed ({exc})"
    except Exception:  # noqa: BLE001 - a torchvision build that does not match torch fails on import: stub it
        pass
    for name in [n for n in sys.modules if n == "timm" or n.startswith("timm.")]:
        del sys.modules[name]
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]
    saved = {n: sys.modules.get(n) for n in _TORCHVISION_MODULES}
    try:
        for n in _TORCHVISION_MODULES:
            mod = _StubModule(n)
            mod.__path__ = []
            mod.__spec__ = importlib.machinery.ModuleSpec(n, None)
            sys.modules[n] = mod
        import timm.models.vision_transformer  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - depends on the timm version
        return None, f"timm cannot be imported without torchvision ({exc})"
    finally:
        for n, mod in saved.items():
            if mod is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = mod
    return sys.modules["timm"], ""


def randomize(model: Any, seed: int = 0) -> Any:
    """Give ``model`` random weights of unit-ish gain (activations stay O(1), attention is far from uniform), so
    agreement between two implementations means something; returns the model in eval mode."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if any(t in name for t in ("token", "position", "pos_embed")):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            elif "lambda" in name or "gamma" in name:
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif p.ndim > 1:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return model.eval()
