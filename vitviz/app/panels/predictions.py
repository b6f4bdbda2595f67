"""The Predictions panel: the top-k classes as a bar chart, the best one in the title."""

from __future__ import annotations

from ..state import ViewState
from ..widgets import Panel, PredictionChart, format_percent
from .common import html, muted

__all__ = ["PredictionsPanel"]


class PredictionsPanel(Panel):
    def __init__(self, state: ViewState) -> None:
        super().__init__("Predictions")
        self.state = state
        self.chart = PredictionChart()
        self.chart.setToolTip("Click a class to see the evidence for it")
        self.chart.bar_clicked.connect(self._on_bar)
        self.body.addWidget(self.chart, 1)
        self._clear()
        state.result_changed.connect(self._on_result)
        state.target_changed.connect(lambda _t: self._mark_target())

    def _on_bar(self, row: int) -> None:
        result = self.state.result
        if result is not None and row < len(result.predictions):
            self.state.set_target(result.predictions[row].index)

    def _mark_target(self) -> None:
        """Outline the bar of the class whose evidence is chosen (none while it is the top prediction by default)."""
        result, target = self.state.result, self.state.target
        rows = [i for i, p in enumerate(result.predictions) if p.index == target] if result is not None else []
        self.chart.set_selected(rows[0] if rows else None)

    def _clear(self) -> None:
        self.chart.show_placeholder("Class predictions appear here.")
        self.set_title("Predictions")

    def _on_result(self, shown) -> None:
        if shown is None:
            self._clear()
            return
        result = shown.result
        if not result.predictions:
            self.chart.show_placeholder("This model has no classification head.")
            self.set_title("Predictions")
            return
        self.chart.set_predictions([(p.label, p.probability) for p in result.predictions])
        self._mark_target()
        top = result.predictions[0]
        self.set_title(
            f"Prediction: <span style='color:#1f6feb'>{html(top.label)}</span> "
            f"<span style='font-weight:400'>{format_percent(top.probability)}</span>"
            + muted(f" · top {len(result.predictions)} of {len(result.labels)} classes")
        )
