"""Dataset-scale ``vitviz analyze``: decoding, batched forward passes and writing, overlapped; resumable.

Decoding runs in a pool of threads, the forward pass on the device (same-size images share a batch), writing in a
pool of processes (PNG encoding holds Python's GIL). A bounded number of images is in flight at any time, so memory
stays flat however many files there are. Each image is written into a temporary folder that is renamed into place
when complete: a killed run leaves nothing that a later run takes for finished. ``run_ray`` runs the forward passes
as :class:`vitviz.batch.Analyzer` actors on a Ray cluster and writes the same files.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import VitvizError
from .export import HEAD_IMPORTANCE_FILE, features_files, output_files
from .inputs import InputItem
from .runfolder import RunStopped
from .run_writing import (LENS_FILE, PROCESS_WRITERS_FROM, Console, RunReport,  # noqa: F401 - re-exported
                          _finish_store, _Writers)
from .store import PARTIAL, TABLE, OutputStore, run_settings  # noqa: F401 - re-exported

__all__ = ["RunOptions", "OutputStore", "RunReport", "default_batch_size", "forward_streams", "run_local", "run_ray",
           "SCALE_HINT"]

SCALE_HINT = "install the scale extra: pip install -e '.[scale]'"
DRAWN = frozenset({"input", "heads", "rollout", "depth"})  # outputs rendered and encoded as PNG


def default_batch_size(device: str) -> int:
    """Images per forward pass: enough to keep a GPU busy, small enough for a CPU's caches."""
    kind = device.split(":")[0].split(" ")[0]
    return {"cuda": 64, "mps": 16}.get(kind, 8)


@dataclass
class RunOptions:
    """What to write where, and how much to run at once."""

    out: Path
    outputs: frozenset[str]
    layer: int = -1
    cmap: str = "inferno"
    depth_cmap: str = "turbo"
    alpha: float = 0.6
    topk: int = 5
    batch_size: int | None = None  # None: default_batch_size(device)
    workers: int | None = None  # decoding threads and writing processes (None: the CPU count, at most 8)
    png_compress_level: int = 1
    progress: bool = True
    features: bool = False  # also features.npz, pca_layerL.png and head_atlas.png (vitviz.features)
    lens: bool = False  # also lens.npz, the logit lens (vitviz.lens)
    ablate: tuple[tuple[int, int], ...] = ()  # heads knocked out in every analysis, (layer, head) 0-based
    head_importance: str = ""  # also head_importance.csv: "knockout" or "estimate" (vitviz.importance.METHODS)
    explain: tuple[str, ...] = ()  # class-evidence methods to write (vitviz.explain), for the --target classes
    target: str = "top1"
    # image-text models: the labels asked about and their prompt templates (set on the engine; part of the settings)
    labels: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()
    domain_known: str = ""  # what the model knows, for the out-of-domain notice (e.g. "10 synthetic shapes")
    verbose: bool = False  # an out-of-domain line per image (else one summary at the end of the run)
    force: bool = False  # write into a folder that holds files vitviz did not write (never touching them)

    @property
    def attention(self) -> str:
        """What the analyses keep of the attention (vitviz.engine.ATTENTION_MODES): the full tensors only when
        they are written."""
        if "attention-full" in self.outputs:
            return "full"
        return "auto" if "rollout" in self.explain else "summary"  # other rollout rows: from queries and keys

    def write_kwargs(self) -> dict[str, Any]:
        return dict(layer=self.layer, cmap=self.cmap, depth_cmap=self.depth_cmap, alpha=self.alpha,
                    outputs=self.outputs, png_compress_level=self.png_compress_level)

    def worker_count(self) -> int:
        return self.workers if self.workers else max(1, min(8, os.cpu_count() or 1))


class _InPlace(Executor):
    """Runs each task at once, in the calling thread. A single batch's forward pass runs on the thread that loaded
    the model: a fresh thread's first forward pass is much slower (its own OpenMP team and allocator arena to set
    up: about 0.4 s, +20 %, for a 2,036-token photo on a 2-core CPU), and a one-photo ``vitviz analyze`` is nothing
    but that first pass."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - for whoever reads the future (Ctrl-C goes straight up)
            future.set_exception(exc)
        return future


def _prepare_store(items: Sequence[InputItem], opts: RunOptions, layers: int, has_depth: bool,
                   topk: int, settings: str = "") -> tuple[OutputStore, list[InputItem], int]:
    expected = output_files(opts.outputs, layers, opts.layer, has_depth) | ({LENS_FILE} if opts.lens else set())
    if opts.head_importance:
        expected.add(HEAD_IMPORTANCE_FILE)
    if opts.features and layers:  # a run resumed with --features completes the images written without it
        expected.update(features_files(layers, opts.layer))
    store = OutputStore(opts.out, expected, topk, settings, force=opts.force)
    store.start([it.name for it in items])
    redo = sum(it.name in store.other_settings for it in items)
    if redo:
        print(f"vitviz: {redo} image(s) in {opts.out} were written with other settings (model, --topk, --layer, "
              "colours, --ablate, --explain, --target or --labels): analysing them again", file=sys.stderr)
    todo = [it for it in items if it.error is not None or not store.is_done(it.name)]
    return store, todo, len(items) - len(todo)


def forward_streams(device: str, drawing: bool = False) -> int:
    """Batches in flight at once: two on a CPU with several cores when little is drawn (each forward pass then
    gets its own share of the cores, which keeps them busier than one pass whose threads wait for each other), one
    on an accelerator, or when images are drawn (PNG encoding then needs the spare cores more)."""
    several = (os.cpu_count() or 1) >= 2
    return 2 if device.split(":")[0] == "cpu" and several and not drawing else 1


class _torch_threads:
    """On the CPU, the forward passes together get half the cores while the pipeline runs (decoding and writing use
    the rest), with at least one thread per stream: torch's threads spin-wait, and with more threads than free
    cores a forward pass can take many times longer. A run of a single batch keeps every core: nothing is decoded or
    written while its forward pass runs."""

    def __init__(self, device_type: str, streams: int = 1, single_batch: bool = False) -> None:
        import torch

        self._torch, self._before = torch, torch.get_num_threads()
        if device_type == "cpu" and not single_batch:  # even with one decoding thread and one writer, those compete with it
            torch.set_num_threads(max(1, min(self._before, (os.cpu_count() or 2) // 2 // streams)))

    def restore(self) -> None:
        self._torch.set_num_threads(self._before)


def _evidence(engine: Any, result: Any, opts: RunOptions) -> tuple[Any, list[str], list[int]]:
    """The class evidence to write for ``result``: gradients of the ``opts.target`` classes (one forward and one
    batched backward pass, on the device) when a gradient method is asked for, else the result's own attentions."""
    from .explain import GRADIENT_METHODS, Evidence, resolve_targets

    targets: list[int] = []
    if result.labels and result.probabilities is not None:
        targets = resolve_targets(opts.target, result.labels, result.probabilities)
    if targets and any(m in GRADIENT_METHODS for m in opts.explain):
        evidence = engine.evidence(result, targets)
    else:
        evidence = Evidence.from_result(result, engine.info.config.head_pool)
    attention = result.attention
    if attention is not None and attention.queries is not None:
        for target in targets or [None]:  # the rollout maps now, from the queries and keys, which stay here
            if "rollout" in opts.explain:
                evidence.map("rollout", target)
        lean = attention.without_queries()
        if evidence.attention is attention:
            evidence.attention = lean
        result.attention = lean
    return evidence, list(opts.explain), targets


def run_local(
    items: Sequence[InputItem],
    engine: Any,
    opts: RunOptions,
    describe_error: Callable[[InputItem, BaseException], str],
    on_skipped: Callable[[int], None] | None = None,
) -> RunReport:
    """Analyse ``items`` with ``engine`` (a :class:`vitviz.engine.Engine`) and write their outputs under
    ``opts.out``, skipping images whose outputs are already complete there."""
    t0 = time.perf_counter()
    depth_name = engine.depth_info.name if engine.depth_info else None
    store, todo, skipped = _prepare_store(items, opts, engine.model.num_layers,
                                          engine.model.has_depth or engine.depth_model is not None,
                                          opts.topk, run_settings(opts, engine.info.name, depth_name))
    if skipped and on_skipped:
        on_skipped(skipped)
    batch_size = max(1, opts.batch_size or default_batch_size(engine.device.type))
    workers = opts.worker_count()
    streams = forward_streams(engine.device.type, drawing=bool(opts.outputs & DRAWN) or opts.features
                              or bool(opts.explain))
    single_batch = len(todo) <= batch_size
    threads = _torch_threads(engine.device.type, streams, single_batch=single_batch)
    forwards: Executor = (_InPlace() if single_batch
                          else ThreadPoolExecutor(streams, thread_name_prefix="vitviz-forward"))
    free_streams = threading.Semaphore(streams)
    running: list[Future] = []
    max_pending = 2 * batch_size  # decoded images waiting for a batch of their size
    try:
        writers = _Writers(store, opts, len(todo), in_flight=max_pending + (1 + streams) * batch_size + 4 * workers)
    except BaseException:  # e.g. the writer processes cannot start: the folder is released all the same
        threads.restore()
        store.close()
        raise
    console = writers.console = Console(len(todo), opts.progress and len(todo) > 1, describe_error)
    decoders = ThreadPoolExecutor(workers)
    decoded: queue.Queue = queue.Queue()
    stop = threading.Event()

    def feed() -> None:
        for item in todo:
            while not writers.slots.acquire(timeout=0.1):
                if stop.is_set() or writers.fatal is not None:
                    decoded.put(None)
                    return
            if stop.is_set() or writers.fatal is not None:
                writers.drop(item)
                decoded.put(None)
                return
            if item.error is not None:
                future: Future = Future()
                future.set_exception(VitvizError(item.error))
            else:
                future = decoders.submit(engine.prepare, item.path)
            decoded.put((item, future))
        decoded.put(None)

    hidden = opts.features or opts.lens  # the hidden states: for the feature views and the logit lens

    def run(group: list[tuple[InputItem, Any]]) -> None:
        if writers.fatal is not None:  # the run is stopping: no more forward passes
            for item, _ in group:
                writers.drop(item)
            return
        try:
            results = engine.analyze_batch([prep for _, prep in group], topk=opts.topk, features=hidden,
                                           concurrent=streams > 1, attention=opts.attention, ablate=opts.ablate)
        except Exception:  # noqa: BLE001 - find the image that fails by analysing them one at a time
            results = []
            for item, prep in group:
                try:  # (a batch of one, like the batches: no lock or hooks that the other stream would race)
                    results.append(engine.analyze_batch([prep], topk=opts.topk, features=hidden,
                                                        concurrent=streams > 1, attention=opts.attention,
                                                        ablate=opts.ablate)[0])
                except Exception as exc:  # noqa: BLE001
                    results.append(exc)
        for (item, _), result in zip(group, results):
            if isinstance(result, BaseException):
                writers.fail(item, result)
                continue
            try:
                evidence = _evidence(engine, result, opts) if opts.explain else None
                lens = engine.lens(result) if opts.lens else None
                if lens is not None:
                    lens.patch_probabilities  # noqa: B018 - every layer's maps now, here, not in a writer thread
                importance = (engine.head_importance(result, ablate=opts.ablate, method=opts.head_importance)
                              if opts.head_importance else None)
            except Exception as exc:  # noqa: BLE001 - this image alone fails
                writers.fail(item, exc)
                continue
            if not opts.features:
                result.hidden_states = None  # kept for the lens only: not sent to the writers
            writers.submit(item, result, evidence, lens, importance)

    def start(group: list[tuple[InputItem, Any]]) -> None:
        """Run ``group`` on the next free stream (waits for one); raises what an earlier batch raised."""
        free_streams.acquire()
        for f in [f for f in running if f.done()]:
            running.remove(f)
            f.result()
        future = forwards.submit(run, group)
        future.add_done_callback(lambda _f: free_streams.release())
        running.append(future)

    feeder = threading.Thread(target=feed, name="vitviz-feed", daemon=True)
    feeder.start()
    pending: dict[tuple, list[tuple[InputItem, Any]]] = {}
    n_pending = 0
    try:
        while (entry := decoded.get()) is not None:
            item, future = entry
            if writers.fatal is not None:
                writers.drop(item)
                break
            try:
                prep = future.result()
            except Exception as exc:  # noqa: BLE001 - this image alone fails
                writers.fail(item, exc)
                continue
            group = pending.setdefault(prep.size_key, [])
            group.append((item, prep))
            n_pending += 1
            if len(group) >= batch_size:
                start(pending.pop(prep.size_key))
                n_pending -= len(group)
            elif n_pending >= max_pending:
                largest = max(pending, key=lambda k: len(pending[k]))
                n_pending -= len(pending[largest])
                start(pending.pop(largest))
        for group in pending.values():
            if writers.fatal is None:
                start(group)
        pending.clear()
        forwards.shutdown()
        for f in running:
            f.result()
        writers.close()
        if writers.fatal is not None:
            raise writers.stopped(store, len(todo))
    except BaseException as exc:
        stop.set()
        stopping = writers.fatal is not None  # let the writes in flight end before their folders are removed
        forwards.shutdown(wait=stopping, cancel_futures=True)
        decoders.shutdown(wait=False, cancel_futures=True)
        writers.close(cancel=True, wait=stopping)
        console.close()
        store.close(stopped=True)
        if stopping and not isinstance(exc, RunStopped):
            raise writers.stopped(store, len(todo)) from None
        raise
    finally:
        threads.restore()
    decoders.shutdown()
    console.close()
    _finish_store(store, writers, len(todo))
    report = writers.report
    report.total, report.skipped, report.seconds = len(items), skipped, time.perf_counter() - t0
    return report


def run_ray(
    items: Sequence[InputItem],
    address: str | None,
    model: str | None,
    depth_model: str | None,
    device: str,
    half: bool,
    opts: RunOptions,
    describe_error: Callable[[InputItem, BaseException], str],
    on_skipped: Callable[[int], None] | None = None,
    actors: int | None = None,
) -> RunReport:
    """The same job with the forward passes in :class:`vitviz.batch.Analyzer` actors on a Ray cluster (``address``;
    None or "local": a Ray started on this machine, or the one already initialised). The driver writes the files."""
    try:
        import ray
        import ray.data  # noqa: F401 - the data extra is needed too
    except ImportError as exc:
        raise VitvizError(SCALE_HINT) from exc
    from .batch import Analyzer, result_from_row
    from .engine import resolve_model

    t0 = time.perf_counter()
    net, info = resolve_model(model)  # check the model before starting anything; its shape sets the expected files
    has_depth = net.has_depth or bool(depth_model)
    if "attention-full" in opts.outputs:
        from .export import print_full_attention_estimate

        print_full_attention_estimate([it.path for it in items if it.error is None], net.config,
                                      net.num_prefix_tokens)
    store, todo, skipped = _prepare_store(items, opts, net.num_layers, has_depth, opts.topk,
                                          run_settings(opts, info.name, depth_model))
    del net
    if skipped and on_skipped:
        on_skipped(skipped)
    batch_size = opts.batch_size or default_batch_size("cuda" if device.startswith("cuda") else "cpu")
    started = False
    # the writers fork before Ray starts its threads; a driver that is already connected writes in a thread
    try:
        writers = _Writers(store, opts, len(todo), in_flight=4 * batch_size + 4 * opts.worker_count(),
                           processes=not ray.is_initialized())
    except BaseException:
        store.close()
        raise
    quiet = os.environ.get("VITVIZ_DEBUG", "").strip() in ("", "0")
    if quiet:  # Ray's own log lines would bury the progress bar and the per-image lines
        import logging

        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.ERROR)
    console = writers.console = Console(len(todo), opts.progress and len(todo) > 1, describe_error)
    try:
        if not ray.is_initialized():
            import logging

            ray.init(address=None if address in (None, "", "local") else address, include_dashboard=False,
                     log_to_driver=not quiet, logging_level=logging.ERROR if quiet else logging.INFO)
            started = True
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0)) if device in ("auto",) or device.startswith("cuda") else 0
        cpus = int(resources.get("CPU", 1))
        good = [it for it in todo if it.error is None]
        for it in todo:
            if it.error is not None and writers.fatal is None:
                writers.acquire()
                writers.fail(it, VitvizError(it.error))
        if good:
            ds = ray.data.from_items([{"path": it.path, "name": it.name, "index": i} for i, it in enumerate(good)])
            kwargs: dict[str, Any] = dict(
                fn_constructor_kwargs=dict(model=model, device=device, depth_model=depth_model, half=half,
                                           topk=opts.topk, outputs=sorted(opts.outputs)),
                batch_size=batch_size,
                compute=ray.data.ActorPoolStrategy(size=actors or (gpus if gpus else max(1, cpus // 2))),
            )
            if gpus:
                kwargs["num_gpus"] = 1
            else:
                kwargs["num_cpus"] = 1 if cpus < 4 else 2
            ds = ds.map_batches(Analyzer, **kwargs)
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                if writers.fatal is not None:
                    break
                for i in range(len(batch["name"])):
                    item = good[int(batch["index"][i])]
                    writers.acquire()
                    if batch["error"][i]:
                        writers.fail(item, VitvizError(str(batch["error"][i])))
                        continue
                    row = {k: v[i] for k, v in batch.items()}
                    writers.submit(item, result_from_row(row))
        writers.close()
        if writers.fatal is not None:
            raise writers.stopped(store, len(todo))
    except BaseException as exc:
        stopping = writers.fatal is not None
        writers.close(cancel=True, wait=stopping)
        console.close()
        store.close(stopped=True)
        if started:
            ray.shutdown()
        if stopping and not isinstance(exc, RunStopped):
            raise writers.stopped(store, len(todo)) from None
        raise
    console.close()
    _finish_store(store, writers, len(todo))
    if started:
        ray.shutdown()
    report = writers.report
    report.total, report.skipped, report.seconds = len(items), skipped, time.perf_counter() - t0
    return report
