"""The Details panel: the loaded model's architecture and outputs, and where and how fast the image ran."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy

from ..state import ViewState
from ..widgets import Panel, SteadyText
from .common import html, source_name

__all__ = ["DetailsPanel"]

DEPTH_KINDS = {"metric": "metric depth (m)", "relative_inverse": "relative inverse depth", "relative": "relative depth"}


class DetailsPanel(Panel):
    """A two-column table of name and value. Values are separate labels, and only changed ones are set again: in
    live mode, where the timings change every frame, one rich-text table re-laid out per frame cost ~9 ms."""

    def __init__(self, state: ViewState) -> None:
        super().__init__("Details")
        self.state = state
        self.grid = QGridLayout()
        self.grid.setHorizontalSpacing(10)
        self.grid.setVerticalSpacing(4)
        self.grid.setColumnStretch(1, 1)
        self.body.addLayout(self.grid)
        self.body.addStretch(1)
        self.cells: list[tuple[QLabel, QLabel]] = []  # (name, value) labels, one pair per row
        state.model_changed.connect(self.refresh)
        state.result_changed.connect(self.refresh)
        self.refresh()

    def rows(self) -> list[tuple[str, str]]:
        """(name, rich-text value) rows of the table."""
        rows: list[tuple[str, str]] = []
        m = self.state.model
        if m is None:
            rows.append(("Model", "<i>none loaded</i>"))
        else:
            rows.append(("Model", f"<b>{html(m.name)}</b>" + (f" — {html(m.description)}" if m.description else "")))
            rows.append(("Architecture", f"ViT, {m.layers} layers × {m.heads} heads, patch {m.patch_size} px, "
                                         f"trained at {m.image_size} px"))
            outputs = f"{m.num_classes} classes" if m.num_classes else "no classifier"
            if getattr(m, "scoring", ""):  # image-text: the labels typed in the Predictions panel
                rule = "each judged on its own" if m.scoring == "sigmoid" else "sharing 100 %"
                outputs = f"scores for {len(m.labels)} typed labels, {rule}"
            outputs += f", {DEPTH_KINDS.get(m.depth_kind or '', 'no depth')}"
            rows.append(("Outputs", outputs + (f" from {html(m.depth_model)}" if m.depth_model else "")))
            rows.append(("Device", html(m.device)))
            rows.append(("Model load", f"{m.load_ms:.0f} ms"))
        result = self.state.result
        if result is not None:
            ow, oh = result.grid.original_size
            h, w = result.image.shape[:2]
            t = result.timings
            stages = " · ".join(f"{k} {v:.0f}" for k, v in t.items() if k != "total")
            rows.append(("Image", html(source_name(result.source))))
            rows.append(("Size", f"{ow}×{oh} px → {w}×{h} px model input"))
            rows.append(("Ran on", html(result.device)))
            rows.append(("Timings", f"<b>{t.get('total', 0):.0f} ms</b> ({stages} ms)"))
        return rows

    def refresh(self, *_args) -> None:
        rows = self.rows()
        while len(self.cells) < len(rows):
            name, value = QLabel(), QLabel()
            name.setObjectName("Muted")
            name.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
            value.setTextFormat(Qt.TextFormat.RichText)
            value.setWordWrap(True)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            value.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            row = len(self.cells)
            self.grid.addWidget(name, row, 0)
            self.grid.addWidget(SteadyText(value), row, 1)
            self.cells.append((name, value))
        for i, (name, value) in enumerate(self.cells):
            shown = i < len(rows)
            name.setVisible(shown)
            value.parentWidget().setVisible(shown)
            if shown:
                name.setText(rows[i][0])  # QLabel ignores a text equal to the one it shows
                value.setText(rows[i][1])

    def value(self, name: str) -> str | None:
        """The (rich) text shown for row ``name``, or None when there is no such row."""
        for n, v in self.cells:
            if not n.isHidden() and n.text() == name:
                return v.text()
        return None

    def text(self) -> str:
        """Every shown row as ``name: value`` lines (the values' rich text as it is)."""
        return "\n".join(f"{n.text()}: {v.text()}" for n, v in self.cells if not n.isHidden())
