"""Helpers shared by the benchmark scripts: machine description, timing statistics, result files, reference imports.

Nothing here is a test: the scripts print tables and write JSON under ``benchmarks/results/`` so runs can be compared
(``python benchmarks/compare.py A.json B.json``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The end-to-end input: a square photo (512x512 JPEG), so ViT-S/B see exactly 224x224 (14x14 patches) and the
# shipped model 128x128 (8x8 patches), the sizes the reference implementations are timed at.
BENCH_IMAGE = ROOT / "assets" / "samples" / "photo-astronaut.jpg"


# ------------------------------------------------------------------------------------------------ machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """CPU, cores, memory, torch version and threads, GPU (when there is one)."""
    import torch

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "numpy": _version("numpy"),
        "transformers": _version("transformers"),
        "timm": _version("timm"),
        "PySide6": _version("PySide6"),
        "pyqtgraph": _version("pyqtgraph"),
        "cuda": None,
    }
    try:
        mem = Path("/proc/meminfo").read_text().splitlines()[0]
        info["memory_gib"] = round(int(re.findall(r"\d+", mem)[0]) / 2**20, 1)
    except (OSError, IndexError):
        pass
    if torch.cuda.is_available():
        info["cuda"] = {"device": torch.cuda.get_device_name(0), "runtime": torch.version.cuda}
    info["code"] = code_state()
    try:
        info["loadavg_at_start"] = [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        pass
    return info


def code_state() -> dict[str, Any]:
    """Which vitviz was measured: its folder, the git commit and the files of ``vitviz/`` changed since."""
    import subprocess

    import vitviz

    state: dict[str, Any] = {"vitviz": str(Path(vitviz.__file__).resolve().parent)}
    try:
        git = ["git", "-C", str(ROOT)]
        state["commit"] = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                         timeout=10).stdout.strip() or None
        status = subprocess.run(git + ["status", "--porcelain", "--", "vitviz"], capture_output=True, text=True,
                                timeout=10).stdout
        state["uncommitted"] = [line[3:] for line in status.splitlines()]
    except (OSError, subprocess.SubprocessError):
        pass
    return state


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist if dist != "PySide6" else "PySide6_Essentials")
    except metadata.PackageNotFoundError:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None


def machine_line(info: dict[str, Any]) -> str:
    gpu = f", GPU {info['cuda']['device']}" if info.get("cuda") else ", no GPU"
    return (f"{info['cpu']} ({info['usable_cpus']} cores usable), {info.get('memory_gib', '?')} GiB, "
            f"torch {info['torch']} ({info['torch_threads']} threads){gpu}, Python {info['python']}")


# ------------------------------------------------------------------------------------------------ timing


def stats(samples_ms: list[float]) -> dict[str, float]:
    """Median, p90, min, mean of a list of milliseconds (p90: nearest-rank)."""
    s = sorted(samples_ms)
    n = len(s)
    p90 = s[min(n - 1, max(0, int(round(0.9 * n + 0.5)) - 1))]
    return {
        "median_ms": round(statistics.median(s), 3),
        "p90_ms": round(p90, 3),
        "min_ms": round(s[0], 3),
        "mean_ms": round(statistics.fmean(s), 3),
        "runs": n,
    }


def time_round_robin(fns: dict[str, Callable[[], Any]], warmup: int, runs: int,
                     sync: Callable[[], None] | None = None,
                     raw: dict[str, list[float]] | None = None) -> dict[str, dict[str, float]]:
    """Time several callables interleaved (one call of each per round, rotating order) so that a drift in the
    machine's speed hits all of them alike; returns :func:`stats` per name (and fills ``raw`` with the samples)."""
    names = list(fns)
    sync = sync or (lambda: None)
    for _ in range(warmup):
        for n in names:
            fns[n]()
        sync()
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(runs):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            sync()
            t0 = time.perf_counter()
            fns[n]()
            sync()
            samples[n].append((time.perf_counter() - t0) * 1000.0)
    if raw is not None:
        raw.update(samples)
    return {n: stats(v) for n, v in samples.items()}


def idle_share(seconds: float = 1.0) -> float:
    """Share of the machine's CPU time left idle over ``seconds`` (Linux ``/proc/stat``; 1.0 elsewhere)."""
    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, total

    try:
        idle0, total0 = sample()
        time.sleep(seconds)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return 1.0
    return (idle1 - idle0) / max(1, total1 - total0)


def wait_for_idle(min_idle: float = 0.8, timeout_s: float = 300.0) -> float:
    """Wait (up to ``timeout_s``) until the CPUs are at least ``min_idle`` idle over a second: a round timed while
    other processes keep a shared VM's few cores busy measures them rather than the code. Returns the last share."""
    deadline = time.monotonic() + timeout_s
    share = idle_share()
    while share < min_idle and time.monotonic() < deadline:
        share = idle_share()
    return round(share, 3)


def paired_ratio(a: list[float], b: list[float]) -> dict[str, float]:
    """Per-round ratios a/b of two interleaved series: median and the 10th-90th percentile range."""
    r = sorted(x / y for x, y in zip(a, b))
    n = len(r)

    def q(p: float) -> float:
        return r[min(n - 1, max(0, int(round(p * n + 0.5)) - 1))]

    return {"median": round(statistics.median(r), 3), "p10": round(q(0.1), 3), "p90": round(q(0.9), 3), "rounds": n}


def against_forward(engine: Any, fns: dict[str, Callable[[Any], Any]], warmup: int, runs: int,
                    image: Path = BENCH_IMAGE) -> dict[str, Any]:
    """Time ``fns`` (each called with the engine's analysis of ``image``) interleaved with one bare forward pass of
    the engine's model (batch 1, inference mode): the model input size, :func:`stats` per name, per name the
    :func:`paired_ratio` against the forward pass, and the samples (``raw_ms``)."""
    import torch

    result = engine.analyze(image)
    x = engine._tensor(result.image, engine.info)

    def forward() -> None:
        with torch.inference_mode():
            engine.model(x)

    raw: dict[str, list[float]] = {}
    timings = time_round_robin({"forward": forward, **{name: (lambda f=f: f(result)) for name, f in fns.items()}},
                               warmup, runs, raw=raw)
    return {"input": list(result.image.shape[:2]), "timings": timings,
            "ratios": {name: paired_ratio(raw[name], raw["forward"]) for name in fns}, "raw_ms": raw}


# ------------------------------------------------------------------------------------------------ results


def result_path(name: str, when: _dt.datetime | None = None) -> Path:
    when = when or _dt.datetime.now()
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"
    return RESULTS / f"{slug}-{when:%Y-%m-%d}.json"


def write_json(data: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n", "utf-8")
    return path


def _jsonable(v: Any) -> Any:
    if hasattr(v, "tolist"):
        return v.tolist()
    return str(v)


def table(rows: list[list[Any]], header: list[str]) -> str:
    """A plain Markdown table (readable in a terminal, pasteable into README)."""
    cells = [[str(c) for c in header]] + [[("" if c is None else str(c)) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) + " |"

    sep = "|" + "|".join(("-" * (w + 2)) if i == 0 else ("-" * (w + 1) + ":") for i, w in enumerate(widths)) + "|"
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def fmt(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


# ------------------------------------------------------------------------------------------------ references


def import_timm():
    """timm with its ViT importable (see :mod:`vitviz.models.reference`), or None with the reason on stderr."""
    from vitviz.models.reference import import_timm as _import

    timm, reason = _import()
    if timm is None:
        print(f"{reason}; the timm reference is skipped", file=sys.stderr)
    return timm


def randomize(model, seed: int = 0):
    """Random weights of unit-ish gain (see :func:`vitviz.models.reference.randomize`)."""
    from vitviz.models.reference import randomize as _randomize

    return _randomize(model, seed)


def random_vit_s16_engine(device: str = "cpu", depth_head: str = "none"):
    """An :class:`vitviz.engine.Engine` on a ViT-S/16 with random weights (224 px, 12 layers x 6 heads, dim 384,
    a 1000-class head; ``depth_head`` as :class:`vitviz.models.vit.ViTConfig` takes it), seeded for repeatability:
    the cost of a method on a model of a real size, where its answers do not matter."""
    import torch

    from vitviz.engine import Engine
    from vitviz.models.checkpoint import ModelInfo
    from vitviz.models.vit import ViTConfig, build_model

    torch.manual_seed(0)
    cfg = ViTConfig(image_size=224, patch_size=16, embed_dim=384, depth=12, num_heads=6, num_classes=1000,
                    depth_head=depth_head)
    info = ModelInfo(name="vit-s16-random", config=cfg, labels=[f"class {i}" for i in range(1000)],
                     description="random weights", depth_kind="metric" if depth_head != "none" else None)
    return Engine(loaded=(build_model(cfg).eval(), info), device=device)
