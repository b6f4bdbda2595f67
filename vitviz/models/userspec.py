"""How a user's model is named when it is opened: a factory (``PATH.py:NAME`` or ``package.module:NAME``), a model
object of this process (``vitviz.show``), the design notes' MiniViT from its bare state dict, or, on the user's
explicit opt-in, a pickled whole model. Each becomes a :class:`vitviz.models.usermodel.UserModel`."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..errors import CheckpointError, VitvizError
from .checkpoint import ModelInfo
from .usermodel import SPEC_KEYS, UserModel, wrap_model

__all__ = ["is_factory_spec", "load_factory", "register", "set_options", "resolve_user_model"]


# ------------------------------------------------------------------------------------------------ factories


def is_factory_spec(spec: str) -> bool:
    """``PATH.py:NAME`` or ``package.module:NAME`` (as uvicorn names an app), not a Windows drive or a URL."""
    left, sep, right = str(spec).rpartition(":")
    if not sep or not right.isidentifier() or not left or len(left) == 1 or "//" in left:
        return False
    return left.endswith(".py") or all(part.isidentifier() for part in left.split("."))


def load_factory(spec: str, **overrides: Any) -> tuple[UserModel, ModelInfo]:
    """Run the factory named by ``spec`` (``PATH.py:NAME`` or ``package.module:NAME``) and wrap what it returns.
    The file's code runs because the user named it. :class:`VitvizError` with one line for a missing file, module
    or name, and for a factory that raises."""
    left, _, attr = str(spec).rpartition(":")
    try:
        if left.endswith(".py"):
            path = Path(left).expanduser()
            if not path.is_file():
                raise VitvizError(f"{left}: no such file")
            mod_name = f"vitviz_user_{abs(hash(str(path.resolve())))}"
            loader_spec = importlib.util.spec_from_file_location(mod_name, path)
            assert loader_spec is not None and loader_spec.loader is not None
            mod = importlib.util.module_from_spec(loader_spec)
            sys.modules[mod_name] = mod
            sys.path.insert(0, str(path.resolve().parent))  # the file's own imports of its neighbours
            try:
                loader_spec.loader.exec_module(mod)
            finally:
                sys.path.remove(str(path.resolve().parent))
        else:
            mod = importlib.import_module(left)
    except VitvizError:
        raise
    except ModuleNotFoundError as exc:
        raise VitvizError(f"{spec}: cannot import {left}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - the user's code
        raise VitvizError(f"{spec}: importing {left} failed: {type(exc).__name__}: {exc}") from exc
    factory = getattr(mod, attr, None)
    if factory is None:
        raise VitvizError(f"{spec}: {left} has no {attr!r}")
    try:
        made = factory() if callable(factory) and not isinstance(factory, nn.Module) else factory
    except Exception as exc:  # noqa: BLE001 - the user's code
        raise VitvizError(f"{spec}: {attr}() raised {type(exc).__name__}: {exc}") from exc
    return wrap_model(made, name=attr if attr not in ("build", "create", "factory", "model") else Path(left).stem,
                      **overrides)



# ------------------------------------------------------------------------------------------------ in-process models

# Models handed over in this process (vitviz.show, vitviz.analyze), by the spec string the app and engine pass on
_LIVE: dict[str, tuple[Any, dict[str, Any]]] = {}
# Options for a spec that a state dict cannot hold (the CLI's --heads, --classes, ...): spec -> options
_OPTIONS: dict[str, dict[str, Any]] = {}


def register(model: nn.Module | Mapping[str, Any], **overrides: Any) -> str:
    """A spec string for a model object of this process, which :func:`resolve_user_model` (and so the engine and
    the app) opens like a file's."""
    module = model.get("model") if isinstance(model, Mapping) else model
    name = overrides.get("name") or (model.get("name") if isinstance(model, Mapping) else None) \
        or type(module).__name__
    spec = f"{name} (in this process, #{len(_LIVE) + 1})"
    _LIVE[spec] = (model, overrides)
    return spec


def set_options(spec: str, **options: Any) -> None:
    """Facts about the model ``spec`` that its file cannot hold (heads, classes, mean, std, norm_first,
    allow_pickle), used when it is opened."""
    _OPTIONS[str(spec)] = {k: v for k, v in options.items() if v is not None}


def resolve_user_model(spec: str | Any) -> tuple[UserModel, ModelInfo] | None:
    """A user's model by spec: one registered in this process, ``PATH.py:NAME`` / ``module:NAME``, the design
    notes' MiniViT from a bare state dict, or (opted in) a pickled whole model; None for any other spec."""
    spec = str(spec)
    if spec in _LIVE:
        model, overrides = _LIVE[spec]
        return wrap_model(model, **overrides)
    options = dict(_OPTIONS.get(spec, {}))
    allow_pickle = bool(options.pop("allow_pickle", False))
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix in (".pt", ".pth", ".bin", ".ckpt", ".safetensors"):
        if allow_pickle:
            return _load_pickled(path, options)
        from . import minivit

        if minivit.is_minivit_file(path):  # the design notes' model, from its weights alone
            wrap_keys = {k: options.pop(k) for k in ("image_size", "channels") if k in options}
            return wrap_model(minivit.load_minivit(path, **options), name=path.stem, **wrap_keys)
        return None
    if not path.exists() and is_factory_spec(spec):
        if "classes" in options:
            options["labels"] = options.pop("classes")
        return load_factory(spec, **{k: v for k, v in options.items() if k in SPEC_KEYS})
    return None


def _load_pickled(path: Path, options: dict[str, Any]) -> tuple[UserModel, ModelInfo]:
    """A whole model saved with ``torch.save(model)``: unpickling runs the file's code, so only on the user's
    explicit opt-in (``--allow-pickle``)."""
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - a broken or foreign file
        raise CheckpointError(f"{path}: cannot be unpickled: {type(exc).__name__}: {exc}") from exc
    if not isinstance(obj, (nn.Module, Mapping)):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a whole model (nn.Module)")
    if isinstance(obj, Mapping) and "model" not in obj:
        raise CheckpointError(f"{path}: holds a state dict, not a whole model: open it without --allow-pickle")
    return wrap_model(obj, name=path.stem, **{k: v for k, v in options.items() if k in SPEC_KEYS})
