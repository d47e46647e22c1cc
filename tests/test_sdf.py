"""Signed distance maps (methods.md 3.5): hand-made masks, the fast path, and the loader path."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from torch.utils.data import DataLoader

from sslbench.datasets.batches import TwoStreamBatches, to_tensors
from sslbench.datasets.la import Volume
from sslbench.methods.algorithms.dtc import DCT
from sslbench.methods.algorithms.sassnet import SASSnet
from sslbench.methods.sdf import compute_sdf, compute_sdf_reference, sdf_fast, sdf_reference


def cube_mask() -> np.ndarray:
    """A 5^3 foreground cube at [3, 8) in an 11^3 crop."""
    m = np.zeros((1, 11, 11, 11), np.uint8)
    m[0, 3:8, 3:8, 3:8] = 1
    return m


def test_cube_values_by_hand():
    sdf = compute_sdf(cube_mask())[0]
    assert sdf.dtype == np.float32 and sdf.shape == (11, 11, 11)
    # Inside: pos = distance to the nearest background voxel, max 3 at the centre; neg = 0.
    assert sdf[5, 5, 5] == -1.0  # the deepest voxel: -norm(pos) = -3/3
    assert sdf[4, 5, 5] == pytest.approx(-2 / 3)  # 2 voxels from the background at x = 2
    # Inner boundary (foreground voxels with a background face-neighbour) is exactly 0.
    assert sdf[3, 5, 5] == 0 and sdf[7, 7, 7] == 0 and sdf[5, 3, 6] == 0
    # Outside: norm(neg) = distance to the cube / max distance; the max is a crop corner, sqrt(3^2 * 3).
    far = math.sqrt(27)
    assert sdf[0, 0, 0] == 1.0 and sdf[10, 10, 10] == 1.0
    assert sdf[5, 5, 0] == pytest.approx(3 / far)
    assert sdf[2, 5, 5] == pytest.approx(1 / far)
    fg = cube_mask()[0].astype(bool)
    assert (sdf[~fg] > 0).all()
    assert (sdf[fg] <= 0).all()
    assert sdf.min() == -1.0 and sdf.max() == 1.0


def test_patch_edges_are_not_boundaries():
    """A half-space touching the crop edge: only the face towards the background is boundary (reflect mode)."""
    m = np.zeros((1, 8, 8, 8), np.uint8)
    m[0, :4] = 1
    sdf = compute_sdf(m)[0]
    assert (sdf[3] == 0).all()  # the inner boundary plane
    assert (sdf[0] == -1.0).all()  # deepest: 4 voxels from the background, on the crop's own edge
    assert sdf[1, 0, 0] == pytest.approx(-0.75)
    assert (sdf[7] == 1.0).all()


def test_empty_and_full_crops():
    empty = np.zeros((2, 6, 6, 4), np.int64)
    full = np.ones((1, 6, 6, 4), np.int64)
    assert np.array_equal(compute_sdf(empty), np.zeros((2, 6, 6, 4), np.float32))
    # Documented choice: a crop wholly inside the object is -1 everywhere (the reference would give NaN).
    assert np.array_equal(compute_sdf(full), np.full((1, 6, 6, 4), -1.0, np.float32))
    mixed = np.concatenate([empty[:1], full, cube_mask()[:, :6, :6, :4].astype(np.int64)])
    out = compute_sdf(mixed)
    assert np.isfinite(out).all() and out.shape == mixed.shape


def random_masks(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    masks = []
    for _ in range(n):
        shape = tuple(int(s) for s in rng.integers(3, 16, 3))
        smooth = ndimage.gaussian_filter(rng.random(shape), rng.uniform(0.5, 2.0))
        masks.append(smooth > np.quantile(smooth, rng.uniform(0.3, 0.97)))
    return masks


def test_fast_path_is_bit_identical_to_the_definition():
    rng = np.random.default_rng(0)
    masks = random_masks(rng, 150)
    masks.append(np.pad(np.ones((3, 3, 3), bool), ((0, 5), (2, 2), (0, 0))))  # touches three crop faces
    for m in masks:
        assert np.array_equal(sdf_fast(m), sdf_reference(m))


def test_batch_targets_equal_compute_sdf():
    rng = np.random.default_rng(1)
    y = np.stack([m[:8, :8, :8] for m in random_masks(rng, 40) if min(m.shape) >= 8][:3]).astype(np.int64)
    for cls in (DCT, SASSnet):
        out = cls.batch_targets(y)
        assert set(out) == {"sdf"}
        assert np.array_equal(out["sdf"], compute_sdf(y))
        assert np.array_equal(out["sdf"], compute_sdf_reference(y))


def test_loader_workers_produce_the_direct_sdf():
    """Batches built in two worker processes carry exactly the SDF of their own label crops."""
    rng = np.random.default_rng(2)
    vols = []
    for i in range(4):
        label = (ndimage.gaussian_filter(rng.random((24, 20, 18)), 2.0) > 0.5).astype(np.uint8)
        vols.append(Volume(f"c{i}", rng.normal(size=label.shape).astype(np.float32), label))
    batches = TwoStreamBatches(vols, vols, 2, 2, (16, 16, 16), seed=3, targets_fn=DCT.batch_targets, length=6)
    loader = DataLoader(batches, batch_size=None, sampler=range(6), num_workers=2, collate_fn=to_tensors)
    n = 0
    for arrays in loader:
        y_l = arrays["y_l"].numpy()
        assert np.array_equal(arrays["extra_sdf"].numpy(), compute_sdf_reference(y_l))
        n += 1
    assert n == 6
