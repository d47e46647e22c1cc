"""A synthetic LA-like dataset in the LA h5 layout, calibrated against the real data (shared/data/la-stats.md).

Each case is a left-atrium-like label (a deformed ellipsoid body cut flat at the mitral plane, an appendage
and 3-5 pulmonary-vein tubes, joined with a smooth union) inside an LGE-MRI-like image: heterogeneous
tissue, dark lung regions, blood-bright distractors (a ventricle behind the mitral plane, the descending and
ascending aorta, a right atrium, small vessels), a partial dark atrial wall, partial-volume blur, a smooth
multiplicative bias field, Rician noise, a per-case z-score scale and integer-like quantisation.

The distractors have the atrium's intensity and often touch it, so a threshold cannot separate them: a network
has to learn the shape, which is what makes a few labeled cases clearly worse than many.

`difficulty` = 1 is calibrated to the real statistics; 0 is an easy variant (high contrast, little noise, no
distractors), values above 1 lower the contrast and raise noise, deformation and the number of distractors.

The embedded default is 100 cases of 48x48x32 at difficulty 1.5 (DEFAULT_SIZE, DEFAULT_DIFFICULTY). Why: at the
`quick` preset (32^3 crops, n_filters 4, 300 iterations) the supervised upper bound (80/0) must beat the lower
bound (8/0) by a margin that seeds do not hide, or SSL methods have no room to show anything. Measured (3 seeds
each, two dataset seeds): at 64x56x48 and difficulty 1 the 8/0 run was as good as 80/0 (73.1 vs 72.2 % Dice at
600 iterations) because a 32^3 crop sees a quarter of the volume and 300 steps barely fit 80 cases; at 48x48x32 a
crop holds most of the atrium, 80/0 trains stably, and difficulty 1.5 opens the gap to 6.3 and 9.2 points
(dataset seeds 0 and 1). Evaluation needs 4 windows per volume instead of 27.

Every case draws from its own `np.random.default_rng([seed, case_index])`, so any case can be rebuilt alone.

`classes=3` splits the same label in two: the pulmonary veins become label 2, and the rest of the atrium, the body
with its appendage (anatomically part of the atrium, a pouch of its wall), stays label 1. A voxel of the atrium is
a vein voxel where it lies deeper inside the nearest vein tube than inside the body and appendage (a smaller signed
distance), which splits the smooth junction between them. Nothing else changes: the images and the union of the
two labels are the 2-class dataset's of the same seed, voxel for voxel (no extra random draw), and the 2-class
output is unchanged. dataset.json then names the classes ("labels": background, atrium body, pulmonary veins).
The veins are thin (a radius of 1.5-3.9 voxels at 48x48x32, 10-25 % of the atrium) and as bright as the body, so
only their shape tells them apart: measured on 40 cases, the supervised baseline (16/0, quick preset, F = 4)
learnt the body (Dice 59.7 % after 300 iterations, 82.1 % after 1500) and never predicted a vein voxel (0 %).
At the CPU presets the 3-class set checks the C-class code paths; it gives no vein signal yet.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
from scipy import ndimage

from sslbench.datasets.la import CASES_DIR, H5_NAME, LA_SPACING_MM

GENERATOR_VERSION = (
    1  # bump whenever the output for a given seed changes: it names the cached default dataset
)
# The label sets the generator writes, by class count (dataset.json "labels"; the 2-class one writes none).
CLASS_NAMES = {
    2: ("background", "left atrium"),
    3: ("background", "atrium body", "pulmonary veins"),
}
DEFAULT_SIZE = (48, 48, 32)
DEFAULT_DIFFICULTY = 1.5  # see the module docstring
# Median full-resolution crop of the real LA (la-stats.md), used to give a synthetic voxel a physical size.
_REAL_MEDIAN_SHAPE = (190, 142, 88)
_ID_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
_AXIS_SHAPES = ((-1, 1, 1), (1, -1, 1), (1, 1, -1))  # reshape a coordinate vector to broadcast along x, y, z
_FAR = np.float32(1e4)  # "no surface nearby"; finite so that smooth-min arithmetic never makes NaN


def spacing_for(size: tuple[int, int, int]) -> float:
    """Isotropic spacing (mm) that gives the volume the physical size of the median real LA crop."""
    ratio = float(np.prod(_REAL_MEDIAN_SHAPE)) / float(np.prod(size))
    return round(LA_SPACING_MM * ratio ** (1 / 3), 4)


class _Grid:
    """Broadcastable voxel coordinates (x: (W,1,1), y: (1,H,1), z: (1,1,D))."""

    def __init__(self, size: tuple[int, int, int]):
        self.size = np.asarray(size, dtype=np.float64)
        self.shape = tuple(int(s) for s in size)
        self.axes = [np.arange(n, dtype=np.float32) for n in self.shape]

    def box(self, lo: np.ndarray, hi: np.ndarray) -> tuple[tuple[slice, ...], list[np.ndarray]] | None:
        """Slices and sub-grid coordinates of the voxels inside [lo, hi]; None when the box is empty."""
        start = np.clip(np.floor(lo).astype(int), 0, self.shape)
        stop = np.clip(np.ceil(hi).astype(int) + 1, 0, self.shape)
        if np.any(stop <= start):
            return None
        sl = tuple(slice(a, b) for a, b in zip(start, stop, strict=True))
        coords = [
            self.axes[0][sl[0], None, None],
            self.axes[1][None, sl[1], None],
            self.axes[2][None, None, sl[2]],
        ]
        return sl, coords


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def _rotation(rng: np.random.Generator, max_deg: tuple[float, float, float]) -> np.ndarray:
    """A random rotation composed of three small Euler angles (the atrium pose varies, not arbitrarily)."""
    a, b, c = np.deg2rad(rng.uniform(-1, 1, 3) * np.asarray(max_deg))
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rx = np.array([[1, 0, 0], [0, np.cos(c), -np.sin(c)], [0, np.sin(c), np.cos(c)]])
    return rz @ ry @ rx


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Zero-mean, unit-std Gaussian random field with correlation length ~sigma voxels.

    Large sigmas are drawn on a coarser grid and upsampled: same look, a fraction of the filtering cost.
    """
    step = max(1, int(sigma // 3))
    coarse = tuple(-(-n // step) + 1 for n in shape) if step > 1 else tuple(shape)
    field = ndimage.gaussian_filter(rng.standard_normal(coarse, dtype=np.float32), sigma / step, mode="wrap")
    if step > 1:
        field = ndimage.zoom(field, step, order=1)[tuple(slice(0, n) for n in shape)]
    field -= field.mean()
    return field / (field.std() + 1e-6)


def _ellipsoid_sdf(grid: _Grid, center, radii, rot) -> np.ndarray:
    """Approximate signed distance (voxels) to an ellipsoid; exact along its shortest axis."""
    radii = np.asarray(radii, dtype=np.float64)
    c = np.asarray(center, dtype=np.float64)
    reach = radii.max() + 3
    found = grid.box(c - reach, c + reach)
    out = np.full(grid.shape, _FAR, np.float32)
    if found is None:
        return out
    sl, (x, y, z) = found
    dx, dy, dz = x - np.float32(c[0]), y - np.float32(c[1]), z - np.float32(c[2])
    q = sum(((rot[i, 0] * dx + rot[i, 1] * dy + rot[i, 2] * dz) / radii[i]) ** 2 for i in range(3))
    out[sl] = ((np.sqrt(q) - 1) * radii.min()).astype(np.float32)
    return out


def _tube_sdf(grid: _Grid, points: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Signed distance to a polyline tube whose radius varies linearly between its vertices."""
    out = np.full(grid.shape, _FAR, np.float32)
    for a, b, ra, rb in zip(points[:-1], points[1:], radii[:-1], radii[1:], strict=True):
        reach = max(ra, rb) + 3
        found = grid.box(np.minimum(a, b) - reach, np.maximum(a, b) + reach)
        if found is None:
            continue
        sl, (x, y, z) = found
        ab = (b - a).astype(np.float32)
        dx, dy, dz = x - np.float32(a[0]), y - np.float32(a[1]), z - np.float32(a[2])
        t = np.clip((dx * ab[0] + dy * ab[1] + dz * ab[2]) / max(float(ab @ ab), 1e-6), 0, 1)
        dist = np.sqrt((dx - t * ab[0]) ** 2 + (dy - t * ab[1]) ** 2 + (dz - t * ab[2]) ** 2)
        np.minimum(out[sl], dist - (ra + t * (rb - ra)), out=out[sl])
    return out


def _smooth_union(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum: fillets the junction of a vein (or appendage) with the body."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0, 1)
    return b + (a - b) * h - k * h * (1 - h)


def _paint(raw: np.ndarray, sdf: np.ndarray, value) -> None:
    """Alpha-blend `value` where sdf < 0, with a one-voxel soft edge (partial-volume effect)."""
    alpha = np.clip(0.5 - sdf, 0, 1)
    raw += alpha * (value - raw)


def _support(rot: np.ndarray, radii: np.ndarray, direction: np.ndarray) -> float:
    """Distance from an ellipsoid's centre to its tangent plane with normal `direction`."""
    return float(np.sqrt(np.sum((rot @ direction) ** 2 * radii**2)))


def _clamp_xy(points: np.ndarray, size: np.ndarray, margin: np.ndarray) -> np.ndarray:
    """Keep x/y inside the crop margins (the real crop leaves 10-19 voxels around the label); z may run out."""
    points = points.copy()
    points[:, :2] = np.clip(points[:, :2], margin[:2], size[:2] - 1 - margin[:2])
    return points


def _draw_atrium(rng: np.random.Generator, grid: _Grid, difficulty: float) -> dict:
    """The random parameters of one atrium: body pose and size, appendage and pulmonary veins."""
    size, m = grid.size, float(np.mean(grid.size))
    # Foreground fraction of the real data: 0.036 / 0.089 / 0.19 (min / median / max).
    p = {"target": float(np.clip(rng.lognormal(np.log(0.09), 0.38), 0.035, 0.2))}
    p["ratios"] = np.array([0.3, 0.21, 0.25]) * size * rng.uniform(0.82, 1.18, 3)
    p["rot"] = _rotation(rng, (25, 12, 12))
    p["center"] = size * np.array([rng.uniform(0.45, 0.55), rng.uniform(0.45, 0.56), rng.uniform(0.5, 0.6)])
    p["deform"] = rng.uniform(0.08, 0.2) * (0.5 + 0.5 * difficulty) * _smooth_noise(rng, grid.shape, 0.1 * m)
    # Mitral plane: the label is cut flat where the atrium opens into the ventricle (anterior-inferior).
    p["n_mv"] = _unit([rng.uniform(-0.3, 0.3), -rng.uniform(0.4, 0.8), -rng.uniform(0.5, 0.9)])
    p["cut"] = rng.uniform(0.55, 0.85)
    # Tubes leaving the body: (direction, depth of the ostium as a fraction of the support, three
    # centre-line steps as multiples of the direction / bend, three radii).
    tubes = []
    if rng.random() < 0.85:  # left atrial appendage: a short, bent, tapering pouch (left, anterior, up)
        d = _unit(np.array([-0.7, -0.6, 0.3]) + rng.normal(0, 0.25, 3))
        length, r0 = rng.uniform(0.1, 0.18) * m, rng.uniform(0.05, 0.08) * m
        bend = _unit(d + rng.normal(0, 0.6, 3))
        tubes.append((d, 0.8, bend, length * np.array([0.5, 0.5, 0.5]), r0 * np.array([1, 0.8, 0.45])))
    p["n_appendage"] = len(tubes)  # the tubes before this index are the appendage, the others veins
    # Pulmonary veins: two on the left (-x), two or three on the right (+x), at different heights.
    sides = [-1, -1, 1, 1] + ([1] if rng.random() < 0.35 else [])
    if rng.random() < 0.12:  # a common left trunk: the two left veins join into one
        sides = sides[1:]
    heights = {-1: list(rng.permutation([1, -1, 0])), 1: list(rng.permutation([1, -1, 0]))}
    for side in sides:
        up = heights[side].pop()
        d = _unit([side, rng.uniform(0.1, 0.7), up * rng.uniform(0.25, 0.6) + rng.normal(0, 0.15)])
        d = _unit(d + rng.normal(0, 0.12, 3))
        r0 = max(1.0, rng.uniform(0.04, 0.07) * m)
        length = rng.uniform(0.18, 0.34) * size[0]
        bend = _unit(d + rng.normal(0, 0.45, 3))
        tubes.append((d, 0.75, bend, length * np.array([0.45, 0.0, 0.55]), r0 * np.array([1.3, 1, 0.85])))
    p["tubes"] = tubes
    return p


def _atrium_parts(grid: _Grid, p: dict, radii: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], float]:
    """Signed distance fields (negative inside) of the cut body with semi-axes `radii` and of each tube (the
    appendage first, then the veins), and the cut offset."""
    size = grid.size
    center, rot = p["center"], p["rot"]
    body = _ellipsoid_sdf(grid, center, radii, rot)
    body += p["deform"] * radii.min()
    cut = p["cut"] * _support(rot, radii, p["n_mv"])
    x, y, z = (a.reshape(s) for a, s in zip(grid.axes, _AXIS_SHAPES, strict=True))
    n = p["n_mv"]
    plane = (x - center[0]) * n[0] + (y - center[1]) * n[1] + (z - center[2]) * n[2] - cut
    body = np.maximum(body, plane.astype(np.float32))
    margin = np.maximum(2.0, 0.08 * size)
    tubes = []
    for d, depth, bend, steps, tube_radii in p["tubes"]:
        p0 = center + d * depth * _support(rot, radii, d)
        p1 = p0 + d * steps[0]
        pts = _clamp_xy(np.array([p0, p1, p1 + d * steps[1] + bend * steps[2]]), size, margin)
        tubes.append(_tube_sdf(grid, pts, tube_radii))
    return body, tubes, cut


def _fillet(grid: _Grid) -> float:
    """The smooth union's blending width: the junction of a tube with the body, in voxels."""
    return max(1.0, 0.04 * float(np.mean(grid.size)))


def _atrium_sdf(grid: _Grid, p: dict, radii: np.ndarray) -> tuple[np.ndarray, float]:
    """Signed distance field (negative inside) of the atrium with body semi-axes `radii`, and the cut offset."""
    sdf, tubes, cut = _atrium_parts(grid, p, radii)
    for tube in tubes:
        sdf = _smooth_union(sdf, tube, _fillet(grid))
    return sdf, cut


def _vein_voxels(grid: _Grid, p: dict, radii: np.ndarray) -> np.ndarray:
    """Where the nearest pulmonary vein is deeper (smaller signed distance) than the body with its appendage."""
    atrium, tubes, _ = _atrium_parts(grid, p, radii)
    for tube in tubes[: p["n_appendage"]]:
        atrium = _smooth_union(atrium, tube, _fillet(grid))
    veins = tubes[p["n_appendage"] :]
    if not veins:
        return np.zeros(grid.shape, dtype=bool)
    return np.minimum.reduce(veins) < atrium


def _atrium(rng: np.random.Generator, grid: _Grid, difficulty: float) -> tuple[np.ndarray, dict]:
    """Signed distance field of the atrium label (negative inside) and the geometry the image needs."""
    p = _draw_atrium(rng, grid, difficulty)
    size = grid.size
    limit = np.array([0.38, 0.34, 0.38]) * size
    # Size the body for the drawn foreground fraction: a first guess from the ellipsoid volume, then one
    # correction for what the cut, the deformation and the tubes add or remove.
    ellipsoid_volume = 4 / 3 * np.pi * np.prod(p["ratios"])
    radii = p["ratios"] * (0.8 * p["target"] * np.prod(size) / ellipsoid_volume) ** (1 / 3)
    sdf, cut = _atrium_sdf(grid, p, np.minimum(radii, limit))
    radii = radii * np.clip((p["target"] / max(float(np.mean(sdf < 0)), 1e-4)) ** (1 / 3), 0.8, 1.25)
    radii = np.minimum(radii, limit)
    sdf, cut = _atrium_sdf(grid, p, radii)
    geometry = {
        "center": p["center"],
        "radii": radii,
        "rot": p["rot"],
        "n_mv": p["n_mv"],
        "cut": cut,
        "params": p,  # the drawn atrium, for `_vein_voxels`
    }
    return sdf, geometry


def _distractors(rng: np.random.Generator, grid: _Grid, geo: dict, difficulty: float) -> list:
    """(sdf, intensity factor) of the blood-bright structures around the atrium, relative to its blood."""
    size, m = grid.size, float(np.mean(grid.size))
    c, radii, rot = geo["center"], geo["radii"], geo["rot"]
    p_scale = min(1.0, difficulty)
    out = []

    def factor():
        return rng.uniform(0.85, 1.4)

    if rng.random() < 0.9 * p_scale:  # ventricle behind the mitral plane, often touching the atrium
        r_lv = rng.uniform(0.7, 1.0) * radii.mean() * np.array([1.3, 1.0, 1.0])
        gap = rng.uniform(0.0, 2.0)
        lv_c = c + geo["n_mv"] * (geo["cut"] + gap + r_lv[1])
        out.append((_ellipsoid_sdf(grid, lv_c, r_lv, _rotation(rng, (40, 20, 20))), factor()))
    hy = _support(rot, radii, np.array([0.0, 1.0, 0.0]))
    if rng.random() < 0.85 * p_scale:  # descending aorta: posterior, along z, close to the atrium
        r = rng.uniform(0.06, 0.085) * m
        xa, ya = c[0] + rng.uniform(-0.12, 0.12) * size[0], c[1] + hy + r + rng.uniform(-0.5, 3.0)
        tilt = rng.normal(0, 0.08, 2) * size[2]
        pts = np.array([[xa - tilt[0], ya - tilt[1], -5], [xa + tilt[0], ya + tilt[1], size[2] + 5]])
        out.append((_tube_sdf(grid, pts, np.array([r, r])), factor()))
    if rng.random() < 0.85 * p_scale:  # ascending aorta / pulmonary trunk: anterior, arching over the top
        r = rng.uniform(0.06, 0.095) * m
        xa, ya = c[0] + rng.uniform(-0.1, 0.15) * size[0], c[1] - hy - r - rng.uniform(-0.5, 3.0)
        side = rng.choice([-1, 1])
        pts = np.array(
            [
                [xa, ya, -5],
                [xa, ya + rng.uniform(-2, 2), size[2] * rng.uniform(0.6, 0.8)],
                [xa + side * 0.35 * size[0], ya + rng.uniform(0, 0.3) * size[1], size[2] + 5],
            ]
        )
        out.append((_tube_sdf(grid, pts, np.array([r, r, 0.9 * r])), factor()))
    if rng.random() < 0.7 * p_scale:  # right atrium: right and anterior
        r_ra = rng.uniform(0.6, 0.85) * radii.mean() * rng.uniform(0.85, 1.15, 3)
        hx = _support(rot, radii, np.array([1.0, 0.0, 0.0]))
        ra_c = c + np.array([0.7 * hx + 0.5 * r_ra[0], -0.6 * hy, rng.uniform(-0.3, 0.1) * radii[2]])
        out.append((_ellipsoid_sdf(grid, ra_c, r_ra, _rotation(rng, (30, 20, 20))), factor()))
    for _ in range(rng.poisson(5 * difficulty)):  # small vessels, fat and other bright spots
        r = rng.uniform(0.02, 0.06) * m * rng.uniform(0.7, 1.3, 3)
        at = size * rng.uniform(0.05, 0.95, 3)
        out.append((_ellipsoid_sdf(grid, at, r, _rotation(rng, (90, 90, 90))), rng.uniform(0.6, 1.4)))
    return out


def _bias_field(rng: np.random.Generator, grid: _Grid, amplitude: float) -> np.ndarray:
    """exp of a random quadratic polynomial over the volume: the slow coil-sensitivity shading of MRI."""
    u = [
        (a / max(n - 1, 1) * 2 - 1).reshape(s)
        for a, n, s in zip(grid.axes, grid.shape, _AXIS_SHAPES, strict=True)
    ]
    terms = u + [u[0] * u[1], u[1] * u[2], u[0] * u[2]] + [v**2 - 1 / 3 for v in u]
    coef = rng.normal(0, 1, len(terms))
    poly = sum(c * t for c, t in zip(coef, terms, strict=True))
    poly = np.broadcast_to(poly, grid.shape)
    return np.exp(amplitude * poly / (np.abs(poly).max() + 1e-6)).astype(np.float32)


def synth_case(
    rng: np.random.Generator,
    size: tuple[int, int, int] = DEFAULT_SIZE,
    difficulty: float = DEFAULT_DIFFICULTY,
    quantise: bool = True,
    classes: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """One (image float32, label uint8) pair of shape `size` = (W, H, D); labels 0..classes-1 (CLASS_NAMES)."""
    if difficulty < 0:
        raise ValueError(f"difficulty {difficulty}: expected a value >= 0")
    if classes not in CLASS_NAMES:
        raise ValueError(f"classes {classes}: expected one of {', '.join(map(str, CLASS_NAMES))}")
    grid = _Grid(size)
    m = float(np.mean(grid.size))
    contrast_mult = 1 / (0.35 + 0.65 * difficulty)
    noise_mult = 0.3 + 0.7 * difficulty

    sdf, geo = _atrium(rng, grid, difficulty)
    label = (sdf < 0).astype(np.uint8)
    if classes == 3:  # no random draw: the image below is the 2-class one
        label[(label == 1) & _vein_voxels(grid, geo["params"], geo["radii"])] = 2

    # Raw intensities with the atrial blood pool at 1. The tissue level sets the per-case contrast.
    delta = float(np.clip(rng.normal(0.4, 0.2), -0.05, 0.85)) * contrast_mult
    tissue = max(0.08, 1 - delta)
    raw = tissue + 0.1 * _smooth_noise(rng, grid.shape, 0.8) + 0.2 * _smooth_noise(rng, grid.shape, 0.035 * m)
    raw += 0.14 * _smooth_noise(rng, grid.shape, 0.1 * m)
    # Lungs and other dark regions, more likely at the lateral and posterior edges.
    x = np.abs(grid.axes[0] / grid.size[0] - 0.5).reshape(-1, 1, 1) * 2
    y = (grid.axes[1] / grid.size[1]).reshape(1, -1, 1)
    dark = _smooth_noise(rng, grid.shape, 0.15 * m) + 1.6 * x**2 + 0.8 * y**2
    dark_level = np.quantile(dark, 1 - rng.uniform(0.06, 0.25))
    _paint(raw, (dark_level - dark) * 4, rng.uniform(0.02, 0.1))
    for d_sdf, f in _distractors(rng, grid, geo, difficulty):
        _paint(raw, d_sdf, f * (1 + 0.05 * rng.standard_normal()))
    # A partial dark wall around the atrium: a real but unreliable boundary cue.
    wall_w = rng.uniform(0.8, 1.8)
    wall_strength = rng.uniform(0.2, 0.8) * float(np.clip(1.5 - 0.5 * difficulty, 0.2, 1.5))
    cover = np.clip(0.5 + _smooth_noise(rng, grid.shape, 0.08 * m), 0, 1) * min(1.0, wall_strength)
    wall = np.clip(sdf + 0.5, 0, 1) * np.clip(wall_w + 0.5 - sdf, 0, 1) * cover
    raw += wall * (rng.uniform(0.15, 0.45) - raw)
    blood = 1 + 0.05 * _smooth_noise(rng, grid.shape, 0.04 * m)
    _paint(raw, sdf, blood)
    if rng.random() < 0.1:  # rare very bright outliers (the real data's max exceeds 8 z in a few cases)
        for _ in range(rng.integers(1, 4)):
            at, r = grid.size * rng.uniform(0.05, 0.95, 3), rng.uniform(0.6, 1.5, 3)
            _paint(raw, _ellipsoid_sdf(grid, at, r, np.eye(3)), rng.uniform(2.5, 5.0))

    raw = ndimage.gaussian_filter(np.maximum(raw, 0), rng.uniform(0.4, 0.8))  # point-spread function
    raw *= _bias_field(rng, grid, rng.uniform(0.05, 0.3))
    sigma = rng.uniform(0.05, 0.12) * noise_mult
    n1, n2 = rng.standard_normal((2, *grid.shape), dtype=np.float32) * np.float32(sigma)
    raw = np.sqrt((raw + n1) ** 2 + n2**2)  # magnitude image: Rician noise, a positive floor in the dark

    # The real z-score used the whole uncropped, mostly dark volume, so in the crop the dark floor lies at
    # -0.9..-0.45 z and the scale varies ~5x between cases. The scale follows here from a drawn mean outside
    # the atrium (real: 0.01 / 0.79 / 1.73 z), which puts the blood mean at 0.3..4 z as in the real data.
    z_floor = rng.uniform(-0.9, -0.45)
    mean_out = float(np.clip(rng.normal(0.8, 0.4), 0.0, 1.75))
    image = z_floor + (mean_out - z_floor) / float(raw[label == 0].mean()) * raw
    if quantise:  # raw MRI is integer: 38-245 levels per case, steps of 0.03-0.15 z
        # ... but at least ~40 levels between the floor and the brightest voxel, as in the real data.
        step = min(np.exp(rng.uniform(np.log(0.03), np.log(0.15))), float(image.max() - z_floor) / 40)
        image = z_floor + np.round((image - z_floor) / step) * step
    return image.astype(np.float32), label


def case_ids(seed: int, cases: int) -> list[str]:
    """Distinct 20-character uppercase alphanumeric ids, like the real LA ones."""
    rng = np.random.default_rng([seed, 1_000_003])  # a stream apart from the per-case ones
    ids: list[str] = []
    while len(ids) < cases:
        new = "".join(rng.choice(_ID_ALPHABET, 20))
        if new not in ids:
            ids.append(new)
    return ids


def write_case(path: Path, image: np.ndarray, label: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("image", data=image, compression="gzip", compression_opts=4)
        f.create_dataset("label", data=label, compression="gzip", compression_opts=4)


def generate(
    out: Path,
    cases: int = 100,
    seed: int = 0,
    size: tuple[int, int, int] = DEFAULT_SIZE,
    n_train: int = 80,
    progress: bool = False,
    difficulty: float = DEFAULT_DIFFICULTY,
    quantise: bool = True,
    classes: int = 2,
) -> Path:
    """Write a synthetic LA-layout dataset to `out` and return `out`.

    The first `n_train` ids go to train.list, the rest to test.list. dataset.json is written last, so its
    presence marks a complete dataset. `classes=3` labels the pulmonary veins apart (see the module docstring).
    """
    size = tuple(int(s) for s in size)
    if len(size) != 3 or min(size) < 16:
        raise ValueError(f"size {size}: expected three sides of at least 16 voxels")
    if classes not in CLASS_NAMES:
        raise ValueError(f"classes {classes}: expected one of {', '.join(map(str, CLASS_NAMES))}")
    if not 0 < n_train < cases:
        raise ValueError(
            f"n_train {n_train}: expected 0 < n_train < cases ({cases}) so both lists are non-empty"
        )
    out = Path(out)
    ids = case_ids(seed, cases)
    indices = range(cases)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="synthetic LA", unit="case")
    for i in indices:
        image, label = synth_case(np.random.default_rng([seed, i]), size, difficulty, quantise, classes)
        write_case(out / CASES_DIR / ids[i] / H5_NAME, image, label)
    (out / "train.list").write_text("".join(f"{i}\n" for i in ids[:n_train]))
    (out / "test.list").write_text("".join(f"{i}\n" for i in ids[n_train:]))
    params = {
        "version": GENERATOR_VERSION,
        "cases": cases,
        "seed": seed,
        "size": list(size),
        "n_train": n_train,
        "difficulty": difficulty,
        "quantise": quantise,
    }
    meta = {"name": "synthetic-la", "spacing_mm": spacing_for(size), "generator": params}
    if (
        classes != 2
    ):  # the 2-class dataset.json stays as it was (its fingerprint names the default runs' data)
        params["classes"] = classes
        meta["labels"] = {str(i): name for i, name in enumerate(CLASS_NAMES[classes])}
    (out / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out
