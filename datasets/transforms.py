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
    """Pad by the reference rule, then crop `patch` at offsets drawn uniformly in [0, s - p).

    The padded volume is never built: without padding the crops are views (of the rotated/flipped views), so no
    voxel outside the crop is copied; with padding only the crop is allocated. Bit-identical to padding then
    cropping (tests/test_perf.py checks it against that straightforward version).
    """
    pad = crop_padding(label.shape, patch)
    starts = []
    for s, (before, after), p in zip(label.shape, pad, patch, strict=True):
        s = s + before + after
        if s < p:
            raise ValueError(f"volume side {s} is smaller than the patch side {p} even after padding")
        # The reference draws randint(0, s - p) (exclusive upper bound); a side equal to the patch has one choice.
        starts.append(int(rng.integers(0, s - p)) if s > p else 0)
    return _padded_crop(image, pad, starts, patch), _padded_crop(label, pad, starts, patch)


def _padded_crop(arr: np.ndarray, pad: list[tuple[int, int]], starts: list[int], patch: tuple[int, int, int]):
    """`np.pad(arr, pad)[starts : starts + patch]` without building the padded array."""
    if not any(before for before, _ in pad) and all(
        w + p <= s for w, p, s in zip(starts, patch, arr.shape, strict=True)
    ):
        return arr[tuple(slice(w, w + p) for w, p in zip(starts, patch, strict=True))]
    out = np.zeros(patch, dtype=arr.dtype)
    src, dst = [], []
    for w, p, (before, _), s in zip(starts, patch, pad, arr.shape, strict=True):
        lo = w - before  # the crop's first voxel in `arr` coordinates (negative: inside the left padding)
        a, b = max(lo, 0), min(lo + p, s)
        src.append(slice(a, max(a, b)))
        dst.append(slice(a - lo, max(a, b) - lo))
    out[tuple(dst)] = arr[tuple(src)]
    return out
