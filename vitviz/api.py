"""vitviz from Python: open the app on a live ``nn.Module`` (:func:`show`), or analyse an image with it without a
window (:func:`analyze`). Any PyTorch ViT works unchanged (vitviz.models.usermodel); so do vitviz's own models by
name or path."""

from __future__ import annotations

import os
import sys
from typing import Any, Sequence

__all__ = ["show", "analyze"]


def _spec(model: Any, **options: Any) -> str:
    """The engine's spec of ``model``: a name or path as it is, a module or a factory's dict registered."""
    if isinstance(model, (str, os.PathLike)):
        return str(model)
    from .models.userspec import register

    return register(model, **options)


def analyze(model: Any, image: Any, *, labels: Sequence[str] | None = None,
            mean: Sequence[float] | float | None = None, std: Sequence[float] | float | None = None,
            image_size: int | None = None, channels: int | None = None, device: str = "cpu",
            features: bool = True, attention: str = "auto", topk: int = 5) -> Any:
    """Analyse ``image`` (a path, PIL image or uint8 array) with ``model`` (an ``nn.Module``, a factory's dict, or a
    vitviz model name or path) and return the engine's :class:`vitviz.result.AnalysisResult`: predictions, every
    layer's per-head CLS attention, rollout, hidden states (``features``), depth. The module is moved to
    ``device`` and put in eval mode."""
    from .engine import Engine

    spec = _spec(model, labels=labels, mean=mean, std=std, image_size=image_size, channels=channels)
    return Engine(spec, device=device).analyze(image, topk=topk, features=features, attention=attention)


def _ipython_qt_loop() -> bool:
    """Whether IPython runs a Qt event loop (``%gui qt``): the window then lives beside the prompt."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return bool(shell is not None and str(getattr(shell, "active_eventloop", "") or "").startswith("qt"))


def show(model: Any = None, image: Any = None, *, labels: Sequence[str] | None = None,
         mean: Sequence[float] | float | None = None, std: Sequence[float] | float | None = None,
         image_size: int | None = None, channels: int | None = None, device: str = "auto",
         block: bool | None = None) -> Any:
    """Open the vitviz window on ``model`` (an ``nn.Module`` such as your own ViT, a factory's dict
    ``{"model": ..., "labels": ...}``, or a vitviz model name or path; default: the shipped model) and ``image``.

    In a script it blocks until the window closes and returns the exit status. Under IPython with ``%gui qt`` (or
    ``block=False``) it returns the window at once, and the prompt stays live, as napari's ``view_image`` does.
    ``labels``, ``mean``, ``std``, ``image_size`` and ``channels`` are what a plain module cannot say itself
    (they win over a dict's)."""
    spec = None if model is None else _spec(model, labels=labels, mean=mean, std=std, image_size=image_size,
                                            channels=channels)
    if image is not None and not isinstance(image, (str, os.PathLike)):
        import numpy as np
        from PIL import Image

        image = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    if (not _ipython_qt_loop()) if block is None else bool(block):
        from .app import run_app

        return run_app(image=image, model=spec, device=device)
    from .app import create_app, display_problem

    problem = display_problem()
    if problem:
        raise RuntimeError(problem)
    create_app()
    from .app.main_window import MainWindow

    window = MainWindow()
    window.show()
    window.after_first_paint(lambda: window.startup(image=image, model=spec, device=device))
    return window
