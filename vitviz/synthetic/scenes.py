"""Deterministic procedural 3D scenes with exact depth: the random scene generator and the dataset.

Each scene holds one *main* object (its class is the label), 0-3 smaller distractors, a
ground plane (y = 0, world y is up) and a vertical backdrop wall, lit by a directional
light with cast shadows plus hemispheric ambient light.  Every pixel hits a surface, so
the depth map (z-depth along the optical axis, metres) is finite everywhere.

This module holds the generator (:func:`random_spec`: class, shape, pose, framing, colours,
textures, light), :func:`render_scene`, :func:`make_dataset` and the dataset helpers; the
shapes, their analytic ray intersections and the camera are in :mod:`.geometry`, and the
renderer (:func:`render_spec`, :func:`object_ids`, :class:`Scene`) is in :mod:`.shading`.
Their public names are re-exported here, so ``vitviz.synthetic.scenes`` is the one entry point.

Typical use::

    scene = render_scene(seed=3, size=128)      # Scene(image, depth, mask, label, meta)
    data = make_dataset(1000, seed=0, workers=2)

``render_scene(seed)`` is ``render_spec(random_spec(seed), size)``; ``scene.meta`` is the
JSON-serialisable spec (plus ``seed``), so ``render_spec(scene.meta, size)`` re-renders the
identical scene (also after a JSON round trip).  Pure numpy; no torch needed.

Conventions: world y is up, the ground is y = 0; ``Camera.fov_deg`` is the vertical field
of view; rotations map local to world (``world = R @ local + position``).  Random scenes:
main object covers ~12-37 % of the pixels (mean ~22 %), depths span ~0.5-7 m (typical
per-image median ~1.9 m).  The world has a known scale (main object half-size 0.45-0.55 m,
vertical field of view 45-55 degrees, fixed ground and wall texture periods), so absolute
depth is recoverable from one image.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .geometry import CLASSES, Camera, Shape, _geometry, _random_rotation, _rot_x, _rot_y, _rot_z, _unit, make_shape
from .shading import _TEXTURES, Scene, object_ids, render_spec

__all__ = [
    "CLASSES",
    "NUM_CLASSES",
    "GENERATOR_VERSION",
    "Scene",
    "Camera",
    "Shape",
    "make_shape",
    "random_spec",
    "render_spec",
    "object_ids",
    "render_scene",
    "scene_seed",
    "make_dataset",
    "mask_coverage",
]

NUM_CLASSES = len(CLASSES)
# Bumped whenever random_spec's distribution changes, so cached datasets of older versions are not reused.
GENERATOR_VERSION = 3


# -------------------------------------------------------------------- random scene specs

_COVER_RANGE = (0.12, 0.38)  # target fraction of pixels covered by the main object (log-uniform)
# The world has a known scale, so absolute depth can be read from a single image (as it can for a camera of known
# focal length looking at things of known size): the main object's half-size, the focal length and the texture
# periods of ground and wall vary only a little.  With wide ranges, a scene scaled by 2 would look identical.
_MAIN_SIZE_RANGE = (0.45, 0.55)  # metres, characteristic half-size of the main object
# The main object is then scaled so that its bounding sphere's radius is this many times its half-size: the
# shapes' proportions vary within a class, and without it their overall size varied by about +-20 % (log std 0.18),
# which made distance from apparent size ambiguous.
_MAIN_RADIUS_PER_SIZE = 1.08
_FOV_RANGE = (47.0, 53.0)  # degrees, vertical field of view (focal length within about +-7 %)
_GROUND_TEXTURE_PERIOD = 0.5  # metres
_WALL_TEXTURE_PERIOD = 0.4  # metres


def _silhouette(shape: Shape, cam: Camera, n: int = 48):
    """Low-res silhouette of one shape: (coverage, (cx, cy), (hx, hy)) in NDC units."""
    o, d = cam.rays(n, n)
    m = np.isfinite(shape.intersect(o, d, normals=False)).reshape(n, n)
    if not m.any():
        return 0.0, (0.0, 0.0), (0.0, 0.0)
    rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
    x0, x1 = cols[0] * 2.0 / n - 1.0, (cols[-1] + 1) * 2.0 / n - 1.0
    y0, y1 = 1.0 - (rows[-1] + 1) * 2.0 / n, 1.0 - rows[0] * 2.0 / n
    return float(m.mean()), (0.5 * (x0 + x1), 0.5 * (y0 + y1)), (0.5 * (x1 - x0), 0.5 * (y1 - y0))


def _frame(shape: Shape, target: np.ndarray, view: np.ndarray, fov: float, cover: float,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Camera position and look-at so the shape is fully in view with about ``cover`` coverage."""
    th = math.tan(math.radians(fov) / 2)
    dist = 2.0 * shape.bound_radius / th
    ext = (0.5, 0.5)
    for _ in range(2):
        cam = Camera(target + dist * view, target, fov)
        cov, (cx, cy), ext = _silhouette(shape, cam)
        if cov <= 0.0:
            break
        r, u, _ = cam.basis()
        target = target + (cx * r + cy * u) * dist * th  # re-centre the silhouette
        new = dist * math.sqrt(cov / cover)
        ext = (ext[0] * dist / new, ext[1] * dist / new)
        dist = new
    big = max(ext) / 0.85  # keep the whole object inside the frame
    if big > 1.0:
        dist *= big
        ext = (ext[0] / big, ext[1] / big)
    dist = max(dist, 1.1 * shape.bound_radius)
    cam = Camera(target + dist * view, target, fov)
    r, u, _ = cam.basis()
    jx = rng.uniform(-1, 1) * min(0.25, max(0.0, 0.92 - ext[0]))
    jy = rng.uniform(-1, 1) * min(0.2, max(0.0, 0.92 - ext[1]))
    target = target - (jx * r + jy * u) * dist * th  # object appears shifted by (jx, jy)
    return target + dist * view, target


def _shape_params(kind: str, s: float, rng: np.random.Generator) -> dict:
    """Random shape parameters for characteristic half-size ``s`` (metres)."""
    U = rng.uniform
    if kind == "sphere":
        return {"radius": s}
    if kind == "cube":
        return {"half_size": 0.8 * s}
    if kind == "cylinder":
        r = s * U(0.5, 0.8)
        return {"r_out": r, "r_in": 0.0, "half_height": min(r * U(0.7, 1.8), 1.1 * s)}
    if kind == "cone":
        r = s * U(0.6, 0.9)
        return {"radius": r, "height": min(r * U(1.4, 2.6), 2.0 * s)}
    if kind == "torus":
        R = s * U(0.7, 0.85)
        return {"R": R, "r": R * U(0.25, 0.45)}
    if kind == "pyramid":
        a = s * U(0.6, 0.85)
        return {"half_base": a, "height": 2 * a * U(0.75, 1.3)}
    if kind == "capsule":
        r = s * U(0.35, 0.55)
        return {"radius": r, "half_length": min(r * U(0.7, 1.8), s - 0.5 * r)}
    if kind == "ring":
        R = s * U(0.8, 1.0)
        return {"r_out": R, "r_in": R * U(0.45, 0.65), "half_height": R * U(0.15, 0.35)}
    if kind == "tetrahedron":
        return {"edge": s * U(1.5, 1.9)}
    if kind == "star_prism":
        R = s * U(0.9, 1.1)
        return {"r_out": R, "r_in": R * U(0.38, 0.5), "half_height": R * U(0.15, 0.35)}
    raise ValueError(kind)


def _orientation(kind: str, rng: np.random.Generator) -> np.ndarray:
    """Random resting orientation (before the random yaw) of a shape class."""
    if kind == "sphere":
        return _random_rotation(rng)  # only orients the texture
    if kind in ("cylinder", "capsule"):  # standing or lying on its side
        return _rot_z(math.pi / 2) if rng.random() < (0.4 if kind == "cylinder" else 0.6) else np.eye(3)
    if kind == "torus":  # flat, tilted or standing on its rim
        return np.eye(3) if rng.random() < 0.35 else _rot_x(math.radians(rng.uniform(25.0, 90.0)))
    if kind == "ring":  # lying flat or standing on its rim
        return np.eye(3) if rng.random() < 0.5 else _rot_x(math.pi / 2)
    if kind == "star_prism":  # lying flat or standing on two tips, one tip up
        return np.eye(3) if rng.random() < 0.35 else _rot_x(-math.pi / 2)
    return np.eye(3)  # cube, cone, pyramid, tetrahedron: on their base, yaw only


def _view_ok(kind: str, R: np.ndarray, view: np.ndarray) -> bool:
    """Whether the class stays recognisable: no edge-on rings/tori/stars, no end-on rods."""
    c = abs(float(R[:, 1] @ view))  # |cos| between local symmetry axis and view direction
    if kind in ("torus", "ring"):
        return c >= 0.55
    if kind == "star_prism":
        return c >= 0.6
    if kind in ("cylinder", "capsule") and abs(R[1, 1]) < 0.5:  # lying: not seen end-on
        return c <= 0.7
    return True


def _hsv(h: float, s: float, v: float) -> list[float]:
    i = int(h * 6.0) % 6
    f = h * 6.0 - math.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    return [float(x) for x in [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]]


def _random_texture(rng: np.random.Generator, scale: float, kinds=_TEXTURES) -> dict:
    kind = str(kinds[rng.integers(len(kinds))])
    tex: dict[str, Any] = {"kind": kind, "scale": float(scale), "offset": rng.uniform(0, 10, 3).tolist()}
    if kind == "stripes":
        tex["axis"] = _unit(rng.normal(size=3)).tolist()
    elif kind == "noise":
        dirs = _unit(rng.normal(size=(4, 3))) * rng.uniform(1.0, 3.0, (4, 1))
        tex["waves"] = np.concatenate([dirs, rng.uniform(0, 2 * np.pi, (4, 1))], 1).tolist()
    return tex


def _color_dist(c, others) -> float:
    return min((float(np.abs(np.subtract(c, o)).sum()) for o in others), default=9.0)


def _random_colors(rng: np.random.Generator, muted: bool, avoid: list | None = None):
    """Two colours (sRGB in [0, 1]); both kept away from the ``avoid`` colours if possible."""
    avoid = avoid or []
    for _ in range(20):
        h = rng.random()
        if muted:
            c1 = _hsv(h, rng.uniform(0.05, 0.45), rng.uniform(0.35, 0.9))
        else:
            c1 = _hsv(h, rng.uniform(0.25, 0.95), rng.uniform(0.4, 0.95))
        if rng.random() < 0.5:  # shade of the same hue
            f = rng.uniform(0.45, 0.75)
            c2 = [x * f for x in c1]
        else:
            c2 = _hsv((h + rng.uniform(0.1, 0.9)) % 1.0, rng.uniform(0.1, 0.9), rng.uniform(0.3, 0.95))
        if _color_dist(c1, avoid) > 0.4 and _color_dist(c2, avoid) > 0.3:
            break
    return c1, c2


def _make_object(kind: str, s: float, rng: np.random.Generator, xz, avoid,
                 view: np.ndarray | None = None, bound_radius: float | None = None) -> dict:
    params = _shape_params(kind, s, rng)
    if bound_radius is not None:  # keep the proportions, fix the overall size (all parameters are lengths)
        factor = bound_radius / float(_geometry(kind, params)["br"])
        params = {k: v * factor for k, v in params.items()}
    for _ in range(50):
        R = _rot_y(rng.uniform(0, 2 * np.pi)) @ _orientation(kind, rng)
        if view is None or _view_ok(kind, R, view):
            break
    g = _geometry(kind, params)
    lift = g["support"](R.T @ np.array([0.0, -1.0, 0.0]))  # lowest point rests on y = 0
    c1, c2 = _random_colors(rng, muted=False, avoid=avoid)
    obj = {
        "shape": kind,
        "params": {k: float(v) for k, v in params.items()},
        "rotation": R.tolist(),
        "position": [float(xz[0]), float(lift), float(xz[1])],
        "color1": c1,
        "color2": c2,
        "texture": _random_texture(rng, rng.uniform(0.15, 0.45)),
        "specular": float(rng.uniform(0.0, 0.35)),
        "shininess": float(rng.uniform(8.0, 64.0)),
    }
    return obj


def _random_view(rng: np.random.Generator, elevation: tuple[float, float]) -> tuple[float, float, float, np.ndarray]:
    """A camera's vertical field of view (degrees), elevation (radians, drawn within ``elevation`` degrees) and
    azimuth, in that order of draws, and the unit vector from the scene towards the camera."""
    fov = rng.uniform(*_FOV_RANGE)
    el = math.radians(rng.uniform(*elevation))
    az = rng.uniform(0.0, 2 * np.pi)
    return fov, el, az, np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])


def random_spec(seed: int) -> dict:
    """Random, JSON-serialisable scene specification, deterministic in ``seed``."""
    rng = np.random.default_rng(int(seed))
    U = rng.uniform
    label = int(rng.integers(NUM_CLASSES))
    kind = CLASSES[label]

    ground_c = _random_colors(rng, muted=True)
    wall_c = _random_colors(rng, muted=True)
    avoid = [*ground_c, *wall_c]

    # camera direction first: the main object's orientation is chosen to be readable from it
    fov, el, az, view = _random_view(rng, (10.0, 50.0))

    s_main = U(*_MAIN_SIZE_RANGE)
    main = _make_object(kind, s_main, rng, (0.0, 0.0), avoid, view, bound_radius=_MAIN_RADIUS_PER_SIZE * s_main)
    mshape = make_shape(main)
    lo, hi = mshape.aabb()
    cam_pos, target = _frame(mshape, 0.5 * (lo + hi), view, fov,
                             math.exp(U(math.log(_COVER_RANGE[0]), math.log(_COVER_RANGE[1]))), rng)

    # distractors: smaller, no overlap, away from the camera's line of sight
    objects = [main]
    placed = [(mshape.bound_center[[0, 2]], mshape.bound_radius)]
    n_distr = int(rng.integers(0, 4))
    main_dist = float(np.linalg.norm(mshape.bound_center - cam_pos))
    main_dir = (mshape.bound_center - cam_pos) / main_dist
    main_ang = math.asin(min(1.0, mshape.bound_radius / main_dist))
    for _ in range(n_distr):
        for _try in range(12):
            dk = CLASSES[int(rng.integers(NUM_CLASSES))]
            obj = _make_object(dk, s_main * U(0.3, 0.55), rng, (0.0, 0.0), avoid)
            sh0 = make_shape(obj)
            rd = sh0.bound_radius
            ang = az + U(math.radians(75), math.radians(285))
            rad = mshape.bound_radius + rd + U(0.05, 1.2) * s_main
            xz = placed[0][0] + np.array([rad * math.sin(ang), rad * math.cos(ang)])
            if any(np.linalg.norm(xz - c) < r0 + rd + 0.05 for c, r0 in placed):
                continue
            obj["position"][0] += float(xz[0] - sh0.bound_center[0])
            obj["position"][2] += float(xz[1] - sh0.bound_center[2])
            sh = make_shape(obj)
            v = sh.bound_center - cam_pos
            dv = float(np.linalg.norm(v))
            if dv < sh.bound_radius + 0.2:
                continue
            sep = math.acos(float(np.clip(v @ main_dir / dv, -1.0, 1.0)))
            if dv < main_dist and sep < 0.8 * main_ang + math.asin(min(1.0, sh.bound_radius / dv)):
                continue  # would occlude the main object
            objects.append(obj)
            placed.append((xz, sh.bound_radius))
            break

    return _backdrop(rng, label, kind, view, el, az, fov, cam_pos, target, objects, ground_c, wall_c)


def _backdrop(rng: np.random.Generator, label: int, kind: str, view: np.ndarray, el: float, az: float,
              fov: float, cam_pos: np.ndarray, target: np.ndarray, objects: list[dict], ground_c, wall_c) -> dict:
    """The rest of a scene around its placed objects and camera: the wall behind everything, the ground, the
    light; returns the whole spec. Shared by :func:`random_spec` and :mod:`.groups` (same draws, same order)."""
    U = rng.uniform
    # backdrop wall behind everything; its normal faces the camera (small random yaw that
    # still guarantees every ray with aspect W/H <= 2 hits it)
    fh = _unit(np.array([-view[0], 0.0, -view[2]]))
    rh = np.array([-fh[2], 0.0, fh[0]])
    th_v = math.tan(math.radians(fov) / 2)
    margin = math.cos(el) - th_v * math.sin(el)
    psi_max = min(math.radians(20.0), math.atan(0.8 * margin / (2.0 * th_v)))
    psi = U(-psi_max, psi_max)
    n_wall = -(math.cos(psi) * fh + math.sin(psi) * rh)
    offs = [float(n_wall @ make_shape(ob).bound_center - make_shape(ob).bound_radius) for ob in objects]
    wall_offset = min(offs) - U(0.3, 3.0)
    assert n_wall @ cam_pos > wall_offset

    wall_tex = _random_texture(rng, _WALL_TEXTURE_PERIOD)
    ground_tex = _random_texture(rng, _GROUND_TEXTURE_PERIOD)
    ground_tex["angle"] = float(U(0, 2 * np.pi))

    # light from the camera side of the wall
    l_el = math.radians(U(25.0, 70.0))
    l_az = az + U(-math.radians(80), math.radians(80))
    ldir = [math.cos(l_el) * math.sin(l_az), math.sin(l_el), math.cos(l_el) * math.cos(l_az)]
    warm = U(-0.08, 0.08)
    return {
        "label": label,
        "main_class": kind,
        "camera": {"position": cam_pos.tolist(), "look_at": target.tolist(), "fov_deg": float(fov)},
        "light": {
            "direction": [float(x) for x in ldir],
            "intensity": float(U(0.75, 1.1)),
            "ambient": float(U(0.25, 0.45)),
            "color": [1.0 + warm, 1.0, 1.0 - warm],
        },
        "ground": {"height": 0.0, "color1": ground_c[0], "color2": ground_c[1], "texture": ground_tex},
        "wall": {"normal": n_wall.tolist(), "offset": float(wall_offset), "color1": wall_c[0],
                 "color2": wall_c[1], "texture": wall_tex},
        "objects": objects,
    }


def render_scene(seed: int, size: int | tuple[int, int] = 128) -> Scene:
    """Render the random scene of ``seed`` at ``size`` (int or (H, W)); deterministic."""
    spec = random_spec(seed)
    spec["seed"] = int(seed)
    return render_spec(spec, size)


# ------------------------------------------------------------------------------ dataset


def scene_seed(seed: int, index: int) -> int:
    """Seed of scene ``index`` in a dataset generated with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _render_arrays(args: tuple[int, tuple[int, int]]):
    sc = render_scene(args[0], args[1])
    return sc.image, sc.depth, sc.mask, sc.label


def mask_coverage(masks: np.ndarray, grid: tuple[int, int], chunk: int = 2000) -> np.ndarray:
    """Fraction of each cell of a ``grid`` (rows, cols) over the masks ``[N, H, W]`` that the mask covers.

    Cells split the image as adaptive average pooling does (``[floor(i H / rows), ceil((i + 1) H / rows))``), so
    the grid need not divide the image: a model's patch grid, or the grid of a lower training resolution.
    Returns float32 ``[N, rows, cols]``.
    """
    n, h, w = masks.shape
    rows, cols = grid
    if h % rows == 0 and w % cols == 0:  # equal cells (a model's own patch grid): a reshape is ~10x faster
        ph, pw = h // rows, w // cols
        out = np.empty((n, rows, cols), np.float32)
        for i in range(0, n, chunk):
            cells = masks[i : i + chunk].reshape(-1, rows, ph, cols, pw)
            out[i : i + chunk] = np.count_nonzero(cells, axis=(2, 4)) / np.float32(ph * pw)
        return out
    r0 = np.arange(rows) * h // rows
    r1 = -(-(np.arange(rows) + 1) * h // rows)
    c0 = np.arange(cols) * w // cols
    c1 = -(-(np.arange(cols) + 1) * w // cols)
    area = ((r1 - r0)[:, None] * (c1 - c0)[None, :]).astype(np.float32)
    out = np.empty((n, rows, cols), np.float32)
    for i in range(0, n, chunk):
        integral = np.zeros((min(chunk, n - i), h + 1, w + 1), np.int32)
        integral[:, 1:, 1:] = masks[i : i + chunk].astype(np.int32).cumsum(1).cumsum(2)
        total = (integral[:, r1][:, :, c1] - integral[:, r0][:, :, c1]
                 - integral[:, r1][:, :, c0] + integral[:, r0][:, :, c0])
        out[i : i + chunk] = total / area
    return out


def make_dataset(n: int, seed: int, size: int | tuple[int, int] = 128, workers: int = 1,
                 progress: bool = False, depth_dtype: Any = np.float16) -> dict[str, np.ndarray]:
    """Render ``n`` scenes (scene i uses ``scene_seed(seed, i)``).

    Returns ``images`` uint8 [n,H,W,3], ``depths`` ``depth_dtype`` [n,H,W] (float16 by
    default: ~1e-3 relative precision, half the memory), ``masks`` bool [n,H,W], ``labels``
    int64 [n].  ``workers > 1`` renders in a multiprocessing pool; output is identical.
    """
    H, W = (size, size) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
    out = {
        "images": np.zeros((n, H, W, 3), np.uint8),
        "depths": np.zeros((n, H, W), depth_dtype),
        "masks": np.zeros((n, H, W), bool),
        "labels": np.zeros(n, np.int64),
    }
    jobs = [(scene_seed(seed, i), (H, W)) for i in range(n)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc="scenes", unit="scene")

    def store(i: int, res) -> None:
        out["images"][i], out["depths"][i], out["masks"][i], out["labels"][i] = res
        if bar is not None:
            bar.update(1)

    if workers <= 1 or n < 2:
        for i, job in enumerate(jobs):
            store(i, _render_arrays(job))
    else:
        import multiprocessing as mp

        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        with mp.get_context(method).Pool(workers) as pool:
            chunk = max(1, min(32, n // (4 * workers)))
            for i, res in enumerate(pool.imap(_render_arrays, jobs, chunksize=chunk)):
                store(i, res)
    if bar is not None:
        bar.close()
    return out
