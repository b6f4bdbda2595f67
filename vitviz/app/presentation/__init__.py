"""Presentation mode: the story of one image in big pictures and plain words, full-screen, for audiences who do not
program. It talks to the main window only through ``open_image``, ``result_ready``, ``error_shown`` and
``current_result`` (see :meth:`PresentationView.for_window`)."""

from __future__ import annotations

from .content import answer_lines, attention_frames, explanations, nearness
from .theme import FONT_PX, REFERENCE_SIZE
from .view import PresentationView

__all__ = [
    "PresentationView",
    "REFERENCE_SIZE",
    "FONT_PX",
    "answer_lines",
    "explanations",
    "attention_frames",
    "nearness",
]
