"""Writing a ``vitviz analyze`` run: each image's files written in a pool (processes for many images, one thread
for a few), a bounded number in flight, committed into place when complete; the progress lines and the run's counts.

A write error that no later image could escape (a full, read-only or removed disk: :mod:`vitviz.runfolder`) stops
the whole run with one line; any other failure is one image's, recorded in the run's table, and the run goes on.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import shutil
import signal
import sys
import threading
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from threadpoolctl import threadpool_limits

from .export import write_evidence, write_features, write_head_importance, write_outputs
from .inputs import InputItem
from .runfolder import RunStopped, fatal_write_error, stop_message
from .store import OutputStore

__all__ = ["RunReport", "Console", "LENS_FILE", "PROCESS_WRITERS_FROM"]

LENS_FILE = "lens.npz"  # the logit lens of an image (--lens)
PROCESS_WRITERS_FROM = 32  # below this many images, writing in one thread beats starting processes


@dataclass
class RunReport:
    """What a run did: counts, and the time spent."""

    total: int = 0
    analysed: int = 0
    skipped: int = 0
    failed: int = 0
    out_of_domain: int = 0  # analysed images outside the model's domain (far, or only unusual)
    unusual: int = 0  # of those, the ones only just over the detector's threshold
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)


class Console:
    """The one progress bar, per-image lines on stdout and one line per failure on stderr."""

    def __init__(self, total: int, show_bar: bool, describe_error: Callable[[InputItem, BaseException], str]) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self.bar = tqdm(total=total, unit="image", disable=not show_bar, file=sys.stderr, dynamic_ncols=True,
                        smoothing=0.1)
        self.describe_error = describe_error
        self.lock = threading.Lock()

    def done(self, line: str, count: bool = True) -> None:
        with self.lock:
            self._tqdm.write(line)
            if count:
                self.bar.update(1)

    def failed(self, message: str) -> None:
        with self.lock:
            self._tqdm.write(f"vitviz: error: {message}", file=sys.stderr)
            self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _write_job(result: Any, folder: Path, kwargs: dict[str, Any], features: bool = False,
               evidence: tuple[Any, list[str], list[int]] | None = None, lens: Any = None,
               importance: Any = None) -> dict[str, Any]:
    """Write one result's files into ``folder`` (runs in a writer process); returns its summary for the table.

    ``features``: also the representation figures; ``evidence``: (Evidence, methods, target classes) to draw;
    ``lens``: a :class:`vitviz.lens.LogitLens` for ``lens.npz``; ``importance``: a
    :class:`vitviz.importance.HeadImportance` for ``head_importance.csv``."""
    if not folder.is_dir():  # the run folder was removed: fail here rather than make it again
        raise FileNotFoundError(errno.ENOENT, "the output folder was removed", str(folder))
    write_outputs(result, folder, **kwargs)
    if importance is not None:
        write_head_importance(importance, folder)
    if lens is not None:
        np.savez(folder / LENS_FILE, **lens.arrays())
    if features:
        write_features(result, folder, layer=kwargs["layer"], png_compress_level=kwargs["png_compress_level"])
    if evidence is not None:
        ev, methods, targets = evidence
        write_evidence(ev, result, folder, methods, targets, layer=kwargs["layer"], cmap=kwargs["cmap"],
                       alpha=kwargs["alpha"], png_compress_level=kwargs["png_compress_level"])
    return result.summary()


STOP_ON_INTERRUPT = "VITVIZ_STOP_ON_INTERRUPT"  # "1": Ctrl+C stops the run even where its caller ignores Ctrl+C


def stop_on_interrupt_if_asked() -> None:
    """With ``VITVIZ_STOP_ON_INTERRUPT=1`` (the app's folder analysis, whose Cancel sends Ctrl+C), Python's Ctrl+C
    handler even where this process was started with Ctrl+C ignored, as it inherits from an app started with ``&``
    from a script; Python would otherwise keep it ignored and the run would never stop."""
    if os.environ.get(STOP_ON_INTERRUPT) == "1":
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _init_writer() -> None:
    """A writer process ignores Ctrl+C (the main process stops the run, without tracebacks) and keeps numpy's BLAS
    to one thread: the processes are the parallelism, and OpenBLAS threads spin-wait after each of the rollout's small
    products, which doubled the CPU time of writing on a 2-core machine."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threadpool_limits(1, user_api="blas")


def _noop() -> None:
    return None


def _writer_pool(n: int, todo: int, outputs: frozenset[str]) -> Executor:
    """Processes that write (PNG encoding holds the GIL, so threads would take turns), forked at once, before the
    run starts its own threads, the way torch's DataLoader starts its workers; one thread for a few images, and
    off Linux, where forking a process that runs torch is not safe and spawning would re-run the caller's script."""
    if todo >= PROCESS_WRITERS_FROM and n > 1 and outputs - {"json"} and sys.platform.startswith("linux"):
        pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("fork"), initializer=_init_writer)
        pool.submit(_noop).result()  # starts all n processes now
        return pool
    return ThreadPoolExecutor(1)


class _Writers:
    """Writing results into their folders in a pool, with a bounded number of images in flight. numpy's BLAS gets one
    thread meanwhile, in this process (a writer thread's rollout) as in the writer processes (see _init_writer)."""

    def __init__(self, store: OutputStore, opts: Any, todo: int, in_flight: int, processes: bool = True) -> None:
        self.store, self.opts = store, opts
        self.console: Console
        self.slots = threading.BoundedSemaphore(in_flight)
        self.pool = _writer_pool(opts.worker_count(), todo if processes else 0, opts.outputs)
        self._blas = threadpool_limits(1, user_api="blas")
        self.kwargs = opts.write_kwargs()
        self.report = RunReport(total=todo)
        self.fatal: OSError | None = None  # a write error that stops the whole run (vitviz.runfolder.FATAL_ERRNOS)
        self._queued: set[Future] = set()  # writes not finished yet: cancelled when the run stops
        self._lock = threading.Lock()
        self._index = 0

    def acquire(self) -> None:
        self.slots.acquire()

    def drop(self, item: InputItem) -> None:
        """Let go of an image the stopped run will not write."""
        self.slots.release()

    def _stop(self, exc: BaseException) -> bool:
        """Stop the run when ``exc`` is a fatal write error (the first one is kept); True when the run is stopped."""
        fatal = fatal_write_error(exc)
        with self._lock:
            first = fatal is not None and self.fatal is None
            if first:
                self.fatal = fatal
            queued = list(self._queued) if first else []
            stopped = self.fatal is not None
        for future in queued:  # the writes waiting for a writer would fail the same way
            future.cancel()
        return stopped

    def fail(self, item: InputItem, exc: BaseException) -> None:
        if self.fatal is not None:  # the run is stopping: no row, no line
            self.slots.release()
            return
        message = self.console.describe_error(item, exc)
        try:
            self.store.record_failure(item.name, message)
        except BaseException as write_error:
            if not self._stop(write_error):
                self.slots.release()
                raise
            self.slots.release()
            return
        with self._lock:
            self.report.failed += 1
        self.console.failed(message)
        self.slots.release()

    def submit(self, item: InputItem, result: Any, evidence: tuple[Any, list[str], list[int]] | None = None,
               lens: Any = None, importance: Any = None) -> None:
        if self.fatal is not None:
            self.drop(item)
            return
        try:
            with self._lock:
                self._index += 1
                temp = self.store.temp_folder(self._index)
        except OSError as exc:
            if self._stop(exc):
                self.drop(item)
            else:
                self.fail(item, exc)
            return
        future = self.pool.submit(_write_job, result, temp, self.kwargs, self.opts.features, evidence, lens,
                                  importance)
        device = result.device
        with self._lock:
            self._queued.add(future)
        future.add_done_callback(lambda f: self._finish(f, item, temp, device))

    def _finish(self, future: Future, item: InputItem, temp: Path, device: str) -> None:
        with self._lock:
            self._queued.discard(future)
        try:
            summary = future.result()
            final = self.store.commit(item.name, temp, summary)
        except BaseException as exc:  # noqa: BLE001 - one image's failure: one line, the run goes on
            shutil.rmtree(temp, ignore_errors=True)
            if self._stop(exc):  # the disk is full, read-only or gone: no later image can be written
                self.slots.release()
            else:
                self.fail(item, exc)
            return
        predictions = summary.get("predictions") or []
        top = predictions[0] if predictions else None
        share = " match" if summary.get("scoring") == "sigmoid" else ""  # SigLIP: each label on its own
        line = f"{item.path}: " + (f"{top['label']} ({top['probability']:.1%}{share})" if top else "no classifier")
        line += f", {summary['timings_ms'].get('total', 0):.0f} ms on {device} -> {final}"
        with self._lock:
            self.report.analysed += 1
        self.console.done(line)
        domain = summary.get("domain")
        if domain is not None and not domain["in_domain"]:
            from .models.domain import DomainVerdict, out_of_domain_message

            verdict = DomainVerdict(**domain)
            with self._lock:
                self.report.out_of_domain += 1
                self.report.unusual += verdict.unusual
            if self.opts.verbose:
                self.console.done(f"{item.path}: {out_of_domain_message(verdict, self.opts.domain_known)}", count=False)
        self.slots.release()

    def close(self, cancel: bool = False, wait: bool | None = None) -> None:
        self.pool.shutdown(wait=not cancel if wait is None else wait, cancel_futures=cancel)
        self._blas.restore_original_limits()

    def stopped(self, store: OutputStore, todo: int) -> RunStopped:
        """The one-line error of a run stopped by :attr:`fatal`."""
        assert self.fatal is not None
        return RunStopped(stop_message(store.out, self.fatal, self.report.analysed, todo))


def _finish_store(store: OutputStore, writers: _Writers, todo: int) -> None:
    """Close the run's table and write results.parquet; a full disk then stops the run like any write."""
    try:
        store.finish()
    except OSError as exc:
        if writers._stop(exc):
            raise writers.stopped(store, todo) from None
        raise
