"""The Details panel: the loaded model's architecture and outputs, and where and how fast the image ran."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from ..state import ViewState
from ..widgets import Panel
from .common import MUTED, html, source_name

__all__ = ["DetailsPanel"]

DEPTH_KINDS = {"metric": "metric depth (m)", "relative_inverse": "relative inverse depth"}


class DetailsPanel(Panel):
    def __init__(self, state: ViewState) -> None:
        super().__init__("Details")
        self.state = state
        self.label = QLabel("")
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setWordWrap(True)
        self.label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.body.addWidget(self.label, 1)
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
        self.label.setText("<table cellspacing='0' cellpadding='2'>" + "".join(
            f"<tr><td style='color:{MUTED};padding-right:10px' valign='top'>{k}</td><td>{v}</td></tr>"
            for k, v in self.rows()
        ) + "</table>")
