"""The main window's colours (selection, query patch, hovered patch, muted text) and its style sheet."""

from __future__ import annotations

from PySide6.QtGui import QColor

__all__ = ["ACCENT", "QUERY", "HOVER", "TEXT_MUTED", "PICKED", "KNOCKED_OUT", "STYLE"]

ACCENT = QColor("#1f6feb")  # selection, top prediction
QUERY = QColor("#00d8ff")  # the query patch
HOVER = QColor("#ffcc33")  # the hovered patch
TEXT_MUTED = QColor("#5b6470")
PICKED = QColor("#f08c00")  # a head picked for a knockout (Ctrl-click)
KNOCKED_OUT = QColor("#d1242f")  # a knocked-out head
STYLE = """
QFrame#Panel { background: palette(base); border: 1px solid #d5dbe3; border-radius: 8px; }
QLabel#PanelTitle { font-weight: 600; }
QLabel#Muted { color: #5b6470; }
QLabel#ModeChip { border-radius: 9px; padding: 1px 9px; font-weight: 600; }
QToolBar { spacing: 6px; }
"""  # the window's style sheet: panels, titles, muted text, the attention mode chip
