"""The View menu: layer navigation, back to CLS, patch grid, smoothing and normalisation, as actions (with their
keyboard shortcuts) bound to the :class:`~vitviz.app.state.ViewState`; check marks follow the state."""

from __future__ import annotations

from typing import Callable

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMenu, QWidget

from .state import ViewState

__all__ = ["ViewMenu", "make_action"]


def make_action(owner: QWidget, text: str, slot: Callable, shortcut=None, tip: str = "",
                checkable: bool = False) -> QAction:
    """An action of ``owner`` (so its shortcut works anywhere in the window) that calls ``slot``."""
    a = QAction(text, owner)
    if shortcut is not None:
        a.setShortcuts(shortcut if isinstance(shortcut, list) else [QKeySequence(shortcut)])
    if tip:
        a.setStatusTip(tip)
        a.setToolTip(tip)
    a.setCheckable(checkable)
    a.triggered.connect(slot)
    owner.addAction(a)
    return a


class ViewMenu(QMenu):
    def __init__(self, state: ViewState, owner: QWidget) -> None:
        super().__init__("&View", owner)
        self.state = state

        def act(*args, **kwargs) -> QAction:
            return make_action(owner, *args, **kwargs)

        for a in (
            act("&Previous layer", lambda: state.step_layer(-1), [QKeySequence(k) for k in ("Left", "Down", "PgDown")],
                "Show the previous layer"),
            act("&Next layer", lambda: state.step_layer(1), [QKeySequence(k) for k in ("Right", "Up", "PgUp")],
                "Show the next layer"),
            act("&First layer", lambda: state.set_layer(0), "Home"),
            act("&Last layer", lambda: state.set_layer(-1), "End"),
            None,
            act("Back to &CLS attention", lambda: state.set_query(None), "Escape",
                "Show the CLS token's attention again instead of a patch query"),
            None,
        ):
            self.addAction(a) if a else self.addSeparator()
        self.grid = act("Show patch &grid", state.set_grid, "G", "Draw the model's patch grid", checkable=True)
        self.smooth = act("&Smooth attention maps", state.set_smooth, None,
                          "Interpolate attention between patch centres (off: one flat block per patch)",
                          checkable=True)
        self.norm_head = act("Normalise per &head", lambda: state.set_normalisation("head"), None,
                             "Scale every head's map to its own range", checkable=True)
        self.norm_layer = act("Normalise per &layer", lambda: state.set_normalisation("layer"), None,
                              "One colour scale for all heads of the layer (compare heads)", checkable=True)
        group = QActionGroup(self)
        for a in (self.norm_head, self.norm_layer):
            group.addAction(a)
        for a in (self.grid, self.smooth, None, self.norm_head, self.norm_layer):
            self.addAction(a) if a else self.addSeparator()
        self._sync()
        state.grid_changed.connect(self._sync)
        state.attention_style_changed.connect(self._sync)

    def _sync(self, *_args) -> None:
        s = self.state
        for a, checked in ((self.grid, s.grid), (self.smooth, s.smooth), (self.norm_head, s.normalisation == "head"),
                           (self.norm_layer, s.normalisation == "layer")):
            a.blockSignals(True)
            a.setChecked(checked)
            a.blockSignals(False)
