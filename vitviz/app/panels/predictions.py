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
        self.body.addWidget(self.chart, 1)
        self._clear()
        state.result_changed.connect(self._on_result)

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
        top = result.predictions[0]
        self.set_title(
            f"Prediction: <span style='color:#1f6feb'>{html(top.label)}</span> "
            f"<span style='font-weight:400'>{format_percent(top.probability)}</span>"
            + muted(f" · top {len(result.predictions)} of {len(result.labels)} classes")
        )
