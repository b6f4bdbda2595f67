"""The app survives its own bugs: a Python exception inside a Qt override (``paintEvent``, ``showEvent``, ...) or a
slot becomes a line in the log and a message in the window, never a crash.

PySide hands such an exception to ``sys.excepthook`` once the override or slot returns to Qt; the default hook prints
a traceback that nobody reads, and an exception raised inside the hook itself is what takes the process down. The
guard's hook never raises, logs each distinct bug with its traceback once (repeats of a bug in ``paintEvent`` come
many times a second), and shows the message bar from the event loop, never from inside the failing override."""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any, Callable

from PySide6.QtCore import QObject, Qt, Signal

__all__ = ["ExceptionGuard", "install_exception_guard", "default_log_file", "LOGGER_NAME"]

LOGGER_NAME = "vitviz.app"
REPEAT_LOGGED_AT = (10, 100, 1000, 10000)  # a bug that keeps repeating gets a line at these counts
SHOW_AGAIN_AFTER_S = 5.0  # the same bug is shown again in the window at most this often


def default_log_file() -> Path | None:
    """``vitviz.log`` in the app's local data folder (None when Qt cannot name one)."""
    from PySide6.QtCore import QStandardPaths

    folder = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppLocalDataLocation)
    return Path(folder) / "vitviz.log" if folder else None


class ExceptionGuard(QObject):
    """Turns uncaught exceptions of the UI (and of Python threads) into a log line and ``show(message)``; the
    previous ``sys.excepthook`` still runs when it is someone else's (IPython's, a test runner's)."""

    reported = Signal(str)

    def __init__(self, show: Callable[[str], None], log_file: Path | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.log = logging.getLogger(LOGGER_NAME)
        self.log_file = self._add_file_handler(log_file) if log_file is not None else None
        self.counts: dict[tuple[str, str, int], int] = {}
        self._shown_at: dict[tuple[str, str, int], float] = {}
        self._previous: Any = None
        self._previous_thread_hook: Any = None
        self._lock = threading.Lock()
        # queued, always: the bar is shown from the event loop, not from inside the paintEvent that failed
        self.reported.connect(show, Qt.ConnectionType.QueuedConnection)

    def _add_file_handler(self, path: Path) -> Path | None:
        from logging.handlers import RotatingFileHandler

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = RotatingFileHandler(path, maxBytes=1_000_000, backupCount=1, encoding="utf-8", delay=True)
        except OSError:
            return None
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self._handler = handler
        self.log.addHandler(handler)
        return path

    def install(self) -> ExceptionGuard:
        self._previous, sys.excepthook = sys.excepthook, self.excepthook
        self._previous_thread_hook, threading.excepthook = threading.excepthook, self._thread_hook
        return self

    def uninstall(self) -> None:
        if sys.excepthook == self.excepthook:
            sys.excepthook = self._previous
        if threading.excepthook == self._thread_hook:
            threading.excepthook = self._previous_thread_hook
        handler = getattr(self, "_handler", None)
        if handler is not None:
            self.log.removeHandler(handler)
            handler.close()

    def _thread_hook(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        self.excepthook(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback,
                        where=f"thread {args.thread.name if args.thread else '?'}")

    def excepthook(self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None,
                   where: str = "") -> None:
        """Log and report one uncaught exception; never raises."""
        if issubclass(exc_type, KeyboardInterrupt):
            self._chain(exc_type, exc, tb, always=True)
            return
        try:
            self._report(exc_type, exc, tb, where)
        except Exception:  # noqa: BLE001 - the hook itself must never raise
            pass
        self._chain(exc_type, exc, tb)

    def _chain(self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None,
               always: bool = False) -> None:
        previous = self._previous
        if previous is None or (previous is sys.__excepthook__ and not always):
            return  # the default hook would only print the traceback again
        try:
            previous(exc_type, exc, tb)
        except Exception:  # noqa: BLE001
            pass

    def _report(self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None,
                where: str) -> None:
        frames = traceback.extract_tb(tb) if tb is not None else []
        last = frames[-1] if frames else None
        key = (exc_type.__name__, last.filename if last else "", last.lineno or 0 if last else 0)
        function = last.name if last else ""
        with self._lock:
            count = self.counts[key] = self.counts.get(key, 0) + 1
            now = time.monotonic()
            show = now - self._shown_at.get(key, -SHOW_AGAIN_AFTER_S) >= SHOW_AGAIN_AFTER_S
            if show:
                self._shown_at[key] = now
        text = " ".join(str(exc).split()).removeprefix("Error calling Python override of ")
        summary = f"{exc_type.__name__} in {function or where or 'the app'}: {text}" if text else exc_type.__name__
        if count == 1:
            self.log.error("uncaught exception (%s): %s", where or "Qt event", summary, exc_info=(exc_type, exc, tb))
        elif count in REPEAT_LOGGED_AT:
            self.log.error("the same exception again (%d times): %s", count, summary)
        if show:
            where_logged = f" (details in {self.log_file})" if self.log_file else " (details in the log)"
            self.reported.emit(f"Something went wrong inside vitviz: {summary[:300]}. The window carries on; "
                               f"please report this bug{where_logged}.")


def install_exception_guard(window: Any, log_file: Path | None = None) -> ExceptionGuard:
    """Guard the app around ``window`` (a :class:`~vitviz.app.main_window.MainWindow`): uncaught exceptions are
    logged (also to ``log_file``) and shown in its message bar."""
    guard = ExceptionGuard(lambda message: window.show_error(message, topic="bug"), log_file, parent=window)
    return guard.install()
