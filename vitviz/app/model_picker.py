"""Choosing the model, the extra depth model and the device: the toolbar's combo boxes and the Model menu.

The entries are the shipped checkpoints, the pretrained zoo (once the worker has listed it) and the checkpoints the
user opened. A choice is announced by a signal; what is checked follows the session's loaded model and device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QComboBox, QMenu, QWidget

from . import dialogs, paths
from .panels.common import set_combo_text
from .session import Session

__all__ = ["ModelPicker"]

OPEN_CHECKPOINT = "__open_checkpoint__"


class ModelPicker(QObject):
    """Signals: ``model_chosen(spec)``, ``device_chosen(device)``, ``depth_model_chosen(spec or "")``,
    ``open_checkpoint()`` (the user asked for a file dialog). A pretrained model that is not downloaded yet is chosen
    only once the user agreed to download it (its size and licence are shown first)."""

    model_chosen = Signal(str)
    device_chosen = Signal(str)
    depth_model_chosen = Signal(str)
    open_checkpoint = Signal()

    def __init__(self, session: Session, checkpoint_action: QAction, parent: QWidget) -> None:
        super().__init__(parent)
        self.session = session
        self.checkpoint_action = checkpoint_action
        self.zoo: list[tuple[str, str, str]] = []  # (name, summary, task) of the pretrained models
        self.custom: list[str] = []  # checkpoints opened from disk
        self.names: dict[str, str] = {}  # checkpoint path -> model name, once loaded
        self.devices = ["auto", "cpu"]
        self.parent_widget = parent
        self.model_combo = QComboBox(parent)
        self.model_combo.setMinimumContentsLength(18)
        self.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_combo.setToolTip("Model to run: shipped models, pretrained models, or a checkpoint on disk")
        self.model_combo.activated.connect(self._on_model_combo)
        self.device_combo = QComboBox(parent)
        self.device_combo.setToolTip("Where the model runs: auto picks a GPU when there is one")
        self.device_combo.activated.connect(lambda i: self.device_chosen.emit(self.device_combo.itemText(i)))
        self.menu = QMenu("&Model", parent)
        self.menu.aboutToShow.connect(self.fill_menu)
        self.refresh()

    # ---------------------------------------------------------------------------------------------- entries

    def entries(self) -> list[tuple[str, str, str]]:
        """(label, spec, tooltip) of every model to choose from."""
        entries = [(m.name, str(m.config), m.description or str(m.config)) for m in paths.shipped_models()]
        entries += [(f"{name}  (pretrained)", name, summary or name) for name, summary, _task in self.zoo]
        known = {spec for _, spec, _ in entries}
        entries += [(self.names.get(spec) or Path(spec).name, spec, spec) for spec in self.custom if spec not in known]
        return entries

    def depth_entries(self) -> list[tuple[str, str, str]]:
        """(label, spec, tooltip) of the depth models that can complete a classifier without a depth head."""
        current = self.session.depth_model
        entries = [("None (the model's own depth head, if any)", "", "Depth only from the main model")]
        entries += [(m.name, str(m.config), m.description or str(m.config))
                    for m in paths.shipped_models() if m.has_depth]
        entries += [(f"{name}  (pretrained)", name, summary) for name, summary, task in self.zoo if task == "depth"]
        if current and current not in [spec for _, spec, _ in entries]:
            entries.append((Path(current).name, current, current))
        return entries

    @staticmethod
    def canonical(spec: str) -> str:
        """A shipped model's name becomes its config path, so that each model has one entry."""
        return next((str(m.config) for m in paths.shipped_models() if m.name == spec), spec)

    def remember(self, spec: str, name: str) -> None:
        """A model was loaded: name it, list it if it is a checkpoint from disk, and check it."""
        self.names[spec] = name
        if spec not in [s for _, s, _ in self.entries()]:
            self.custom.append(spec)
        self.refresh()

    def set_environment(self, info: dict) -> None:
        """The worker's report: available devices and the pretrained models."""
        self.devices = list(info.get("devices") or ["auto", "cpu"])
        self.zoo = list(info.get("zoo") or [])
        self.refresh()

    # ---------------------------------------------------------------------------------------------- widgets

    def refresh(self) -> None:
        """Refill the combo boxes; check the loaded model and the session's device."""
        combo, spec = self.model_combo, self.session.model_spec
        combo.blockSignals(True)
        combo.clear()
        for label, entry_spec, tip in self.entries():
            combo.addItem(label, entry_spec)
            combo.setItemData(combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        current = combo.findData(spec) if spec else -1
        if current < 0:
            combo.insertItem(0, "— no model —", None)
            current = 0
        combo.insertSeparator(combo.count())
        combo.addItem("Open model file…", OPEN_CHECKPOINT)
        combo.setCurrentIndex(current)
        combo.blockSignals(False)
        device = self.session.device
        self.device_combo.blockSignals(True)
        self.device_combo.clear()
        self.device_combo.addItems(self.devices + ([] if device in self.devices else [device]))
        self.device_combo.blockSignals(False)
        set_combo_text(self.device_combo, device)

    def fill_menu(self) -> None:
        menu, session = self.menu, self.session
        menu.clear()
        _radio_items(menu, self.entries(), session.model_spec, self.choose_model)
        if not self.entries():
            menu.addAction(f"No shipped model in {paths.weights_dir()}").setEnabled(False)
        menu.addSeparator()
        menu.addAction(self.checkpoint_action)
        depth_menu = menu.addMenu("Extra &depth model")
        depth_menu.setToolTipsVisible(True)
        _radio_items(depth_menu, self.depth_entries(), session.depth_model or "",
                     lambda spec: self.confirm_download(spec) and self.depth_model_chosen.emit(spec))
        _radio_items(menu.addMenu("Device"), [(d, d, "") for d in self.devices], session.device,
                     self.device_chosen.emit)

    def _on_model_combo(self, index: int) -> None:
        spec = self.model_combo.itemData(index)
        if spec == OPEN_CHECKPOINT:
            self.refresh()
            self.open_checkpoint.emit()
        elif spec and spec != self.session.model_spec:
            self.choose_model(spec)
        self.refresh()  # until the new model is loaded, the loaded one stays checked

    def choose_model(self, spec: str) -> None:
        if self.confirm_download(spec):
            self.model_chosen.emit(spec)

    def confirm_download(self, spec: str) -> bool:
        """True when ``spec`` needs no download, or the user agreed to download it (size and licence shown)."""
        from ..models import zoo  # torch is loaded by now: pretrained models are listed only once it is

        if not (spec in zoo.REGISTRY or spec.startswith(zoo.HF_PREFIX)):
            return True
        info = zoo.download_info(spec, network=False)
        return info.cached or dialogs.confirm_download(self.parent_widget, spec, info.describe())


def _radio_items(menu: QMenu, entries: list[tuple[str, str, str]], current: Any, choose: Callable[[str], Any]) -> None:
    """One checkable action per (label, value, tooltip) entry, ``current`` checked; choosing calls ``choose(value)``."""
    group = QActionGroup(menu)
    for label, value, tip in entries:
        a = menu.addAction(label)
        a.setCheckable(True)
        a.setChecked(value == current)
        a.setToolTip(tip)
        a.triggered.connect(lambda _=False, v=value: choose(v))
        group.addAction(a)
