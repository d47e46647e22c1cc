"""Exact Euclidean distance transform and DTC/SASSnet signed distance maps in torch, on the masks' own device.

Why: DTC and SASSnet need a signed distance map (SDF) of every labeled crop. `methods/sdf.py` builds it with
SciPy and scikit-image on the CPU, which is the slow part of a training step when the batch has no
precomputed target. `edt` and `sdf_torch` compute the same numbers, bit for bit, with torch ops only, so the
target can be built on the training device (a GPU) next to the network.

`edt(mask, spacing)`: for every nonzero voxel of a (W, H, D) or (B, W, H, D) mask, the Euclidean distance to the
nearest zero voxel of the same crop, with voxel size `spacing`; the semantics of
`scipy.ndimage.distance_transform_edt(mask, sampling=spacing)`, crop by crop.

Algorithm (separable, as in Saito-Toriwaki / Meijster): the squared distance is
``min over zero voxels z of sum_a ((i_a - z_a) * s_a)^2``, and the min of a sum of independent terms can be taken
one axis at a time:
1. axis 0: ``g0(i) = (d * s0)^2`` with d the distance along the axis-0 line to the nearest zero of that line
   (a prefix max of the last zero index to the left and a suffix min of the next one to the right, each by
   log2(n) doubling steps; ``inf`` where the line has no zero);
2. axes 1 and 2: ``g(i) = min_k g_prev(i + k) + (k * s)^2`` over offsets k along the axis. The offsets are taken
   in order |k| = 1, 2, ..., each one as one whole-tensor ``add`` and two shifted ``minimum`` passes (no per-line
   Python work, memory bounded by two extra copies of the crops). A plane or line stops once ``(k * s)^2`` exceeds
   its largest current value: a further candidate ``g_prev + (k' * s)^2 >= (k * s)^2`` can then improve none of
   its voxels.
   Each line of the crops is a row of a working set that shrinks as lines finish (see `_axis_min_plus`). Work is
   O(voxels x distance reached) per axis against SciPy's O(voxels): slower on one CPU thread for large crops
   far from the object, but only a few hundred large elementwise kernels on a GPU.
3. ``sqrt`` in float64.

Exactness: when every squared axis term and every partial sum is exactly representable, each candidate is computed
without rounding, so the minimum is the true minimal squared distance. SciPy's feature transform finds a truly
nearest zero voxel and evaluates its squared distance as ``((a0 + a1) + a2)`` with ``a = ((z - i) * s)^2`` in
float64 - the same real number, hence the same double; we add the terms in that order and with those products
too, and take a correctly rounded (IEEE) sqrt, so the distances are equal bit for bit. Careful: torch's own
float64 ``sqrt`` on the CPU is *not* correctly rounded (torch 2.13 CPU wheel: one ulp off for 1,131 of the
integers below 10^5, e.g. sqrt(51), whatever ATEN_CPU_CAPABILITY says; the vectorised path of long tensors only),
so on the CPU the final sqrt is NumPy's, the function SciPy itself calls. CUDA's double ``sqrt`` is IEEE
correctly rounded (not checked on a GPU here; `tests/test_edt.py` has the test). The terms are
exact for integer spacings (we then work in float32, whose integers are exact below 2^24, checked against the
largest possible squared distance; float64 otherwise) and for dyadic spacings such as 0.625, 1.25, 0.5 (float64:
a small integer times m / 2^e squared needs far fewer than 53 bits). For other spacings (0.7 mm) ties between
candidates can round differently from SciPy's, so results can differ in the last ulp only.

Crops without any zero voxel: SciPy's feature transform then points every voxel at the virtual voxel
(-1, 0, 0), i.e. returns ``sqrt(((i0 + 1) * s0)^2 + (i1 * s1)^2 + (i2 * s2)^2)`` (checked with SciPy 1.17 for
1-4 dimensions and several spacings; `tests/test_edt.py` guards it). `edt` returns exactly that, so it can
replace SciPy everywhere. An all-zero crop gives 0 everywhere, as in SciPy.

`sdf_torch(masks)`: `methods/sdf.py`'s definition (`sdf_reference`, `compute_sdf`, `batch_sdf`) on a batch of
label crops: ``norm(EDT(bg)) - norm(EDT(fg))`` per crop (min-max over the crop, the same float64 ops), zero on the
inner boundary, 0 for an all-background crop and -1 for an all-foreground one. The inner boundary is
`skimage.segmentation.find_boundaries(mode="inner")`: scikit-image compares a dilation and an erosion with
``generate_binary_structure(3, connectivity=1)`` (the 6 face neighbours) in ``mode="reflect"``, so a foreground
voxel is boundary iff one of its face neighbours inside the crop is background; the crop's own faces are not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from sslbench.methods.sdf import ALL_FOREGROUND_VALUE

_FLOAT32_EXACT_BELOW = 2**24  # every integer up to this is exact in float32 (24-bit significand)
_RECHECK_EVERY = 8  # offsets between re-reading the rows' largest values (one reduction, one sync)


def _as_batch(mask: torch.Tensor, what: str) -> tuple[torch.Tensor, bool]:
    if mask.ndim not in (3, 4):
        raise ValueError(f"{what} expects a (W, H, D) or (B, W, H, D) mask, got shape {tuple(mask.shape)}")
    batched = mask.ndim == 4
    return (mask if batched else mask[None]) != 0, batched


def _spacing(spacing: float | Sequence[float]) -> tuple[float, float, float]:
    s = (float(spacing),) * 3 if isinstance(spacing, (int, float)) else tuple(float(v) for v in spacing)
    if len(s) != 3 or not all(math.isfinite(v) and v > 0 for v in s):
        raise ValueError(f"spacing must be 3 positive finite numbers, got {spacing!r}")
    return s


def _work_dtype(shape: Sequence[int], spacing: Sequence[float]) -> torch.dtype:
    """float32 when every squared distance is an integer below 2^24 (exact), else float64."""
    if all(s.is_integer() for s in spacing):
        largest = sum(((n - 1) * s) ** 2 for n, s in zip(shape, spacing, strict=True))
        if largest < _FLOAT32_EXACT_BELOW:
            return torch.float32
    return torch.float64


def _scan(x: torch.Tensor, op, reverse: bool) -> torch.Tensor:
    """Inclusive prefix (suffix if `reverse`) `op` (max or min) along dim 1, by log2(n) doubling steps.

    Hillis-Steele doubling instead of `cummax`/`cummin`: those are several times slower on the CPU along a
    non-last dim, and each step here is one whole-tensor elementwise op on any device. Consumes `x` (its memory
    is reused as a ping-pong buffer).
    """
    n = x.shape[1]
    a, b = x, torch.empty_like(x)
    k = 1
    while k < n:
        m = n - k
        # Each step reads only the previous values (`a`): an in-place update would read what it just wrote.
        if reverse:
            op(a.narrow(1, 0, m), a.narrow(1, k, m), out=b.narrow(1, 0, m))
            b.narrow(1, m, k).copy_(a.narrow(1, m, k))
        else:
            op(a.narrow(1, k, m), a.narrow(1, 0, m), out=b.narrow(1, k, m))
            b.narrow(1, 0, k).copy_(a.narrow(1, 0, k))
        a, b = b, a
        k *= 2
    return a


def _axis0_squared(zero: torch.Tensor, s: float, dtype: torch.dtype) -> torch.Tensor:
    """(d * s)^2 with d the distance to the nearest zero voxel along dim 1; inf on lines without one."""
    n = zero.shape[1]
    idx = torch.arange(n, device=zero.device, dtype=torch.int32).view(1, n, 1, 1)
    far = 2 * n + 1  # sentinel index: a distance from it is > n - 1, the largest real one
    left = _scan(torch.where(zero, idx, -far), torch.maximum, reverse=False)  # last zero at or before i
    right = _scan(torch.where(zero, idx, far), torch.minimum, reverse=True)  # first zero at or after i
    d = torch.minimum(idx - left, right - idx)
    # SciPy forms ((z - i) as float64) * s, then squares that product; the same two roundings here.
    g = d.to(dtype) * s
    g = g * g
    return g.masked_fill_(d >= n, math.inf)


def _axis_min_plus(g: torch.Tensor, dim: int, s: float) -> torch.Tensor:
    """out(i) = min over k of g(i + k) + (k * s)^2 along `dim` (the exact 1D squared-distance step).

    `g` is (R, ...): R independent rows (here: lines of the crops). Offsets run |k| = 1, 2, ...; a row is done
    once (k * s)^2 exceeds its largest current value (no candidate g + (k' * s)^2 >= (k * s)^2 can then improve
    it; values only decrease, so a stale maximum is still an upper bound, and a row may run a few offsets late
    without harm). Done rows leave the working set, so rows far from every zero voxel do not keep the others
    running: on real 112x112x80 LA crops, lines as rows make the y and z passes 2-4x faster than whole crops.
    """
    n = g.shape[dim]
    out = g.clone()
    src, cur, rows = g, out, None  # the running rows: g[rows], out[rows] (rows None: all, cur is out)
    buf = torch.empty_like(g)
    for k in range(1, n):
        c = (k * s) * (k * s)  # Python float = float64, the same product SciPy squares
        if (
            k % _RECHECK_EVERY == 0 or k & (k - 1) == 0
        ):  # k = 1, 2, 4, 8, 16, 24, ...: one reduction, one sync
            if k == 1:  # an all-inf row (no zero voxel within reach) stays inf: drop it at once
                low, high = torch.aminmax(cur.flatten(1), dim=1)
                running = (high >= c) & (low < math.inf)
            else:
                running = cur.flatten(1).amax(dim=1) >= c
            n_running = int(running.sum())
            if n_running < len(running):
                if rows is not None:
                    out[rows] = cur
                if n_running == 0:
                    return out
                keep = running.nonzero().squeeze(1)
                rows = keep if rows is None else rows[keep]
                cur, src, buf = cur[keep], src[keep], buf[:n_running]
        m = n - k
        torch.add(src, c, out=buf)  # every candidate g(j) + (k * s)^2 at once, for both directions
        dst = cur.narrow(dim, k, m)
        torch.minimum(dst, buf.narrow(dim, 0, m), out=dst)  # j = i - k, for i >= k
        dst = cur.narrow(dim, 0, m)
        torch.minimum(dst, buf.narrow(dim, k, m), out=dst)  # j = i + k, for i < n - k
    if rows is not None:
        out[rows] = cur
    return out


def _sqrt(x: torch.Tensor) -> torch.Tensor:
    """Correctly rounded float64 sqrt (see the module docstring: torch's CPU kernel is not, NumPy's is)."""
    if x.device.type == "cpu":
        x = x.contiguous()
        return torch.from_numpy(np.sqrt(x.numpy(), out=x.numpy()))  # in place, no copy
    return x.sqrt_()


def _no_zero_distances(shape: Sequence[int], spacing: Sequence[float], device: torch.device) -> torch.Tensor:
    """SciPy's answer for a crop without zero voxels: distances to the virtual voxel (-1, 0, 0)."""
    terms = []
    for axis, (n, s) in enumerate(zip(shape, spacing, strict=True)):
        d = torch.arange(n, device=device, dtype=torch.float64) + (1 if axis == 0 else 0)
        d = d * s
        view = [1, 1, 1]
        view[axis] = n
        terms.append((d * d).view(view))
    return _sqrt((terms[0] + terms[1]) + terms[2])


def edt(mask: torch.Tensor, spacing: float | Sequence[float] = (1.0, 1.0, 1.0)) -> torch.Tensor:
    """Exact Euclidean distance of each nonzero voxel to the nearest zero voxel of its crop (float64).

    Args:
        mask: (W, H, D) or (B, W, H, D); nonzero = inside. Batched crops are independent.
        spacing: voxel size along W, H, D (one number for isotropic voxels).

    Returns:
        float64 distances, the mask's shape and device; equal bit for bit to
        `scipy.ndimage.distance_transform_edt(mask, sampling=spacing)` (see the module docstring for the exactness
        conditions and for crops without a zero voxel).
    """
    inside, batched = _as_batch(mask, "edt")
    spacing = _spacing(spacing)
    shape = inside.shape[1:]
    dist = torch.zeros(inside.shape, dtype=torch.float64, device=inside.device)
    if inside.numel() == 0:
        return dist if batched else dist[0]
    zero = ~inside
    has_zero = zero.flatten(1).any(dim=1)
    if not bool(has_zero.all()):
        dist[~has_zero] = _no_zero_distances(shape, spacing, inside.device)
        work = zero[has_zero]
    else:
        work = zero
    if len(work):
        g = _axis0_squared(work, spacing[0], _work_dtype(shape, spacing))
        b, w, h, d = g.shape
        # Single lines as the rows of the working set (see _axis_min_plus): the y pass on a transposed copy, so
        # that its lines are rows too; one copy each way is cheaper than running whole planes to their maximum.
        g = g.transpose(2, 3).reshape(b * w * d, h)
        g = _axis_min_plus(g, 1, spacing[1]).reshape(b, w, d, h).transpose(2, 3)
        g = _axis_min_plus(g.reshape(b * w * h, d), 1, spacing[2]).reshape(b, w, h, d)
        dist[has_zero] = _sqrt(g.to(torch.float64))
    return dist if batched else dist[0]


def inner_boundary(fg: torch.Tensor) -> torch.Tensor:
    """Foreground voxels with a background face neighbour inside the crop ((B, W, H, D) bool).

    `skimage.segmentation.find_boundaries(fg, mode="inner")`, connectivity 1, per crop: see the module docstring.
    """
    bg = ~fg
    touches_bg = torch.zeros_like(fg)
    for dim in (1, 2, 3):
        m = fg.shape[dim] - 1
        if m <= 0:
            continue
        touches_bg.narrow(dim, 1, m).logical_or_(bg.narrow(dim, 0, m))  # neighbour at i - 1
        touches_bg.narrow(dim, 0, m).logical_or_(bg.narrow(dim, 1, m))  # neighbour at i + 1
    return touches_bg & fg


def _normalise(dist: torch.Tensor) -> torch.Tensor:
    # Per-crop (B, 1, 1, 1) device tensors, never CPU scalars: CUDA divides by a CPU scalar through its
    # reciprocal, which can differ from NumPy's true division in the last bit.
    lo = dist.amin(dim=(1, 2, 3), keepdim=True)
    hi = dist.amax(dim=(1, 2, 3), keepdim=True)
    return (dist - lo) / (hi - lo)


def sdf_torch(masks: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalised signed distance maps of binary label crops, on the crops' device.

    Args:
        masks: (B, W, H, D) label crops (nonzero = foreground), any device.
        dtype: output dtype. The maps are computed in float64 and cast once: float32 (the default) equals
            `compute_sdf` / `batch_sdf`, float64 equals `sdf_reference` crop by crop.

    Returns:
        (B, W, H, D) maps in [-1, 1]: negative inside, positive outside, 0 on the inner boundary.
    """
    if masks.ndim != 4:
        raise ValueError(f"sdf_torch expects (B, W, H, D) masks, got shape {tuple(masks.shape)}")
    fg = masks != 0
    b = len(fg)
    if b == 0 or fg.numel() == 0:
        return torch.zeros(fg.shape, dtype=dtype, device=fg.device)
    dist = edt(torch.cat([fg, ~fg]))  # one pass for both maps: pos = EDT(fg), neg = EDT(bg)
    pos, neg = dist[:b], dist[b:]
    sdf = _normalise(neg) - _normalise(pos)  # NaN/inf on single-class crops, replaced below
    sdf = sdf.masked_fill_(inner_boundary(fg), 0.0)
    any_fg = fg.flatten(1).any(dim=1).view(b, 1, 1, 1)
    all_fg = fg.flatten(1).all(dim=1).view(b, 1, 1, 1)
    sdf = torch.where(all_fg, ALL_FOREGROUND_VALUE, sdf)
    sdf = torch.where(any_fg, sdf, 0.0)
    return sdf.to(dtype)
