"""Rendering of a scene spec: first hits, textures and albedo, directional light with cast shadows.

:func:`render_spec` turns a fully specified scene (see :func:`vitviz.synthetic.scenes.random_spec` for the format)
into a :class:`Scene` (image, exact z-depth, mask of the main object); :func:`object_ids` is its geometry pass alone,
the object each pixel shows.  Lighting is a directional light with cast shadows plus hemispheric ambient light and
Blinn-Phong highlights; colours are sRGB, shaded in linear space.  Pure numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .geometry import CLASSES, Camera, _unit, make_shape

__all__ = ["Scene", "render_spec", "object_ids"]

_SHADOW_OFFSET = 1e-3  # metres; shadow rays start this far off the surface
_GAMMA = 2.2


@dataclass
class Scene:
    """One rendered scene."""

    image: np.ndarray  # uint8 [H, W, 3]
    depth: np.ndarray  # float32 [H, W], z-depth in metres, finite and > 0 everywhere
    mask: np.ndarray  # bool [H, W], visible pixels of the MAIN object
    label: int  # index into CLASSES
    meta: dict  # JSON-serialisable scene spec (camera, light, objects, ...)


# ----------------------------------------------------------------------------- textures

_TEXTURES = ("plain", "checker", "stripes", "noise", "dots")


def _pattern(tex: dict, q: np.ndarray) -> np.ndarray:
    """Blend weight in [0, 1] for texture coordinates q (N, 3) (already scaled)."""
    kind = tex["kind"]
    q = q + np.asarray(tex.get("offset", (0.0, 0.0, 0.0)))
    if kind == "plain":
        return np.zeros(q.shape[0])
    if kind == "checker":
        return (np.floor(q).sum(axis=1) % 2.0).astype(np.float64)
    if kind == "stripes":
        return (np.floor(q @ np.asarray(tex["axis"])) % 2.0).astype(np.float64)
    if kind == "dots":
        f = q - np.round(q)
        return (np.einsum("ij,ij->i", f, f) < 0.3**2).astype(np.float64)
    if kind == "noise":
        w = np.asarray(tex["waves"])  # (k, 4): direction*frequency, phase
        v = np.sin(q @ w[:, :3].T + w[:, 3]).mean(axis=1)
        x = np.clip(0.5 + 1.2 * v, 0.0, 1.0)
        return x * x * (3 - 2 * x)
    raise ValueError(f"unknown texture {kind!r}")


def _albedo(surf: dict, coords: np.ndarray) -> np.ndarray:
    """Linear-space albedo (N, 3) of a surface at its texture-space coordinates."""
    tex = surf["texture"]
    w = _pattern(tex, coords / tex["scale"])[:, None]
    c1 = np.asarray(surf["color1"]) ** _GAMMA
    c2 = np.asarray(surf["color2"]) ** _GAMMA
    return c1 * (1.0 - w) + c2 * w


# ------------------------------------------------------------------------------ shading


def _first_hits(spec: dict, cam: "Camera", shapes: list, o: np.ndarray, d: np.ndarray):
    """Nearest hit of every ray: distance ``t`` (inf: none), surface normal and surface id (object index, then
    ``len(shapes)`` for the ground and ``len(shapes) + 1`` for the wall; -1: nothing)."""
    N, K = o.shape[0], len(shapes)
    t = np.full(N, np.inf)
    nrm = np.zeros((N, 3))
    sid = np.full(N, -1, dtype=np.int64)
    ground, wall = spec.get("ground"), spec.get("wall")
    with np.errstate(all="ignore"):
        if ground is not None:
            tg = (float(ground.get("height", 0.0)) - o[:, 1]) / d[:, 1]
            hit = (d[:, 1] < 0) & (tg > 0)
            t[hit], sid[hit] = tg[hit], K
            nrm[hit] = (0.0, 1.0, 0.0)
        if wall is not None:
            nw = _unit(wall["normal"])
            dn = d @ nw
            tw = (float(wall["offset"]) - o @ nw) / dn
            hit = (dn < 0) & (tw > 0) & (tw < t)
            t[hit], sid[hit] = tw[hit], K + 1
            nrm[hit] = nw
    order = np.argsort([np.linalg.norm(s.bound_center - cam.position) for s in shapes], kind="stable")
    for i in order:
        ti, ni = shapes[i].intersect(o, d, 0.0, t)
        closer = ti < t
        t[closer], nrm[closer], sid[closer] = ti[closer], ni[closer], i
    return t, nrm, sid


def object_ids(spec: dict, size: int | tuple[int, int] = 128) -> np.ndarray:
    """Which object each pixel of ``render_spec(spec, size)`` shows: int8 ``[H, W]``, the index into
    ``spec["objects"]`` (0: the main object, so ``object_ids(...) == 0`` is the scene's ``mask``), or -1 for the
    ground, the wall and the background. The geometry pass of :func:`render_spec` alone (about half its time)."""
    H, W = (size, size) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
    cam = Camera.from_dict(spec["camera"])
    o, d = cam.rays(H, W)
    shapes = [make_shape(ob) for ob in spec["objects"]]
    sid = _first_hits(spec, cam, shapes, o, d)[2]
    sid[sid >= len(shapes)] = -1
    return sid.astype(np.int8).reshape(H, W)


def render_spec(spec: dict, size: int | tuple[int, int] = 128) -> Scene:
    """Render a fully specified scene (see :func:`vitviz.synthetic.scenes.random_spec` for the format).

    ``spec["objects"][0]`` is the main object (its visible pixels form ``mask``).  The
    ``ground`` and ``wall`` entries are optional here (pixels hitting nothing get depth
    inf and the ``background`` colour); random specs always contain both.
    """
    H, W = (size, size) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
    cam = Camera.from_dict(spec["camera"])
    o, d = cam.rays(H, W)
    N = H * W
    shapes = [make_shape(ob) for ob in spec["objects"]]
    K = len(shapes)
    GROUND, WALL = K, K + 1
    ground, wall = spec.get("ground"), spec.get("wall")
    t, nrm, sid = _first_hits(spec, cam, shapes, o, d)
    if wall is not None:
        nw = _unit(wall["normal"])
    hitany = np.isfinite(t)
    P = o + np.where(hitany, t, 0.0)[:, None] * d

    # --- albedo per surface
    alb = np.zeros((N, 3))
    ks = np.zeros(N)
    shin = np.ones(N)
    if ground is not None:
        m = sid == GROUND
        ang = float(ground["texture"].get("angle", 0.0))
        ca, sa = math.cos(ang), math.sin(ang)
        x, z = P[m, 0], P[m, 2]
        alb[m] = _albedo(ground, np.stack([ca * x - sa * z, sa * x + ca * z, np.zeros_like(x)], 1))
    if wall is not None:
        m = sid == WALL
        u = _unit(np.cross([0.0, 1.0, 0.0], nw))
        alb[m] = _albedo(wall, np.stack([P[m] @ u, P[m, 1], np.zeros(int(m.sum()))], 1))
    for i, (ob, sh) in enumerate(zip(spec["objects"], shapes)):
        m = sid == i
        if m.any():
            alb[m] = _albedo(ob, sh.to_local(P[m]) / sh.size)
            ks[m] = float(ob.get("specular", 0.0))
            shin[m] = float(ob.get("shininess", 16.0))

    # --- lighting with cast shadows
    light = spec["light"]
    L = _unit(light["direction"])
    ndl = np.clip(nrm @ L, 0.0, None)
    vis = np.ones(N)
    lit = np.flatnonzero(hitany & (ndl > 0))
    if lit.size:
        so = P[lit] + _SHADOW_OFFSET * nrm[lit]
        sd = np.broadcast_to(L, so.shape)
        blocked = np.zeros(lit.size, dtype=bool)
        for sh in shapes:
            blocked |= np.isfinite(sh.intersect(so, sd, 0.0, np.inf, normals=False))
        vis[lit[blocked]] = 0.0
    lc = np.asarray(light.get("color", (1.0, 1.0, 1.0)))
    amb = float(light["ambient"]) * (0.75 + 0.25 * nrm[:, 1])
    direct = float(light["intensity"]) * ndl * vis
    col = alb * (amb[:, None] + direct[:, None] * lc)
    hv = _unit(L[None, :] - d)
    nh = np.clip(np.einsum("ij,ij->i", nrm, hv), 0.0, 1.0)
    col += (ks * nh**shin * direct)[:, None] * lc
    bg = np.asarray(spec.get("background", (0.5, 0.5, 0.5))) ** _GAMMA
    col[~hitany] = bg
    img = np.clip(col, 0.0, 1.0) ** (1.0 / _GAMMA)
    image = np.floor(img * 255.0 + 0.5).astype(np.uint8).reshape(H, W, 3)
    depth = cam.zdepth(t, d).astype(np.float32).reshape(H, W)
    mask = (sid == 0).reshape(H, W)
    label = int(spec.get("label", CLASSES.index(spec["objects"][0]["shape"])))
    return Scene(image=image, depth=depth, mask=mask, label=label, meta=spec)
