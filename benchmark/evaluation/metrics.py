"""Per-case segmentation metrics, with the empty-prediction policy of the protocol made explicit.

Dice, Jaccard, HD95 and ASD give exactly what medpy's `dc`, `jc`, `hd95` and `asd` give (the references call
medpy 0.4 without spacing, so their distances are in voxels), but the surfaces are extracted inside the
bounding box of both masks and their distances found with a k-d tree, instead of three distance transforms of
the whole volume; tests/test_evaluate.py checks the equality with medpy. HD95 and ASD are reported in voxels
and in mm: voxels x spacing when the voxels are isotropic (today's LA numbers, bit for bit), else the distances
between the surface points scaled by the spacing of each axis (medpy's `voxelspacing`).

Several classes: each foreground class c is scored as the binary masks (pred == c, label == c); the columns
`dice`, `hd95_mm`, ... are the means over the foreground classes and `dice_<c>`, ... the per-class values (only
written when there are more than two classes, so binary outputs keep today's columns).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import binary_erosion, generate_binary_structure
from scipy.spatial import cKDTree

METRIC_COLUMNS = ("dice", "jaccard", "hd95_vox", "asd_vox", "hd95_mm", "asd_mm")  # cases.csv, metrics.json
PERCENT_METRICS = ("dice", "jaccard")  # stored as fractions, shown in %
_FOOTPRINT = generate_binary_structure(3, 1)  # medpy's default connectivity=1 (6-neighbourhood)


def _diagonal(shape: tuple[int, ...]) -> float:
    return float(math.sqrt(sum(s * s for s in shape)))


def joint_box(a: np.ndarray, b: np.ndarray, margin: int = 1) -> tuple[slice, ...]:
    """Slices of the bounding box of `a | b` widened by `margin` voxels (clipped to the volume).

    One voxel of margin is what makes the crop exact: the erosion inside the crop then sees the same zero
    neighbours as in the whole volume (at the volume's own edge both see scipy's border value 0).
    """
    union = a | b
    box = []
    for axis in range(union.ndim):
        others = tuple(i for i in range(union.ndim) if i != axis)
        hits = np.flatnonzero(union.any(axis=others))
        box.append(slice(max(int(hits[0]) - margin, 0), min(int(hits[-1]) + 1 + margin, union.shape[axis])))
    return tuple(box)


def _border(mask: np.ndarray) -> np.ndarray:
    """The one-voxel surface of a mask, as medpy defines it: mask minus its 6-connected erosion."""
    return mask ^ binary_erosion(mask, structure=_FOOTPRINT, iterations=1)


def surface_distances(
    pred: np.ndarray, label: np.ndarray, spacing: tuple[float, float, float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(pred surface -> label surface, label surface -> pred surface) distances in voxels; both masks non-empty.

    Identical to medpy's `__surface_distances` in both directions. medpy reads the distance transform of the
    complement of one surface at the voxels of the other: that is, for each surface voxel, the Euclidean distance
    to the nearest voxel of the other surface. A k-d tree over the other surface's voxel coordinates gives the
    same minimum exactly (integer coordinates: the squared distances are exact integers in float64, so the square
    roots are the same floats), at a cost that grows with the surface instead of the volume. `np.argwhere`
    lists voxels in C order, as boolean indexing does, so even the float sum of the ASD is the same.
    """
    box = joint_box(pred, label)
    pred_pts = np.argwhere(_border(pred[box]))
    label_pts = np.argwhere(_border(label[box]))
    if spacing is not None:  # mm: the surface voxels' coordinates scaled per axis
        scale = np.asarray(spacing, dtype=np.float64)
        pred_pts, label_pts = pred_pts * scale, label_pts * scale
    to_label = cKDTree(label_pts).query(pred_pts)[0]
    to_pred = cKDTree(pred_pts).query(label_pts)[0]
    return to_label, to_pred


def hd95_asd(
    pred: np.ndarray, label: np.ndarray, spacing: tuple[float, float, float] | None = None
) -> tuple[float, float]:
    """medpy's `hd95(pred, label, spacing)` and `asd(pred, label, spacing)` (ASD is one-directional there:
    pred -> label); in voxels when `spacing` is None."""
    to_label, to_pred = surface_distances(pred, label, spacing)
    hd95 = float(np.percentile(np.hstack((to_label, to_pred)), 95))
    return hd95, float(to_label.mean())


def dice_jaccard(pred: np.ndarray, label: np.ndarray) -> tuple[float, float]:
    """medpy's `dc` and `jc` for non-empty boolean masks."""
    inter = int(np.count_nonzero(pred & label))
    n_pred, n_label = int(np.count_nonzero(pred)), int(np.count_nonzero(label))
    union = n_pred + n_label - inter
    return 2.0 * inter / float(n_pred + n_label), float(inter) / float(union)


def _isotropic(spacing) -> float | None:
    values = [float(v) for v in spacing] if isinstance(spacing, (tuple, list)) else [float(spacing)]
    return values[0] if len(set(values)) == 1 else None


def binary_metrics(pred: np.ndarray, label: np.ndarray, spacing, empty_policy: str = "worst") -> dict:
    """Dice, Jaccard (fractions), HD95 and ASD (voxels and mm) of a binary prediction against a binary label.

    Empty prediction or empty label: flagged. With the `worst` policy the distances are the volume diagonal
    (the worst possible) and Dice/Jaccard are 0, so an empty output can never look perfect; `legacy-zero`
    reproduces the references, which set all four metrics to 0 (a perfect HD) for an empty prediction.
    Both empty counts as perfect (Dice 1, distances 0) under `worst`. `spacing`: mm, one number or (x, y, z).
    """
    pred = pred.astype(bool)
    label = label.astype(bool)
    iso = _isotropic(spacing)
    axes = (spacing,) * 3 if iso is not None and not isinstance(spacing, (tuple, list)) else tuple(spacing)
    empty_pred, empty_label = not pred.any(), not label.any()
    row = {"empty_pred": empty_pred, "empty_label": empty_label}
    if empty_pred or empty_label:
        both = empty_pred and empty_label
        if empty_policy == "legacy-zero" and empty_pred:
            dice = jac = hd95 = asd = hd95_mm = asd_mm = 0.0
        else:
            dice = jac = 1.0 if both else 0.0
            hd95 = asd = 0.0 if both else _diagonal(pred.shape)
            mm_diag = _diagonal(tuple(n * float(a) for n, a in zip(pred.shape, axes, strict=True)))
            hd95_mm = asd_mm = hd95 * iso if iso is not None else (0.0 if both else mm_diag)
    else:
        dice, jac = dice_jaccard(pred, label)
        hd95, asd = hd95_asd(pred, label)
        if iso is not None:
            hd95_mm, asd_mm = hd95 * iso, asd * iso
        else:
            hd95_mm, asd_mm = hd95_asd(pred, label, axes)
    row.update(dice=dice, jaccard=jac, hd95_vox=hd95, asd_vox=asd, hd95_mm=hd95_mm, asd_mm=asd_mm)
    return row


def case_metrics(
    pred: np.ndarray, label: np.ndarray, spacing, empty_policy: str = "worst", n_classes: int = 2
) -> dict:
    """The metrics of one case (label maps of `n_classes` classes): `binary_metrics` of the foreground when
    there are two classes; otherwise the per-class values (`dice_1`, ..., `empty_pred_1`, ...) and their means
    over the foreground classes in the plain columns (`empty_pred`: every foreground class predicted empty)."""
    if n_classes <= 2:
        return binary_metrics(pred, label, spacing, empty_policy)
    per_class = {c: binary_metrics(pred == c, label == c, spacing, empty_policy) for c in range(1, n_classes)}
    row: dict = {
        "empty_pred": all(m["empty_pred"] for m in per_class.values()),
        "empty_label": all(m["empty_label"] for m in per_class.values()),
    }
    for key in METRIC_COLUMNS:
        row[key] = float(np.mean([m[key] for m in per_class.values()]))
    for c, m in per_class.items():
        for key in (*METRIC_COLUMNS, "empty_pred", "empty_label"):
            row[f"{key}_{c}"] = m[key]
    return row


def foreground_dice(pred: np.ndarray, label: np.ndarray, n_classes: int = 2) -> float:
    """The mean foreground Dice of two label maps, without distances (validation and learning curves)."""
    scores = []
    for c in range(1, max(n_classes, 2)):
        p, g = pred == c, label == c
        scores.append(dice_jaccard(p, g)[0] if p.any() and g.any() else float(not p.any() and not g.any()))
    return float(np.mean(scores)) if len(scores) > 1 else float(scores[0])
