"""vitviz: look inside Vision Transformers — predictions, per-head CLS attention and depth, side by side."""

__version__ = "0.1.0"


def __getattr__(name: str):  # torch and Qt are imported only when these are used
    if name in ("show", "analyze"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'vitviz' has no attribute {name!r}")


__all__ = ["show", "analyze", "__version__"]
