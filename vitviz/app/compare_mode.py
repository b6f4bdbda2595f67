"""Comparison mode: a second model (B) analyses every image the window analyses (A), and the middle and right columns
show both, A beside B (:class:`~vitviz.app.compare_view.CompareView`).

B has its own :class:`~vitviz.app.session.Session` whose worker runs on the window's worker thread, after A's
analysis of the same image, and its own :class:`~vitviz.app.state.ViewState`; A's side is the window's own state,
and its attention, features and depth panels move there while comparing (A is drawn once). B's layer follows A's by relative depth
(:func:`vitviz.compare.match_layer`) and the view settings are shared. A newer image supersedes both analyses; an
error of one side shows on that side. Leaving restores the window's columns as they were. The choice of B persists
in the settings (``compare/model``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QMenu

from ..compare import match_layer
from . import dialogs
from .compare_view import CompareView
from .presentation.compare import PresentationCompare
from .session import Session
from .state import ViewState
from .view_menu import make_action

__all__ = ["CompareMode", "SETTINGS_KEY", "matched_layer", "layer_for_b"]

SETTINGS_KEY = "compare/model"
STYLE = ("cmap", "depth_cmap", "opacity", "normalisation", "grid", "smooth", "threshold")


def matched_layer(state_a: ViewState, state_b: ViewState) -> int | None:
    """B's layer for A's current layer, or None while either side has no attention."""
    a, b = state_a.result, state_b.result
    if a is None or b is None or not a.num_layers or not b.num_layers:
        return None
    return match_layer(min(state_a.layer, a.num_layers - 1), a.num_layers, b.num_layers)


def layer_for_b(layer_b: int, layers_a: int, layers_b: int) -> int:
    """The layer of A whose match is nearest B's ``layer_b`` (the lowest on a tie): moving B's slider moves A's."""
    return min(range(layers_a), key=lambda la: (abs(match_layer(la, layers_a, layers_b) - layer_b), la))


class CompareMode(QObject):
    """View → Compare with…: ``start(spec)`` compares the window's model with ``spec``, ``stop()`` leaves.

    Signals: ``changed(active)`` (entered or left), ``b_shown(result)`` (a B result is displayed), ``b_failed(message)``.
    """

    changed = Signal(bool)
    b_shown = Signal(object)
    b_failed = Signal(str)

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.active = False
        self.spec: str | None = None  # B's model, as asked for
        state = window.state
        style = {name: getattr(state, name) for name in STYLE if name != "threshold"}
        self.state_a = state  # A's side is the window's own state and panels (borrowed while comparing)
        self.state_b = ViewState(self, **style)  # fed by B's session
        self._borrowed: list[tuple[Any, Any, int, str]] = []  # (tabs, panel, index, title) to give back
        self._current_tabs: list[tuple[Any, int]] = []
        self.session_b = Session(self, thread=window.session.thread)
        self.view: CompareView | None = None  # built on first use
        self._saved_sizes: list[int] | None = None
        self.presentation = PresentationCompare(window.presentation, self.state_b)
        self._connect()
        self.menu = QMenu("&Compare with", window)
        self.menu.setToolTipsVisible(True)
        self.menu.aboutToShow.connect(self.fill_menu)
        self.act_toggle = make_action(window, "Co&mpare two models", self.toggle, "Ctrl+Shift+C",
                                      "Show a second model beside this one (the last one compared), or stop comparing")
        self.act_stop = QAction("Stop comparing", window)
        self.act_stop.triggered.connect(self.stop)
        self.act_stop.setEnabled(False)
        self.fill_menu()

    @property
    def remembered(self) -> str | None:
        """B's model of the last comparison (kept in the settings), or None."""
        value = self.window.settings.value(SETTINGS_KEY)
        return str(value) if value else None

    # ---------------------------------------------------------------------------------------------- wiring

    def _connect(self) -> None:
        w, a, b, sb = self.window, self.window.state, self.state_b, self.session_b
        w.session.analysis_requested.connect(self._on_a_requested)
        w.session.failed.connect(self._on_a_failed)
        a.result_changed.connect(self._on_a_result)
        a.layer_changed.connect(lambda _layer: self.active and self._follow_layer())
        b.layer_changed.connect(self._on_b_layer)
        for one, other in ((a, b), (b, a)):  # the view settings are the same on both sides
            for signal in (one.attention_style_changed, one.depth_style_changed, one.grid_changed):
                signal.connect(lambda *_, x=one, y=other: self.active and _copy_style(x, y))
        b.query_requested.connect(sb.query)
        sb.query_ready.connect(b.query_ready)
        b.evidence_requested.connect(sb.explain)  # B's class evidence, on B's worker
        sb.evidence_ready.connect(b.add_evidence)
        b.map_requested.connect(sb.evidence_map)
        sb.map_ready.connect(b.map_ready)
        sb.labels_ready.connect(self._on_b_labels)  # B's own typed labels (image-text models)
        for state, side in ((a, "side_a"), (b, "side_b")):  # a clicked bar shows that side's evidence
            state.target_changed.connect(lambda _t, name=side: self._show_evidence(name))
        b.status.connect(w.hover_label.setText)
        b.model_requested.connect(lambda spec: w.picker.confirm_download(spec) and self.start(spec))
        sb.model_ready.connect(self._on_b_model)
        sb.analysis_ready.connect(self._on_b_result)
        sb.failed.connect(self._on_b_failed)

    def _on_a_requested(self, source: Any, ablate: Any) -> None:
        if self.active and not ablate and self.session_b.model_spec is not None:
            self.session_b.analyze(source)  # queued after A's analysis on the same thread; supersedes B's older one

    def _on_a_failed(self, kind: str, message: str) -> None:
        if self.active and self.view is not None and kind in ("image", "model"):
            self.view.side_a.header.show_error(message)

    def _on_a_result(self, shown: Any) -> None:
        if not self.active:
            return
        assert self.view is not None
        if shown is not None:
            self.view.side_a.header.show_error(None)
        self._follow_layer()

    def _show_evidence(self, side_name: str) -> None:
        if self.active and self.view is not None:
            side = getattr(self.view, side_name)
            if side.evidence is not None:
                side.top_views.setCurrentWidget(side.evidence)

    def _ask_b(self, text: str, templates: list) -> None:
        self.session_b.set_labels(self.state_b.shown, text, templates)

    def _on_b_labels(self, shown: Any, info: Any) -> None:
        """B accepted new labels: its shown analysis re-scored (the same rule as the window's label box)."""
        old, notices, labels, templates = info
        if self.state_b.accept_labels(shown, old, labels, templates):  # a newer image came meanwhile: score it too
            self.session_b.set_labels(self.state_b.shown, "\n".join(labels), list(templates))
        self._follow_layer()
        if notices and self.view is not None:
            self.view.side_b.header.show_error("Labels: " + "; ".join(notices))

    def _on_b_model(self, summary: Any) -> None:
        self.state_b.set_model(summary)
        if self.view is not None:
            self.view.side_b.header.set_loading(None)
            self.view.side_b.header.show_error(None)

    def _on_b_result(self, shown: Any) -> None:
        self.state_b.show(shown)
        self._follow_layer()
        if self.view is not None:
            self.view.side_b.header.show_error(None)
        self.b_shown.emit(shown.result)

    def _on_b_failed(self, kind: str, message: str) -> None:
        if self.view is not None:
            self.view.side_b.header.set_loading(None)
            self.view.side_b.header.show_error(message)
        self.b_failed.emit(message)

    def _follow_layer(self) -> None:
        layer = matched_layer(self.state_a, self.state_b)
        if layer is not None:
            self.state_b.set_layer(layer)

    def _on_b_layer(self, layer_b: int) -> None:
        """B's slider (or a B-side key) moved: A goes to the layer that matches it best, and B snaps to that match."""
        a, b = self.state_a.result, self.state_b.result
        if a is None or b is None or not a.num_layers or matched_layer(self.state_a, self.state_b) == layer_b:
            return
        self.state_a.set_layer(layer_for_b(layer_b, a.num_layers, b.num_layers))
        self._follow_layer()

    # ---------------------------------------------------------------------------------------------- entering

    def start(self, spec: str) -> None:
        """Compare with ``spec`` (a shipped name, pretrained name, ``hf:`` name or checkpoint path): B is loaded and
        analyses the window's image; the columns show A beside B."""
        spec = self.window.picker.canonical(str(spec))
        self.spec = spec
        self.window.settings.setValue(SETTINGS_KEY, spec)
        self._enter()
        assert self.view is not None
        self.view.side_b.header.show_error(None)
        self.view.side_b.header.set_loading(Path(spec).name if Path(spec).suffix else spec)
        self.session_b.load_model(spec, self.window.session.device)
        source = self.window.session.requested_source
        if source is None:
            source = self.window.session.current_source
        if source is not None:
            self.session_b.analyze(source)

    def _enter(self) -> None:
        w = self.window
        if self.view is None:
            self.view = CompareView(self.state_a, self.state_b)
            assert self.view.side_b.predictions is not None
            self.view.side_b.predictions.labels_requested.connect(self._ask_b)
        if self.active:
            return
        self.active = True
        self._borrow()
        self._saved_sizes = w.splitter.sizes()
        center, right = w.splitter.widget(1), w.splitter.widget(2)
        center.hide()
        right.hide()
        w.splitter.addWidget(self.view)  # in the splitter only while comparing: leaving gives back its 3 columns
        self.view.show()
        left = self._saved_sizes[0]
        w.splitter.setSizes([left, 0, 0, max(400, sum(self._saved_sizes) - left)])
        _copy_style(w.state, self.state_b)
        self.view.side_a.header.refresh()
        self.view.disagreement.refresh()
        self._follow_layer()
        self.act_stop.setEnabled(True)
        self.presentation.set_active(True)
        self.changed.emit(True)

    def _borrow(self) -> None:
        """Move the window's attention, features and depth panels onto A's side (remembering their tabs)."""
        w = self.window
        self._current_tabs = [(tabs, tabs.currentIndex()) for tabs in (w.center_views, w.side_views)]
        self._borrowed = []
        for tabs, panel in ((w.center_views, w.attention_panel), (w.center_views, w.features_panel),
                            (w.side_views, w.depth_panel), (w.side_views, w.evidence_panel)):
            index = tabs.indexOf(panel)
            self._borrowed.append((tabs, panel, index, tabs.tabText(index)))
        for tabs, panel, _index, _title in self._borrowed:
            tabs.removeTab(tabs.indexOf(panel))
        assert self.view is not None
        self.view.side_a.hold(w.attention_panel, w.features_panel, w.depth_panel, w.evidence_panel)

    def _give_back(self) -> None:
        """The borrowed panels back into their tabs, at their places, with the tabs that were current."""
        assert self.view is not None
        self.view.side_a.release()
        for tabs, panel, index, title in sorted(self._borrowed, key=lambda b: b[2]):
            tabs.insertTab(index, panel, title)
            panel.show()
        for tabs, current in self._current_tabs:
            tabs.setCurrentIndex(current)
        self._borrowed, self._current_tabs = [], []

    def stop(self) -> None:
        """Leave comparison: the window's columns come back as they were (B's model stays loaded for a return)."""
        if not self.active:
            return
        w = self.window
        self.active = False
        self.session_b.supersede_analysis()
        assert self.view is not None
        self.view.hide()
        self.view.setParent(None)  # out of the splitter (kept for a return)
        self._give_back()
        w.splitter.widget(1).show()
        w.splitter.widget(2).show()
        if self._saved_sizes is not None:
            w.splitter.refresh()  # the handles of the columns shown again count before the sizes are set
            w.splitter.setSizes(self._saved_sizes)
        self.act_stop.setEnabled(False)
        self.presentation.set_active(False)
        self.changed.emit(False)

    def shutdown(self) -> None:
        """The window closes: B's worker stops at its next stage (the window's session stops the thread)."""
        self.session_b.shutdown()

    # ---------------------------------------------------------------------------------------------- menu

    def fill_menu(self) -> None:
        """Every model of the Model menu (the current or remembered B checked), a checkpoint, and Stop comparing."""
        menu, current = self.menu, self.spec if self.active else None
        menu.clear()
        remembered = self.remembered
        group = QActionGroup(menu)
        entries = list(self.window.picker.entries())
        if remembered and remembered not in [spec for _, spec, _ in entries]:
            entries.append((Path(remembered).name or remembered, remembered, remembered))
        for label, spec, tip in entries:
            action = menu.addAction(label)
            action.setCheckable(True)
            action.setChecked(spec == current)
            action.setToolTip(tip + (" (last compared)" if spec == remembered else ""))
            action.triggered.connect(lambda _=False, s=spec: self.choose(s))
            group.addAction(action)
        menu.addSeparator()
        menu.addAction("Checkpoint…", self._choose_checkpoint)
        menu.addAction(self.act_stop)

    def choose(self, spec: str) -> None:
        """A menu choice: asks before a download, as the Model menu does."""
        if self.window.picker.confirm_download(spec):
            self.start(spec)

    def _choose_checkpoint(self) -> None:
        if path := dialogs.ask_checkpoint(self.window, self.window.settings):
            self.start(path)

    def toggle(self) -> None:
        """Compare with the remembered model, or stop comparing."""
        if self.active:
            self.stop()
        elif self.remembered:
            self.choose(self.remembered)
        else:
            self.menu.popup(self.window.mapToGlobal(self.window.rect().center()))


def _copy_style(source: ViewState, target: ViewState) -> None:
    """The view settings of ``source`` onto ``target`` (through its setters: each signals only a real change)."""
    target.set_colormap(source.cmap)
    target.set_depth_colormap(source.depth_cmap)
    target.set_opacity(source.opacity)
    target.set_normalisation(source.normalisation)
    target.set_smooth(source.smooth)
    target.set_grid(source.grid)
    target.set_threshold(source.threshold)
