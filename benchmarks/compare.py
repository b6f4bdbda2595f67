"""Print two benchmark result files side by side (every timing, ratio and throughput both runs have).

    python benchmarks/compare.py benchmarks/results/before-2026-11-25.json benchmarks/results/after-2026-11-25.json
    python benchmarks/compare.py A.json B.json --filter ui.          # only keys containing "ui."

For timings the last column is B / A (below 1: B is faster).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

KEEP = ("median_ms", "p90_ms", "ratios.", "gflops", "_gflop", "peak_rss_mb", "worker_rollout_ms", "stages_median_ms")


def flatten(d: Any, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(d, (int, float)) and not isinstance(d, bool):
        out[prefix[:-1]] = float(d)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.add_argument("--filter", default="", help="only keys containing this text")
    p.add_argument("--all", action="store_true", help="every number, not just timings, ratios and throughputs")
    args = p.parse_args(argv)
    da, db = (json.loads(x.read_text()) for x in (args.a, args.b))
    fa, fb = flatten({k: v for k, v in da.items() if k != "machine"}), flatten({k: v for k, v in db.items() if k != "machine"})
    for label, d in (("A", da), ("B", db)):
        m = d.get("machine", {})
        print(f"{label}: {getattr(args, label.lower()).name}: {m.get('cpu')} ({m.get('usable_cpus')} cores), torch "
              f"{m.get('torch')} ({m.get('torch_threads')} threads), load at start {m.get('loadavg_at_start')}"
              + (f" — {d['note']}" if d.get("note") else ""))
    keys = [k for k in fa.keys() | fb.keys() if args.filter in k and (args.all or any(s in k for s in KEEP))]
    order = {k: i for i, k in enumerate(list(fa) + [k for k in fb if k not in fa])}
    keys.sort(key=lambda k: order[k])
    width = max((len(k) for k in keys), default=10)
    print(f"\n{'metric':<{width}}  {'A':>10}  {'B':>10}  {'B/A':>6}")
    for k in keys:
        a, b = fa.get(k), fb.get(k)
        ratio = f"{b / a:6.2f}" if a and b is not None else "     –"
        sa = f"{a:10.2f}" if a is not None else f"{'–':>10}"
        sb = f"{b:10.2f}" if b is not None else f"{'–':>10}"
        print(f"{k:<{width}}  {sa}  {sb}  {ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
