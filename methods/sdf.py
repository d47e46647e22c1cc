"""Signed distance maps of label crops, the shape target of DTC and SASSnet (methods.md 3.5).

Definition (DTC and SASSnet share it): for a binary crop with foreground present,
``pos = EDT(fg)`` (distance of each foreground voxel to the nearest background voxel), ``neg = EDT(bg)``, both
min-max normalised over the whole crop, ``sdf = norm(neg) - norm(pos)`` (negative inside, positive outside, in
[-1, 1]), and ``sdf = 0`` on the inner boundary (foreground voxels with a face-neighbour in the background,
``skimage.segmentation.find_boundaries(mode="inner")``). An all-background crop gets ``sdf = 0``.

All-foreground crop (undefined in the reference, whose formula divides 0 by 0 there and yields NaN): we return
``-1`` everywhere. The crop lies wholly inside the object, so the sign must be negative; -1 is the value the
normalised map gives the deepest voxel, and ``sigmoid(-k * -1)`` is the foreground the segmentation head sees,
so DTC's dual-task consistency agrees with it. Zero would tell the SDF head the crop is all boundary.

`compute_sdf` is a faster path with bit-identical output to `compute_sdf_reference` (the definition written
out literally): the foreground EDT and the boundary search run only inside the foreground's bounding box grown
by one voxel. That is exact: a foreground voxel's nearest background voxel outside that box can be replaced by
its clamp onto the box, which lies in the all-background one-voxel rim and is no farther, so distances (and
hence the float64 sqrt of the same integer sum of squares) are unchanged; outside the box ``pos`` is 0 and the
min of both maps is 0 whenever the crop has both classes, so the normalisation performs the same float ops.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt
from skimage.segmentation import find_boundaries

from sslbench.methods.losses import dice_loss_fg

ALL_FOREGROUND_VALUE = -1.0  # documented choice for a crop with no background (see the module docstring)


def _normalise(dist: np.ndarray) -> np.ndarray:
    lo, hi = dist.min(), dist.max()
    return (dist - lo) / (hi - lo)


def sdf_reference(mask: np.ndarray) -> np.ndarray:
    """The literal definition for one crop (W, H, D) -> float64 map; the oracle for `compute_sdf`."""
    fg = mask.astype(bool)
    if not fg.any():
        return np.zeros(fg.shape)
    if fg.all():
        return np.full(fg.shape, ALL_FOREGROUND_VALUE)
    pos = distance_transform_edt(fg)
    neg = distance_transform_edt(~fg)
    sdf = _normalise(neg) - _normalise(pos)
    sdf[find_boundaries(fg, mode="inner")] = 0
    return sdf


def sdf_fast(mask: np.ndarray) -> np.ndarray:
    """Bit-identical to `sdf_reference`, with the foreground work confined to the grown bounding box."""
    fg = mask.astype(bool)
    if not fg.any():
        return np.zeros(fg.shape)
    if fg.all():
        return np.full(fg.shape, ALL_FOREGROUND_VALUE)
    box = []
    for axis in range(fg.ndim):
        others = tuple(a for a in range(fg.ndim) if a != axis)
        where = np.flatnonzero(fg.any(axis=others))
        box.append(slice(max(int(where[0]) - 1, 0), min(int(where[-1]) + 2, fg.shape[axis])))
    box = tuple(box)
    neg = distance_transform_edt(~fg)
    sdf = neg / neg.max()  # neg.min() is 0 (the foreground): (neg - 0) / (max - 0), the same float ops
    pos_box = distance_transform_edt(
        fg[box]
    )  # the max of pos lies in the box, its min (0) outside or on the rim
    sdf[box] -= pos_box / pos_box.max()
    sub = sdf[box]
    sub[find_boundaries(fg[box], mode="inner")] = 0
    return sdf


def compute_sdf(masks: np.ndarray) -> np.ndarray:
    """Normalised signed distance maps of a batch of binary crops (B, W, H, D) -> float32 (B, W, H, D).

    Computed in float64 as the reference does, then cast to float32 (the reference's `.float()` on the GPU).
    """
    masks = np.asarray(masks)
    if masks.ndim != 4:
        raise ValueError(f"compute_sdf expects (B, W, H, D) masks, got shape {masks.shape}")
    return (
        np.stack([sdf_fast(m) for m in masks]).astype(np.float32) if len(masks) else masks.astype(np.float32)
    )


def compute_sdf_reference(masks: np.ndarray) -> np.ndarray:
    """`compute_sdf` through the literal per-crop definition (slower; for checks and the benchmark)."""
    masks = np.asarray(masks)
    return np.stack([sdf_reference(m) for m in masks]).astype(np.float32)


def sdf_targets(y_l: np.ndarray) -> dict[str, np.ndarray]:
    """The `Method.batch_targets` of the SDF methods: {'sdf': (B_l, W, H, D) float32}, built in loader workers."""
    return {"sdf": compute_sdf(y_l)}


def batch_sdf(extras: dict[str, torch.Tensor], y_l: torch.Tensor) -> torch.Tensor:
    """The loader's SDF target, or (for a batch built without `batch_targets`) the same map computed here: with
    torch on the crops' own device when that is not the CPU (`edt.sdf_torch`, bit-identical, no host copy),
    else with SciPy (faster on one CPU thread)."""
    if "sdf" in extras:
        return extras["sdf"].float()
    if y_l.device.type != "cpu":
        from sslbench.methods.edt import sdf_torch

        return sdf_torch(y_l.detach())
    return torch.from_numpy(compute_sdf(y_l.detach().cpu().numpy())).to(y_l.device)


def sdf_supervised_loss(
    sdf_tanh: torch.Tensor, seg_logit: torch.Tensor, y_l: torch.Tensor, sdf_gt: torch.Tensor, beta: float
) -> torch.Tensor:
    """DTC/SASSnet supervision on the labeled crops: Dice_fg(sigmoid(seg), y) + beta * MSE(tanh, sdf_gt).

    `sdf_tanh` and `seg_logit` are the labeled part (B_l, 1, W, H, D); the BCE the references log is not added.
    """
    dice = dice_loss_fg(torch.sigmoid(seg_logit[:, 0]), y_l)
    mse = torch.mean((sdf_tanh[:, 0] - sdf_gt) ** 2)
    return dice + beta * mse
