"""The output folder of ``vitviz analyze``: one folder per image, renamed into place when complete, and
``results.csv`` (a row per input, with the settings its files were written with), so that an interrupted or repeated
run knows which images are done (used by vitviz.pipeline)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

from .batch import table_row

__all__ = ["OutputStore", "run_settings", "TABLE", "PARTIAL"]

TABLE = "results.csv"
PARTIAL = ".partial"  # temporary folders of images being written, under --out


class OutputStore:
    """The ``--out`` folder: which images are complete, writing into temporary folders renamed into place, and the
    summary table ``results.csv`` (plus ``results.parquet`` when pyarrow is installed)."""

    def __init__(self, out: Path, expected: set[str], topk: int, settings: str = "") -> None:
        self.out = out
        self.expected = expected
        self.topk = topk
        self.settings = settings  # the run_settings key, in every row: a folder from other settings is not done
        self.other_settings: set[str] = set()  # images whose table row has another settings key
        self.run_dir = out / PARTIAL / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()
        self._table: Any = None
        self._writer: csv.DictWriter | None = None
        self._fields: list[str] | None = None
        self.rows = 0

    def is_done(self, name: str) -> bool:
        folder = self.out / name
        return (name not in self.other_settings and folder.is_dir()
                and all((folder / f).is_file() for f in self.expected))

    def start(self) -> None:
        """Remove what killed runs left half-written; keep the table's rows of images that are still complete."""
        self.out.mkdir(parents=True, exist_ok=True)
        partial = self.out / PARTIAL
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        table = self.out / TABLE
        if table.is_file():
            kept = self.out / (TABLE + ".tmp")
            with open(table, newline="", encoding="utf-8") as src, open(kept, "w", newline="", encoding="utf-8") as dst:
                reader = csv.DictReader(src)
                fields = list(reader.fieldnames or [])
                writer = csv.DictWriter(dst, fields, extrasaction="ignore")
                writer.writeheader()
                n = 0
                try:
                    for row in reader:
                        if row.get("name") and row.get("settings", self.settings) != self.settings:
                            self.other_settings.add(row["name"])  # written with another model, --topk, ...
                        elif row.get("name") and None not in row.values() and self.is_done(row["name"]):
                            writer.writerow(row)
                            n += 1
                except csv.Error:
                    pass  # a line cut short by a killed run: what came before it is kept
            os.replace(kept, table)
            if fields and n:
                self._fields, self.rows = fields, n
            else:
                table.unlink()

    def temp_folder(self, index: int) -> Path:
        return self.run_dir / str(index)

    def commit(self, name: str, temp: Path, summary: dict[str, Any]) -> Path:
        """Record the image's table row, then move its finished folder into place."""
        final = self.out / name
        with self._lock:
            self._append({"name": name, "status": "ok", "error": "", **table_row(summary, self.topk),
                          "settings": self.settings})
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():  # an incomplete folder from an earlier run with other --outputs
                shutil.rmtree(final)
            os.replace(temp, final)
        return final

    def record_failure(self, name: str, message: str) -> None:
        """A failed image's row: status "error" and the one-line reason (no folder is written for it)."""
        with self._lock:
            self._append({"name": name, "status": "error", "error": message, "settings": self.settings})

    def _append(self, row: dict[str, Any]) -> None:
        table = self.out / TABLE
        if self._fields is not None and set(row) - set(self._fields):  # e.g. an analysed image after failed ones
            if self._table is not None:
                self._table.close()
                self._table = None
            self._rewrite_with(self._fields + [k for k in row if k not in self._fields])
        if self._table is None:
            new = self._fields is None
            self._fields = self._fields or list(row)
            self._table = open(table, "a", newline="", encoding="utf-8")
            self._writer = csv.DictWriter(self._table, self._fields, extrasaction="ignore")
            if new:
                self._writer.writeheader()
        assert self._writer is not None
        self._writer.writerow(row)
        self._table.flush()
        self.rows += 1

    def _rewrite_with(self, fields: list[str]) -> None:
        table, tmp = self.out / TABLE, self.out / (TABLE + ".tmp")
        with open(table, newline="", encoding="utf-8") as src, open(tmp, "w", newline="", encoding="utf-8") as dst:
            writer = csv.DictWriter(dst, fields)
            writer.writeheader()
            writer.writerows(csv.DictReader(src))
        os.replace(tmp, table)
        self._fields = fields

    def finish(self) -> None:
        """Close the table, convert it to Parquet when pyarrow is installed, remove this run's temporary folder."""
        with self._lock:
            if self._table is not None:
                self._table.close()
                self._table = None
        shutil.rmtree(self.run_dir, ignore_errors=True)
        partial = self.out / PARTIAL
        if partial.is_dir() and not any(partial.iterdir()):
            partial.rmdir()
        table = self.out / TABLE
        if self.rows and table.is_file():
            try:
                import pyarrow.csv as pacsv
                import pyarrow.parquet as pq
            except ImportError:
                return
            pq.write_table(pacsv.read_csv(table), self.out / "results.parquet")


def run_settings(opts: Any, model: str, depth_model: str | None) -> str:
    """A short key of what a run's files depend on besides which files it writes (model, --topk, --layer, colours,
    --ablate, --explain, --target, --labels, --head-importance-estimate): results.csv's ``settings`` column (``opts``: a
    :class:`vitviz.pipeline.RunOptions`). Resuming with another key redoes the
    images written with the old one; which files exist is checked image by image, as before."""
    settings = {"model": model, "depth_model": depth_model, "topk": opts.topk, "layer": opts.layer,
                "cmap": opts.cmap, "depth_cmap": opts.depth_cmap, "alpha": opts.alpha,
                "ablate": [list(h) for h in opts.ablate], "explain": list(opts.explain), "target": opts.target}
    if opts.labels or opts.templates:  # image-text models only: older keys stay as they were
        settings |= {"labels": list(opts.labels), "templates": list(opts.templates)}
    if opts.head_importance == "estimate":  # head_importance.csv holds estimates, not knockouts
        settings["head_importance"] = "estimate"
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
