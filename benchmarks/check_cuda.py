"""GPU check: the engine on CUDA agrees with the CPU for the shipped model (probabilities, attentions, depth).

    python benchmarks/check_cuda.py          # on a machine with a CUDA GPU (DEV=cpu runs the script's logic on a CPU)

Prints the worst differences over 20 generated scenes, how many of them half precision classifies like fp32, the same
for the live mode's path (a 640x480 frame resized on the device, the trace replayed as a CUDA graph), and the mean
CUDA time of ``Engine.analyze`` on an in-memory image. Run from the repository root.
"""
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from vitviz.engine import Engine  # noqa: E402
from vitviz.synthetic.scenes import render_scene  # noqa: E402

DEV = os.environ.get("DEV", "cuda")
print("torch", torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(0), flush=True)
cpu, gpu = Engine("vitviz-mini", device="cpu"), Engine("vitviz-mini", device=DEV)
half = Engine("vitviz-mini", device=DEV, half=True)
same_half = 0
worst = {"prob": 0.0, "att": 0.0, "depth_rel": 0.0}
for seed in range(900_000, 900_020):
    img = render_scene(seed, 128).image
    a, b = cpu.analyze(img), gpu.analyze(img)
    worst["prob"] = max(worst["prob"], float(np.abs(a.probabilities - b.probabilities).max()))
    worst["att"] = max(worst["att"], float(np.abs(a.attention.prefix_rows - b.attention.prefix_rows).max()),
                       float(np.abs(a.attention.rollout_rows - b.attention.rollout_rows).max()))
    worst["depth_rel"] = max(worst["depth_rel"], float((np.abs(a.depth - b.depth) / a.depth).max()))
    assert a.predictions[0].label == b.predictions[0].label, seed
    same_half += half.analyze(img).predictions[0].label == a.predictions[0].label
print(f"cpu vs {DEV}, 20 scenes, worst differences: {worst} (ran on {b.device}); half precision: same top-1 on "
      f"{same_half} of 20", flush=True)
t = time.perf_counter()
for _ in range(50):
    gpu.analyze(img)
mean_ms = (time.perf_counter() - t) / 50 * 1000
print(f"{DEV} end-to-end (array input): {mean_ms:.1f} ms; timings {b.timings}", flush=True)

# The live mode's path: frames resized on the device, the TorchScript trace replayed as a CUDA graph (checked once
# against the trace when recorded; here against the CPU's eager pass, on frames the engine has not seen).
worst_live = {"prob": 0.0, "att": 0.0, "depth_rel": 0.0, "image_levels": 0.0}
same_top1 = 0
for seed in range(900_100, 900_110):
    frame = np.asarray(Image.fromarray(render_scene(seed, 480).image).resize((640, 480)))
    a, b = cpu.analyze(frame), gpu.analyze(frame, traced=True, keep_display_image=True)
    worst_live["prob"] = max(worst_live["prob"], float(np.abs(a.probabilities - b.probabilities).max()))
    worst_live["att"] = max(worst_live["att"], float(np.abs(a.cls_attention - b.cls_attention).max()))
    worst_live["depth_rel"] = max(worst_live["depth_rel"], float((np.abs(a.depth - b.depth) / a.depth).max()))
    worst_live["image_levels"] = max(worst_live["image_levels"],
                                     float(np.abs(a.image.astype(float) - b.image).mean()))
    same_top1 += a.predictions[0].label == b.predictions[0].label
graphs = gpu._traced is not None and gpu._traced.cuda_graphs and gpu.device.type == "cuda"
where = "on the device" if gpu.device.type == "cuda" else "by Pillow"
print(f"live path on {DEV} (resized {where}, CUDA graphs {'on' if graphs else 'off'}) vs cpu eager, 10 frames "
      f"640x480: worst differences {worst_live}; same top-1 on {same_top1} of 10", flush=True)
