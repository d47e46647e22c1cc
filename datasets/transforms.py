"""Training augmentations of the LA references (methods.md 1.3), each driven by an explicit RNG."""

from __future__ import annotations

import numpy as np


def random_rot_flip(image: np.ndarray, label: np.ndarray, rng: np.random.Generator):
    """Rotate by k*90 degrees in the (W, H) plane, then flip along W or H (never D); same for both arrays."""
    k = int(rng.integers(0, 4))
    axis = int(rng.integers(0, 2))
    image = np.flip(np.rot90(image, k, axes=(0, 1)), axis=axis)
    label = np.flip(np.rot90(label, k, axes=(0, 1)), axis=axis)
    return image, label


def crop_padding(shape: tuple[int, ...], patch: tuple[int, int, int]) -> list[tuple[int, int]]:
    """The reference's padding rule: if a side is <= the patch, pad both ends by (p - s)//2 + 3.

    A side equal to the patch size still gets 3 voxels on each end, as in UA-MT's RandomCrop.
    """
    if any(s <= p for s, p in zip(shape, patch, strict=True)):
        return [(max((p - s) // 2 + 3, 0),) * 2 for s, p in zip(shape, patch, strict=True)]
    return [(0, 0)] * 3


def random_crop(image: np.ndarray, label: np.ndarray, patch: tuple[int, int, int], rng: np.random.Generator):
    """Pad by the reference rule, then crop `patch` at offsets drawn uniformly in [0, s - p)."""
    pad = crop_padding(label.shape, patch)
    if any(p for pair in pad for p in pair):
        image = np.pad(image, pad, mode="constant")
        label = np.pad(label, pad, mode="constant")
    starts = []
    for s, p in zip(label.shape, patch, strict=True):
        if s < p:
            raise ValueError(f"volume side {s} is smaller than the patch side {p} even after padding")
        # The reference draws randint(0, s - p) (exclusive upper bound); a side equal to the patch has one choice.
        starts.append(int(rng.integers(0, s - p)) if s > p else 0)
    w, h, d = starts
    sl = (slice(w, w + patch[0]), slice(h, h + patch[1]), slice(d, d + patch[2]))
    return image[sl], label[sl]
