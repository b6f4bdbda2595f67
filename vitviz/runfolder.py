"""The ``--out`` folder of ``vitviz analyze`` as a run folder: the marker that says vitviz wrote it, the lock that
keeps one writer at a time, atomic file writes, and the write errors (disk full, read-only, folder gone) that stop a
run at once instead of failing every image."""

from __future__ import annotations

import datetime
import errno
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any, Iterable

from .errors import VitvizError

__all__ = ["MARKER", "LOCK", "RunFolderError", "RunStopped", "RunLock", "check_run_folder", "write_marker",
           "foreign_entries", "marker_foreign", "atomic_write_bytes", "atomic_write_text", "fatal_write_error",
           "stop_message", "folder_identity"]

MARKER = ".vitviz-run.json"  # written first into every run folder: what wrote it, with which settings
LOCK = ".vitviz-run.lock"  # present while a run writes: its pid, host and start time
OWN_NAMES = frozenset({MARKER, LOCK, ".partial"})  # vitviz's bookkeeping (.partial: temporary image folders)
IGNORED_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})  # what file browsers leave in any folder
# Write errors that no later image can escape: the run stops at once (any other error fails one image).
FATAL_ERRNOS = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EROFS: "read-only",
                errno.EACCES: "not writable", errno.EPERM: "not writable", errno.ENOENT: "removed",
                errno.ESTALE: "removed", errno.EIO: "input/output error"}

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the lock's pid decides whether its run is alive
    fcntl = None  # type: ignore[assignment]


class RunFolderError(VitvizError):
    """The ``--out`` folder cannot be used: someone else's files, another live run, or not writable."""


class RunStopped(VitvizError):
    """A fatal write error stopped the run (its message says what, how far it got, and that rerunning resumes)."""


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _is_old_run_table(path: Path) -> bool:
    """A ``results.csv`` written by a vitviz from before the marker: its columns start name, status, error and
    include settings."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            header = fh.readline().strip().split(",")
    except (OSError, UnicodeDecodeError):
        return False
    return header[:3] == ["name", "status", "error"] and "settings" in header


def foreign_entries(out: Path) -> list[str]:
    """The names in ``out`` that no vitviz run wrote (empty for a new, empty or vitviz run folder)."""
    if not out.exists():
        return []
    if not out.is_dir():
        raise RunFolderError(f"--out {out} is a file, not a folder: choose a folder for the results")
    marker = _read_json(out / MARKER)
    if marker is not None and marker.get("format") == "vitviz-run":
        return []
    try:
        names = sorted(p.name for p in out.iterdir())
    except OSError as exc:
        raise RunFolderError(f"--out {out} cannot be read ({exc.strerror or exc})") from None
    if "results.csv" in names and _is_old_run_table(out / "results.csv"):
        return []  # an earlier vitviz run's folder (written before the marker existed)
    return [n for n in names if n not in OWN_NAMES | IGNORED_NAMES]


def check_run_folder(out: Path, force: bool = False) -> None:
    """Refuse ``out`` before any work when it holds someone else's files (unless ``force``) or a live run writes
    into it; raises :class:`RunFolderError` with one line naming the folder and the way out."""
    foreign = foreign_entries(out)
    if foreign and not force:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise RunFolderError(f"--out {out} is not empty and no vitviz run wrote it (it holds {shown}): choose a new "
                             "or empty folder, or add --force to write beside those files (vitviz never deletes "
                             "or overwrites what it did not write)")
    holder = RunLock.holder(out)
    if holder is not None:
        raise RunFolderError(_locked_message(out, holder))
    if out.is_dir() and not os.access(out, os.W_OK):
        read_only = hasattr(os, "statvfs") and bool(os.statvfs(out).f_flag & getattr(os, "ST_RDONLY", 1))
        cause = "a read-only file system" if read_only else "no permission"
        raise RunFolderError(f"cannot write into --out {out} ({cause}): nothing was written; run the same command "
                             "again once it is writable")


def _locked_message(out: Path, holder: dict[str, Any]) -> str:
    who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started', '?')}"
    return (f"--out {out} is in use by another vitviz run ({who}): wait for it to finish, or choose another "
            "folder")


def marker_foreign(out: Path) -> list[str]:
    """The names the run folder's marker records as someone else's (see :func:`write_marker`)."""
    names = (_read_json(out / MARKER) or {}).get("foreign")
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def write_marker(out: Path, settings: str, foreign: Iterable[str] = ()) -> dict[str, Any]:
    """Write (atomically) or update the run folder's marker; ``foreign``: the names in it that are not vitviz's
    (there before the first run, which ``--force`` let write beside them), so that no later run takes them for its
    own."""
    from . import __version__

    old = _read_json(out / MARKER) or {}
    marker = {"format": "vitviz-run", "version": __version__, "created": old.get("created") or _now(),
              "updated": _now(), "settings": settings, "foreign": sorted(set(foreign))}
    atomic_write_text(out / MARKER, json.dumps(marker, indent=2) + "\n")
    return marker


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine."""
    if os.name == "nt":  # os.kill(pid, 0) would send Ctrl+C there
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    except OSError:
        return True
    return True


_HELD: set[int] = set()  # lock file descriptors this process holds: closed in forked children (see below)


def _close_in_child() -> None:
    """A forked writer process must not keep the lock: with flock, the lock lasts while any copy of the descriptor
    is open, and a killed run's leftover children would then block the rerun."""
    for fd in list(_HELD):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


class RunLock:
    """The one-writer lock of a run folder: ``LOCK``, created with O_EXCL, holding the run's pid, host and start
    time. Where ``fcntl`` exists the file is also ``flock``-ed while the run lives: the kernel drops that lock when
    the process dies (``kill -9`` included), so a dead run's leftover file is taken over at once; elsewhere a
    leftover whose pid is not alive on this host is taken over."""

    def __init__(self, out: Path) -> None:
        self.path = out / LOCK
        self.fd: int | None = None

    @staticmethod
    def holder(out: Path) -> dict[str, Any] | None:
        """Who holds ``out``'s lock now (pid, host, started), or None when no live run does."""
        path = out / LOCK
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            info = _parse(os.read(fd, 4096))
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    return info or {}
                except OSError:  # no flock on this file system: the pid decides
                    pass
                else:
                    return None  # nobody holds it: a dead run's leftover
            return info if _held_by_live_process(info) else None
        finally:
            os.close(fd)

    def acquire(self) -> None:
        """Take the lock, or raise :class:`RunFolderError` naming the live run that holds it."""
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    fd = os.open(self.path, os.O_RDWR)
                except FileNotFoundError:
                    continue  # released meanwhile: try again
            flocked = fcntl is not None
            if flocked:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    info = _parse(os.read(fd, 4096))
                    os.close(fd)
                    raise RunFolderError(_locked_message(self.path.parent, info or {})) from None
                except OSError:  # a file system without flock (ENOLCK): the pid decides, as on Windows
                    flocked = False
            if flocked:
                try:
                    same = os.path.samestat(os.fstat(fd), os.stat(self.path))
                except FileNotFoundError:
                    same = False
                if not same:  # the file was released and removed between our open and our flock
                    os.close(fd)
                    continue
            else:  # no flock: trust the pid
                info = _parse(os.read(fd, 4096))
                if info and _held_by_live_process(info) and info.get("pid") != os.getpid():
                    os.close(fd)
                    raise RunFolderError(_locked_message(self.path.parent, info))
            data = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": _now(),
                               "command": " ".join(sys.argv[:1] + sys.argv[1:8])}).encode()
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, data)
            self.fd = fd
            _HELD.add(fd)
            return
        raise RunFolderError(f"--out {self.path.parent}: could not take its lock {LOCK} (other runs keep starting)")

    def release(self) -> None:
        """Remove the lock file and drop the lock (removing first: a run waiting on this file then retries)."""
        if self.fd is None:
            return
        try:
            if os.path.samestat(os.fstat(self.fd), os.stat(self.path)):
                os.unlink(self.path)
        except OSError:
            pass  # the folder is gone or read-only now: the kernel's lock still goes with the descriptor
        _HELD.discard(self.fd)
        os.close(self.fd)
        self.fd = None


def _parse(data: bytes) -> dict[str, Any] | None:
    try:
        info = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _held_by_live_process(info: dict[str, Any] | None) -> bool:
    if not info:
        return False
    if info.get("host") != socket.gethostname():
        return True  # another machine's run: cannot tell, so it counts as alive
    pid = info.get("pid")
    return isinstance(pid, int) and _alive(pid)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: a temporary file in the same folder, renamed over it; the temporary file
    is removed when writing fails (a full disk, say)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def fatal_write_error(exc: BaseException | None) -> OSError | None:
    """The OSError behind ``exc`` (itself, or what it was raised from) when it is one that stops a whole run."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in FATAL_ERRNOS:
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def folder_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of ``path``, or None when it is gone: a folder removed (and perhaps made again) while a run
    writes into it has another identity."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def stop_message(out: Path, exc: OSError | None, written: int, todo: int, gone: bool = False) -> str:
    """The one line of a stopped run: the cause, how many images were written, and that rerunning resumes."""
    if gone or exc is None or exc.errno in (errno.ENOENT, errno.ESTALE):
        return (f"the output folder {out} was removed while the run was writing into it: stopped after writing "
                f"{written} of {todo} image(s); run the same command again to start over")
    reason = exc.strerror or str(exc)
    cause = {"disk full": f"the disk holding {out} is full ({reason})",
             "disk quota exceeded": f"the disk quota for {out} is used up ({reason})",
             "read-only": f"the file system holding {out} is read-only",
             "not writable": f"{out} is not writable ({reason})"}.get(FATAL_ERRNOS.get(exc.errno or 0, ""),
                                                                    f"writing into {out} failed ({reason})")
    return (f"{cause}: stopped after writing {written} of {todo} image(s); run the same command again to resume "
            "(the images written are kept, none was left half-written)")
