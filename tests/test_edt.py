"""The torch EDT and SDF (methods/edt.py) against their oracles, SciPy's EDT and methods/sdf.py, bit for bit."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import SHARED_DATA
from scipy import ndimage

from sslbench.methods.edt import edt, inner_boundary, sdf_torch
from sslbench.methods.sdf import compute_sdf, sdf_reference

SPACINGS = [(1.0, 1.0, 1.0), (0.625, 0.625, 1.25), (2.0, 1.0, 0.5)]


def shared_data() -> Path:
    return SHARED_DATA


def blob(shape: tuple[int, ...], fraction: float, seed: int, sigma: float = 1.5) -> np.ndarray:
    """A smooth random mask with about `fraction` of its voxels inside."""
    smooth = ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), sigma)
    return smooth > np.quantile(smooth, 1 - fraction)


def _cases() -> dict[str, np.ndarray]:
    s = (9, 11, 7)
    c: dict[str, np.ndarray] = {"empty": np.zeros(s, bool), "full": np.ones(s, bool)}
    one = np.zeros(s, bool)
    one[4, 5, 3] = True
    c["single voxel"] = one
    corner = np.zeros(s, bool)
    corner[-1, -1, -1] = True
    c["single voxel at a corner"] = corner
    c["single zero voxel at a corner"] = ~corner  # every axis-0 line but one has no zero: inf propagation
    c["single zero voxel in the middle"] = ~one
    for axis in range(3):
        plate = np.zeros(s, bool)
        plate[(slice(None),) * axis + (slice(2, 4),)] = True
        c[f"plate across axis {axis}"] = plate
        line = np.zeros(s, bool)
        idx = [3, 4, 2]
        idx[axis] = slice(None)
        line[tuple(idx)] = True
        c[f"line along axis {axis}"] = line
        c[f"all but a plate across axis {axis}"] = ~plate
    for frac in (0.05, 0.3, 0.6, 0.95):
        c[f"blob {frac}"] = blob(s, frac, seed=int(frac * 100))
    c["noise 0.5"] = np.random.default_rng(1).random(s) < 0.5
    c["blob (5,17,9)"] = blob((5, 17, 9), 0.4, seed=2)
    c["blob (1,8,8)"] = blob((1, 8, 8), 0.5, seed=3)
    c["blob (8,1,8)"] = blob((8, 1, 8), 0.5, seed=4)
    c["blob (8,8,1)"] = blob((8, 8, 1), 0.5, seed=5)
    c["one voxel (1,1,1)"] = np.ones((1, 1, 1), bool)
    c["full (1,8,8)"] = np.ones((1, 8, 8), bool)
    long = np.ones((3, 4, 40), bool)  # the only zero is 39 voxels away along the last axis
    long[0, 0, 0] = False
    c["far zero along the last axis"] = long
    c["blob (24,20,16)"] = blob((24, 20, 16), 0.15, seed=6, sigma=2.5)
    return c


CASES = _cases()


def scipy_edt(mask: np.ndarray, spacing) -> np.ndarray:
    return ndimage.distance_transform_edt(mask, sampling=spacing)


@pytest.mark.parametrize("spacing", SPACINGS, ids=str)
@pytest.mark.parametrize("name", list(CASES))
def test_edt_equals_scipy(name, spacing):
    mask = CASES[name]
    got = edt(torch.from_numpy(mask), spacing)
    assert got.dtype == torch.float64 and got.shape == mask.shape
    expected = scipy_edt(mask, spacing)
    assert np.array_equal(got.numpy(), expected), f"max abs diff {np.abs(got.numpy() - expected).max()}"


def test_edt_by_hand():
    """Values worked out on paper, so the oracle itself is checked too."""
    m = np.ones((5, 1, 1), bool)
    m[0] = False
    assert edt(torch.from_numpy(m))[:, 0, 0].tolist() == [0, 1, 2, 3, 4]
    m = np.ones((3, 3, 3), bool)
    m[0, 0, 0] = False
    d = edt(torch.from_numpy(m), (2.0, 1.0, 0.5))
    assert d[2, 2, 2].item() == math.sqrt(16 + 4 + 1)
    assert d[0, 0, 1].item() == 0.5 and d[1, 0, 0].item() == 2.0


def test_edt_without_zero_voxels_is_scipys_virtual_voxel():
    """SciPy measures an all-nonzero crop from the virtual voxel (-1, 0, 0); we return the same on purpose."""
    for shape, spacing in (((2, 2, 1), (1.0, 1.0, 1.0)), ((3, 4, 2), (0.5, 2.0, 1.0))):
        mask = np.ones(shape, bool)
        i, j, k = np.indices(shape)
        by_hand = np.sqrt(((i + 1) * spacing[0]) ** 2 + (j * spacing[1]) ** 2 + (k * spacing[2]) ** 2)
        assert np.array_equal(scipy_edt(mask, spacing), by_hand)  # the documented SciPy behaviour
        assert np.array_equal(edt(torch.from_numpy(mask), spacing).numpy(), by_hand)
    assert edt(torch.ones(2, 2, 1, dtype=torch.bool)).flatten().tolist() == [1, math.sqrt(2), 2, math.sqrt(5)]
    assert not edt(torch.zeros(3, 2, 4, dtype=torch.bool)).any()


def test_edt_batched_crops_are_independent():
    names = ["empty", "full", "blob 0.3", "single voxel", "single zero voxel at a corner", "noise 0.5"]
    masks = np.stack([CASES[n] for n in names])
    for spacing in SPACINGS:
        got = edt(torch.from_numpy(masks), spacing).numpy()
        for b, mask in enumerate(masks):
            assert np.array_equal(got[b], scipy_edt(mask, spacing)), names[b]


def test_edt_random_masks_many_shapes():
    rng = np.random.default_rng(7)
    for i in range(40):
        shape = tuple(int(v) for v in rng.integers(1, 14, 3))
        mask = blob(shape, rng.uniform(0.02, 0.98), seed=100 + i, sigma=rng.uniform(0.4, 2.0))
        spacing = SPACINGS[i % 3]
        assert np.array_equal(edt(torch.from_numpy(mask), spacing).numpy(), scipy_edt(mask, spacing)), shape


def test_edt_non_dyadic_spacing():
    """Not covered by the exactness argument (rounded products); equal on these masks all the same."""
    for i, name in enumerate(["blob 0.3", "blob (5,17,9)", "single zero voxel in the middle"]):
        spacing = (0.7, 1.1, 0.3) if i % 2 else (0.9, 0.9, 2.5)
        got = edt(torch.from_numpy(CASES[name]), spacing).numpy()
        np.testing.assert_allclose(got, scipy_edt(CASES[name], spacing), rtol=4e-16, atol=0)


def test_edt_input_checks():
    with pytest.raises(ValueError, match="mask"):
        edt(torch.zeros(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="spacing"):
        edt(torch.zeros(4, 4, 4, dtype=torch.bool), (1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        edt(torch.zeros(4, 4, 4, dtype=torch.bool), (1.0, 0.0, 1.0))
    assert edt(torch.zeros(0, 4, 4, 4, dtype=torch.bool)).shape == (0, 4, 4, 4)


def test_edt_accepts_integer_labels():
    mask = CASES["blob 0.6"]
    assert torch.equal(edt(torch.from_numpy(mask.astype(np.int64) * 3)), edt(torch.from_numpy(mask)))


@pytest.mark.parametrize("name", list(CASES))
def test_sdf_equals_reference(name):
    mask = CASES[name]
    got = sdf_torch(torch.from_numpy(mask)[None], dtype=torch.float64)[0].numpy()
    expected = sdf_reference(mask)
    assert np.array_equal(got, expected), f"max abs diff {np.abs(got - expected).max()}"
    # The default float32 output is the loader's target (compute_sdf), cast the same way.
    assert np.array_equal(sdf_torch(torch.from_numpy(mask)[None]).numpy(), compute_sdf(mask[None]))


def test_sdf_batch_with_degenerate_crops():
    names = [
        "empty",
        "blob 0.3",
        "full",
        "single voxel",
        "plate across axis 2",
        "all but a plate across axis 1",
    ]
    masks = np.stack([CASES[n] for n in names]).astype(np.uint8)
    got = sdf_torch(torch.from_numpy(masks))
    assert got.dtype == torch.float32
    assert np.array_equal(got.numpy(), compute_sdf(masks))
    assert (got[0] == 0).all() and (got[2] == -1).all()


def test_inner_boundary_equals_skimage():
    from skimage.segmentation import find_boundaries

    for name in ("blob 0.3", "noise 0.5", "full", "blob (1,8,8)", "plate across axis 0"):
        mask = CASES[name]
        got = inner_boundary(torch.from_numpy(mask)[None])[0].numpy()
        assert np.array_equal(got, find_boundaries(mask, mode="inner")), name
    # Face connectivity: a diagonal (edge or corner) background neighbour does not make a boundary.
    m = np.ones((3, 3, 3), bool)
    m[0, 0, 0] = False
    b = inner_boundary(torch.from_numpy(m)[None])[0]
    assert b.sum() == 3 and b[1, 0, 0] and b[0, 1, 0] and b[0, 0, 1] and not b[1, 1, 0]


def test_sdf_input_checks():
    with pytest.raises(ValueError, match="B, W, H, D"):
        sdf_torch(torch.zeros(4, 4, 4))
    assert sdf_torch(torch.zeros(0, 4, 4, 4)).shape == (0, 4, 4, 4)


def _real_labels(n: int) -> list[np.ndarray]:
    root = shared_data() / "la-half"
    if not (root / "train.list").is_file():
        pytest.skip(f"{root} not available")
    ids = (root / "train.list").read_text().split()[:n]
    labels = []
    for case in ids:
        with h5py.File(root / "2018LA_Seg_Training Set" / case / "mri_norm2.h5", "r") as f:
            labels.append(f["label"][:])
    return labels


def test_sdf_equals_reference_on_real_label_crops():
    """Half-resolution LA labels: whole volumes and random 40x40x32 crops (some wholly outside the atrium)."""
    rng = np.random.default_rng(0)
    for label in _real_labels(3):
        assert np.array_equal(
            sdf_torch(torch.from_numpy(label)[None], torch.float64)[0].numpy(), sdf_reference(label)
        )
        crops = []
        for _ in range(4):
            start = [int(rng.integers(0, s - p + 1)) for s, p in zip(label.shape, (40, 40, 32), strict=True)]
            crops.append(label[tuple(slice(a, a + p) for a, p in zip(start, (40, 40, 32), strict=True))])
        crops.append(np.zeros_like(crops[0]))
        crops = np.stack(crops)
        assert np.array_equal(sdf_torch(torch.from_numpy(crops)).numpy(), compute_sdf(crops))
        spacing = (1.25, 1.25, 1.25)
        assert np.array_equal(edt(torch.from_numpy(label), spacing).numpy(), scipy_edt(label, spacing))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu_oracles():
    names = ["empty", "full", "blob 0.3", "blob (5,17,9)", "single zero voxel at a corner", "noise 0.5"]
    for name in names:
        mask = CASES[name]
        for spacing in SPACINGS:
            got = edt(torch.from_numpy(mask).cuda(), spacing)
            assert got.device.type == "cuda"
            assert np.array_equal(got.cpu().numpy(), scipy_edt(mask, spacing)), (name, spacing)
        got = sdf_torch(torch.from_numpy(mask)[None].cuda(), torch.float64)
        assert np.array_equal(got[0].cpu().numpy(), sdf_reference(mask)), name
    masks = np.stack([CASES[n] for n in ("empty", "blob 0.3", "full", "blob 0.6")])
    got = sdf_torch(torch.from_numpy(masks).cuda())
    assert got.device.type == "cuda" and np.array_equal(got.cpu().numpy(), compute_sdf(masks))
