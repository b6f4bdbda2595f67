"""Browsing the output folder of ``vitviz analyze``, without Qt: the run's table read lazily, sorting, filtering and
searching its images. Its thumbnails are drawn by :mod:`vitviz.thumbnails`; the app's gallery
(:mod:`vitviz.app.browse`) shows what these modules compute."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import VitvizError

__all__ = ["RunError", "Entry", "Overlay", "Run", "Gallery", "SORTS", "OVERLAYS", "open_run", "THUMBNAIL_PX"]

TABLE, PARQUET, PARTIAL = "results.csv", "results.parquet", ".partial"  # as vitviz.store writes them
THUMBNAIL_PX = 160  # the longer side of a thumbnail

# The overlays a thumbnail can show, with the file each reads and what adds that file to a run.
OVERLAYS: dict[str, tuple[str, str]] = {
    "head": ("cls_attention.npy", "--outputs attention-npy (part of the default 'all')"),
    "rollout": ("rollout.png", "--outputs rollout, or --explain rollout"),
    "evidence": ("explain_*.npy", "--explain attention,rollout (or grad-rollout, relevance)"),
    "depth": ("depth.npy", "--outputs depth-npy or depth (a model with depth)"),
    "none": ("", ""),
}
IMAGE_HINT = "--outputs input (input.png), or keep the analysed image files where they were"

# Sort keys: (label, key function of an entry, default descending?). Missing values sort last either way.
SORTS: dict[str, str] = {
    "confidence": "confidence (least sure first)",
    "label": "label",
    "domain": "out-of-domain score (farthest first)",
    "name": "file name",
    "disagreement": "disagreement (--compare runs)",
}


class RunError(VitvizError):
    """A folder that cannot be browsed: not a run, or unreadable."""


@dataclass(slots=True)
class Entry:
    """One row of the run's table: an analysed image or a failed input."""

    name: str  # the image's folder under the run, as results.csv names it
    status: str = "ok"  # "ok" or "error"
    error: str = ""
    source: str = ""
    label: str = ""  # top-1 label ("" without a classifier)
    confidence: float = math.nan  # top-1 probability
    domain_score: float = math.nan
    in_domain: bool | None = None  # None: the model has no out-of-domain detector
    model: str = ""
    depth_kind: str = ""
    input_size: tuple[int, int] = (0, 0)  # (height, width) of the model's input
    order: int = 0  # the row's place in the table
    compare: dict[str, Any] | None = None  # compare.json, read when asked for (--compare runs)

    @property
    def failed(self) -> bool:
        return self.status != "ok"


@dataclass(frozen=True)
class Overlay:
    """What every thumbnail shows over its image: ``kind`` of :data:`OVERLAYS`; for ``head`` a ``layer`` (negative:
    from the last) and a ``head`` (None: the mean of the layer's heads); for ``evidence`` a ``method``."""

    kind: str = "head"
    layer: int = -1
    head: int | None = None
    method: str = ""
    cmap: str = "inferno"
    alpha: float = 0.6

    def describe(self, layers: int = 0) -> str:
        if self.kind == "head":
            layer = self.layer + layers if self.layer < 0 and layers else self.layer
            return f"layer {layer}, " + ("mean of the heads" if self.head is None else f"head {self.head}")
        if self.kind == "evidence":
            return f"class evidence ({self.method or 'first method'})"
        return {"rollout": "attention rollout", "depth": "depth", "none": "image only"}.get(self.kind, self.kind)


def _float(text: Any) -> float:
    if text == "" or text is None:
        return math.nan
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


_BOOLS = {"True": True, "False": False, "true": True, "false": False, "1": True, "0": False}


def _bool(text: Any) -> bool | None:
    return _BOOLS.get(text if isinstance(text, str) else str(text).strip())


def _int(text: Any) -> int:
    if not text:
        return 0
    try:
        return int(float(text))
    except (TypeError, ValueError):
        return 0


def entry_from_row(row: dict[str, Any], order: int) -> Entry:
    """An :class:`Entry` from a row of results.csv (strings) or results.parquet (values)."""
    return Entry(
        name=str(row.get("name") or ""), status=str(row.get("status") or "ok"), error=str(row.get("error") or ""),
        source=str(row.get("source") or ""), label=str(row.get("label_1") or ""),
        confidence=_float(row.get("prob_1")), domain_score=_float(row.get("domain_score")),
        in_domain=_bool(row.get("domain_in_domain")), model=str(row.get("model") or ""),
        depth_kind=str(row.get("depth_kind") or ""),
        input_size=(_int(row.get("input_height")), _int(row.get("input_width"))), order=order)


def entry_from_summary(name: str, summary: dict[str, Any], order: int) -> Entry:
    """An :class:`Entry` from an image's result.json (a run whose table is missing)."""
    top = (summary.get("predictions") or [{}])[0]
    domain = summary.get("domain") if isinstance(summary.get("domain"), dict) else {}
    size = summary.get("input_size") or {}
    return Entry(name=name, source=str(summary.get("source") or ""), label=str(top.get("label") or ""),
                 confidence=_float(top.get("probability")), domain_score=_float(domain.get("score")),
                 in_domain=domain.get("in_domain") if domain else None, model=str(summary.get("model") or ""),
                 depth_kind=str((summary.get("depth") or {}).get("kind") or ""),
                 input_size=(_int(size.get("height")), _int(size.get("width"))), order=order)


@dataclass
class _TableTail:
    """Where the last reading of results.csv ended: its header line, the offset after its last complete line and
    that line's bytes (a table rewritten meanwhile no longer has them there)."""

    header: list[str]
    header_line: bytes
    offset: int
    last_line: bytes


def _read_table(path: Path, tail: _TableTail | None = None) -> tuple[_Table, bool, bool, bool, _TableTail | None]:
    """The rows of results.csv, from the start or, when the table only grew since ``tail``, the rows appended
    since. Returns (rows, whether only appended rows were read, whether a row was cut short by a killed run (too
    few fields), whether the last line is still being written, the new tail)."""
    with open(path, "rb") as fh:
        data = b""
        if tail is not None:
            fh.seek(tail.offset - len(tail.last_line))
            if fh.read(len(tail.last_line)) == tail.last_line:
                fh.seek(0)
                if fh.read(len(tail.header_line)) == tail.header_line:
                    fh.seek(tail.offset)
                    data = fh.read()
                else:
                    tail = None
            else:
                tail = None
        if tail is None:
            fh.seek(0)
            data = fh.read()
    start = tail.offset if tail is not None else 0
    end = data.rfind(b"\n") + 1  # complete lines only: the rest is being written
    partial, malformed = end < len(data), False
    text = data[:end].decode("utf-8", "replace")
    lines = text.splitlines(keepends=True)
    if tail is None:
        header_line = lines[0].encode("utf-8") if lines else b""
        header = next(csv.reader(lines[:1]), [])
        body = lines[1:]
    else:
        header, header_line, body = tail.header, tail.header_line, lines
    rows: list[list[str]] = []
    width = len(header)
    try:
        for fields in csv.reader(body):
            if len(fields) != width:
                malformed = True  # a line with too few or too many fields: cut short
                continue
            rows.append(fields)
    except csv.Error:
        malformed = True
    new_tail = tail
    if end and header:
        last = data[:end - 1].rfind(b"\n") + 1
        new_tail = _TableTail(header, header_line, start + end, data[last:end])
    return _Table(header, rows), tail is not None, malformed, partial, new_tail


class _Table(list):
    """The rows of results.csv as lists of fields, with the header's column positions."""

    def __init__(self, header: list[str], rows: list[list[str]]) -> None:
        super().__init__(rows)
        self.column = {name: i for i, name in enumerate(header)}

    def entries(self) -> list[Entry]:
        """One entry per image: a resumed run's later row wins."""
        col = self.column
        n, st, er, so, la, pr, sc, ins, mo, de, he, wi = (col.get(k, -1) for k in (
            "name", "status", "error", "source", "label_1", "prob_1", "domain_score", "domain_in_domain", "model",
            "depth_kind", "input_height", "input_width"))
        latest: dict[str, Entry] = {}
        for order, f in enumerate(self):
            f.append("")  # what a missing column (index -1) reads
            if not f[n]:
                continue
            latest[f[n]] = Entry(f[n], f[st] or "ok", f[er], f[so], f[la], _float(f[pr]), _float(f[sc]),
                                 _BOOLS.get(f[ins]), f[mo], f[de], (_int(f[he]), _int(f[wi])), order)
        return list(latest.values())


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise RunError(f"{path.parent} has only results.parquet, and reading it needs pyarrow "
                       "(pip install pyarrow)") from None
    try:
        return pq.read_table(path).to_pylist()
    except Exception as exc:  # noqa: BLE001 - a damaged file: one line
        raise RunError(f"{path} cannot be read ({type(exc).__name__}: {exc})") from None


class Run:
    """A ``vitviz analyze`` output folder, read lazily: the table at once, an image's files when it is drawn.

    ``notices`` are what the user should know about the run as a whole (half-written, what is missing and which
    ``--outputs`` would add it); ``layers``, ``heads``: the model's shape as the run's arrays have it (0 unknown)."""

    def __init__(self, folder: Path, writing: bool = False) -> None:
        self.folder = Path(folder)
        self.writing = writing  # a run this process is writing now (File → Analyze folder…): may still be empty
        self.entries: list[Entry] = []
        self.cut = False  # the table's last line was cut short
        self.from_folders = False  # no table: entries read from the images' result.json
        self.layers = self.heads = 0
        self.available: dict[str, bool] = {}
        self.evidence_methods: list[str] = []
        self.compared = False
        self._stamp: tuple[float, int] | None = None
        self._counts: tuple[list[Entry], dict[str, int]] | None = None
        self._tail: _TableTail | None = None  # where the last reading of results.csv ended
        self._malformed = False  # a row of the table was cut short by a killed run

    # ------------------------------------------------------------------------------------------ reading

    def read(self) -> None:
        """Read (or read again) the table; raises :class:`RunError` for a folder that is not a run."""
        folder = self.folder
        if not folder.exists():
            raise RunError(f"{folder}: no such folder")
        if not folder.is_dir():
            raise RunError(f"{folder} is a file, not the output folder of a vitviz analyze run")
        table, parquet = folder / TABLE, folder / PARQUET
        rows: list[Any]
        appended = False
        if table.is_file():
            try:
                self._stamp = (table.stat().st_mtime, table.stat().st_size)
                rows, appended, malformed, partial, self._tail = _read_table(
                    table, None if self.from_folders else self._tail)
            except OSError as exc:
                raise RunError(f"{table} cannot be read ({exc.strerror or exc})") from None
            self._malformed = malformed or (appended and self._malformed)
            self.cut = self._malformed or partial
            self.from_folders = False
        elif parquet.is_file():
            rows, self.cut, self.from_folders = _read_parquet(parquet), False, False
        else:
            marked = (folder / PARTIAL).is_dir() or any(p.name.startswith(".") and "vitviz" in p.name.lower()
                                                         for p in folder.iterdir())
            summaries = self._summaries_in_folders() if marked else []
            if not marked and not self.writing:
                raise RunError(f"{folder} is not the output folder of a vitviz analyze run: it has no {TABLE} "
                               f"(write one with: vitviz analyze IMAGES --out {folder})")
            self.from_folders = True
            self.entries = [entry_from_summary(n, s, i) for i, (n, s) in enumerate(summaries)]
            self._inspect()
            return
        if appended:  # a run being written: only its new rows were read
            entries = list(self.entries)
            where = {e.name: i for i, e in enumerate(entries)}
            for e in rows.entries():  # type: ignore[attr-defined]
                e.order += len(entries)
                if e.name in where:
                    entries[where[e.name]] = e
                else:
                    where[e.name] = len(entries)
                    entries.append(e)
        elif isinstance(rows, _Table):
            entries = rows.entries()
        else:
            latest: dict[str, Entry] = {}
            for i, row in enumerate(rows):
                latest[str(row["name"])] = entry_from_row(row, i)  # a resumed run's later row wins
            entries = list(latest.values())
        previous = {e.name: e for e in self.entries}
        self.entries = entries
        for e in self.entries:  # keep what was read of the images already known
            if e.name in previous and previous[e.name].compare is not None:
                e.compare = previous[e.name].compare
        self._inspect()

    def changed(self) -> bool:
        """Whether the table changed on disk since it was read (a run still being written)."""
        table = self.folder / TABLE
        try:
            stat = table.stat()
        except OSError:
            return False
        return (stat.st_mtime, stat.st_size) != self._stamp

    def _summaries_in_folders(self) -> list[tuple[str, dict[str, Any]]]:
        found = []
        paths = [*self.folder.glob("*/result.json"), *self.folder.glob("*/*/result.json")]  # OUT/cats/1/...
        for path in sorted(paths):
            if PARTIAL in path.relative_to(self.folder).parts:
                continue
            try:
                found.append((path.parent.relative_to(self.folder).as_posix(), json.loads(path.read_text("utf-8"))))
            except (OSError, ValueError):
                continue
        return found

    def _inspect(self) -> None:
        """What the run wrote, from its first analysed images that have folders: the arrays' shape, the overlays."""
        self.available = {kind: False for kind in OVERLAYS}
        self.available["none"] = True
        self.available["image"] = False
        shapes: Counter = Counter()
        methods: set[str] = set()
        looked = 0
        for e in self.entries[:256]:  # (a run being written may not have the folders of its rows yet)
            if e.failed:
                continue
            folder = self.folder_of(e)
            if not folder.is_dir():
                continue
            looked += 1
            names = {p.name for p in folder.iterdir()}
            self.available["image"] |= "input.png" in names or self.source_path(e) is not None
            self.available["head"] |= "cls_attention.npy" in names
            self.available["rollout"] |= "rollout.png" in names or any(n.startswith("explain_rollout") and
                                                                        n.endswith(".npy") for n in names)
            self.available["depth"] |= "depth.npy" in names or "depth.png" in names
            self.compared |= "compare.json" in names
            for n in names:
                if n.startswith("explain_") and n.endswith(".npy"):
                    methods.add(_evidence_method(n))
            if "cls_attention.npy" in names:
                shape = _npy_shape(folder / "cls_attention.npy")
                if shape is not None and len(shape) == 4:
                    shapes[shape[:2]] += 1
            if looked >= 8:
                break
        self.available["evidence"] = bool(methods)
        self.evidence_methods = sorted(methods)
        if shapes:
            (self.layers, self.heads), _ = shapes.most_common(1)[0]

    # ------------------------------------------------------------------------------------------ describing

    @property
    def model(self) -> str:
        """The model most of the run's images were analysed with ("" when no image was)."""
        names = Counter(e.model for e in self.entries if e.model)
        return names.most_common(1)[0][0] if names else ""

    @property
    def being_written(self) -> bool:
        """Whether the run looks unfinished: images in progress (``.partial``) or a table cut short."""
        return self.writing or (self.folder / PARTIAL).is_dir() or self.cut

    def counts(self) -> dict[str, int]:
        """How many images, failed, analysed and out of the domain (counted once per reading of the table)."""
        if self._counts is None or self._counts[0] is not self.entries:
            failed = sum(e.failed for e in self.entries)
            out = sum(e.in_domain is False for e in self.entries)
            self._counts = (self.entries, {"images": len(self.entries), "failed": failed,
                                           "analysed": len(self.entries) - failed, "out_of_domain": out})
        return dict(self._counts[1])

    def notices(self) -> list[str]:
        """One line each: a half-written run, an empty run, what the run did not write and which option adds it."""
        lines = []
        if self.from_folders and not self.writing:
            lines.append(f"{self.folder} has no {TABLE}: the run was interrupted before its table was written; "
                         "showing the images whose folders are complete")
        elif self.being_written:
            lines.append(f"This run is being written ({len(self.entries)} image(s) so far)" if self.writing else
                         f"This run is still being written or was interrupted ({len(self.entries)} image(s) so far): "
                         "run the same vitviz analyze command again to finish it")
        if not self.entries and not self.writing:
            lines.append(f"{self.folder} holds a run of 0 images: {TABLE} has no rows yet")
            return lines
        if self.counts()["analysed"]:
            missing = [kind for kind in ("head", "rollout", "evidence", "depth") if not self.available.get(kind)]
            for kind in missing:
                if kind == "depth" and all(not e.depth_kind for e in self.entries if not e.failed):
                    continue  # the model gives no depth: nothing an option would add
                lines.append(f"No {OVERLAYS[kind][0]} in this run: add {OVERLAYS[kind][1]} to see the "
                             f"{'class evidence' if kind == 'evidence' else kind} maps")
            if not self.available.get("image"):
                lines.append(f"Neither input.png nor the analysed files are there: {IMAGE_HINT}")
        return lines

    def folder_of(self, entry: Entry) -> Path:
        return self.folder / entry.name

    def source_path(self, entry: Entry) -> Path | None:
        """The analysed image file, where it still is (relative paths: from the working folder, then the run's
        parent folder)."""
        if not entry.source:
            return None
        path = Path(entry.source)
        candidates = [path] if path.is_absolute() else [path, self.folder.parent / path]
        return next((p for p in candidates if p.is_file()), None)

    def image_to_open(self, entry: Entry) -> tuple[Path | None, str]:
        """The file the main window should analyse for ``entry``, and a note when it is not the original."""
        source = self.source_path(entry)
        if source is not None:
            return source, ""
        saved = self.folder_of(entry) / "input.png"
        if saved.is_file():
            return saved, f"{entry.source or entry.name} is no longer there: opened the run's input.png instead"
        return None, f"{entry.source or entry.name} is no longer there, and the run kept no input.png of it"

    def compare_of(self, entry: Entry) -> dict[str, Any]:
        """The image's compare.json (empty when there is none), read once."""
        if entry.compare is None:
            try:
                entry.compare = json.loads((self.folder_of(entry) / "compare.json").read_text("utf-8"))
            except (OSError, ValueError):
                entry.compare = {}
        return entry.compare


def _evidence_method(file_name: str) -> str:
    stem = file_name[len("explain_"):-len(".npy")]
    for method in ("grad-rollout", "relevance", "rollout", "attention"):
        if stem == method or stem.startswith(method + "_"):
            return method
    return stem.split("_")[0]


def _npy_shape(path: Path) -> tuple[int, ...] | None:
    """The shape in a .npy file's header (None when it is not a readable .npy)."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            shape, _, _ = reader(fh)
        return tuple(int(s) for s in shape)
    except (OSError, ValueError):
        return None


def open_run(folder: str | Path) -> Run:
    """Read the run in ``folder``; raises :class:`RunError` (one line) when it is not one."""
    run = Run(Path(folder))
    run.read()
    return run


# ------------------------------------------------------------------------------------------------ the list shown


@dataclass
class Gallery:
    """The images shown, in order: the run's entries filtered (top-1 label, status, domain, a search in the file
    names) and sorted. ``order`` holds indices into ``run.entries``; call :meth:`update` after a change."""

    run: Run
    sort: str = "name"
    descending: bool = False
    label: str = ""  # "" for every label
    status: str = "all"  # all | ok | failed
    domain: str = "all"  # all | in | out
    search: str = ""
    order: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.update()

    def labels(self) -> list[str]:
        """The top-1 labels of the run, most frequent first."""
        return [lab for lab, _ in Counter(e.label for e in self.run.entries if e.label).most_common()]

    def update(self) -> list[int]:
        if self.sort not in SORTS:
            raise ValueError(f"unknown sort {self.sort!r}; choose from {', '.join(SORTS)}")
        entries = self.run.entries
        text = self.search.strip().lower()
        keep = [i for i, e in enumerate(entries) if self._matches(e, text)]
        keep.sort(key=lambda i: self._key(entries[i]), reverse=False)
        if self.descending:  # reverse the values, keep missing ones last
            present = [i for i in keep if not self._key(entries[i])[0]]
            missing = [i for i in keep if self._key(entries[i])[0]]
            keep = present[::-1] + missing
        self.order = keep
        return keep

    def _matches(self, e: Entry, text: str) -> bool:
        if self.status == "ok" and e.failed or self.status == "failed" and not e.failed:
            return False
        if self.label and e.label != self.label:
            return False
        if self.domain == "in" and e.in_domain is not True or self.domain == "out" and e.in_domain is not False:
            return False
        return not text or text in e.name.lower() or text in Path(e.source).name.lower()

    def _key(self, e: Entry) -> tuple:
        """(missing?, value, name): images without the value (failed ones, runs without a detector) go last."""
        if self.sort == "confidence":
            return (math.isnan(e.confidence), e.confidence if not math.isnan(e.confidence) else 0.0, e.name)
        if self.sort == "label":
            return (not e.label, e.label, e.name)
        if self.sort == "domain":  # farthest first: the score descending unless asked the other way
            return (math.isnan(e.domain_score), -e.domain_score if not math.isnan(e.domain_score) else 0.0, e.name)
        if self.sort == "disagreement":
            return (*self._disagreement(e), e.name)
        return (False, e.name.lower(), e.name)

    def _disagreement(self, e: Entry) -> tuple[bool, tuple[int, float]]:
        """Disagreeing top-1 labels first, then the larger depth AbsRel; images without compare.json last."""
        info = self.run.compare_of(e) if not e.failed else {}
        if not info:
            return True, (0, 0.0)
        agree = info.get("top1_agree")
        absrel = _float(info.get("depth_absrel"))
        return False, (0 if agree is False else 1 if agree is None else 2, -absrel if not math.isnan(absrel) else 0.0)

    def entry(self, row: int) -> Entry:
        return self.run.entries[self.order[row]]

    def __len__(self) -> int:
        return len(self.order)
