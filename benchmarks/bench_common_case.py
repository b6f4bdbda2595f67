"""The common case: a 224 px photo model's analysis against transformers' eager forward pass with attentions, in
alternating fresh processes.

    python benchmarks/bench_common_case.py --arch s16 --pairs 4 --name common-case-s16
    python benchmarks/bench_common_case.py --arch s16 --size 384 --code before=/tmp/before --code after=.
    python benchmarks/bench_common_case.py --shipped --code before=/tmp/before --code after=.

The model is a random ViT in the Hugging Face layout (``ViTForImageClassification``: ``--arch s16`` is ViT-S/16,
12 layers x 6 heads, dim 384; ``b16`` ViT-B/16; ``--size`` px, T = 1 + (size/16)^2), saved with ``save_pretrained``
and loaded by vitviz from that folder, and a PNG of exactly the model's input size. Every figure comes from its own
fresh process: a ``transformers`` process times the model's eager forward pass with ``output_attentions=True``
(median of 5 after 2 warm-ups), and a process per vitviz ``--code`` (a folder holding a ``vitviz`` package:
another revision's ``git archive``, or ``.``) times ``Engine.analyze(png)`` as each caller asks
(``cli``: ``attention="summary"``, what ``vitviz analyze`` asks; ``app``: ``features=True, keep_display_image=True``,
the window's worker; ``default``: no options; median of 5 after 2 warm-ups, callers alternating). A round runs one
process of each in rotating order; its ratio is the analysis over that round's transformers pass, and the medians
of the rounds' ratios are the figures (the shared VM's speed drifts by tens of % within minutes). Before each
process the script waits until the CPUs are ``--min-idle`` idle (other users' processes otherwise make a 2-thread
forward pass ten times slower for seconds at a time; the share is kept in the JSON).

``--shipped``: the shipped vitviz-mini (128 px, 65 tokens) instead; transformers cannot load it, so the rounds
compare the ``--code`` folders with each other (ratios to the first one). Writes ``results/<name>-<date>.json``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ARCHS = {"s16": (384, 12, 6), "b16": (768, 12, 12)}  # width, layers, heads
CALLERS = {"cli": {"attention": "summary"}, "app": {"features": True, "keep_display_image": True}, "default": {}}
RUNS, WARMUP = 5, 2


def make_case(folder: Path, arch: str, size: int) -> tuple[Path, Path]:
    """The random transformers model (saved) and a PNG of its input size."""
    import numpy as np
    import torch
    import transformers as tf
    from PIL import Image

    width, layers, heads = ARCHS[arch]
    torch.manual_seed(0)
    cfg = tf.ViTConfig(hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads,
                       intermediate_size=4 * width, image_size=size, patch_size=16, num_labels=1000,
                       id2label={i: f"class {i}" for i in range(1000)}, label2id={f"class {i}": i for i in range(1000)})
    tf.ViTForImageClassification(cfg).eval().save_pretrained(folder / "model")
    png = folder / "image.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(png)
    return folder / "model", png


def run_transformers(model: str, png: str) -> None:
    import numpy as np
    import torch
    import transformers as tf
    from PIL import Image

    net = tf.ViTForImageClassification.from_pretrained(model, attn_implementation="eager").eval()
    x = torch.from_numpy(np.asarray(Image.open(png).convert("RGB"))).permute(2, 0, 1)[None].float() / 255.0
    x = (x - 0.5) / 0.5
    times = []
    with torch.inference_mode():
        for i in range(WARMUP + RUNS):
            t = time.perf_counter()
            out = net(pixel_values=x, output_attentions=True)
            if i >= WARMUP:
                times.append((time.perf_counter() - t) * 1000.0)
    assert len(out.attentions) == net.config.num_hidden_layers
    print(json.dumps({"forward_ms": statistics.median(times), "runs_ms": [round(v, 2) for v in times],
                      "attn_implementation": net.config._attn_implementation, "threads": torch.get_num_threads()}))


def run_vitviz(model: str, png: str) -> None:
    import vitviz
    from vitviz.engine import Engine

    wanted = Path(os.environ.get("PYTHONPATH", ROOT)).resolve()
    if not Path(vitviz.__file__).resolve().is_relative_to(wanted):
        raise RuntimeError(f"imported {vitviz.__file__}, not the vitviz under {wanted}")
    engine = Engine(model, device="cpu")
    accepted = inspect.signature(engine.analyze).parameters
    calls = {caller: {k: v for k, v in kw.items() if k in accepted} for caller, kw in CALLERS.items()}
    times: dict[str, list[float]] = {caller: [] for caller in calls}
    stages: dict[str, dict[str, list[float]]] = {caller: {} for caller in calls}
    for i in range(WARMUP + RUNS):
        for caller in (list(calls) if i % 2 else list(calls)[::-1]):
            t = time.perf_counter()
            result = engine.analyze(png, **calls[caller])
            if i >= WARMUP:
                times[caller].append((time.perf_counter() - t) * 1000.0)
                for stage, ms in result.timings.items():
                    stages[caller].setdefault(stage, []).append(ms)
    print(json.dumps({"vitviz": str(Path(vitviz.__file__).parent), "model": engine.info.name,
                      "tokens": result.attention.num_tokens if hasattr(result, "attention") else None,
                      "analysis_ms": {c: statistics.median(v) for c, v in times.items()},
                      "stages_ms": {c: {k: round(statistics.median(v), 2) for k, v in s.items()}
                                    for c, s in stages.items()},
                      "calls": {c: sorted(kw) for c, kw in calls.items()}}))


def child(role: str, model: str, png: str, code: Path | None = None) -> dict:
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code.resolve())
        env.setdefault("VITVIZ_WEIGHTS", str(ROOT / "weights"))  # a git archive of vitviz/ alone has no weights
    script = Path(__file__).resolve()
    proc = subprocess.run([sys.executable, str(script), "--role", role, "--model", model, "--png", png],
                          capture_output=True, text=True, env=env, cwd=str(code or ROOT), timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{role} ({code}): exit {proc.returncode}\n{proc.stderr[-3000:]}")
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=["transformers", "vitviz"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--png", help=argparse.SUPPRESS)
    parser.add_argument("--arch", choices=sorted(ARCHS), default="s16")
    parser.add_argument("--size", type=int, default=224, help="input side in pixels (default 224: 197 tokens)")
    parser.add_argument("--shipped", action="store_true", help="the shipped vitviz-mini, no transformers process")
    parser.add_argument("--code", action="append", default=[], metavar="NAME=DIR",
                        help="a vitviz to measure (repeatable; default: after=. , this checkout)")
    parser.add_argument("--pairs", type=int, default=4, help="rounds (default 4)")
    parser.add_argument("--min-idle", type=float, default=0.8,
                        help="before each process, wait until the CPUs are this idle over a second (0: do not wait)")
    parser.add_argument("--idle-timeout", type=float, default=120.0, help="seconds to wait for that at most")
    parser.add_argument("--name", help="write results/<name>-<date>.json")
    args = parser.parse_args()
    if args.role == "transformers":
        return run_transformers(args.model, args.png)
    if args.role == "vitviz":
        return run_vitviz(args.model, args.png)

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # only here: _common puts this checkout on sys.path
    from _common import machine_info, machine_line, result_path, wait_for_idle, write_json

    codes = {name: Path(folder) for name, folder in (c.split("=", 1) for c in (args.code or [f"after={ROOT}"]))}
    info = machine_info()
    print(machine_line(info))
    with tempfile.TemporaryDirectory() as tmp:
        if args.shipped:
            import numpy as np
            from PIL import Image

            model, png = "vitviz-mini", Path(tmp) / "image.png"
            Image.fromarray(np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(png)
            roles = list(codes)
        else:
            model_path, png = make_case(Path(tmp), args.arch, args.size)
            model, roles = str(model_path), ["transformers", *codes]
        rounds = []
        for r in range(args.pairs):
            order = roles[r % len(roles):] + roles[: r % len(roles)]
            out = {}
            for role in order:
                idle = wait_for_idle(args.min_idle, args.idle_timeout) if args.min_idle else None
                out[role] = child("transformers" if role == "transformers" else "vitviz", model, str(png),
                                  None if role == "transformers" else codes[role]) | {"idle_before": idle}
            base = out["transformers"]["forward_ms"] if not args.shipped else None
            first = out[roles[0]]["analysis_ms"] if args.shipped else None
            ratios = {name: {c: round(ms / (base if base else first[c]), 3) for c, ms in out[name]["analysis_ms"].items()}
                      for name in codes}
            rounds.append({"order": order, "out": out, "ratios": ratios})
            print(f"round {r + 1}: " + ("" if args.shipped else f"transformers {base:.1f} ms; ") + "; ".join(
                f"{name} " + ", ".join(f"{c} {out[name]['analysis_ms'][c]:.1f} ms ({ratios[name][c]:.2f}x)"
                                       for c in CALLERS) for name in codes), flush=True)
    medians = {name: {c: round(statistics.median(rd["ratios"][name][c] for rd in rounds), 3) for c in CALLERS}
               for name in codes}
    against = f"{roles[0]}'s analysis" if args.shipped else "transformers' eager forward with output_attentions"
    for name, m in medians.items():
        print(f"{name}: median ratio to {against}: " + ", ".join(f"{c} {v:.2f}x" for c, v in m.items()))
    if args.name:
        path = write_json({"machine": info, "case": {"arch": "vitviz-mini" if args.shipped else args.arch,
                                                     "size": 128 if args.shipped else args.size},
                           "codes": {k: str(v) for k, v in codes.items()}, "against": against,
                           "median_ratios": medians, "rounds": rounds}, result_path(args.name))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
