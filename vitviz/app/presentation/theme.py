"""Presentation mode's look: font sizes at a reference window size, high-contrast colours and the style sheet."""

from __future__ import annotations

__all__ = ["REFERENCE_SIZE", "FONT_PX", "BACKGROUND", "TEXT", "MUTED", "ACCENT", "WARNING", "STYLE"]

REFERENCE_SIZE = (1920, 1080)  # font sizes below are pixels at this window size; they scale with the window
FONT_PX = {"answer": 76, "runner": 36, "title": 34, "explain": 28, "scale": 26, "status": 28, "keys": 24}

# High contrast: white and light grey on near-black (contrast ratios 18:1 and 12:1), one warm accent.
BACKGROUND = "#0b0e14"
TEXT = "#ffffff"
MUTED = "#c9d1d9"
ACCENT = "#ffd43b"
WARNING = "#ffa657"

STYLE = f"""
PresentationView {{ background: {BACKGROUND}; }}
QLabel {{ color: {TEXT}; background: transparent; }}
QLabel#Runner, QLabel#Scale, QLabel#Keys, QLabel#Source {{ color: {MUTED}; }}
QLabel#Explain {{ color: {TEXT}; background: #1b2230; border-radius: 10px; padding: 10px 14px; }}
QLabel#Status {{ color: {WARNING}; }}
QLineEdit#Ask {{ color: {TEXT}; background: #1b2230; border: 1px solid #2c3750; border-radius: 8px; padding: 4px 10px; }}
"""
