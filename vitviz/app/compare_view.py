"""The two-up comparison view: model A beside model B for the same image, each side drawn by the usual panels from its
own :class:`~vitviz.app.state.ViewState`, plus the disagreement of their depth maps. A's predictions stay where they
are, in the window's left column, beside B's column.

It takes the middle and right columns of the window while comparison is on (:mod:`vitviz.app.compare_mode` swaps it
in and out); it only draws, and changes the view only through the two states.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ..compare import DepthAlignment, align_depth
from ..render import apply_colormap, colormap_lut, normalize
from .panels import AttentionPanel, DepthPanel, EvidencePanel, FeaturesPanel, PredictionsPanel
from .panels.common import html, muted
from .state import ViewState
from .widgets import ColorBar, ImageCanvas, Panel, SteadyText, add_view, splitter, view_tabs

__all__ = ["CompareView", "SideHeader", "DisagreementPanel"]

DIFFERENCE_CMAP = "magma"


class SideHeader(QLabel):
    """One line over a side: "A · vitviz-mini · layer 5 of 0–5", and below it the side's error, if any."""

    def __init__(self, tag: str, state: ViewState) -> None:
        super().__init__()
        self.tag, self.state = tag, state
        self.error: str | None = None
        self.loading: str | None = None
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setWordWrap(True)
        self.setObjectName("CompareHeader")
        self.setStyleSheet("QLabel#CompareHeader { font-size: 14px; padding: 4px 8px; background: #eef2f8;"
                           " border-radius: 6px; }")
        for signal in (state.model_changed, state.result_changed, state.layer_changed):
            signal.connect(self.refresh)
        self.refresh()

    def show_error(self, message: str | None) -> None:
        self.error = message
        self.refresh()

    def set_loading(self, spec: str | None) -> None:
        self.loading = spec
        self.refresh()

    def refresh(self, *_args) -> None:
        state = self.state
        result, model = state.result, state.model
        name = result.model_name if result is not None else model.name if model is not None else "—"
        text = f"<b>{self.tag}</b> · {html(name)}"
        if self.loading:
            text += muted(f" · loading {html(self.loading)}…")
        if result is not None and result.num_layers:
            text += muted(f" · layer {state.layer} of 0–{result.num_layers - 1}")
        if self.error:
            text += f"<br><span style='color:#b42318'>{html(self.error)}</span>"
        self.setText(text)

    def plain_text(self) -> str:
        import re

        return re.sub(r"<[^>]+>", " ", self.text()).replace("&amp;", "&")


class DisagreementPanel(Panel):
    """Where the two depth maps disagree: ``|A − aligned B|`` (:func:`vitviz.compare.align_depth`) with a colour bar
    in the unit of the alignment, and the scale, shift, AbsRel and δ<1.25 below."""

    def __init__(self, state_a: ViewState, state_b: ViewState) -> None:
        super().__init__("Depth disagreement")
        self.state_a, self.state_b = state_a, state_b
        self.alignment: DepthAlignment | None = None
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        self.canvas = ImageCanvas(placeholder="When both models give depth, where they disagree appears here.")
        self.canvas.set_opaque()
        self.bar = ColorBar(Qt.Orientation.Vertical)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.bar)
        self.canvas.geometry_changed.connect(
            lambda r: self.bar.set_span(r.top(), r.bottom()) if r.height() else self.bar.set_span(None))
        self.body.addWidget(row, 1)
        self.info = QLabel("")
        self.info.setObjectName("Muted")
        self.info.setWordWrap(True)
        self.body.addWidget(SteadyText(self.info))
        state_a.result_changed.connect(self.refresh)
        state_b.result_changed.connect(self.refresh)

    def refresh(self, *_args) -> None:
        a, b = self.state_a.result, self.state_b.result
        self.alignment = None
        if a is None or b is None or a.depth is None or b.depth is None or a.source != b.source:
            self.canvas.set_image(None)
            self.bar.set_scale(None, None, None)
            self.set_title("Depth disagreement")
            self.info.setText("" if a is None or b is None or a.source != b.source
                              else "Needs depth from both models.")
            return
        d = self.alignment = align_depth(a.depth, a.depth_kind, b.depth, b.depth_kind)
        top = float(np.nanmax(d.difference)) or 1e-12
        self.canvas.set_image(apply_colormap(normalize(d.difference), DIFFERENCE_CMAP))
        self.bar.set_scale(colormap_lut(DIFFERENCE_CMAP), 0.0, top, "m" if d.space == "depth" else "")
        self.set_title(f"Depth disagreement {muted('· |A − B aligned to A|, ' + d.unit)}")
        stats = []
        if d.absrel is not None:
            stats.append(f"AbsRel {d.absrel:.3g}")
        if d.delta1 is not None:
            stats.append(f"δ<1.25 {d.delta1:.1%}")
        self.info.setText(f"B aligned in {d.space}: ×{d.scale:.3g} {'+' if d.shift >= 0 else '−'} "
                          f"{abs(d.shift):.3g} · " + " · ".join(stats))


class _Side(QWidget):
    """One model's column: its header, its attention (and features) above; below, its depth beside ``beside`` (A:
    the disagreement) or its predictions beside its depth (B; A's predictions are the window's, left).

    Without ``panels`` the side builds its own; A's side borrows the window's panels while comparing
    (:meth:`hold`), so that A is drawn once, by the panels the window already has."""

    def __init__(self, tag: str, state: ViewState, beside: QWidget | None = None, own: bool = True) -> None:
        super().__init__()
        self.state = state
        self.header = SideHeader(tag, state)
        self.top_views = view_tabs()
        self.predictions = PredictionsPanel(state) if beside is None else None
        self.bottom = splitter(Qt.Orientation.Horizontal, [self.predictions or beside], [270])
        self.bottom.setChildrenCollapsible(False)
        self.attention: AttentionPanel | None = None
        self.features: FeaturesPanel | None = None
        self.depth: DepthPanel | None = None
        self.evidence: EvidencePanel | None = None
        if own:
            self.hold(AttentionPanel(state), FeaturesPanel(state), DepthPanel(state), EvidencePanel(state))
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(4)
        column.addWidget(self.header)
        column.addWidget(splitter(Qt.Orientation.Vertical, [self.top_views, self.bottom], [560, 330]), 1)

    def hold(self, attention: AttentionPanel, features: FeaturesPanel, depth: DepthPanel,
             evidence: EvidencePanel) -> None:
        """Show these panels on this side (taken from wherever they were)."""
        self.attention, self.features, self.depth, self.evidence = attention, features, depth, evidence
        add_view(self.top_views, attention, "Attention heads")
        add_view(self.top_views, features, "Features")
        add_view(self.top_views, evidence, "Class evidence")
        self.top_views.setCurrentIndex(0)
        self.bottom.insertWidget(0 if self.predictions is None else 1, depth)
        self.bottom.setSizes([270, 270])

    def release(self) -> None:
        """Let go of the held panels (their owner puts them back where they belong)."""
        self.top_views.clear()  # removes the tabs, not the panels
        self.attention = self.features = self.depth = self.evidence = None


class CompareView(QWidget):
    """A beside B. ``side_a`` and ``side_b`` hold each side's panels (``attention``, ``features``, ``depth``; B's
    ``predictions``) and ``header``; ``disagreement`` is beside A's depth. A's side shows the window's own panels
    while comparing (:meth:`_Side.hold`)."""

    def __init__(self, state_a: ViewState, state_b: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.disagreement = DisagreementPanel(state_a, state_b)
        self.side_a = _Side("A", state_a, self.disagreement, own=False)
        self.side_b = _Side("B", state_b)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter(Qt.Orientation.Horizontal, [self.side_a, self.side_b], [550, 550]))
