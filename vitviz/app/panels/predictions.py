"""The Predictions panel: the top-k classes as a bar chart, the best one in the title."""

from __future__ import annotations

import threading

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QPushButton, QSizePolicy, QVBoxLayout

from ..state import ViewState
from ..widgets import Panel, PredictionChart, format_percent
from .common import WrappedLabel, html, muted
from .labels import LabelBox

PHOTO_MODEL = "deit-small"  # what the out-of-domain note offers instead

__all__ = ["PredictionsPanel"]


class PredictionsPanel(Panel):
    _photo_model_cost = Signal(str)  # from a helper thread: what choosing the photo model costs
    labels_requested = Signal(str, list)  # image-text models: (labels as typed, prompt templates)

    def __init__(self, state: ViewState) -> None:
        super().__init__("Predictions")
        self.state = state
        self._cost: str | None = None  # "downloaded" / "88 MB" (to download), once looked up
        self._looking_up = False
        self._photo_model_cost.connect(self._on_cost)
        state.model_changed.connect(self._forget_cost)  # e.g. the photo model has just been downloaded
        self.note = QFrame()  # shown when the model says the image is unlike anything it was trained on
        self.note.setStyleSheet("QFrame { background: #fff4e5; border: 1px solid #f7d9a8; border-radius: 6px; }"
                                "QLabel { color: #6b4100; background: transparent; border: none; }")
        # the text above its button, each the panel's full width: beside the button, the text of a narrow panel
        # (1280 px windows) was squeezed to a few words a line and cut off
        self.note.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)  # as tall as its text and button
        column = QVBoxLayout(self.note)
        self.note_text = WrappedLabel()
        self.note_button = QPushButton("Use DeiT-S for photos")
        self.note_button.setToolTip("A model trained on real photos (ImageNet): it names 1,000 kinds of things; the "
                                    "size in brackets is its download, once")
        self.note_button.clicked.connect(lambda: state.model_requested.emit(PHOTO_MODEL))
        column.addWidget(self.note_text)
        column.addWidget(self.note_button, 0, Qt.AlignmentFlag.AlignRight)
        self.note.hide()
        self.body.addWidget(self.note)
        self.chart = PredictionChart()
        self.chart.setToolTip("Click a class to see the evidence for it")
        self.chart.bar_clicked.connect(self._on_bar)
        self.body.addWidget(self.chart, 1)
        self.labels = LabelBox()  # image-text models only
        self.labels.asked.connect(self.labels_requested)
        self.labels.hide()
        self.body.addWidget(self.labels)
        state.model_changed.connect(self._on_model)
        self._clear()
        state.result_changed.connect(self._on_result)
        state.target_changed.connect(lambda _t: self._mark_target())

    def _on_model(self, summary) -> None:
        """The label box shows for image-text models, with the labels they are asked about."""
        text = bool(getattr(summary, "scoring", ""))
        self.labels.setVisible(text)
        if text:
            self.labels.set_model(dict(getattr(summary, "presets", {}) or {}),
                                  list(getattr(summary, "vocabulary", []) or []))
            self.labels.show_labels(list(summary.labels), list(summary.templates))

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
        self._show_note(shown.result if shown is not None else None)
        if shown is None:
            self._clear()
            return
        result = shown.result
        if not result.predictions:
            self.chart.show_placeholder("This model has no classification head.")
            self.set_title("Predictions")
            return
        original = self.state.original.result if self.state.original is not None and result.ablated else None
        if original is not None and original.labels != result.labels:
            original = None  # asked about other labels since: nothing to compare bar by bar
        before = None
        if original is not None and original.probabilities is not None:
            before = [float(original.probabilities[p.index]) for p in result.predictions]
        self.chart.set_predictions([(p.label, p.probability) for p in result.predictions], before)
        self._mark_target()
        top = result.predictions[0]
        image_text = getattr(result, "image_embedding", None) is not None
        kind = "labels" if image_text else "classes"
        about = (f" · {len(result.ablated)} head{'s' * (len(result.ablated) != 1)} knocked out: change against the "
                 "whole model" if before is not None else f" · top {len(result.predictions)} of {len(result.labels)} "
                 f"{kind}")
        if image_text and result.scoring == "sigmoid":  # SigLIP: each label judged on its own
            head, share = "Best match", f"{format_percent(top.probability)} match"
        elif image_text:  # CLIP: the labels share 100 %
            head, share = "Best label", f"{format_percent(top.probability)} of these labels"
        else:
            head, share = "Prediction", format_percent(top.probability)
        self.set_title(
            f"{head}: <span style='color:#1f6feb'>{html(top.label)}</span> "
            f"<span style='font-weight:400'>{share}</span>" + muted(about)
        )

    def _show_note(self, result) -> None:
        """Above the bars, in plain words: the model does not know this kind of image (when its detector says so)."""
        domain = getattr(result, "domain", None)
        if domain is None or domain.in_domain:
            self.note.hide()
            return
        examples = ", ".join(result.labels[:3])
        if domain.unusual:  # only just over the threshold: a caution, not a verdict
            self.note_text.setText(
                f"<b>This picture is unusual for this model</b>, which knows {len(result.labels)} simple synthetic "
                f"shapes ({examples}…): treat the guesses below with care.")
        else:
            self.note_text.setText(
                f"<b>This model only knows {len(result.labels)} simple synthetic shapes</b> ({examples}…), and "
                "this picture looks like none of them, so the guesses below mean nothing. The attention and depth "
                "views still show where it looked.")
        self.note_text.setToolTip(f"{domain.method} score {domain.score:.4g} > threshold {domain.threshold:.4g}")
        self.note_button.setVisible(not domain.unusual)
        if not domain.unusual:
            self._show_cost()
        self.note.show()

    def _show_cost(self) -> None:
        """The note's button says what the photo model costs. Looking it up reads the model cache on disk: a
        helper thread does it, not the UI thread, which may be drawing live frames."""
        self.note_button.setText("Use DeiT-S for photos" + (f" ({self._cost})" if self._cost else ""))
        if self._cost is None and not self._looking_up:
            self._looking_up = True
            threading.Thread(target=self._look_up_cost, daemon=True, name="vitviz-photo-model-cost").start()

    def _look_up_cost(self) -> None:
        cost = _download_size()
        try:
            self._photo_model_cost.emit(cost)  # queued to the UI thread
        except RuntimeError:  # the window closed meanwhile
            pass

    def _on_cost(self, cost: str) -> None:
        self._cost, self._looking_up = cost, False
        if not self.note.isHidden():
            self._show_cost()

    def _forget_cost(self, *_args) -> None:
        if not self._looking_up:
            self._cost = None


def _download_size() -> str:
    """What choosing the photo model costs: its download size, or that it is here already (empty if unknown)."""
    from ...models import zoo

    try:
        info = zoo.download_info(PHOTO_MODEL, network=False)
    except Exception:  # noqa: BLE001 - only a hint on a button
        return ""
    if info.cached:
        return "downloaded"
    return f"{info.size_bytes / 1e6:.0f} MB" if info.size_bytes else "download"  # short: the panel may be narrow
