"""Batch analysis as a function on a dict of numpy arrays (Ray Data's batch format), and the summary-table row.

``Analyzer`` plugs into ``ray.data.Dataset.map_batches``::

    ds = ray.data.read_images("/shared/photos", include_paths=True, mode="RGB")
    ds = ds.map_batches(Analyzer, fn_constructor_kwargs={"model": "deit-small", "outputs": ["json"]},
                        batch_size=64, compute=ray.data.ActorPoolStrategy(size=4), num_gpus=1)
    ds.drop_columns(["summary", "num_prefix_tokens"]).write_parquet("/shared/results")  # top-k, timings, ...
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

import numpy as np

from .engine import AnalysisResult, Engine, PatchGrid, Prediction
from .export import FULL_OUTPUTS, OUTPUTS

__all__ = ["Analyzer", "ARRAY_COLUMNS", "table_row", "result_from_row"]

# Per-image arrays an Analyzer returns for writing files (object columns, one array per row; empty when it failed).
# ``rollout``: the CLS rollout map after the last layer ``[rows, cols]``; ``attentions``: the full tensors, only for
# the output attention-full.
ARRAY_COLUMNS = ("model_input", "rollout", "attentions", "cls_attention", "depth")
# The arrays each output of vitviz.export.OUTPUTS needs.
_NEEDS = {
    "json": (),
    "input": ("model_input",),
    "heads": ("model_input", "cls_attention"),
    "rollout": ("model_input", "rollout"),
    "depth": ("depth",),
    "attention-npy": ("cls_attention",),
    "attention-full": ("attentions",),
    "depth-npy": ("depth",),
}


def table_row(summary: dict[str, Any], topk: int) -> dict[str, Any]:
    """One row of the run's summary table from a ``result.json`` summary: top-k, sizes, depth, domain, timings."""
    row: dict[str, Any] = {
        "source": summary.get("source"),
        "model": summary.get("model"),
        "device": summary.get("device"),
        "input_height": summary["input_size"]["height"],
        "input_width": summary["input_size"]["width"],
        "original_width": summary["original_size"]["width"],
        "original_height": summary["original_size"]["height"],
    }
    predictions = summary.get("predictions") or []
    for k in range(min(topk, len(predictions))):
        row[f"label_{k + 1}"] = predictions[k]["label"]
        row[f"prob_{k + 1}"] = predictions[k]["probability"]
    depth = summary.get("depth")
    if depth:
        row.update({"depth_kind": depth.get("kind"), "depth_min": depth.get("min"), "depth_max": depth.get("max"),
                    "depth_mean": depth.get("mean")})
    domain = summary.get("domain")
    if isinstance(domain, dict):  # models with an out-of-domain detector
        row.update({f"domain_{k}": v for k, v in domain.items() if isinstance(v, (str, int, float, bool))})
    for stage, ms in (summary.get("timings_ms") or {}).items():
        row[f"{stage}_ms"] = ms
    row["notices"] = "; ".join(summary.get("notices") or [])
    return row


class Analyzer:
    """Analyse a batch given as a dict of numpy arrays; returns a dict of arrays with one row per input row.

    Input columns: ``image`` (``[N, H, W, 3]`` uint8, or an object array of differently sized images, as
    ``ray.data.read_images`` gives) or ``path`` (files, read with :func:`vitviz.images.load_image`). Other columns
    (``path``, ``name``, ...) pass through.

    Output columns: ``error`` ("" when the image was analysed, else the one-line reason), the summary-table columns
    of :func:`table_row` (``label_1``, ``prob_1``, ..., ``forward_ms``, ..., ``domain_*`` when the model has an
    out-of-domain detector), ``summary`` (the ``result.json`` text), ``num_prefix_tokens`` and the arrays of
    :data:`ARRAY_COLUMNS` that ``outputs`` (names of :data:`vitviz.export.OUTPUTS`, default all) need.

    Images of the same model-input size share a forward pass (:meth:`Engine.analyze_batch`); results equal
    :meth:`Engine.analyze`'s to within float tolerance.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        device: str = "auto",
        *,
        depth_model: str | os.PathLike[str] | None = None,
        half: bool = False,
        topk: int = 5,
        outputs: Sequence[str] | None = None,
    ) -> None:
        self.engine = Engine(model, device=device, half=half, depth_model=depth_model)
        self.topk = topk
        wanted = tuple(o for o in OUTPUTS if o not in FULL_OUTPUTS) if outputs is None else tuple(outputs)
        self.arrays = tuple(c for c in ARRAY_COLUMNS if any(c in _NEEDS[o] for o in wanted))
        self.attention = "full" if "attentions" in self.arrays else "summary"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(next(iter(batch.values()))) if batch else 0
        paths = batch.get("path")
        images = batch.get("image")
        if images is None and paths is None:
            raise ValueError("the batch needs an 'image' or a 'path' column")
        results: list[AnalysisResult | None] = [None] * n
        errors = [""] * n
        preps: dict[int, Any] = {}
        for i in range(n):
            try:
                prep = self.engine.prepare(np.asarray(images[i]) if images is not None else str(paths[i]))
                if images is not None and paths is not None:
                    prep.loaded.source = str(paths[i])
                preps[i] = prep
            except Exception as exc:  # noqa: BLE001 - one image's failure is its row's error, not the batch's
                errors[i] = _reason(exc, None if paths is None else str(paths[i]))
        try:
            for i, r in zip(preps, self.engine.analyze_batch(list(preps.values()), topk=self.topk,
                                                             attention=self.attention)):
                results[i] = r
        except Exception:  # noqa: BLE001 - find the image that fails by analysing them one at a time
            for i, prep in preps.items():
                try:
                    results[i] = self.engine.analyze(prep, topk=self.topk, attention=self.attention)
                except Exception as exc:  # noqa: BLE001
                    errors[i] = _reason(exc, prep.loaded.source)
        return self._columns(batch, results, errors)

    def _columns(self, batch: dict[str, np.ndarray], results: list[AnalysisResult | None],
                 errors: list[str]) -> dict[str, np.ndarray]:
        n = len(results)
        out: dict[str, Any] = {k: v for k, v in batch.items() if k not in ("image", "bytes")}
        out["error"] = np.array(errors, dtype=object)
        rows = [table_row(r.summary(), self.topk) if r is not None else None for r in results]
        keys = next((list(r) for r in rows if r is not None), [])
        for key in keys:
            values = [r.get(key) if r is not None else None for r in rows]
            sample = next(v for v in values if v is not None) if any(v is not None for v in values) else ""
            if isinstance(sample, (bool, np.bool_)):
                out[key] = np.array([bool(v) for v in values])
            elif isinstance(sample, (int, float)):
                out[key] = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
            else:
                out[key] = np.array(["" if v is None else str(v) for v in values], dtype=object)
        out["summary"] = np.array([json.dumps(r.summary()) if r is not None else "" for r in results], dtype=object)
        out["num_prefix_tokens"] = np.array([r.num_prefix_tokens if r is not None else 0 for r in results], np.int64)
        empty = {"model_input": np.zeros((0, 0, 3), np.uint8), "attentions": np.zeros((0, 0, 0, 0), np.float32),
                 "rollout": np.zeros((0, 0), np.float32), "cls_attention": np.zeros((0, 0, 0, 0), np.float32),
                 "depth": np.zeros((0, 0), np.float32)}
        for col in self.arrays:
            arr = np.empty(n, dtype=object)
            for i, r in enumerate(results):
                value = None if r is None else (r.rollout() if col == "rollout" and r.attention is not None else {
                    "model_input": r.image, "attentions": r.attentions, "rollout": None,
                    "cls_attention": r.cls_attention, "depth": r.depth}[col])
                arr[i] = empty[col] if value is None else value
            out[col] = arr
        return out


def result_from_row(row: dict[str, Any]) -> AnalysisResult:
    """Rebuild an :class:`AnalysisResult` (enough for :func:`vitviz.export.write_outputs`) from one row of an
    :class:`Analyzer`'s output; its ``summary()`` is the one the Analyzer computed."""
    summary = json.loads(row["summary"])

    def array(name: str) -> np.ndarray | None:
        value = row.get(name)
        if value is None:
            return None
        value = np.asarray(value)
        return value if value.size else None

    grid = summary["patch_grid"]
    size = summary["input_size"]
    result = _StoredResult(
        source=summary["source"],
        image=array("model_input") if array("model_input") is not None else np.zeros((0, 0, 3), np.uint8),
        grid=PatchGrid(grid["rows"], grid["cols"], grid["patch_size"], (size["height"], size["width"]),
                       (summary["original_size"]["width"], summary["original_size"]["height"])),
        model_name=summary["model"],
        device=summary["device"],
        predictions=[Prediction(p["label"], p["index"], p["probability"]) for p in summary["predictions"]],
        cls_attention=array("cls_attention"),
        num_prefix_tokens=int(row.get("num_prefix_tokens", 1)),
        depth=array("depth"),
        depth_kind=(summary.get("depth") or {}).get("kind"),
        depth_model_name=summary.get("depth_model"),
        timings=dict(summary.get("timings_ms") or {}),
        notices=list(summary.get("notices") or []),
    )
    result.stored_summary = summary
    result.stored_layers = int(summary.get("layers") or 0)
    result.stored_rollout = array("rollout")
    result.stored_full = array("attentions")
    return result


class _StoredResult(AnalysisResult):
    """A result rebuilt from an Analyzer row: its summary and layer count come from the row, not from arrays that
    may have been left out."""

    stored_summary: dict[str, Any]
    stored_layers: int
    stored_rollout: np.ndarray | None
    stored_full: np.ndarray | None

    def summary(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.stored_summary))

    @property
    def attentions(self) -> np.ndarray | None:
        return self.stored_full

    def rollout(self, *args: Any, **kwargs: Any) -> np.ndarray:
        if self.stored_rollout is None:
            raise ValueError("the row holds no rollout map")
        return self.stored_rollout

    @property
    def num_layers(self) -> int:
        return self.stored_layers


def _reason(exc: BaseException, source: str | None) -> str:
    """The one-line reason an image failed, naming its file."""
    from .errors import VitvizError

    text = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, VitvizError):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        text = ("out of memory" if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()
                else f"unexpected error: {type(exc).__name__}" + (f": {first}" if first else ""))
    if source and source not in text:
        text = f"{source}: {text}"
    return text
