"""vitviz: look inside Vision Transformers — predictions, per-head CLS attention and depth, side by side."""

__version__ = "0.1.0"
