"""Tests for the procedural scene generator (vitviz.synthetic.scenes)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from vitviz.synthetic.scenes import (
    CLASSES,
    Camera,
    make_dataset,
    make_shape,
    random_spec,
    render_scene,
    render_spec,
    scene_seed,
)

RTOL = 1e-4


# ------------------------------------------------------------------ reference helpers


def _ref_rays(cam: dict, H: int, W: int):
    """Pinhole rays written independently of the module (vertical fov, +y up)."""
    pos, at = np.array(cam["position"], float), np.array(cam["look_at"], float)
    f = (at - pos) / np.linalg.norm(at - pos)
    r = np.cross(f, [0.0, 1.0, 0.0])
    r /= np.linalg.norm(r)
    u = np.cross(r, f)
    th = math.tan(math.radians(cam["fov_deg"]) / 2)
    jj, ii = np.meshgrid(np.arange(W), np.arange(H))
    x = ((jj + 0.5) / W * 2 - 1) * th * W / H
    y = (1 - (ii + 0.5) / H * 2) * th
    d = f + x[..., None] * r + y[..., None] * u
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    return pos, d, f


def _base_spec(objects: list[dict], cam_pos, look_at, fov=45.0) -> dict:
    return {
        "camera": {"position": list(cam_pos), "look_at": list(look_at), "fov_deg": fov},
        "light": {"direction": [0.3, 1.0, 0.5], "intensity": 1.0, "ambient": 0.3},
        "ground": {"height": 0.0, "color1": [0.5, 0.5, 0.5], "color2": [0.3, 0.3, 0.3],
                   "texture": {"kind": "checker", "scale": 0.5}},
        "wall": {"normal": [0.0, 0.0, 1.0], "offset": -20.0, "color1": [0.6, 0.6, 0.7],
                 "color2": [0.6, 0.6, 0.7], "texture": {"kind": "plain", "scale": 1.0}},
        "objects": objects,
    }


def _obj(shape: str, params: dict, position, rotation=None) -> dict:
    return {"shape": shape, "params": params, "position": list(position),
            "rotation": (np.eye(3) if rotation is None else np.asarray(rotation)).tolist(),
            "color1": [0.8, 0.2, 0.2], "color2": [0.2, 0.2, 0.8],
            "texture": {"kind": "stripes", "scale": 0.3, "axis": [0.0, 1.0, 0.0]}}


def _rot(yaw: float, tilt: float) -> np.ndarray:
    cy, sy, ct, st = math.cos(yaw), math.sin(yaw), math.cos(tilt), math.sin(tilt)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, ct, -st], [0, st, ct]])
    return ry @ rx


# ---------------------------------------------------------------------------- basics


def test_classes():
    assert CLASSES == ("sphere", "cube", "cylinder", "cone", "torus", "pyramid", "capsule",
                       "ring", "tetrahedron", "star_prism")


def test_determinism_and_seeds_differ():
    a, b, c = render_scene(17, 48), render_scene(17, 48), render_scene(18, 48)
    assert np.array_equal(a.image, b.image)
    assert a.depth.tobytes() == b.depth.tobytes()
    assert np.array_equal(a.mask, b.mask) and a.label == b.label
    assert json.dumps(a.meta) == json.dumps(b.meta)
    assert not np.array_equal(a.image, c.image)
    assert not np.array_equal(a.depth, c.depth)


@pytest.mark.parametrize("size", [40, (32, 56)])
def test_shapes_dtypes_depth(size):
    H, W = (size, size) if isinstance(size, int) else size
    for seed in range(12):
        sc = render_scene(seed, size)
        assert sc.image.shape == (H, W, 3) and sc.image.dtype == np.uint8
        assert sc.depth.shape == (H, W) and sc.depth.dtype == np.float32
        assert sc.mask.shape == (H, W) and sc.mask.dtype == bool
        assert isinstance(sc.label, int) and 0 <= sc.label < len(CLASSES)
        assert np.isfinite(sc.depth).all() and (sc.depth > 0).all()
        assert sc.mask.any()


def test_meta_json_roundtrip_rerenders_identically():
    sc = render_scene(3, 40)
    spec = json.loads(json.dumps(sc.meta))
    again = render_spec(spec, 40)
    assert np.array_equal(again.image, sc.image) and np.array_equal(again.depth, sc.depth)
    assert np.array_equal(again.mask, sc.mask) and again.label == sc.label


def test_label_distribution_and_label_is_main_class():
    labels = []
    for i in range(200):
        spec = random_spec(scene_seed(0, i))
        assert spec["label"] == CLASSES.index(spec["objects"][0]["shape"])
        assert 1 <= len(spec["objects"]) <= 4
        labels.append(spec["label"])
    counts = np.bincount(labels, minlength=len(CLASSES))
    assert (counts >= 8).all(), counts


# ---------------------------------------------------------------- exact depth checks


def _check_depth(sc, ref_t: np.ndarray, d: np.ndarray, f: np.ndarray, max_mismatch: float):
    ref_hit = np.isfinite(ref_t)
    z_ref = ref_t * (d @ f)
    both = sc.mask & ref_hit
    assert both.sum() > 50
    np.testing.assert_allclose(sc.depth[both], z_ref[both], rtol=RTOL)
    # disagreements on coverage only on (at most a few) silhouette pixels
    assert (sc.mask != ref_hit).mean() <= max_mismatch


def test_sphere_depth_closed_form():
    r, c = 0.7, np.array([0.2, 0.9, -0.3])
    spec = _base_spec([_obj("sphere", {"radius": r}, c)], [0.5, 1.8, 4.0], c, fov=40.0)
    sc = render_spec(spec, 64)
    o, d, f = _ref_rays(spec["camera"], 64, 64)
    oc = o - c
    b = d @ oc
    disc = b * b - (oc @ oc - r * r)
    t = np.where(disc >= 0, -b - np.sqrt(np.maximum(disc, 0)), np.inf)
    _check_depth(sc, t, d, f, 0.002)
    assert sc.label == CLASSES.index("sphere")


def test_box_depth_slab_reference():
    a, c = 0.5, np.array([0.0, 0.5, 0.0])
    R = _rot(0.5, 0.0)
    spec = _base_spec([_obj("cube", {"half_size": a}, c, R)], [1.5, 2.0, 3.0], c, fov=50.0)
    sc = render_spec(spec, 64)
    o, d, f = _ref_rays(spec["camera"], 64, 64)
    ol, dl = (o - c) @ R, d @ R
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (-a - ol) / dl, (a - ol) / dl
    tn = np.minimum(t1, t2).max(-1)
    tf = np.maximum(t1, t2).min(-1)
    t = np.where((tn <= tf) & (tn > 0), tn, np.inf)
    _check_depth(sc, t, d, f, 0.002)


def _torus_ref(o_l: np.ndarray, d_l: np.ndarray, R: float, r: float) -> float:
    """First positive root of the torus quartic via numpy.roots, Newton-polished."""
    b, k = o_l @ d_l, o_l @ o_l + R * R - r * r
    dxz = d_l[0] ** 2 + d_l[2] ** 2
    oxz = o_l[0] * d_l[0] + o_l[2] * d_l[2]
    coef = [1.0, 4 * b, 4 * b * b + 2 * k - 4 * R * R * dxz, 4 * b * k - 8 * R * R * oxz,
            k * k - 4 * R * R * (o_l[0] ** 2 + o_l[2] ** 2)]
    roots = np.roots(coef)
    real = roots[np.abs(roots.imag) < 1e-7 * max(1.0, np.abs(roots).max())].real
    real = real[real > 0]
    if real.size == 0:
        return np.inf
    t = real.min()
    dp = np.polyder(coef)
    for _ in range(3):
        t -= np.polyval(coef, t) / np.polyval(dp, t)
    return t


def test_torus_depth_quartic_reference():
    Rm, rm = 0.6, 0.2
    c = np.array([0.0, 0.75, 0.0])
    Rot = _rot(0.3, 1.0)
    spec = _base_spec([_obj("torus", {"R": Rm, "r": rm}, c, Rot)], [0.4, 1.7, 2.6], c, fov=45.0)
    H = 48
    sc = render_spec(spec, H)
    o, d, f = _ref_rays(spec["camera"], H, H)
    ol, dl = (o - c) @ Rot, d @ Rot
    t = np.array([[_torus_ref(ol, dl[i, j], Rm, rm) for j in range(H)] for i in range(H)])
    assert np.isfinite(t).any() and (~np.isfinite(t)).any()
    _check_depth(sc, t, d, f, 0.003)


# ------------------------------------------------------- all primitives: inside tests

_SPECS = {
    "sphere": {"radius": 0.5},
    "cube": {"half_size": 0.4},
    "cylinder": {"r_out": 0.35, "r_in": 0.0, "half_height": 0.45},
    "cone": {"radius": 0.45, "height": 0.9},
    "torus": {"R": 0.45, "r": 0.15},
    "pyramid": {"half_base": 0.4, "height": 0.8},
    "capsule": {"radius": 0.25, "half_length": 0.35},
    "ring": {"r_out": 0.5, "r_in": 0.3, "half_height": 0.12},
    "tetrahedron": {"edge": 0.9},
    "star_prism": {"r_out": 0.55, "r_in": 0.24, "half_height": 0.12},
}


def _inside(kind: str, p: dict, q: np.ndarray) -> np.ndarray:
    """Point membership in the local frame, written from the shape definitions."""
    x, y, z = q[..., 0], q[..., 1], q[..., 2]
    rho = np.hypot(x, z)
    if kind == "sphere":
        return x * x + y * y + z * z <= p["radius"] ** 2
    if kind == "cube":
        return np.abs(q).max(-1) <= p["half_size"]
    if kind in ("cylinder", "ring"):
        return (rho <= p["r_out"]) & (rho >= p["r_in"]) & (np.abs(y) <= p["half_height"])
    if kind == "cone":
        return (y >= 0) & (y <= p["height"]) & (rho <= p["radius"] * (1 - y / p["height"]))
    if kind == "capsule":
        yc = np.clip(y, -p["half_length"], p["half_length"])
        return x * x + (y - yc) ** 2 + z * z <= p["radius"] ** 2
    if kind == "torus":
        return (rho - p["R"]) ** 2 + y * y <= p["r"] ** 2
    if kind == "pyramid":
        s = p["half_base"] * (1 - y / p["height"])
        return (y >= 0) & (np.abs(x) <= s) & (np.abs(z) <= s)
    if kind == "tetrahedron":
        e = p["edge"]
        rb, h = e / math.sqrt(3), e * math.sqrt(2 / 3)
        ang = np.pi / 2 + 2 * np.pi * np.arange(3) / 3
        v = np.array([[rb * math.cos(a), 0, rb * math.sin(a)] for a in ang] + [[0, h, 0]])
        M = np.linalg.inv((v[1:] - v[0]).T)
        bary = (q - v[0]) @ M.T
        return (bary >= 0).all(-1) & (bary.sum(-1) <= 1)
    if kind == "star_prism":
        ang = np.pi / 2 + np.pi * np.arange(10) / 5
        rad = np.where(np.arange(10) % 2 == 0, p["r_out"], p["r_in"])
        px, pz = rad * np.cos(ang), rad * np.sin(ang)
        inside = np.zeros(x.shape, bool)
        for i in range(10):  # even-odd crossing test
            x1, z1, x2, z2 = px[i], pz[i], px[(i + 1) % 10], pz[(i + 1) % 10]
            cross = (z1 > z) != (z2 > z)
            with np.errstate(divide="ignore", invalid="ignore"):
                xi = x1 + (z - z1) * (x2 - x1) / (z2 - z1)
            inside ^= cross & (x < xi)
        return inside & (np.abs(y) <= p["half_height"])
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", CLASSES)
def test_primitive_first_hit_against_membership(kind):
    rng = np.random.default_rng(CLASSES.index(kind))
    params = _SPECS[kind]
    Rot = _rot(rng.uniform(0, 6.28), rng.uniform(0, 1.5))
    pos = np.array([0.1, 0.8, -0.2])
    shape = make_shape({"shape": kind, "params": params, "rotation": Rot.tolist(), "position": pos.tolist()})
    n = 1500
    dirs_in = rng.normal(size=(n, 3))
    origins = pos + 3.0 * dirs_in / np.linalg.norm(dirs_in, axis=1, keepdims=True)
    aim = pos + rng.uniform(-0.6, 0.6, (n, 3))
    d = aim - origins
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    t, nrm = shape.intersect(origins, d)
    hit = np.isfinite(t)
    assert 0.2 < hit.mean() < 0.95
    local = lambda pts: (pts - pos) @ Rot  # noqa: E731
    th = t[hit]
    o_h, d_h = origins[hit], d[hit]
    # just before the hit: outside; just after: inside
    eps = 1e-6
    assert not _inside(kind, params, local(o_h + (th - eps)[:, None] * d_h)).any()
    assert _inside(kind, params, local(o_h + (th + eps)[:, None] * d_h)).mean() > 0.995
    # nothing inside along the ray before the first hit (dense samples)
    s = np.linspace(0.0, 1.0, 400, endpoint=False)[None, :, None]
    before = o_h[:, None] + (th[:, None, None] * s) * d_h[:, None]
    assert not _inside(kind, params, local(before)).any()
    # missed rays never pass through the solid
    o_m, d_m = origins[~hit], d[~hit]
    along = o_m[:, None] + (np.linspace(0.0, 6.0, 1200)[None, :, None]) * d_m[:, None]
    assert _inside(kind, params, local(along)).any(axis=1).mean() < 0.002
    # unit normals facing the ray
    nh = nrm[hit]
    np.testing.assert_allclose(np.linalg.norm(nh, axis=1), 1.0, atol=1e-9)
    assert (np.einsum("ij,ij->i", nh, d_h) <= 1e-9).all()


# ------------------------------------------------------------- random scene semantics


def test_mask_is_main_object_nearest_hit():
    for seed in range(6):
        sc = render_scene(seed, 48)
        spec = sc.meta
        cam = Camera.from_dict(spec["camera"])
        o, d = cam.rays(48, 48)
        t_main = make_shape(spec["objects"][0]).intersect(o, d, normals=False)
        z_main = cam.zdepth(t_main, d).reshape(48, 48)
        np.testing.assert_allclose(sc.depth[sc.mask], z_main[sc.mask], rtol=1e-6)
        # wherever the main object is hit but not visible, something is strictly nearer
        hidden = np.isfinite(z_main) & ~sc.mask
        assert (sc.depth[hidden] < z_main[hidden]).all()
        # no other object is in front of the main object on its mask
        t_other = np.full(o.shape[0], np.inf)
        for ob in spec["objects"][1:]:
            t_other = np.minimum(t_other, make_shape(ob).intersect(o, d, normals=False))
        assert (t_other.reshape(48, 48)[sc.mask] >= t_main.reshape(48, 48)[sc.mask]).all()


def test_main_object_coverage_in_range():
    cov = np.array([render_scene(scene_seed(1, i), 64).mask.mean() for i in range(30)])
    assert 0.12 <= cov.mean() <= 0.3, cov.mean()
    assert cov.min() >= 0.04 and cov.max() <= 0.5, (cov.min(), cov.max())


def test_main_object_has_a_known_size_whatever_its_proportions():
    """The world's scale must be readable from the image: every class's main object fits a bounding sphere of
    0.49-0.59 m radius (its proportions still vary), and the focal length varies by less than +-8 %."""
    radii, fovs = {c: [] for c in CLASSES}, []
    for i in range(400):
        spec = random_spec(scene_seed(3, i))
        radii[spec["main_class"]].append(make_shape(spec["objects"][0]).bound_radius)
        fovs.append(spec["camera"]["fov_deg"])
    for kind, r in radii.items():
        assert r and 0.48 <= min(r) and max(r) <= 0.60, (kind, min(r), max(r))
    tan = np.tan(np.radians(fovs) / 2)
    assert tan.max() / tan.min() < 1.16


def test_make_dataset_matches_render_and_workers():
    a = make_dataset(6, seed=4, size=24)
    assert a["images"].shape == (6, 24, 24, 3) and a["images"].dtype == np.uint8
    assert a["depths"].shape == (6, 24, 24) and a["depths"].dtype in (np.float16, np.float32)
    assert a["masks"].dtype == bool and a["labels"].dtype == np.int64
    assert np.isfinite(a["depths"].astype(np.float32)).all()
    sc = render_scene(scene_seed(4, 2), 24)
    assert np.array_equal(a["images"][2], sc.image) and a["labels"][2] == sc.label
    b = make_dataset(6, seed=4, size=24, workers=2)
    for k in a:
        assert np.array_equal(a[k], b[k]), k
