"""Scenes of several salient objects, for the shipped image-text model's training data.

The standard generator (:func:`vitviz.synthetic.scenes.random_spec`) has one main object and small distractors,
and a caption of it is about the main object: an image embedding trained on such captions holds little else.
A *group* scene (:func:`random_group_spec`) stands 2-3 objects of different shapes and comparable size side by side
in front of the camera (each at least :data:`MIN_SALIENT_SHARE` of the picture, checked on the rendered object map),
plus 0-2 small distractors behind them, on the same ground, wall and light as the standard scenes. Object 0 is
the scene's ``label`` as usual; nothing else marks it as special.

    spec = random_group_spec(5)          # JSON-serialisable, deterministic in the seed
    scene = render_spec(spec, 128)
"""

from __future__ import annotations

import math

import numpy as np

from .geometry import CLASSES
from .scenes import (_MAIN_RADIUS_PER_SIZE, _MAIN_SIZE_RANGE, _backdrop, _make_object, _random_colors, _random_view,
                     make_shape, object_ids)

__all__ = ["random_group_spec", "random_pair_spec", "MIN_SALIENT_SHARE", "GROUP_VERSION", "PAIR_VERSION"]

GROUP_VERSION = 1  # bumped whenever random_group_spec's distribution changes (cached datasets are then rebuilt)
MIN_SALIENT_SHARE = 0.03  # each salient object covers at least this fraction of the picture
PAIR_VERSION = 1  # bumped whenever random_pair_spec's selection changes
_CHECK_SIZE = 64  # object-map resolution of the coverage check


def _object_shares(spec: dict) -> np.ndarray:
    """The share of the picture each object of ``spec`` covers, on the object map at :data:`_CHECK_SIZE` px."""
    ids = object_ids(spec, _CHECK_SIZE)
    return np.bincount(ids[ids >= 0].ravel().astype(np.int64), minlength=len(spec["objects"])) / ids.size


def _horizontal(v: np.ndarray) -> np.ndarray:
    v = np.array([v[0], 0.0, v[2]])
    return v / np.linalg.norm(v)


def random_group_spec(seed: int, salient: int | None = None) -> dict:
    """A random scene of ``salient`` (default: 2 or 3, at random) objects of different shapes and comparable size,
    deterministic in ``seed``; each covers at least :data:`MIN_SALIENT_SHARE` of a square picture (the layout is
    drawn again until it does, at most 20 times, keeping the best)."""
    rng = np.random.default_rng([int(seed), 0x6B0])  # its own stream: not random_spec(seed)'s scene
    U = rng.uniform
    n = int(salient) if salient is not None else int(rng.integers(2, 4))
    kinds = [CLASSES[int(i)] for i in rng.choice(len(CLASSES), size=n, replace=False)]
    ground_c = _random_colors(rng, muted=True)
    wall_c = _random_colors(rng, muted=True)
    avoid = [*ground_c, *wall_c]
    fov, el, az, view = _random_view(rng, (12.0, 45.0))  # view: towards the camera
    fh = _horizontal(-view)  # away from the camera, on the ground
    rh = np.array([-fh[2], 0.0, fh[0]])  # the picture's horizontal axis, on the ground
    best: tuple[float, dict] | None = None
    for _attempt in range(20):
        objects, placed = [], []
        x = 0.0
        for i, kind in enumerate(kinds):
            s = U(*_MAIN_SIZE_RANGE) * (1.0 if i == 0 else U(0.75, 1.0))
            obj = _make_object(kind, s, rng, (0.0, 0.0), avoid, view, bound_radius=_MAIN_RADIUS_PER_SIZE * s)
            shape = make_shape(obj)
            r = shape.bound_radius
            if i:
                x += r + U(0.05, 0.5)
            depth = U(-0.5, 0.5)
            centre = x * rh + depth * fh
            obj["position"][0] += float(centre[0] - shape.bound_center[0])
            obj["position"][2] += float(centre[2] - shape.bound_center[2])
            objects.append(obj)
            placed.append((centre, r))
            x += r
        order = rng.permutation(n)  # object 0 is not always the leftmost
        shift = 0.5 * x * rh
        for obj in objects:
            obj["position"][0] -= float(shift[0])
            obj["position"][2] -= float(shift[2])
        placed = [(c - shift, r) for c, r in placed]
        objects = [objects[int(k)] for k in order]
        placed = [placed[int(k)] for k in order]
        # the camera: the group's bounding sphere fills most of the picture's height
        centres = np.array([make_shape(o).bound_center for o in objects])
        radii = np.array([r for _c, r in placed])
        middle = centres.mean(axis=0)
        extent = float(np.max(np.linalg.norm(centres - middle, axis=1) + radii))
        dist = extent / math.tan(math.radians(fov) / 2) * U(0.75, 1.0)
        target = middle + np.array([0.0, U(-0.1, 0.1), 0.0])
        cam_pos = target + dist * view
        for _d in range(int(rng.integers(0, 3))):  # small distractors behind the group
            dk = CLASSES[int(rng.integers(len(CLASSES)))]
            obj = _make_object(dk, U(*_MAIN_SIZE_RANGE) * U(0.3, 0.5), rng, (0.0, 0.0), avoid)
            sh0 = make_shape(obj)
            spot = middle + U(-1.0, 1.0) * (extent + 0.3) * rh + (extent + sh0.bound_radius + U(0.2, 1.2)) * fh
            if any(np.linalg.norm((spot - c)[[0, 2]]) < r + sh0.bound_radius + 0.05 for c, r in placed):
                continue
            obj["position"][0] += float(spot[0] - sh0.bound_center[0])
            obj["position"][2] += float(spot[2] - sh0.bound_center[2])
            objects.append(obj)
        spec = _backdrop(rng, CLASSES.index(objects[0]["shape"]), objects[0]["shape"], view, el, az, fov, cam_pos,
                         target, objects, ground_c, wall_c)
        shares = _object_shares(spec)[:n]
        smallest = float(shares.min())
        if best is None or smallest > best[0]:
            best = (smallest, spec)
        if smallest >= MIN_SALIENT_SHARE * 1.15:  # a margin: the check's resolution is coarser than the picture's
            break
    assert best is not None
    return best[1]


def random_pair_spec(seed: int) -> dict:
    """A standard scene (:func:`~vitviz.synthetic.scenes.random_spec`) with a second salient object: the first of
    the standard scenes drawn from ``seed``'s own stream in which an object of another shape than the main one
    covers at least :data:`MIN_SALIENT_SHARE` of the picture (checked on the object map at a coarse resolution).
    About one standard scene in twelve has one; group scenes have several objects, but all of comparable size,
    and this is the other composition: one large main object and a small second one."""
    from .scenes import random_spec

    for attempt in range(400):
        spec = random_spec(int(np.random.SeedSequence([int(seed), 0x9A1, attempt]).generate_state(1)[0]))
        shares = _object_shares(spec)
        main = spec["objects"][0]["shape"]
        if any(share >= MIN_SALIENT_SHARE * 1.1 and obj["shape"] != main
               for obj, share in zip(spec["objects"][1:], shares[1:])):
            return spec
    return spec  # not reached in practice (about 1 scene in 12 qualifies)
