"""The window's file dialogs and the clipboard / drag-and-drop readers, each remembering its folder in the settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QMimeData, QObject, QSettings, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from .. import __version__
from . import paths

__all__ = ["FileDrops", "show_about", "confirm_download", "ask_image", "ask_checkpoint", "ask_factory", "factory_names",
           "ask_png", "ask_folder", "confirm_replace_export", "mime_source", "qimage_to_array"]

IMAGE_FILTER = "Images (" + " ".join(f"*{s}" for s in paths.IMAGE_SUFFIXES) + ");;All files (*)"
CHECKPOINT_FILTER = ("Models (*.json *.safetensors *.pt *.pth *.bin *.py);;vitviz checkpoints (*.json *.safetensors);;"
                     "Your own model: weights (*.pt *.pth *.bin) or code (*.py);;All files (*)")


def show_about(parent: QWidget) -> None:
    QMessageBox.about(
        parent, "About vitviz",
        f"<h3>vitviz {__version__}</h3><p>Look inside Vision Transformers: class predictions, the attention of "
        "every head and the predicted depth, side by side.</p>"
        "<p><b>Keys</b>: ← → layer · Home/End first/last layer · Esc back to CLS attention · G patch grid · "
        "Ctrl+O open · Ctrl+V paste · Ctrl+E export view</p>")


def confirm_download(parent: QWidget, name: str, about: str) -> bool:
    """Ask before downloading a pretrained model; ``about`` says its size and licence."""
    answer = QMessageBox.question(
        parent, "Download a pretrained model",
        f"<p><b>{name}</b> is not on this computer yet.</p><p>It will be downloaded from the Hugging Face Hub "
        f"({about}) and kept for next time.</p>",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Yes)
    return answer == QMessageBox.StandardButton.Yes


def _last_dir(settings: QSettings) -> str:
    return str(settings.value("paths/last_dir", str(Path.home())))


def ask_image(parent: QWidget, settings: QSettings) -> str | None:
    path, _ = QFileDialog.getOpenFileName(parent, "Open image", _last_dir(settings), IMAGE_FILTER)
    if path:
        settings.setValue("paths/last_dir", str(Path(path).parent))
    return path or None


def ask_checkpoint(parent: QWidget, settings: QSettings) -> str | None:
    """A model file to open: a checkpoint, or a Python file and the factory in it that builds your own model
    (``PATH.py:NAME``; its code runs when the model loads, because the user chose it)."""
    start = str(settings.value("paths/checkpoint_dir", str(paths.weights_dir())))
    path, _ = QFileDialog.getOpenFileName(parent, "Open a model", start, CHECKPOINT_FILTER)
    if not path:
        return None
    settings.setValue("paths/checkpoint_dir", str(Path(path).parent))
    if Path(path).suffix.lower() != ".py":
        return path
    return ask_factory(parent, path)


def factory_names(path: str | Path) -> list[str]:
    """Top-level functions and classes of a Python file, read without running it (factories first by name)."""
    import ast

    try:
        tree = ast.parse(Path(path).read_text("utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return []
    names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("_")]
    preferred = ("build", "create_model", "make_model", "model", "factory", "get_model")
    return sorted(names, key=lambda n: (n not in preferred, names.index(n)))


def ask_factory(parent: QWidget, path: str) -> str | None:
    """``PATH.py:NAME`` for the callable the user picks in ``path`` (a function returning an nn.Module or a dict)."""
    from PySide6.QtWidgets import QInputDialog

    names = factory_names(path)
    if not names:
        QMessageBox.warning(parent, "Open your own model",
                            f"{Path(path).name} defines no function or class that could build a model.")
        return None
    name, ok = QInputDialog.getItem(
        parent, "Open your own model",
        f"Which function of {Path(path).name} builds the model? It runs that file's code.", names, 0, False)
    return f"{path}:{name}" if ok and name else None


def ask_png(parent: QWidget, settings: QSettings, title: str, file_name: str) -> str | None:
    """A PNG file name to save to (".png" added when missing)."""
    path, _ = QFileDialog.getSaveFileName(parent, title, str(Path(_last_dir(settings)) / file_name),
                                          "PNG images (*.png)")
    if not path:
        return None
    path += "" if path.lower().endswith(".png") else ".png"
    settings.setValue("paths/last_dir", str(Path(path).parent))
    return path


def confirm_replace_export(parent: QWidget, folder: Path) -> bool:
    """True when ``folder`` holds no earlier export, or the user agrees to replace its files (the default: no)."""
    try:
        files = sum(1 for p in folder.iterdir() if p.is_file()) if folder.is_dir() else 0
    except OSError:
        files = 0
    if not files:
        return True
    answer = QMessageBox.question(
        parent, "Replace the earlier export?",
        f"{folder} already holds an export ({files} files). Replace the files that this export writes again?",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
    return answer == QMessageBox.StandardButton.Yes


def ask_folder(parent: QWidget, settings: QSettings, title: str) -> str | None:
    folder = QFileDialog.getExistingDirectory(parent, title, _last_dir(settings))
    if folder:
        settings.setValue("paths/last_dir", folder)
    return folder or None


def mime_source(mime: QMimeData | None, image: QImage | None = None, name: str = "dropped image") -> Any:
    """What a drop or the clipboard holds: a local file path, an ``(array, name)`` image, or None.

    A file wins over image data; a text that names an existing file counts as that file.
    """
    if mime is None:
        return None
    files = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()] if mime.hasUrls() else []
    if files:
        return files[0]
    if mime.hasImage():
        image = image if image is not None else mime.imageData()
        if isinstance(image, QImage) and not image.isNull():
            return qimage_to_array(image), name
    text = mime.text().strip() if mime.hasText() else ""
    if text and len(text) < 4096 and Path(text).expanduser().is_file():
        return str(Path(text).expanduser())
    return None


def qimage_to_array(image: QImage) -> np.ndarray:
    """A QImage as an ``[H, W, 3]`` uint8 RGB array."""
    img = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    buf = np.frombuffer(img.constBits(), np.uint8, count=bpl * h).reshape(h, bpl)
    return buf[:, : w * 3].reshape(h, w, 3).copy()


class FileDrops(QObject):
    """Opens what is dragged onto a window: the window passes its drag and drop events here.

    Signals: ``dropped(source, files)`` with a path or an ``(array, name)`` image and how many files were dropped;
    ``hint(text)`` while something that can be opened is dragged over (then "" again).
    """

    dropped = Signal(object, int)
    hint = Signal(str)

    def drag_enter(self, event: QDragEnterEvent) -> None:
        mime = event.mimeData()
        if (mime.hasUrls() and any(u.isLocalFile() for u in mime.urls())) or mime.hasImage():
            event.acceptProposedAction()
            self.hint.emit("Drop to open")
        else:
            event.ignore()

    def drop(self, event: QDropEvent) -> None:
        mime = event.mimeData()
        files = [u for u in mime.urls() if u.isLocalFile()] if mime.hasUrls() else []
        self.dropped.emit(mime_source(mime), len(files))
        event.acceptProposedAction()
        self.hint.emit("")
