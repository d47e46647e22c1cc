"""A canonical pose for the DAE's label maps (`lrep.dae_pose="canonical"`; not in the paper or the authors' code).

Why: the DAE squeezes a whole crop through a dense bottleneck, so besides each mask's shape it has to encode where
the random crop put it and which rot/flip the segmentation branch drew. With 8 (or 16) labeled masks and a few
thousand steps it learns a blurred average of the poses and reconstructs worse than its corrupted input.
Normalising the pose of every map it sees removes most of that variety, and it can be done from the map alone, so
training (on corrupted crops) and use (on the teacher's prediction of a training crop) see the same kind of input:

1. transpose W and H when the in-plane second central moment along H exceeds the one along W (square crops only);
2. flip W and / or H so that the third central moment along each is non-negative;
3. shift (zero-filled, not wrapped) so that the map's centre of mass lies at the crop centre (all three axes).

Steps 1-2 pick one of the 8 elements of the square's symmetry group, which holds every rot90/flip of
`random_rot_flip`. The moments are those of the map's values (a soft map weighs voxels by its value). The inverse
maps the DAE's output back; voxels shifted in from outside the crop are filled with background (class 0 = 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

POSES = ("as-is", "canonical")


@dataclass(frozen=True)
class Pose:
    """Transpose W/H, then flips of W and H (about the crop centre), then a shift in voxels per spatial axis."""

    transpose: bool = False
    flip: tuple[bool, bool] = (False, False)
    shift: tuple[int, int, int] = (0, 0, 0)


def canonical_pose(label_map: torch.Tensor) -> Pose:
    """The pose that brings a (W, H, D) non-negative map to its canonical frame (identity for an empty map)."""
    w = label_map.detach().double().clamp(min=0)
    mass = w.sum()
    if mass <= 0:
        return Pose()
    sizes = w.shape
    coords = [torch.arange(n, dtype=torch.float64, device=w.device) for n in sizes]
    marginals = [w.sum(dim=tuple(a for a in range(3) if a != axis)) for axis in range(3)]
    centroid = [float((m * c).sum() / mass) for m, c in zip(marginals, coords, strict=True)]

    def central(axis: int, power: int) -> float:
        return float((marginals[axis] * (coords[axis] - centroid[axis]) ** power).sum() / mass)

    transpose = sizes[0] == sizes[1] and central(1, 2) > central(0, 2)
    axes = (1, 0, 2) if transpose else (0, 1, 2)  # after the transpose, W holds what was H
    flip = (central(axes[0], 3) < 0, central(axes[1], 3) < 0)
    moved = [centroid[a] for a in axes]  # the centre of mass after the transpose and the flips
    moved = [sizes[i] - 1 - c if i < 2 and flip[i] else c for i, c in enumerate(moved)]
    shift = tuple(int(n // 2 - round(c)) for n, c in zip(sizes, moved, strict=True))
    return Pose(transpose, flip, shift)


def _shift(x: torch.Tensor, shift: tuple[int, int, int], fill: torch.Tensor | float) -> torch.Tensor:
    """x (..., W, H, D) moved by `shift` voxels; voxels coming from outside are `fill` (a float or (C,))."""
    if not any(shift):
        return x
    out = torch.empty_like(x)
    out[...] = fill if isinstance(fill, float) else fill.view(*fill.shape, 1, 1, 1)
    src, dst = [], []
    for s, n in zip(shift, x.shape[-3:], strict=True):
        src.append(slice(max(0, -s), min(n, n - s)))
        dst.append(slice(max(0, s), min(n, n + s)))
    out[(..., *dst)] = x[(..., *src)]
    return out


def to_canonical(x: torch.Tensor, pose: Pose) -> torch.Tensor:
    """A label map (..., W, H, D) in the canonical frame (shifted-in voxels are 0, background)."""
    if pose.transpose:
        x = x.transpose(-3, -2)
    dims = [d for d, f in zip((-3, -2), pose.flip, strict=True) if f]
    if dims:
        x = x.flip(dims)
    return _shift(x, pose.shift, 0.0)


def from_canonical(prob: torch.Tensor, pose: Pose) -> torch.Tensor:
    """Class probabilities (C, W, H, D) from the canonical frame back to the map's own (inverse of to_canonical).

    Voxels that come from outside the canonical crop get background: 1 on class 0, 0 on the others.
    """
    background = torch.zeros(prob.shape[0], dtype=prob.dtype, device=prob.device)
    background[0] = 1.0
    prob = _shift(prob, tuple(-s for s in pose.shift), background)
    dims = [d for d, f in zip((-3, -2), pose.flip, strict=True) if f]
    if dims:
        prob = prob.flip(dims)
    if pose.transpose:
        prob = prob.transpose(-3, -2)
    return prob.contiguous()


def dae_probabilities(dae: torch.nn.Module, maps: torch.Tensor, pose: str = "as-is") -> torch.Tensor:
    """sigmoid(DAE(.)) of 1-channel label maps (B, 1, W, H, D), in the maps' own frame: (B, C, W, H, D).

    With pose "canonical" every map goes through the DAE in its canonical frame (`canonical_pose`), which is how
    the DAE was trained; "as-is" feeds it unchanged.
    """
    if pose == "as-is":
        return torch.sigmoid(dae(maps))
    if pose != "canonical":
        raise ValueError(f"DAE pose '{pose}': expected one of {', '.join(POSES)}")
    poses = [canonical_pose(m[0]) for m in maps]
    canon = torch.stack([to_canonical(m, p).contiguous() for m, p in zip(maps, poses, strict=True)])
    prob = torch.sigmoid(dae(canon))
    return torch.stack([from_canonical(q, p) for q, p in zip(prob, poses, strict=True)])
