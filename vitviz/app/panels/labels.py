"""The label box of image-text models (CLIP, SigLIP): the words the picture is compared with, typed by the user."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QComboBox, QFrame, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit, QPushButton,
                               QSizePolicy, QVBoxLayout)

from .common import WrappedLabel

__all__ = ["LabelBox", "PRESETS"]

DEFAULT_TEMPLATE = "a photo of a {}."  # vitviz.models.imagetext.DEFAULT_TEMPLATE (not imported: it loads torch)
EVERYDAY = "cat, dog, bird, car, person, house, tree, flower, food, text"
SHAPES = "sphere, cube, cylinder, cone, torus, pyramid, capsule, ring, tetrahedron, star prism"


def _imagenet() -> str:
    from ...models.zoo import imagenet_labels

    return "\n".join(imagenet_labels())


# name -> the labels it fills in (a function for long lists, made when chosen)
PRESETS: dict[str, object] = {
    "Everyday things": EVERYDAY,
    "Shapes": SHAPES,
    "Colours": "red, orange, yellow, green, blue, purple, pink, white, grey, black",
    "ImageNet-1k (1,000 names)": _imagenet,
}


class LabelBox(QFrame):
    """Labels (comma-separated or one per line), the prompt template and presets; ``asked(text, templates)`` when
    the user asks (the button or Ctrl+Return). What the model last accepted is shown again by :meth:`show_labels`."""

    asked = Signal(str, list)

    def __init__(self) -> None:
        super().__init__()
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 4, 0, 0)
        column.setSpacing(4)
        self.hint = WrappedLabel("Compare the picture with your own words: comma-separated, or one per line.")
        column.addWidget(self.hint)
        self.edit = QPlainTextEdit()
        self.edit.setPlaceholderText("a red ball, a blue cube, a teapot")
        self.edit.setTabChangesFocus(True)
        line = self.edit.fontMetrics().lineSpacing()
        self.edit.setFixedHeight(int(line * 3.4) + 10)
        self.edit.setToolTip("Labels to compare the picture with; Ctrl+Return asks")
        column.addWidget(self.edit)
        prompt_row = QHBoxLayout()
        prompt_row.setSpacing(6)
        prompt_row.addWidget(QLabel("Prompt"))
        row = QHBoxLayout()
        row.setSpacing(6)
        self.template = QLineEdit(DEFAULT_TEMPLATE)
        self.template.setToolTip("The sentence each label is put into, at {}; \"{}\" uses the label as typed. "
                                 "Several templates separated by | are averaged")
        self.template.returnPressed.connect(self.ask)
        self.presets = QComboBox()
        self.presets.addItem("Presets…")
        self.presets.addItems(list(PRESETS))
        self.presets.setToolTip("Fill in a ready-made list of labels")
        self.presets.activated.connect(self._on_preset)
        self.model_presets: dict[str, str] = {}  # the loaded model's own label lists, listed first
        self.known = WrappedLabel("")  # the words the model knows, when its tokenizer can tell
        self.known.hide()
        column.insertWidget(1, self.known)
        self.button = QPushButton("Ask")
        self.button.setDefault(False)
        self.button.setToolTip("Score the picture against these labels (no new pass of the image: Ctrl+Return)")
        self.button.clicked.connect(self.ask)
        prompt_row.addWidget(self.template, 1)
        column.addLayout(prompt_row)
        row.addWidget(self.presets, 1)
        row.addWidget(self.button)
        column.addLayout(row)
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            shortcut = QShortcut(QKeySequence(keys), self.edit)
            shortcut.setContext(Qt.ShortcutContext.WidgetShortcut)
            shortcut.activated.connect(self.ask)

    def templates(self) -> list[str]:
        return [t.strip() for t in self.template.text().split("|") if t.strip()] or [""]

    def ask(self) -> None:
        self.asked.emit(self.edit.toPlainText(), self.templates())

    def show_labels(self, labels: list[str], templates: list[str]) -> None:
        """What the model is asked about now (after a model load or an accepted list)."""
        joined = ", ".join(labels)
        text = joined if len(labels) <= 40 and "," not in "".join(labels) else "\n".join(labels)
        if self.edit.toPlainText() != text:
            self.edit.setPlainText(text)
        self.template.setText(" | ".join(templates))

    def set_model(self, presets: dict[str, str], vocabulary: list[str]) -> None:
        """The loaded model's own presets (listed first, marked with a star) and the words it knows (shown under
        the hint; an empty list hides the line: CLIP and SigLIP can spell any word)."""
        self.model_presets = {f"★ {name}": value for name, value in presets.items()}
        self.presets.clear()
        self.presets.addItem("Presets…")
        self.presets.addItems([*self.model_presets, *PRESETS])
        words = [w for w in vocabulary if w.isalpha()]
        self.known.setText(f"It knows only these words: {', '.join(words)}." if words else "")
        self.known.setVisible(bool(words))

    def _on_preset(self, index: int) -> None:
        if index <= 0:
            return
        name = self.presets.itemText(index)
        value = self.model_presets[name] if name in self.model_presets else PRESETS[name]
        self.edit.setPlainText(value() if callable(value) else str(value))
        self.presets.setCurrentIndex(0)
        self.ask()
