"""The Heads menu and its wiring: pick heads (Ctrl-click in the attention tiles or the head atlas), knock them out
(the worker re-analyses the shown image without them), restore the whole model, and rank every head by importance
(on the worker, with progress in the status bar) into a sortable table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QMenu

from .importance_dialog import ImportanceDialog
from .panels.knockout_bar import heads_text
from .view_menu import make_action

if TYPE_CHECKING:
    from .main_window import MainWindow

__all__ = ["HeadTools"]


class HeadTools(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window, self.state, self.session = window, window.state, window.session
        state, session = self.state, self.session

        def act(*args, **kwargs):
            return make_action(window, *args, **kwargs)

        self.act_knockout = act("&Knock out selected heads", lambda: state.request_knockout(), "Ctrl+K",
                                "Analyse the image again with the picked heads (Ctrl-click a head) knocked out")
        self.act_restore = act("&Restore the model", lambda: state.restore_model(), "Ctrl+Shift+K",
                               "Bring back the analysis by the whole model")
        self.act_clear = act("&Clear the head selection", lambda: state.clear_head_selection(), None,
                             "Unpick every head")
        self.act_rank = act("Rank heads by &importance", lambda: state.request_importance(), "Ctrl+I",
                            "Knock out each head alone and measure what it does to the shown class")
        self.act_estimate = act("&Estimate head importance (fast)", lambda: state.request_importance("estimate"),
                                "Ctrl+Shift+I", "Estimate to first order, from one backward pass, what knocking out "
                                "each head would do to the shown class: about 10x faster on large models, an estimate "
                                "(no depth figure)")
        self.act_table = act("Head importance &table…", lambda: self.show_table(), None,
                             "The heads ranked by importance, sortable, with an export to CSV")
        self.menu = QMenu("&Heads", window)
        for a in (self.act_knockout, self.act_restore, self.act_clear, None, self.act_rank, self.act_estimate,
                  self.act_table):
            self.menu.addAction(a) if a else self.menu.addSeparator()
        self.table = ImportanceDialog(state, window.settings, window)

        state.knockout_requested.connect(self.knock_out)
        state.model_restored.connect(session.supersede_analysis)
        state.importance_requested.connect(session.importance)
        session.importance_ready.connect(state.set_importance)
        session.importance_progress.connect(self._progress)
        state.importance_changed.connect(self.show_table)
        state.knockout_changed.connect(self._on_knockout)
        for signal in (state.head_selection_changed, state.knockout_changed, state.result_changed):
            signal.connect(self._sync)
        self._sync()

    def knock_out(self, heads: list[tuple[int, int]]) -> int:
        """Re-analyse the shown image on the worker with ``heads`` knocked out; returns the request id (0: none)."""
        source = self.session.current_source
        if source is None:
            self.window.show_error("Open an image first: knockouts re-analyse the shown image.")
            return 0
        return self.session.analyze(source, ablate=heads)

    def show_table(self) -> None:
        self.table.refresh()
        self.table.show()
        self.table.raise_()

    def _progress(self, done: int, total: int) -> None:
        bar = self.window.status_bar
        bar.busy_bar.setRange(0, max(total, 1))
        bar.busy_bar.setValue(done)
        bar.busy_label.setText(f"Ranking the heads by importance… {done} of {total}")

    def _on_knockout(self, heads: list[tuple[int, int]]) -> None:
        if heads:
            self.window.show_message(
                f"Knocked out {heads_text(heads)}: the predictions, maps and features show the model without "
                f"{'these heads' if len(heads) > 1 else 'this head'}; the bars show the change. Heads → Restore the "
                "model (Ctrl+Shift+K) brings the whole model back.", "warning", topic="knockout")
        else:
            self.window.banner.dismiss_topics("knockout")

    def _sync(self, *_args) -> None:
        state = self.state
        self.act_knockout.setEnabled(bool(state.selected_heads) and state.shown is not None)
        self.act_restore.setEnabled(state.original is not None)
        self.act_clear.setEnabled(bool(state.selected_heads))
        self.act_rank.setEnabled(state.shown is not None and bool(state.result.predictions or
                                                                 state.result.depth is not None))
        self.act_estimate.setEnabled(state.shown is not None and bool(state.result.predictions))
