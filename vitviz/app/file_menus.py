"""The File → Open recent and Samples menus: what they list and how they are filled."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMenu

from . import paths

__all__ = ["RecentFiles", "fill_samples_menu"]

MAX_RECENT = 10


class RecentFiles:
    """The most recently analysed image files, newest first, kept in the settings."""

    def __init__(self, settings: QSettings, key: str = "recent_files") -> None:
        self.settings, self.key = settings, key

    def files(self) -> list[str]:
        value = self.settings.value(self.key, [])
        return [str(v) for v in ([value] if isinstance(value, str) else value or [])][:MAX_RECENT]

    def add(self, path: str) -> None:
        path = str(Path(path).resolve())
        self.settings.setValue(self.key, [path, *[p for p in self.files() if p != path]][:MAX_RECENT])

    def clear(self) -> None:
        self.settings.setValue(self.key, [])

    def fill(self, menu: QMenu, open_image: Callable[[str], object]) -> None:
        menu.clear()
        recent = self.files()
        for path in recent:
            a = menu.addAction(Path(path).name)
            a.setToolTip(path)
            a.setStatusTip(path)
            a.triggered.connect(lambda _=False, p=path: open_image(p))
        if not recent:
            menu.addAction("No recent images").setEnabled(False)
        else:
            menu.addSeparator()
            menu.addAction("Clear list", self.clear)


def fill_samples_menu(menu: QMenu, folder: Path | None, open_image: Callable[[str], object]) -> None:
    """One entry per sample image in ``folder`` (default: the shipped samples)."""
    menu.clear()
    samples = paths.sample_images(folder)
    for path in samples:
        a = menu.addAction(paths.sample_label(path))
        a.setToolTip(str(path))
        a.triggered.connect(lambda _=False, p=str(path): open_image(p))
    if not samples:
        menu.addAction(f"No sample images in {folder or paths.samples_dir()}").setEnabled(False)
