"""Inference benchmark: end-to-end latency, forward pass against timm and transformers, GFLOP/s, peak memory.

    python benchmarks/bench_inference.py                      # all models, every device, 25 runs each
    python benchmarks/bench_inference.py --quick --models vitviz-mini   # smoke test
    python benchmarks/bench_inference.py --name before        # also write benchmarks/results/before-<date>.json

Models: the shipped model (``weights/vitviz-mini.json``, ViT 128 px, patch 16, dim 192, 6 layers x 6 heads,
classifier + simple depth head; random weights of that architecture if it is not installed) and the ViT-S/16 and
ViT-B/16 architectures at 224 px with random weights, a 1000-class head and the simple depth head.

What is measured, per device (the CPU with torch's threads; CUDA when available):

* **end-to-end**: image file -> :class:`vitviz.engine.AnalysisResult` (predictions, every layer's attention, depth)
  through ``Engine.analyze(path)``; median and p90 of ``--runs`` runs after ``--warmup`` runs, plus the engine's own
  per-stage timings.
* **forward pass against the references**: a timm ``VisionTransformer`` and a transformers ``ViTModel`` are built
  with random weights, saved in their own formats and loaded into vitviz through ``vitviz.models.convert`` /
  ``vitviz.models.zoo`` (so the weights are identical; outputs and attentions are checked to agree), then all forwards are
  timed interleaved: vitviz fused (no attentions), vitviz with attentions, timm fused, timm with attentions captured
  (its non-fused path + hooks), transformers SDPA (no attentions), transformers eager with ``output_attentions``.
* **GFLOP/s**: FLOPs of one forward counted with ``torch.utils.flop_counter.FlopCounterMode``, divided by the median
  time, against an fp32 matmul peak measured on the same device.
* **peak RSS**: each model in a fresh subprocess (``resource.getrusage(RUSAGE_SELF).ru_maxrss``): build/load, one
  engine, ``warmup + 5`` analyses.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from _common import (  # noqa: E402
    BENCH_IMAGE,
    ROOT,
    fmt,
    import_timm,
    machine_info,
    machine_line,
    paired_ratio,
    randomize,
    result_path,
    stats,
    table,
    time_round_robin,
    write_json,
)

SHIPPED_JSON = ROOT / "weights" / "vitviz-mini.json"

# name: (image size, patch, dim, layers, heads, classes or None for the shipped model's own)
ARCHS: dict[str, tuple[int, int, int, int, int, int | None]] = {
    "vitviz-mini": (128, 16, 192, 6, 6, None),
    "vit-s16": (224, 16, 384, 12, 6, 1000),
    "vit-b16": (224, 16, 768, 12, 12, 1000),
}
LABELS = {"vitviz-mini": "shipped vitviz-mini (128 px, 6L×6H, d192)", "vit-s16": "ViT-S/16 (224 px, 12L×6H, d384)",
          "vit-b16": "ViT-B/16 (224 px, 12L×12H, d768)"}


def _num_classes(arch: str) -> int:
    classes = ARCHS[arch][5]
    if classes is not None:
        return classes
    if SHIPPED_JSON.is_file():
        return int(json.loads(SHIPPED_JSON.read_text())["architecture"]["num_classes"])
    from vitviz.synthetic.scenes import NUM_CLASSES

    return NUM_CLASSES


def _vitviz_config(arch: str):
    from vitviz.models.vit import ViTConfig

    if arch == "vitviz-mini":  # the training recipe's architecture (fusion depth head)
        from vitviz.synthetic.train import TrainConfig, model_config

        return model_config(TrainConfig(), _num_classes(arch))
    size, patch, dim, layers, heads, _ = ARCHS[arch]
    return ViTConfig(image_size=size, patch_size=patch, embed_dim=dim, depth=layers, num_heads=heads,
                     num_classes=_num_classes(arch), depth_head="simple")


def _labels(n: int) -> list[str]:
    if n == 1000:
        from vitviz.models.zoo import imagenet_labels

        return imagenet_labels()
    return [f"class {i}" for i in range(n)]


def engine_model(arch: str, backbone=None):
    """The model the engine runs: the shipped checkpoint, or the architecture with a depth head (random weights;
    ``backbone`` weights copied in when given). Returns ``(model, info, weights description)``."""
    from vitviz.models.checkpoint import ModelInfo, load_checkpoint
    from vitviz.models.vit import VisionTransformer

    if arch == "vitviz-mini" and SHIPPED_JSON.is_file():
        model, info = load_checkpoint(SHIPPED_JSON)
        return model, info, "shipped (trained)"
    cfg = _vitviz_config(arch)
    model = VisionTransformer(cfg)
    if backbone is not None:
        missing, unexpected = model.load_state_dict(backbone.state_dict(), strict=False)
        assert not unexpected and all(k.startswith("depth_head.") for k in missing), (missing, unexpected)
    info = ModelInfo(name=f"{arch}-random", config=cfg, labels=_labels(cfg.num_classes), depth_kind="metric",
                     description="random weights (benchmark)")
    return model.eval(), info, "random"


# ------------------------------------------------------------------------------------------------ references


def _max_abs(a, b) -> float:
    return float((a.float() - b.float()).abs().max())


def build_references(arch: str, tmp: Path, seed: int = 0) -> dict[str, Any]:
    """timm and transformers references with random weights, and the same weights loaded into vitviz."""
    import torch

    from vitviz.models.convert import load_foreign
    from vitviz.models import zoo

    size, patch, dim, layers, heads, _ = ARCHS[arch]
    classes = _num_classes(arch)
    refs: dict[str, Any] = {"checks": {}}

    timm = import_timm()
    if timm is not None:
        from safetensors.torch import save_file
        from timm.models.vision_transformer import VisionTransformer as TimmViT

        ref = randomize(TimmViT(img_size=size, patch_size=patch, embed_dim=dim, depth=layers, num_heads=heads,
                                num_classes=classes), seed)
        path = tmp / f"{arch}-timm.safetensors"
        save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
        vv, _info = load_foreign(path, overrides={"num_heads": heads})
        ref_attn = copy.deepcopy(ref)
        captured: list = []
        for block in ref_attn.blocks:
            block.attn.fused_attn = False
            block.attn.attn_drop.register_forward_hook(lambda m, i, o: captured.append(o))
        refs.update(timm=ref, timm_attn=ref_attn, timm_captured=captured, vitviz_timm=vv.eval())
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
        with torch.inference_mode():
            captured.clear()
            r_attn = ref_attn(x)
            r = ref(x)
            o = vv(x, return_attention=True)
            o_fused = vv(x)
        refs["checks"]["timm"] = {
            "logits_max_abs_diff": _max_abs(r, o.logits),
            "logits_max_abs_diff_fused": _max_abs(r, o_fused.logits),
            "logits_scale": float(r.abs().max()),
            "attention_max_abs_diff": max(_max_abs(a, b) for a, b in zip(captured, o.attentions)),
            "timm_fused_vs_unfused": _max_abs(r, r_attn),
        }
        captured.clear()

    try:
        import transformers as tf
    except ImportError:
        tf = None
    if tf is not None:
        cfg = tf.ViTConfig(hidden_size=dim, num_hidden_layers=layers, num_attention_heads=heads,
                           intermediate_size=4 * dim, image_size=size, patch_size=patch, layer_norm_eps=1e-6,
                           attn_implementation="eager")
        hf = randomize(tf.ViTModel(cfg, add_pooling_layer=False), seed + 1)
        folder = tmp / f"{arch}-hf"
        hf.save_pretrained(folder)
        hf_sdpa = tf.ViTModel.from_pretrained(folder, attn_implementation="sdpa", add_pooling_layer=False).eval()
        vv_hf, _info = zoo.load(folder)
        refs.update(hf=hf, hf_sdpa=hf_sdpa, vitviz_hf=vv_hf.eval())
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))
        with torch.inference_mode():
            r = hf(pixel_values=x, output_attentions=True)
            rs = hf_sdpa(pixel_values=x)
            o = vv_hf(x, return_attention=True)
        refs["checks"]["transformers"] = {
            "tokens_max_abs_diff": _max_abs(r.last_hidden_state, o.tokens),
            "tokens_scale": float(r.last_hidden_state.abs().max()),
            "attention_max_abs_diff": max(_max_abs(a, b) for a, b in zip(r.attentions, o.attentions)),
            "hf_sdpa_vs_eager": _max_abs(r.last_hidden_state, rs.last_hidden_state),
        }
    return refs


# ------------------------------------------------------------------------------------------------ measurements


def count_flops(model, x, **kwargs) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x, **kwargs)
    return int(counter.get_total_flops())


def matmul_peak(device, n: int | None = None, runs: int = 8) -> dict[str, float]:
    """fp32 GEMM throughput: a large square matmul (the device's practical limit) and a ViT-shaped one."""
    import torch

    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        n = n or 8192
    else:
        n = n or 2048
    sync = (lambda: torch.cuda.synchronize()) if device.type == "cuda" else (lambda: None)
    out: dict[str, float] = {"square_n": n}
    for key, (m, k, nn_) in {"square": (n, n, n), "vit_mlp": (197, 768, 3072)}.items():
        g = torch.Generator(device=device).manual_seed(0)
        a = torch.randn(m, k, device=device, generator=g)
        b = torch.randn(k, nn_, device=device, generator=g)
        c = torch.empty(m, nn_, device=device)
        reps = 1 if key == "square" else max(1, int(2e9 // (2 * m * k * nn_)))
        for _ in range(2):
            torch.mm(a, b, out=c)
        sync()
        best = []
        for _ in range(runs):
            t0 = time.perf_counter()
            for _ in range(reps):
                torch.mm(a, b, out=c)
            sync()
            best.append((time.perf_counter() - t0) / reps)
        flops = 2.0 * m * k * nn_
        out[f"{key}_gflops_best"] = round(flops / min(best) / 1e9, 1)
        out[f"{key}_gflops_median"] = round(flops / sorted(best)[len(best) // 2] / 1e9, 1)
    return out


def bench_forward(arch: str, refs: dict[str, Any], device, runs: int, warmup: int, depth_model=None) -> dict:
    """All forwards of one architecture, interleaved; vitviz/reference ratios of the medians."""
    import torch

    size = ARCHS[arch][0]
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(3)).to(device)
    fns: dict[str, Any] = {}
    if "vitviz_timm" in refs:
        vv, ref, ref_attn, captured = refs["vitviz_timm"], refs["timm"], refs["timm_attn"], refs["timm_captured"]
        for m in (vv, ref, ref_attn):
            m.to(device)

        def timm_attn():
            captured.clear()
            ref_attn(x)

        fns.update({
            "vitviz": lambda: vv(x),
            "vitviz+attn": lambda: vv(x, return_attention=True),
            "timm": lambda: ref(x),
            "timm+attn": timm_attn,
        })
    if "vitviz_hf" in refs:
        vvh, hf, hfs = refs["vitviz_hf"], refs["hf"], refs["hf_sdpa"]
        for m in (vvh, hf, hfs):
            m.to(device)
        fns.update({
            "vitviz[hf]": lambda: vvh(x),
            "vitviz[hf]+attn": lambda: vvh(x, return_attention=True),
            "hf-sdpa": lambda: hfs(pixel_values=x),
            "hf-eager+attn": lambda: hf(pixel_values=x, output_attentions=True),
        })
    if depth_model is not None:
        depth_model.to(device)
        fns["vitviz+attn+depth"] = lambda: depth_model(x, return_attention=True)
    sync = (lambda: torch.cuda.synchronize()) if device.type == "cuda" else None
    raw: dict[str, list[float]] = {}
    with torch.inference_mode():
        timings = time_round_robin(fns, warmup, runs, sync, raw)
    med = {k: v["median_ms"] for k, v in timings.items()}
    paired = {name: paired_ratio(raw[a], raw[b]) for name, (a, b) in {
        "attn_capture_overhead": ("vitviz+attn", "vitviz"),
        "vitviz+attn/hf-eager+attn": ("vitviz[hf]+attn", "hf-eager+attn"),
        "vitviz/timm": ("vitviz", "timm"),
    }.items() if a in raw and b in raw}

    def ratio(a: str, b: str) -> float | None:
        return round(med[a] / med[b], 3) if a in med and b in med else None

    ratios = {
        "attn_capture_overhead": ratio("vitviz+attn", "vitviz"),  # goal <= 1.10
        "attn_capture_overhead[hf]": ratio("vitviz[hf]+attn", "vitviz[hf]"),
        "vitviz+attn/hf-eager+attn": ratio("vitviz[hf]+attn", "hf-eager+attn"),  # goal <= 1.0
        "vitviz/hf-sdpa": ratio("vitviz[hf]", "hf-sdpa"),
        "vitviz/timm": ratio("vitviz", "timm"),
        "vitviz+attn/timm+attn": ratio("vitviz+attn", "timm+attn"),
        "timm+attn/timm": ratio("timm+attn", "timm"),
        "hf-eager+attn/hf-sdpa": ratio("hf-eager+attn", "hf-sdpa"),
    }
    flops: dict[str, Any] = {}
    if "vitviz_timm" in refs:
        vv = refs["vitviz_timm"]
        flops["forward_gflop"] = round(count_flops(vv, x, return_attention=True) / 1e9, 3)
        flops["forward_gflop_fused_as_counted"] = round(count_flops(vv, x) / 1e9, 3)
        for k in ("vitviz", "vitviz+attn", "timm", "timm+attn"):
            flops[f"{k}_gflops"] = round(flops["forward_gflop"] / (med[k] / 1e3), 1)
    if depth_model is not None:
        flops["forward_with_depth_gflop"] = round(count_flops(depth_model, x, return_attention=True) / 1e9, 3)
        flops["vitviz+attn+depth_gflops"] = round(flops["forward_with_depth_gflop"] / (med["vitviz+attn+depth"] / 1e3), 1)
    return {"input": [1, 3, size, size], "timings": timings, "ratios": ratios, "paired_ratios": paired,
            "flops": flops}


def bench_end_to_end(arch: str, model, info, device, runs: int, warmup: int, image: Path) -> dict:
    import torch

    from vitviz.engine import Engine

    if device.type == "cuda":  # the peak of this engine's analyses, not of earlier measurements in this process
        torch.cuda.reset_peak_memory_stats(device)
    engine = Engine(loaded=(model, info), device=str(device))
    totals: list[float] = []
    rollouts: list[float] = []
    stages: dict[str, list[float]] = {}
    result = None
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        result = engine.analyze(image)
        dt = (time.perf_counter() - t0) * 1000.0
        if i >= warmup:
            totals.append(dt)
            for k, v in result.timings.items():
                stages.setdefault(k, []).append(v)
    # What a click on a patch costs next (its rows in every layer and its rollout, computed on demand since the
    # rollout rows of CLS come with the analysis). Timed separately so that its BLAS threads do not slow the
    # back-to-back analyses above.
    for _ in range(runs):
        result = engine.analyze(image)
        t1 = time.perf_counter()
        result.attention.query_rows(0)
        result.attention.query_rollout(0)
        rollouts.append((time.perf_counter() - t1) * 1000.0)
        time.sleep(0.25)
    assert result is not None and result.predictions and result.attention is not None and result.depth is not None
    out = {
        "image": str(image.relative_to(ROOT) if image.is_relative_to(ROOT) else image),
        "input_hw": list(result.image.shape[:2]),
        "grid": [result.grid.rows, result.grid.cols],
        "layers": result.num_layers,
        "heads": result.num_heads,
        "analyze": stats(totals),
        "stages_median_ms": {k: round(stats(v)["median_ms"], 3) for k, v in stages.items()},
        "app_click_query": stats(rollouts),
        "device": result.device,
    }
    if device.type == "cuda":
        out["cuda_max_memory_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def rss_child(arch: str, device: str, runs: int, warmup: int, threads: int | None) -> dict:
    """Runs in a fresh process: peak RSS of one engine analysing the benchmark image."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    from vitviz.engine import Engine

    rss_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model, info, weights = engine_model(arch)
    engine = Engine(loaded=(model, info), device=device)
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for _ in range(warmup + runs):
        engine.analyze(BENCH_IMAGE)
    out = {}
    try:  # the kernel's high-water mark of this process's memory (Linux); equals ru_maxrss for a fresh process
        hwm = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM"))
        out["vm_hwm_mb"] = round(int(hwm.split()[1]) / 1024, 1)
    except (OSError, StopIteration, ValueError):
        pass
    if device.startswith("cuda"):
        out["cuda_max_memory_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out | {
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_after_imports_mb": round(rss_imports, 1),
        "rss_after_load_mb": round(rss_loaded, 1),
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "weights": weights,
    }


# Linux carries ru_maxrss across execve from the memory of the process that forked: a child started straight from
# this (multi-GB) process would report this process's peak. A small intermediate process resets that floor.
_HOP = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


def measure_rss(arch: str, device: str, threads: int | None) -> dict:
    cmd = [sys.executable, "-c", _HOP, sys.executable, __file__, "--rss-child", arch, "--devices", device]
    if threads:
        cmd += ["--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------ driver


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [torch.device(d) for d in args.devices]
    out: dict[str, Any] = {"kind": "inference", "settings": {"runs": args.runs, "warmup": args.warmup,
                                                             "image": str(BENCH_IMAGE.relative_to(ROOT))},
                           "peaks": {}, "models": {}}
    for device in devices:
        print(f"[{device}] fp32 matmul peak ...", flush=True)
        out["peaks"][device.type] = matmul_peak(device)
    with tempfile.TemporaryDirectory(prefix="vitviz-bench-") as tmpdir:
        for arch in args.models:
            entry: dict[str, Any] = {"label": LABELS[arch]}
            print(f"{arch}: building references ...", flush=True)
            refs = build_references(arch, Path(tmpdir))
            entry["checks"] = refs["checks"]
            model, info, weights = engine_model(arch, refs.get("vitviz_timm"))
            entry["weights"] = weights
            entry["params_m"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 2)
            for device in devices:
                print(f"{arch} [{device}]: forward passes ...", flush=True)
                entry.setdefault("forward", {})[device.type] = bench_forward(
                    arch, refs, device, args.runs, args.warmup, depth_model=model)
                # The references leave the device first, so a GPU's peak memory below is the engine's alone.
                for key in ("timm", "timm_attn", "vitviz_timm", "hf", "hf_sdpa", "vitviz_hf"):
                    if key in refs:
                        refs[key].to("cpu")
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                print(f"{arch} [{device}]: end-to-end ...", flush=True)
                entry.setdefault("end_to_end", {})[device.type] = bench_end_to_end(
                    arch, model, info, device, args.runs, args.warmup, BENCH_IMAGE)
                model.to("cpu")
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            del refs
            if not args.no_rss:
                for device in devices:
                    print(f"{arch} [{device}]: peak RSS (fresh process) ...", flush=True)
                    entry.setdefault("memory", {})[device.type] = measure_rss(arch, device.type, args.threads)
            out["models"][arch] = entry
    return out


def report(data: dict[str, Any]) -> str:
    lines: list[str] = []
    for dev, peak in data["peaks"].items():
        lines.append(f"fp32 matmul peak on {dev}: {peak['square_gflops_best']:.0f} GFLOP/s "
                     f"({peak['square_n']}² square, best), {peak['vit_mlp_gflops_best']:.0f} GFLOP/s "
                     f"(197×768 @ 768×3072, ViT-B MLP shape)")
    models = data["models"]
    devices = sorted({d for m in models.values() for d in m.get("end_to_end", {})})
    for dev in devices:
        peak = data["peaks"][dev]["square_gflops_best"]
        rows = []
        for arch, m in models.items():
            e = m["end_to_end"].get(dev)
            if not e:
                continue
            mem = m.get("memory", {}).get(dev, {})
            st = e["stages_median_ms"]
            rows.append([m["label"], f"{e['input_hw'][1]}×{e['input_hw'][0]}", fmt(e["analyze"]["median_ms"]),
                         fmt(e["analyze"]["p90_ms"]), fmt(st.get("preprocess")), fmt(st.get("forward")),
                         fmt(st.get("postprocess")), fmt(e.get("app_click_query", {}).get("median_ms")),
                         fmt(mem.get("peak_rss_mb"), 0), m["weights"]])
        lines += ["", f"End-to-end: image file → AnalysisResult (predictions + all attentions + depth), {dev}, "
                      f"{data['settings']['runs']} runs", ""]
        lines.append(table(rows, ["model", "input", "median ms", "p90 ms", "pre ms", "forward ms", "post ms",
                                  "click a patch ms", "peak RSS MB", "weights"]))
        rows = []
        for arch, m in models.items():
            f = m.get("forward", {}).get(dev)
            if not f:
                continue
            t = {k: v["median_ms"] for k, v in f["timings"].items()}
            r = f["ratios"]
            rows.append([m["label"].split(" (")[0], fmt(t.get("vitviz")), fmt(t.get("vitviz+attn")),
                         fmt(t.get("timm")), fmt(t.get("timm+attn")), fmt(t.get("hf-sdpa")), fmt(t.get("hf-eager+attn")),
                         fmt(r.get("attn_capture_overhead"), 2), fmt(r.get("vitviz+attn/hf-eager+attn"), 2),
                         fmt(r.get("vitviz/timm"), 2), fmt(r.get("vitviz+attn/timm+attn"), 2)])
        lines += ["", f"Forward pass, batch 1, median ms ({dev}); ratios of medians "
                      "(goals: attn/fused ≤ 1.10, vitviz+attn / HF+attn ≤ 1.00)", ""]
        lines.append(table(rows, ["model", "vitviz", "vitviz+attn", "timm", "timm+attn", "HF sdpa", "HF eager+attn",
                                  "attn/fused", "vs HF+attn", "vs timm", "attn vs timm+attn"]))
        lines.append("")
        for arch, m in models.items():
            pr = m.get("forward", {}).get(dev, {}).get("paired_ratios", {})
            if pr:
                lines.append(f"  {m['label'].split(' (')[0]}: per-round ratios, median (p10–p90): " + ", ".join(
                    f"{k} {v['median']:.2f} ({v['p10']:.2f}–{v['p90']:.2f})" for k, v in pr.items()))
        rows = []
        for arch, m in models.items():
            f = m.get("forward", {}).get(dev)
            if not f or not f["flops"]:
                continue
            fl = f["flops"]
            rows.append([m["label"].split(" (")[0], fmt(fl["forward_gflop"], 2), fmt(fl.get("forward_with_depth_gflop"), 2),
                         fmt(fl["vitviz_gflops"], 0), f"{100 * fl['vitviz_gflops'] / peak:.0f}%",
                         fmt(fl["vitviz+attn_gflops"], 0), f"{100 * fl['vitviz+attn_gflops'] / peak:.0f}%",
                         fmt(fl.get("vitviz+attn+depth_gflops"), 0), fmt(fl["timm_gflops"], 0)])
        lines += ["", f"Achieved throughput ({dev}; FLOPs by FlopCounterMode, peak {peak:.0f} GFLOP/s)", ""]
        lines.append(table(rows, ["model", "GFLOP/forward", "with depth head", "vitviz GFLOP/s", "of peak",
                                  "vitviz+attn GFLOP/s", "of peak", "+depth GFLOP/s", "timm GFLOP/s"]))
    rows = []
    for arch, m in models.items():
        c = m["checks"]
        rows.append([m["label"].split(" (")[0],
                     f"{c['timm']['logits_max_abs_diff']:.1e} (of {c['timm']['logits_scale']:.2g})" if "timm" in c else "–",
                     f"{c['timm']['attention_max_abs_diff']:.1e}" if "timm" in c else "–",
                     f"{c['transformers']['tokens_max_abs_diff']:.1e} (of {c['transformers']['tokens_scale']:.2g})"
                     if "transformers" in c else "–",
                     f"{c['transformers']['attention_max_abs_diff']:.1e}" if "transformers" in c else "–"])
    lines += ["", "Agreement with the references (same weights, fp32 CPU, max abs difference)", ""]
    lines.append(table(rows, ["model", "timm logits", "timm attentions", "HF tokens", "HF attentions"]))
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    p.add_argument("--runs", type=int, default=25, help="timed runs per measurement (after the warm-up)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    p.add_argument("--quick", action="store_true", help="smoke test: 3 runs, 1 warm-up")
    p.add_argument("--no-rss", action="store_true", help="skip the fresh-process memory measurements")


def finish_args(args: argparse.Namespace) -> argparse.Namespace:
    import torch

    if args.quick:
        args.runs, args.warmup = 3, 1
    if args.devices is None:
        args.devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    return args


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(p)
    p.add_argument("--name", default=None, help="write benchmarks/results/<name>-<date>.json")
    p.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.rss_child:
        dev = (args.devices or ["cpu"])[0]
        print(json.dumps(rss_child(args.rss_child, dev, 5, 2 if args.quick else args.warmup, args.threads)))
        return 0
    args = finish_args(args)
    info = machine_info()
    print("Machine:", machine_line(info), flush=True)
    data = {"machine": info, "inference": run(args)}
    print()
    print(report(data["inference"]))
    if args.name:
        print("\nwrote", write_json(data, result_path(args.name)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
