"""The image-text model's training scenes: both kinds rendered with their object maps and facts, and cached.

``caption_data(n, seed, kind=...)`` renders scenes ``scene_seed(seed, i)`` of either kind (:data:`SCENE_KINDS`: the
standard generator's, or :mod:`.groups`' scenes of 2-3 salient objects) with the per-object pixel map and each
visible object's :class:`~.captions.ObjectFacts`, cached as ``data_cache/captions-*.npz``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .captions import ObjectFacts, scene_facts
from .scenes import GENERATOR_VERSION, object_ids, random_spec, render_spec, scene_seed

__all__ = ["SCENE_KINDS", "CAPTION_DATA_VERSION", "scene_spec", "caption_data", "as_facts"]

CAPTION_DATA_VERSION = 2  # bumped when the facts kept per scene change, so older caches are not reused
# random_spec's scenes, groups.random_group_spec's, or groups.random_pair_spec's (standard scenes with a second object)
SCENE_KINDS = ("standard", "group", "pair")


def scene_spec(seed: int, kind: str = "standard") -> dict:
    """The spec of a scene of either kind (:data:`SCENE_KINDS`)."""
    if kind == "group":
        from .groups import random_group_spec

        return random_group_spec(seed)
    if kind == "pair":
        from .groups import random_pair_spec

        return random_pair_spec(seed)
    if kind != "standard":
        raise ValueError(f"unknown scene kind {kind!r} ({', '.join(SCENE_KINDS)})")
    return random_spec(seed)


def _render_one(args: tuple[int, int, str]) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    seed, size, kind = args
    spec = scene_spec(seed, kind)
    ids = object_ids(spec, size)
    facts = [asdict(f) for f in scene_facts(spec, ids)]
    return render_spec(spec, size).image, ids, facts


def caption_data(n: int, seed: int, size: int = 128, workers: int = 2, cache_dir: str | Path = "data_cache",
                 progress: bool = False, kind: str = "standard") -> dict[str, Any]:
    """Scenes ``scene_seed(seed, i)`` for i < n of a kind (:data:`SCENE_KINDS`): ``images`` uint8
    ``[n, H, W, 3]``, ``ids`` int8 ``[n, H, W]`` (:func:`object_ids`) and ``facts`` (per scene the
    :class:`ObjectFacts` of its visible objects), cached as ``captions-…-s{seed}-n{n}-{size}px.npz`` under
    ``cache_dir``."""
    from .groups import GROUP_VERSION, PAIR_VERSION

    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    version = {"standard": f"v{GENERATOR_VERSION}", "group": f"group-v{GROUP_VERSION}",
               "pair": f"pair-v{GENERATOR_VERSION}.{PAIR_VERSION}"}[kind]
    path = cache / f"captions-{version}.{CAPTION_DATA_VERSION}-s{seed}-n{n}-{size}px.npz"
    if path.is_file():
        with np.load(path) as data:
            return {"images": data["images"], "ids": data["ids"], "facts": json.loads(str(data["facts"]))}
    jobs = [(scene_seed(seed, i), size, kind) for i in range(n)]
    images = np.zeros((n, size, size, 3), np.uint8)
    ids = np.zeros((n, size, size), np.int8)
    facts: list[list[dict]] = [[] for _ in range(n)]
    t0 = time.time()
    if workers > 1:
        import multiprocessing as mp

        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        with mp.get_context(method).Pool(workers) as pool:
            results = pool.imap(_render_one, jobs, chunksize=16)
            for i, res in enumerate(results):
                images[i], ids[i], facts[i] = res
                if progress and (i + 1) % 1000 == 0:
                    print(f"  scenes {i + 1}/{n} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    else:
        for i, job in enumerate(jobs):
            images[i], ids[i], facts[i] = _render_one(job)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, images=images, ids=ids, facts=np.array(json.dumps(facts)))
    tmp.replace(path)
    return {"images": images, "ids": ids, "facts": facts}


def as_facts(rows: list[list[dict]]) -> list[list[ObjectFacts]]:
    return [[ObjectFacts(d["index"], d["shape"], tuple(d["colours"]), d["pixels"], tuple(d["relations"]),
                         d.get("x", 0.5), d.get("z", 0.0)) for d in row] for row in rows]
