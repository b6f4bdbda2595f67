"""Helpers that arrange views in the window: splitters and view tabs."""

from __future__ import annotations

from typing import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QSplitter, QTabWidget, QWidget

__all__ = ["splitter", "view_tabs", "add_view"]


def splitter(orientation: Qt.Orientation, widgets: Sequence[QWidget], sizes: Sequence[int]) -> QSplitter:
    """A splitter holding ``widgets`` at ``sizes``, whose panes cannot be collapsed to nothing."""
    split = QSplitter(orientation)
    for w in widgets:
        split.addWidget(w)
    split.setSizes(list(sizes))
    split.setChildrenCollapsible(False)
    split.setHandleWidth(8)
    return split


def view_tabs() -> QTabWidget:
    """Tabs holding views that share one place in the window (the tab bar hides while there is only one)."""
    tabs = QTabWidget()
    tabs.setDocumentMode(True)
    tabs.setTabBarAutoHide(True)
    return tabs


def add_view(tabs: QTabWidget, panel: QWidget, title: str) -> QWidget:
    """Add ``panel`` as a tab of ``tabs``; returns it."""
    tabs.addTab(panel, title)
    return panel
