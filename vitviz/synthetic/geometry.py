"""Geometry of the procedural scenes: shapes, their exact ray intersections, and the pinhole camera.

Shapes are intersected analytically (sphere, convex polyhedra by plane clipping, cylinders/annuli/cones/capsules
by quadratics); the torus is found by sphere tracing on its exact distance function followed by a bracketed
Newton/bisection refinement.  :class:`Shape` places a primitive in the world (``world = R @ local + position``)
with a bounding sphere, an exact bounding box and a ray-intersection method; :class:`Camera` is a pinhole camera
whose ``fov_deg`` is the vertical field of view.  World y is up.  Pure numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["CLASSES", "Camera", "Shape", "make_shape"]

# The shape classes, in label order (a scene's label is an index into this tuple).
CLASSES: tuple[str, ...] = (
    "sphere",
    "cube",
    "cylinder",
    "cone",
    "torus",
    "pyramid",
    "capsule",
    "ring",
    "tetrahedron",
    "star_prism",
)

_TORUS_MAX_STEPS = 100
_TORUS_REFINE_STEPS = 16


# ----------------------------------------------------------------------------- helpers


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _quadratic(a, b, c):
    """Both roots of ``a t^2 + 2 b t + c = 0`` (numerically stable); NaN where complex."""
    disc = b * b - a * c
    sq = np.sqrt(np.where(disc >= 0.0, disc, np.nan))
    q = -(b + np.copysign(sq, b))
    return q / a, c / q


def _nearest(tmin: float, cands: list) -> tuple[np.ndarray, np.ndarray]:
    """Smallest candidate ``t > tmin`` among (t, valid) pairs; returns (t, index of candidate)."""
    T = np.stack([np.where(valid & (t > tmin), t, np.inf) for t, valid in cands])
    k = np.argmin(T, axis=0)
    return T[k, np.arange(T.shape[1])], k


# ------------------------------------------------------------------ local intersections
# Every function takes local-frame origins/directions (N, 3) (directions unit length),
# the shape's geometry dict and tmin; returns t (N,) (inf = miss) and an unnormalised
# local normal (N, 3) (orientation arbitrary: it is face-forwarded by the caller).


def _isect_sphere(o, d, g, tmin):
    r = g["radius"]
    b = np.einsum("ij,ij->i", o, d)
    c = np.einsum("ij,ij->i", o, o) - r * r
    t1, t2 = _quadratic(1.0, b, c)
    t, _ = _nearest(tmin, [(t1, True), (t2, True)])
    return t, o + t[:, None] * d


def _isect_annulus(o, d, g, tmin):
    """Solid {r_in <= rho <= r_out, |y| <= h} (a cylinder when r_in == 0); axis = local y."""
    ro, ri, h = g["r_out"], g["r_in"], g["half_height"]
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    b = o[:, 0] * d[:, 0] + o[:, 2] * d[:, 2]
    rho2 = o[:, 0] ** 2 + o[:, 2] ** 2
    cands = []
    radii = [ro, ri] if ri > 0 else [ro]
    for rad in radii:
        for tr in _quadratic(a, b, rho2 - rad * rad):
            cands.append((tr, np.abs(o[:, 1] + tr * d[:, 1]) <= h))
    for yc in (h, -h):
        tc = (yc - o[:, 1]) / d[:, 1]
        px, pz = o[:, 0] + tc * d[:, 0], o[:, 2] + tc * d[:, 2]
        r2 = px * px + pz * pz
        cands.append((tc, (r2 <= ro * ro) & (r2 >= ri * ri)))
    t, k = _nearest(tmin, cands)
    p = o + t[:, None] * d
    cap = np.zeros_like(p)
    cap[:, 1] = np.sign(p[:, 1])
    n = np.where((k >= len(cands) - 2)[:, None], cap, p * np.array([1.0, 0.0, 1.0]))
    return t, n


def _isect_cone(o, d, g, tmin):
    """Base disc radius r at y = 0, apex at y = H."""
    r, H = g["radius"], g["height"]
    k2 = (r / H) ** 2
    hy = H - o[:, 1]
    a = d[:, 0] ** 2 + d[:, 2] ** 2 - k2 * d[:, 1] ** 2
    b = o[:, 0] * d[:, 0] + o[:, 2] * d[:, 2] + k2 * hy * d[:, 1]
    c = o[:, 0] ** 2 + o[:, 2] ** 2 - k2 * hy * hy
    cands = []
    for tr in _quadratic(a, b, c):
        y = o[:, 1] + tr * d[:, 1]
        cands.append((tr, (y >= 0.0) & (y <= H)))
    tc = -o[:, 1] / d[:, 1]
    px, pz = o[:, 0] + tc * d[:, 0], o[:, 2] + tc * d[:, 2]
    cands.append((tc, px * px + pz * pz <= r * r))
    t, k = _nearest(tmin, cands)
    p = o + t[:, None] * d
    side = np.stack([p[:, 0], k2 * (H - p[:, 1]), p[:, 2]], 1)
    n = np.where((k == 2)[:, None], np.array([0.0, -1.0, 0.0]), side)
    return t, n


def _isect_capsule(o, d, g, tmin):
    """Segment from (0,-h,0) to (0,h,0) swept by a ball of radius r."""
    r, h = g["radius"], g["half_length"]
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    b = o[:, 0] * d[:, 0] + o[:, 2] * d[:, 2]
    c = o[:, 0] ** 2 + o[:, 2] ** 2 - r * r
    cands = [(tr, np.abs(o[:, 1] + tr * d[:, 1]) <= h) for tr in _quadratic(a, b, c)]
    for yc in (h, -h):
        oc = o - np.array([0.0, yc, 0.0])
        bs = np.einsum("ij,ij->i", oc, d)
        cs = np.einsum("ij,ij->i", oc, oc) - r * r
        for tr in _quadratic(1.0, bs, cs):
            y = o[:, 1] + tr * d[:, 1]
            cands.append((tr, y >= h if yc > 0 else y <= -h))
    t, _ = _nearest(tmin, cands)
    p = o + t[:, None] * d
    n = p.copy()
    n[:, 1] -= np.clip(p[:, 1], -h, h)
    return t, n


def _isect_convex(o, d, g, tmin):
    """Union of convex polyhedra given as half-spaces n.x <= c, planes array (P, K, 4)."""
    planes = g["planes"]
    P, K = planes.shape[:2]
    nrm = planes[..., :3].reshape(-1, 3)
    off = planes[..., 3].reshape(-1)
    N = o.shape[0]
    den = (d @ nrm.T).reshape(N, P, K)
    num = (off - o @ nrm.T).reshape(N, P, K)
    tt = num / den
    ent = np.where(den < 0.0, tt, -np.inf)
    ext = np.where(den > 0.0, tt, np.inf)
    blocked = ((den == 0.0) & (num < 0.0)).any(axis=2)
    te = ent.max(axis=2)
    tx = ext.min(axis=2)
    ok = (te <= tx) & (te > tmin) & ~blocked
    tp = np.where(ok, te, np.inf)
    kp = np.argmin(tp, axis=1)
    ar = np.arange(N)
    t = tp[ar, kp]
    face = np.argmax(ent[ar, kp], axis=1)
    return t, planes[kp, face, :3]


def _torus_sdf_grad(p, R, r):
    q = np.maximum(np.sqrt(p[:, 0] ** 2 + p[:, 2] ** 2), 1e-12)
    a = q - R
    dist = np.maximum(np.sqrt(a * a + p[:, 1] ** 2), 1e-12)
    f = a / (q * dist)
    grad = np.stack([f * p[:, 0], p[:, 1] / dist, f * p[:, 2]], 1)
    return dist - r, grad


def _isect_torus(o, d, g, tmin):
    """Torus around local y: sphere tracing on the exact SDF, then bracketed Newton."""
    R, r = g["R"], g["r"]
    N = o.shape[0]
    t_out = np.full(N, np.inf)
    n_out = np.zeros((N, 3))
    b = np.einsum("ij,ij->i", o, d)
    c = np.einsum("ij,ij->i", o, o) - (R + r) ** 2
    disc = b * b - c
    ok = disc > 0.0
    sq = np.sqrt(np.where(ok, disc, 0.0))
    ok &= (-b + sq) > tmin
    sub = np.flatnonzero(ok)
    if sub.size == 0:
        return t_out, n_out
    oo, dd = o[sub], d[sub]
    t = np.maximum(-b[sub] - sq[sub], tmin)
    t_end = -b[sub] + sq[sub]
    t_prev = t.copy()
    eps = 1e-3 * r
    act = np.arange(sub.size)
    br_idx, br_lo, br_hi = [], [], []
    for _ in range(_TORUS_MAX_STEPS):
        if act.size == 0:
            break
        ta = t[act]
        p = oo[act] + ta[:, None] * dd[act]
        s, gr = _torus_sdf_grad(p, R, r)
        gd = np.einsum("ij,ij->i", gr, dd[act])
        inside = s <= 0.0
        near = (s < eps) & (gd < -0.05) & ~inside
        if inside.any():  # crossed during a minimum step: bracket (t_prev, t)
            ii = act[inside]
            br_idx.append(ii), br_lo.append(t_prev[ii]), br_hi.append(t[ii])
        keep = ~(inside | near)
        if near.any():  # close to the surface, approaching: probe past it with Newton
            ii = act[near]
            tb = ta[near] + 2.0 * s[near] / -gd[near]
            sb, _ = _torus_sdf_grad(oo[ii] + tb[:, None] * dd[ii], R, r)
            crossed = sb < 0.0
            jj = ii[crossed]
            br_idx.append(jj), br_lo.append(ta[near][crossed]), br_hi.append(tb[crossed])
            kk = ii[~crossed]  # no sign change: continue marching beyond the probe
            t_prev[kk] = ta[near][~crossed]
            t[kk] = tb[~crossed]
            keep[np.flatnonzero(near)[~crossed]] = True
        adv = keep & ~near
        ia = act[adv]
        t_prev[ia] = t[ia]
        t[ia] = t[ia] + np.maximum(s[adv], 0.5 * eps)
        act = act[keep]
        act = act[t[act] <= t_end[act]]
    if not br_idx:
        return t_out, n_out
    ii = np.concatenate(br_idx)
    lo = np.concatenate(br_lo)
    hi = np.concatenate(br_hi)
    ob, db = oo[ii], dd[ii]
    tr = 0.5 * (lo + hi)
    for _ in range(_TORUS_REFINE_STEPS):
        s, gr = _torus_sdf_grad(ob + tr[:, None] * db, R, r)
        gd = np.einsum("ij,ij->i", gr, db)
        pos = s > 0.0
        lo = np.where(pos, tr, lo)
        hi = np.where(pos, hi, tr)
        tn = tr - s / gd
        good = (tn > lo) & (tn < hi)
        tr = np.where(good, tn, 0.5 * (lo + hi))
    _, gr = _torus_sdf_grad(ob + tr[:, None] * db, R, r)
    t_out[sub[ii]] = tr
    n_out[sub[ii]] = gr
    return t_out, n_out


# ------------------------------------------------------------------------------- shapes


def _planes_from_faces(verts: np.ndarray, faces: list[tuple[int, int, int]]) -> np.ndarray:
    centroid = verts.mean(axis=0)
    out = []
    for i, j, k in faces:
        n = np.cross(verts[j] - verts[i], verts[k] - verts[i])
        if n @ (centroid - verts[i]) > 0:
            n = -n
        n = n / np.linalg.norm(n)
        out.append([*n, n @ verts[i]])
    return np.array(out)


def _prism_planes(poly_xz: np.ndarray, h: float) -> np.ndarray:
    """Half-spaces of a convex polygon (in the xz plane) extruded over |y| <= h."""
    centroid = poly_xz.mean(axis=0)
    out = [[0.0, 1.0, 0.0, h], [0.0, -1.0, 0.0, h]]
    m = len(poly_xz)
    for i in range(m):
        a, b = poly_xz[i], poly_xz[(i + 1) % m]
        e = b - a
        n2 = np.array([e[1], -e[0]])
        if n2 @ (centroid - a) > 0:
            n2 = -n2
        n2 = n2 / np.linalg.norm(n2)
        out.append([n2[0], 0.0, n2[1], n2 @ a])
    return np.array(out)


def _star_points(r_out: float, r_in: float) -> tuple[np.ndarray, np.ndarray]:
    """Tips and inner vertices of a 5-pointed star in the xz plane, one tip along +z."""
    ang_t = np.pi / 2 + 2 * np.pi * np.arange(5) / 5
    ang_i = ang_t + np.pi / 5
    tips = r_out * np.stack([np.cos(ang_t), np.sin(ang_t)], 1)
    inner = r_in * np.stack([np.cos(ang_i), np.sin(ang_i)], 1)
    return tips, inner


def _geometry(kind: str, p: dict) -> dict:
    """Precomputed local geometry: intersect fn, bounding sphere, support fn, size."""
    g: dict[str, Any] = dict(p)
    if kind == "sphere":
        r = p["radius"]
        g.update(fn=_isect_sphere, bc=np.zeros(3), br=r, size=r)
        g["support"] = lambda u: r
    elif kind == "cube":
        a = p["half_size"]
        g.update(fn=_isect_convex, bc=np.zeros(3), br=a * math.sqrt(3), size=a)
        pl = []
        for ax in range(3):
            for sgn in (1.0, -1.0):
                n = np.zeros(3)
                n[ax] = sgn
                pl.append([*n, a])
        g["planes"] = np.array(pl)[None]
        g["support"] = lambda u: a * float(np.abs(u).sum())
    elif kind in ("cylinder", "ring"):
        ro, h = p["r_out"], p["half_height"]
        g.setdefault("r_in", 0.0)
        g.update(fn=_isect_annulus, bc=np.zeros(3), br=math.hypot(ro, h), size=max(ro, h))
        g["support"] = lambda u: ro * math.hypot(u[0], u[2]) + h * abs(u[1])
    elif kind == "cone":
        r, H = p["radius"], p["height"]
        m = max((H * H - r * r) / (2 * H), 0.0)
        g.update(fn=_isect_cone, bc=np.array([0.0, m, 0.0]), br=max(math.hypot(r, m), H - m))
        g["size"] = max(r, H / 2)
        g["support"] = lambda u: max(H * u[1], r * math.hypot(u[0], u[2]))
    elif kind == "capsule":
        r, h = p["radius"], p["half_length"]
        g.update(fn=_isect_capsule, bc=np.zeros(3), br=r + h, size=r + h)
        g["support"] = lambda u: r + h * abs(u[1])
    elif kind == "torus":
        R, r = p["R"], p["r"]
        g.update(fn=_isect_torus, bc=np.zeros(3), br=R + r, size=R + r)
        g["support"] = lambda u: R * math.hypot(u[0], u[2]) + r
    elif kind in ("pyramid", "tetrahedron", "star_prism"):
        if kind == "pyramid":
            a, H = p["half_base"], p["height"]
            verts = np.array([[a, 0, a], [-a, 0, a], [-a, 0, -a], [a, 0, -a], [0, H, 0]], float)
            faces = [(0, 1, 2), (0, 1, 4), (1, 2, 4), (2, 3, 4), (3, 0, 4)]
            g["planes"] = _planes_from_faces(verts, faces)[None]
        elif kind == "tetrahedron":
            e = p["edge"]
            rb, H = e / math.sqrt(3), e * math.sqrt(2 / 3)
            ang = np.pi / 2 + 2 * np.pi * np.arange(3) / 3
            verts = np.array([[rb * math.cos(x), 0, rb * math.sin(x)] for x in ang] + [[0, H, 0]])
            g["planes"] = _planes_from_faces(verts, [(0, 1, 2), (0, 1, 3), (1, 2, 3), (2, 0, 3)])[None]
        else:
            ro, ri, h = p["r_out"], p["r_in"], p["half_height"]
            tips, inner = _star_points(ro, ri)
            kites = [np.array([[0.0, 0.0], inner[k - 1], tips[k], inner[k]]) for k in range(5)]
            g["planes"] = np.stack([_prism_planes(kp, h) for kp in kites])
            pts = np.concatenate([tips, inner])
            verts = np.concatenate(
                [np.stack([pts[:, 0], np.full(10, y), pts[:, 1]], 1) for y in (h, -h)]
            )
        lo, hi = verts.min(0), verts.max(0)
        bc = 0.5 * (lo + hi)
        g.update(fn=_isect_convex, bc=bc, br=float(np.linalg.norm(verts - bc, axis=1).max()))
        g["size"] = float(0.5 * (hi - lo).max())
        g["support"] = lambda u, v=verts: float((v @ u).max())
    else:
        raise ValueError(f"unknown shape kind {kind!r}")
    return g


class Shape:
    """A placed primitive: ``world = rotation @ local + position``."""

    def __init__(self, kind: str, params: dict, rotation, position) -> None:
        self.kind = kind
        self.params = dict(params)
        self.R = np.asarray(rotation, dtype=np.float64).reshape(3, 3)
        self.pos = np.asarray(position, dtype=np.float64).reshape(3)
        self.geom = _geometry(kind, self.params)
        self.bound_center = self.R @ self.geom["bc"] + self.pos
        self.bound_radius = float(self.geom["br"]) * (1 + 1e-9) + 1e-9
        self.size = float(self.geom["size"])

    def aabb(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact world-space axis-aligned bounding box (lo, hi) from the support function."""
        sup = self.geom["support"]
        hi = np.array([self.pos[i] + sup(self.R[i]) for i in range(3)])
        lo = np.array([self.pos[i] - sup(-self.R[i]) for i in range(3)])
        return lo, hi

    def to_local(self, points: np.ndarray) -> np.ndarray:
        """World points (N, 3) -> local frame."""
        return (points - self.pos) @ self.R

    def intersect(self, origins: np.ndarray, dirs: np.ndarray, tmin: float = 0.0,
                  tmax: np.ndarray | float = np.inf, normals: bool = True):
        """First hit ``t > tmin`` of unit-direction rays (N, 3); inf where missed.

        Returns ``(t, n)`` with world unit normals facing the ray (zeros on miss), or just
        ``t`` when ``normals`` is False.  A bounding-sphere test culls rays first.
        """
        N = origins.shape[0]
        oc = origins - self.bound_center
        b = np.einsum("ij,ij->i", oc, dirs)
        disc = b * b - (np.einsum("ij,ij->i", oc, oc) - self.bound_radius**2)
        sq = np.sqrt(np.maximum(disc, 0.0))
        cand = (disc > 0.0) & (-b + sq > tmin) & (-b - sq < tmax)
        idx = np.flatnonzero(cand)
        t = np.full(N, np.inf)
        n = np.zeros((N, 3)) if normals else None
        if idx.size:
            with np.errstate(all="ignore"):
                dl = dirs[idx] @ self.R
                ol = (origins[idx] - self.pos) @ self.R
                tl, nl = self.geom["fn"](ol, dl, self.geom, tmin)
            t[idx] = tl
            if normals:
                hit = np.isfinite(tl)
                nw = nl[hit] @ self.R.T
                nw /= np.linalg.norm(nw, axis=1, keepdims=True)
                flip = np.einsum("ij,ij->i", nw, dirs[idx[hit]]) > 0
                nw[flip] *= -1.0
                n[idx[hit]] = nw
        return (t, n) if normals else t


def make_shape(obj: dict) -> Shape:
    """Build a :class:`Shape` from an object entry of a scene spec."""
    return Shape(obj["shape"], obj["params"], obj["rotation"], obj["position"])


# ------------------------------------------------------------------------------- camera


@dataclass
class Camera:
    """Pinhole camera; ``fov_deg`` is the vertical field of view, world up is +y."""

    position: np.ndarray
    look_at: np.ndarray
    fov_deg: float

    def __post_init__(self) -> None:
        self.position = np.asarray(self.position, dtype=np.float64)
        self.look_at = np.asarray(self.look_at, dtype=np.float64)

    @classmethod
    def from_dict(cls, d: dict) -> "Camera":
        return cls(d["position"], d["look_at"], float(d["fov_deg"]))

    def basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(right, up, forward) unit vectors."""
        f = _unit(self.look_at - self.position)
        r = _unit(np.cross(f, [0.0, 1.0, 0.0]))
        return r, np.cross(r, f), f

    @property
    def forward(self) -> np.ndarray:
        return self.basis()[2]

    def rays(self, H: int, W: int) -> tuple[np.ndarray, np.ndarray]:
        """Origins and unit directions, each (H*W, 3), row-major through pixel centres."""
        r, u, f = self.basis()
        th = math.tan(math.radians(self.fov_deg) / 2)
        ys = (1.0 - (np.arange(H) + 0.5) * (2.0 / H)) * th
        xs = ((np.arange(W) + 0.5) * (2.0 / W) - 1.0) * th * (W / H)
        d = f + xs[None, :, None] * r + ys[:, None, None] * u
        d = d.reshape(-1, 3)
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        return np.broadcast_to(self.position, d.shape).copy(), d

    def zdepth(self, t: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        """Ray length -> z-depth along the optical axis."""
        return t * (dirs @ self.forward)
