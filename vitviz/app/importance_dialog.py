"""The head importance table: what knocking out each head alone does to the shown class (and depth), one sortable
row per head, exported as the command line's ``head_importance.csv``."""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (
    QDialog, QDialogButtonBox, QFileDialog, QLabel, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from .panels.common import html
from .state import ViewState

__all__ = ["ImportanceDialog"]

VALUE = Qt.ItemDataRole.UserRole  # each cell's number, as vitviz.importance computed it


class _Number(QTableWidgetItem):
    """A cell that shows ``text`` and sorts by ``value`` (NaN last)."""

    def __init__(self, value: float, text: str) -> None:
        super().__init__(text)
        self.setData(VALUE, value)
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        a, b = self.data(VALUE), other.data(VALUE)
        a = -math.inf if a is None or math.isnan(a) else a
        b = -math.inf if b is None or math.isnan(b) else b
        return a < b


class ImportanceDialog(QDialog):
    """A non-modal window over the main one; it follows the displayed result's head importance."""

    COLUMNS = ("layer", "head", "logit_drop", "prob_drop", "depth_absrel")
    HEADERS = ("Layer", "Head", "Logit drop", "Prob drop (pts)", "Depth AbsRel (%)")
    ESTIMATE_HEADERS = ("Layer", "Head", "Logit drop (est.)", "Prob drop (est., pts)")

    def __init__(self, state: ViewState, settings: QSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state, self.settings = state, settings
        self.setWindowTitle("Head importance — vitviz")
        self.resize(600, 560)
        column = QVBoxLayout(self)
        self.caption = QLabel("")
        self.caption.setWordWrap(True)
        self.caption.setTextFormat(Qt.TextFormat.RichText)
        column.addWidget(self.caption)
        self.table = QTableWidget(0, 0, self)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.cellDoubleClicked.connect(self._pick)
        column.addWidget(self.table, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Write head_importance.csv, as vitviz analyze --head-importance does")
        self.export_button.clicked.connect(self._export_dialog)
        buttons.addButton(self.export_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.close)
        column.addWidget(buttons)
        state.importance_changed.connect(self.refresh)
        state.result_changed.connect(self.refresh)
        self.refresh()

    def refresh(self, *_args) -> None:
        imp = self.state.importance
        self.table.setSortingEnabled(False)
        self.export_button.setEnabled(imp is not None)
        if imp is None:
            self.table.setRowCount(0)
            self.caption.setText("Rank the heads first: Heads → Rank heads by importance (Ctrl+I).")
            return
        depth = imp.depth_absrel is not None
        columns = len(self.COLUMNS) - (0 if depth else 1)
        self.table.setColumnCount(columns)
        headers = self.ESTIMATE_HEADERS if imp.estimated else self.HEADERS
        self.table.setHorizontalHeaderLabels(list(headers[:columns]))
        rows = imp.rows()
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, key in enumerate(self.COLUMNS[:columns]):
                value = row[key]
                if key in ("layer", "head"):
                    item = _Number(float(value), str(value))
                else:
                    shown = value * 100 if key != "logit_drop" else value
                    sign = "+" if key != "depth_absrel" else ""  # a drop can be negative, a change cannot
                    item = _Number(float(value), "—" if math.isnan(value) else f"{shown:{sign}.3f}")
                self.table.setItem(r, c, item)
        self.table.setSortingEnabled(True)
        by = 3 if not math.isnan(rows[0]["prob_drop"]) else columns - 1  # the class's drop, else the depth change
        self.table.sortByColumn(by, Qt.SortOrder.DescendingOrder)
        self.table.resizeColumnsToContents()
        what = (f"class <b>{html(imp.target_label)}</b> (probability {imp.probability:.1%})" if imp.target_label
                is not None else "the depth map")
        out = f" · with {len(imp.ablated)} heads already knocked out" if imp.ablated else ""
        lead = ("First-order estimate, from one backward pass, of what knocking out each head alone would do to"
                if imp.estimated else "What knocking out each head alone does to")
        measure = " (Heads → Rank heads by importance measures it)" if imp.estimated else ""
        self.caption.setText(f"{lead} {what}{measure}: a positive drop means the head helped{out} · "
                             f"{imp.num_layers * imp.num_heads} heads in {imp.seconds:.2f} s · click a column to sort · "
                             "double-click a row to show that head")

    def rows(self) -> list[dict[str, Any]]:
        """The table as shown (in its current order): one dict per row of the numbers behind the cells."""
        keys = self.COLUMNS[: self.table.columnCount()]
        return [{key: self.table.item(r, c).data(VALUE) for c, key in enumerate(keys)}
                for r in range(self.table.rowCount())]

    def export_csv(self, path: str | Path) -> Path:
        """Write ``path`` with the command line's writer (:func:`vitviz.export.write_head_importance`)."""
        from ..export import write_head_importance

        imp = self.state.importance
        if imp is None:
            raise ValueError("no head importance to export")
        with tempfile.TemporaryDirectory() as tmp:
            written = write_head_importance(imp, Path(tmp))
            shutil.copyfile(written, path)
        return Path(path)

    def _export_dialog(self) -> None:
        start = self.settings.value("paths/last_export", "") if self.settings is not None else ""
        path, _ = QFileDialog.getSaveFileName(self, "Export head importance",
                                              str(Path(str(start or ".")) / "head_importance.csv"), "CSV (*.csv)")
        if path:
            self.export_csv(path)
            if self.settings is not None:
                self.settings.setValue("paths/last_export", str(Path(path).parent))

    def _pick(self, row: int, _column: int) -> None:
        layer, head = (int(self.table.item(row, c).data(VALUE)) for c in (0, 1))
        self.state.set_layer(layer)
        self.state.set_head(head)
