"""The output folder of ``vitviz analyze``: one folder per image, renamed into place when complete, and
``results.csv`` (a row per input, with the settings its files were written with), so that an interrupted or repeated
run knows which images are done (used by vitviz.pipeline)."""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any, Sequence

from .batch import table_row
from .runfolder import (MARKER, RunFolderError, RunLock, RunStopped, atomic_write_text, check_run_folder,
                        fatal_write_error, folder_identity, foreign_entries, marker_foreign, stop_message,
                        write_marker)

__all__ = ["OutputStore", "run_settings", "TABLE", "PARQUET", "PARTIAL"]

TABLE = "results.csv"
PARQUET = "results.parquet"
PARTIAL = ".partial"  # temporary folders of images being written, under --out


class OutputStore:
    """The ``--out`` folder: which images are complete, writing into temporary folders renamed into place, and the
    summary table ``results.csv`` (plus ``results.parquet`` when pyarrow is installed).

    The folder is a run folder (:mod:`vitviz.runfolder`): its marker says vitviz wrote it, and a lock keeps one
    writer at a time from :meth:`start` to :meth:`finish` (or :meth:`close`). ``results.csv`` only ever holds whole
    rows: each is appended with one write, and a write cut short (a full disk) is cut back off; the table's rewrites
    and ``results.parquet`` are written to a temporary file renamed over the old one."""

    def __init__(self, out: Path, expected: set[str], topk: int, settings: str = "", force: bool = False) -> None:
        self.out = out
        self.expected = expected
        self.topk = topk
        self.settings = settings  # the run_settings key, in every row: a folder from other settings is not done
        self.force = force  # write into a folder holding someone else's files (never touching them)
        self.foreign: set[str] = set()  # top-level names that were there before vitviz (adopted with --force)
        self.other_settings: set[str] = set()  # images whose table row has another settings key
        self.run_dir = out / PARTIAL / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.lock = RunLock(out)
        self._identity: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._fd: int | None = None  # results.csv, opened for appending whole rows
        self._fields: list[str] | None = None
        self.rows = 0

    def is_done(self, name: str) -> bool:
        folder = self.out / name
        return (name not in self.other_settings and folder.is_dir()
                and all((folder / f).is_file() for f in self.expected))

    def start(self, names: Sequence[str] = ()) -> None:
        """Claim the folder (refused: :class:`RunFolderError`), remove what killed runs left half-written, keep the
        table's rows of images that are still complete. ``names``: the images this run may write, checked against
        files that are not vitviz's."""
        foreign = foreign_entries(self.out)
        if foreign and not self.force:
            check_run_folder(self.out)  # raises, naming the folder and --force
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            self.lock.acquire()
        except OSError as exc:
            raise RunFolderError(f"cannot write into --out {self.out} ({exc.strerror or exc}): choose a folder "
                                 "on a writable disk with free space") from None
        try:
            self._claim(foreign, names)
        except OSError as exc:  # the disk filled up, or went read-only, while the folder was being tidied
            self.lock.release()
            if fatal_write_error(exc) is None:
                raise
            raise RunStopped(stop_message(self.out, exc, 0, len(names))) from None
        except BaseException:
            self.lock.release()
            raise

    def _claim(self, foreign: list[str], names: Sequence[str]) -> None:
        # someone else's names: found now (adopted with --force), or by an earlier run and still there
        self.foreign = set(foreign) | {n for n in marker_foreign(self.out) if (self.out / n).exists()}
        clashes = sorted({n for n in (TABLE, PARQUET) if n in self.foreign}
                         | {n for n in names if n.split("/")[0] in self.foreign and (self.out / n).exists()})
        if clashes:
            one = len(clashes) == 1
            raise RunFolderError(f"--out {self.out}: {', '.join(clashes[:3])}{'' if len(clashes) <= 3 else ', ...'} "
                                 f"{'is' if one else 'are'} not vitviz's and this run would write there: move "
                                 f"{'it' if one else 'them'} away or choose another folder (vitviz never overwrites "
                                 "what it did not write)")
        try:
            write_marker(self.out, self.settings, sorted(self.foreign))
        except OSError as exc:
            raise RunFolderError(f"cannot write into --out {self.out} ({exc.strerror or exc}): choose a folder on a "
                                 "writable disk with free space") from None
        self._identity = folder_identity(self.out)
        partial = self.out / PARTIAL
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        for pattern in (f".{TABLE}.*.tmp", f".{PARQUET}.*.tmp", f".{MARKER}.*.tmp"):  # a killed run's temporary files
            for leftover in self.out.glob(pattern):
                leftover.unlink(missing_ok=True)
        self.run_dir.mkdir(parents=True)
        table = self.out / TABLE
        if table.is_file():
            self._keep_complete_rows(table)

    def _keep_complete_rows(self, table: Path) -> None:
        text = table.read_bytes()
        if text and not text.endswith(b"\n"):  # a row cut short by an older vitviz: what came before it is kept
            text = text[: text.rfind(b"\n") + 1]
        reader = csv.DictReader(io.StringIO(text.decode("utf-8", errors="replace"), newline=""))
        fields = list(reader.fieldnames or [])
        kept = io.StringIO(newline="")
        writer = csv.DictWriter(kept, fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        n = 0
        try:
            for row in reader:
                if row.get("name") and row.get("settings", self.settings) != self.settings:
                    self.other_settings.add(row["name"])  # written with another model, --topk, ...
                elif row.get("name") and None not in row.values() and None not in row and self.is_done(row["name"]):
                    writer.writerow(row)
                    n += 1
        except csv.Error:
            pass  # a malformed line: what came before it is kept
        if fields and n:
            atomic_write_text(table, kept.getvalue())
            self._fields, self.rows = fields, n
        else:
            table.unlink()

    def temp_folder(self, index: int) -> Path:
        """A new, empty folder for one image's files (raises OSError when the run folder is gone or full)."""
        folder = self.run_dir / str(index)
        folder.mkdir()
        return folder

    def check_folder(self) -> None:
        """Raise ENOENT when the run folder was removed (or replaced) since :meth:`start`."""
        if folder_identity(self.out) != self._identity or not self.run_dir.is_dir():
            raise FileNotFoundError(errno.ENOENT, "the output folder was removed", str(self.out))

    def commit(self, name: str, temp: Path, summary: dict[str, Any]) -> Path:
        """Record the image's table row, then move its finished folder into place."""
        final = self.out / name
        with self._lock:
            self.check_folder()
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
            self.check_folder()
            self._append({"name": name, "status": "error", "error": message, "settings": self.settings})

    def _append(self, row: dict[str, Any]) -> None:
        table = self.out / TABLE
        if self._fields is not None and set(row) - set(self._fields):  # e.g. an analysed image after failed ones
            self._close_table()
            self._rewrite_with(self._fields + [k for k in row if k not in self._fields])
        lines = io.StringIO(newline="")
        if self._fd is None:
            new = self._fields is None
            self._fields = self._fields or list(row)
            self._fd = os.open(table, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if new:
                csv.DictWriter(lines, self._fields, lineterminator="\n").writeheader()
        csv.DictWriter(lines, self._fields, extrasaction="ignore", lineterminator="\n").writerow(row)
        self._write_whole(lines.getvalue().encode("utf-8"))
        self.rows += 1

    def _write_whole(self, data: bytes) -> None:
        """Append ``data`` to the table with one write (a killed process cannot cut it); when the write fails or is
        cut short (a full disk), the table is cut back to where it was."""
        assert self._fd is not None
        size = os.fstat(self._fd).st_size
        try:
            done = os.write(self._fd, data)
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except BaseException:
            try:
                os.ftruncate(self._fd, size)
            except OSError:
                pass
            raise

    def _rewrite_with(self, fields: list[str]) -> None:
        table = self.out / TABLE
        with open(table, newline="", encoding="utf-8") as src:
            rows = list(csv.DictReader(src))
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(table, text.getvalue())
        self._fields = fields

    def _close_table(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def finish(self) -> None:
        """Close the table, convert it to Parquet when pyarrow is installed (atomically), remove this run's
        temporary folder, release the folder."""
        try:
            with self._lock:
                self._close_table()
            self._write_parquet()
        finally:
            self.close()

    def _write_parquet(self) -> None:
        table = self.out / TABLE
        if not (self.rows and table.is_file()):
            return
        try:
            import pyarrow.csv as pacsv
            import pyarrow.parquet as pq
        except ImportError:
            return
        parquet = self.out / PARQUET
        tmp = parquet.with_name(f".{PARQUET}.{os.getpid()}.tmp")
        try:
            pq.write_table(pacsv.read_csv(table), tmp)
            os.replace(tmp, parquet)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def close(self, stopped: bool = False) -> None:
        """Release the folder: close the table, remove this run's temporary folder (half-written images), drop the
        lock. ``stopped``: the run ends early, and results.parquet is brought up to the table's rows if it can be
        (else removed, rather than left behind the table). Safe to call more than once."""
        with self._lock:
            self._close_table()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        partial = self.out / PARTIAL
        try:
            if partial.is_dir() and not any(partial.iterdir()):
                partial.rmdir()
        except OSError:
            pass
        if stopped and self._identity is not None and folder_identity(self.out) == self._identity \
                and PARQUET not in self.foreign:
            try:
                self._write_parquet()
            except Exception:  # noqa: BLE001 - the disk is full or read-only: no Parquet rather than a stale one
                try:
                    (self.out / PARQUET).unlink(missing_ok=True)
                except OSError:
                    pass
        self.lock.release()


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
