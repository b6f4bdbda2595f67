"""The images a ``vitviz analyze`` run reads: files, folders (recursive), glob patterns and lists of paths.

Each input becomes an :class:`InputItem`: the path to read and the name of its output folder. Names are deterministic
(the same inputs give the same names), which is what lets a second run over the same ``--out`` skip finished images.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from PIL import Image

__all__ = ["InputItem", "expand_inputs", "image_suffixes"]

GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class InputItem:
    """One image to analyse: ``path`` to read, ``name`` of its output folder (relative, ``/``-separated).

    ``error`` is set for an input that is already known to be unusable (an empty folder, a pattern matching nothing):
    it is reported like an image that failed.
    """

    path: str
    name: str
    error: str | None = None


def image_suffixes() -> frozenset[str]:
    """File suffixes (lower case, with the dot) of the formats Pillow can open."""
    Image.init()
    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def expand_inputs(
    inputs: Iterable[str], list_files: Iterable[str | os.PathLike[str]] = (), exclude: str | os.PathLike[str] | None = None
) -> list[InputItem]:
    """Turn command-line inputs into items, in a deterministic order.

    - a file: analysed as given, folder name = its stem (as ``vitviz analyze`` always did);
    - a folder: every image file below it (hidden files and folders, and ``exclude``, skipped), sorted, folder name =
      the path relative to the folder without its suffix, so ``photos/cats/1.jpg`` writes ``OUT/cats/1/``;
    - a glob pattern (``*``, ``?``, ``[``; ``**`` recurses): the matches, sorted, named relative to the pattern's fixed
      leading folder;
    - ``@FILE`` or a file in ``list_files``: one path (or folder, or pattern) per line; blank lines and lines starting
      with ``#`` are skipped; relative paths are relative to the current folder.

    A path that does not exist stays an item: reading it fails with the usual one-line reason. Folder names that
    would collide get ``-2``, ``-3``, ... in input order.
    """
    suffixes = image_suffixes()
    skip = Path(exclude).resolve() if exclude is not None else None
    used: set[str] = set()
    items: list[InputItem] = []

    parents: set[str] = set()  # folders that hold other images' folders: no image may use them

    def add(path: str, name: str, error: str | None = None) -> None:
        parts = (name or "image").split("/")
        for i in range(len(parts)):  # a part that collides gets -2, -3, ...: no folder lands inside another's
            leaf, base, n = i == len(parts) - 1, parts[i], 2
            while "/".join(parts[: i + 1]) in used or (leaf and "/".join(parts) in parents):
                parts[i], n = f"{base}-{n}", n + 1
        candidate = "/".join(parts)
        used.add(candidate)
        parents.update("/".join(parts[: i + 1]) for i in range(len(parts) - 1))
        items.append(InputItem(path, candidate, error))

    def one(spec: str) -> None:
        if spec.startswith("@") and not os.path.exists(spec):
            for line in _read_list(spec[1:]):
                one(line)
            return
        p = Path(spec)
        if p.is_dir():
            found = False
            for f in _walk(p, suffixes, skip):
                found = True
                add(str(f), _relative_name(f, p))
            if not found:
                add(spec, p.name, f"{spec}: is a folder with no image files in it")
            return
        if not p.exists() and GLOB_CHARS & set(spec):
            matches = sorted(glob.glob(spec, recursive=True))
            if not matches:
                add(spec, "pattern", f"{spec}: no files match this pattern")
            root = _glob_root(spec)
            for m in matches:
                mp = Path(m)
                if mp.is_dir():
                    for f in _walk(mp, suffixes, skip):
                        add(str(f), _relative_name(f, root))
                elif skip is None or skip not in mp.resolve().parents:
                    add(m, _relative_name(mp, root))
            return
        add(spec, p.stem)

    for spec in inputs:
        one(str(spec))
    for list_file in list_files:
        for line in _read_list(str(list_file)):
            one(line)
    return items


def _read_list(path: str) -> Iterator[str]:
    from .errors import VitvizError

    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if line and not line.startswith("#"):
                    yield line
    except OSError as exc:
        raise VitvizError(f"{path}: cannot read the list of images ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise VitvizError(f"{path}: the list of images is not UTF-8 text") from exc


def _walk(root: Path, suffixes: frozenset[str], skip: Path | None) -> Iterator[Path]:
    """Image files below ``root``, sorted, without hidden entries or ``skip`` (the output folder)."""
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and (skip is None or (here / d).resolve() != skip)
        )
        for f in sorted(filenames):
            if not f.startswith(".") and os.path.splitext(f)[1].lower() in suffixes:
                yield here / f


def _relative_name(path: Path, root: Path) -> str:
    try:
        rel = path.relative_to(root)
    except ValueError:
        return path.stem
    return rel.with_suffix("").as_posix() if rel.parts else path.stem


def _glob_root(pattern: str) -> Path:
    """The leading part of a pattern that holds no wildcard (``data/**/*.jpg`` -> ``data``)."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts[:-1]:
        if GLOB_CHARS & set(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")
