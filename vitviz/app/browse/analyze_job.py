"""File → Analyze folder…: ``vitviz analyze`` in a child process, its progress counted from its output lines, and a
cancel that stops it the way Ctrl+C does (what is written stays, and the same command finishes it later)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Signal

from ...run_writing import STOP_ON_INTERRUPT

__all__ = ["AnalyzeJob"]


class AnalyzeJob(QObject):
    """One ``vitviz analyze FOLDER --out OUT`` run. Signals: ``progress(done, total)`` after each image (analysed,
    failed or skipped as complete), ``finished(exit_code, message)`` once the process has ended (``message``: one
    line saying what happened)."""

    progress = Signal(int, int)
    finished = Signal(int, str)

    def __init__(self, folder: str | os.PathLike[str], out: str | os.PathLike[str], model: str | None = None,
                 device: str | None = None, depth_model: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.folder, self.out = Path(folder), Path(out)
        self.args = ["-m", "vitviz", "analyze", str(self.folder), "--out", str(self.out), "--quiet"]
        for option, value in (("--model", model), ("--device", device), ("--depth-model", depth_model)):
            if value:
                self.args += [option, str(value)]
        self.total = self._count_inputs()
        self.done = self.failed = 0
        self.cancelled = False
        self._errors: list[str] = []
        self._buffers = {"out": b"", "err": b""}
        self.process = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        package_root = str(Path(__file__).resolve().parents[3])  # the vitviz this window runs
        env.insert("PYTHONPATH", os.pathsep.join(p for p in (package_root, env.value("PYTHONPATH")) if p))
        env.insert("PYTHONUNBUFFERED", "1")
        env.insert(STOP_ON_INTERRUPT, "1")  # cancel() works however this app was started
        self.process.setProcessEnvironment(env)
        self.process.readyReadStandardOutput.connect(lambda: self._read("out"))
        self.process.readyReadStandardError.connect(lambda: self._read("err"))
        self.process.finished.connect(self._finished)
        self.process.errorOccurred.connect(self._error)

    def _count_inputs(self) -> int:
        from ...inputs import expand_inputs

        try:
            return len(expand_inputs([str(self.folder)], [], exclude=self.out))
        except Exception:  # noqa: BLE001 - the run itself reports an unreadable folder
            return 0

    def start(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.process.start(sys.executable, self.args)

    def cancel(self) -> None:
        """Stop the run as Ctrl+C does: the images written so far stay."""
        if self.process.state() == QProcess.ProcessState.NotRunning:
            return
        self.cancelled = True
        pid = self.process.processId()
        if pid and hasattr(signal, "SIGINT") and sys.platform != "win32":
            os.kill(pid, signal.SIGINT)
        else:
            self.process.kill()

    @property
    def running(self) -> bool:
        return self.process.state() != QProcess.ProcessState.NotRunning

    def _read(self, stream: str) -> None:
        data = bytes(self.process.readAllStandardOutput() if stream == "out" else self.process.readAllStandardError())
        text = self._buffers[stream] + data
        *lines, self._buffers[stream] = text.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip()
            if stream == "out" and " -> " in line:
                self.done += 1
            elif stream == "err" and line.startswith("vitviz: error: "):
                self._errors.append(line[len("vitviz: error: "):])
                self.done += 1
                self.failed += 1
            elif stream == "err" and line.startswith("vitviz: skipping "):
                try:
                    self.done += int(line.split()[2])
                except (IndexError, ValueError):
                    pass
            else:
                continue
            self.progress.emit(self.done, max(self.total, self.done))

    def _finished(self, code: int, _status: QProcess.ExitStatus) -> None:
        if self.cancelled:
            message = (f"Analysis cancelled after {self.done} of {self.total} images; run File → Analyze folder… "
                       "again on the same folders to finish it")
        elif code == 0:
            message = f"Analysed {self.done} images into {self.out}"
        elif code == 1:
            message = f"Analysed {self.done} images into {self.out}; {self.failed} failed (listed as failed)"
        else:
            message = "The analysis stopped: " + (self._errors[-1] if self._errors else f"exit status {code}")
        self.finished.emit(code, message)

    def _error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.finished.emit(2, f"vitviz analyze could not start ({self.process.errorString()})")
