"""Sliding-window inference and per-case metrics: window positions, averaging, padding, batching, and medpy parity."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from medpy.metric import binary
from scipy import ndimage

from sslbench.benchmark.evaluation.metrics import case_metrics, hd95_asd
from sslbench.benchmark.evaluation.sliding_window import (
    evaluate_cases,
    sliding_window_probs,
    summarize_cases,
    window_grid,
    window_starts,
)
from sslbench.datasets.la import Volume


# --- window positions ---------------------------------------------------------------------------------------
def test_la_volume_gets_45_windows_with_end_aligned_last_ones():
    grid = window_grid((183, 140, 88), (112, 112, 80), 18, 4)
    assert len(grid) == 5 * 3 * 3 == 45
    assert window_starts(183, 112, 18) == [0, 18, 36, 54, 71]  # 71 = 183 - 112: the last one is end-aligned
    assert window_starts(140, 112, 18) == [0, 18, 28]
    assert window_starts(88, 80, 4) == [0, 4, 8]
    assert grid[0] == (0, 0, 0) and grid[1] == (0, 0, 4) and grid[-1] == (71, 28, 8)  # z fastest, x slowest


@pytest.mark.parametrize(
    "size,patch,stride,expected", [(80, 112, 18, [0]), (112, 112, 18, [0]), (113, 112, 18, [0, 1])]
)
def test_window_starts_small_and_equal_sides(size, patch, stride, expected):
    assert window_starts(size, patch, stride) == expected


# --- averaging, padding, batching ---------------------------------------------------------------------------
def _window_id_predict(x: torch.Tensor) -> torch.Tensor:
    """Class-1 probability = the window's x start / 10, read from an image that stores the x coordinate."""
    start = x[:, 0, 0, 0, 0].reshape(-1, 1, 1, 1) / 10.0
    p1 = start.expand(-1, *x.shape[2:])
    return torch.stack([1 - p1, p1], dim=1)


def test_probabilities_are_averaged_over_the_covering_windows():
    image = np.broadcast_to(np.arange(20, dtype=np.float32)[:, None, None], (20, 16, 16)).copy()
    probs = sliding_window_probs(_window_id_predict, image, (16, 16, 16), stride_xy=2, stride_z=2, sw_batch=2)
    # Windows start at x = 0, 2, 4, so their class-1 values are 0, 0.2 and 0.4. Hand-computed per x:
    expected = [0.0] * 2 + [0.1] * 2 + [0.2] * 12 + [0.3] * 2 + [0.4] * 2
    assert probs.shape == (2, 20, 16, 16)
    np.testing.assert_allclose(probs[1, :, 5, 7], expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-6)


@pytest.mark.parametrize("shape", [(10, 16, 16), (9, 16, 20), (16, 7, 3)])
def test_sides_smaller_than_the_patch_are_padded_then_unpadded(shape):
    rng = np.random.default_rng(0)
    image = rng.normal(size=shape).astype(np.float32)

    def elementwise(x: torch.Tensor) -> torch.Tensor:
        p1 = torch.sigmoid(x[:, 0])
        return torch.stack([1 - p1, p1], dim=1)

    probs = sliding_window_probs(elementwise, image, (16, 16, 16), 4, 4, sw_batch=3)
    assert probs.shape == (2, *shape)
    # Every voxel is seen by windows that all give sigmoid(value): the average is exactly that, at the right offset.
    np.testing.assert_allclose(probs[1], 1 / (1 + np.exp(-image)), rtol=1e-5, atol=1e-6)


def test_sw_batch_does_not_change_the_result():
    rng = np.random.default_rng(1)
    image = rng.normal(size=(41, 37, 29)).astype(np.float32)

    def nonlinear(x: torch.Tensor) -> torch.Tensor:
        p1 = torch.sigmoid(x[:, 0] * 3 + x[:, 0].mean(dim=(1, 2, 3), keepdim=True))  # depends on the window
        return torch.stack([1 - p1, p1], dim=1)

    one = sliding_window_probs(nonlinear, image, (16, 16, 16), 5, 3, sw_batch=1)
    eight = sliding_window_probs(nonlinear, image, (16, 16, 16), 5, 3, sw_batch=8)
    assert np.array_equal(one, eight)


def test_sw_batch_with_a_real_network_agrees():
    from sslbench.methods.networks.vnet import VNet

    torch.manual_seed(0)
    net = VNet(n_filters=2).eval()

    def predict(x):
        with torch.no_grad():
            return torch.softmax(net(x), dim=1)

    image = np.random.default_rng(2).normal(size=(24, 20, 18)).astype(np.float32)
    one = sliding_window_probs(predict, image, (16, 16, 16), 4, 2, sw_batch=1)
    many = sliding_window_probs(predict, image, (16, 16, 16), 4, 2, sw_batch=8)
    np.testing.assert_allclose(one, many, atol=1e-5)


# --- metrics: exact parity with medpy -----------------------------------------------------------------------
def _medpy(pred: np.ndarray, label: np.ndarray) -> tuple[float, float, float, float]:
    return binary.dc(pred, label), binary.jc(pred, label), binary.hd95(pred, label), binary.asd(pred, label)


def _blob(rng: np.random.Generator, shape, sigma: float, level: float) -> np.ndarray:
    return ndimage.gaussian_filter(rng.normal(size=shape), sigma) > level


def _cases():
    rng = np.random.default_rng(3)
    shape = (40, 36, 30)
    out = []
    for i in range(6):  # random, often multi-component, masks; some touch the volume's faces
        label = _blob(rng, shape, 3, 0.02 * i)
        pred = ndimage.binary_dilation(label, iterations=int(rng.integers(0, 3))) ^ _blob(rng, shape, 2, 0.25)
        out.append((f"random{i}", pred, label))
    cube = np.zeros(shape, bool)
    cube[5:15, 6:16, 7:17] = True
    out.append(("shifted cube", np.roll(cube, 3, axis=1), cube))
    out.append(("far blob", cube | np.pad(np.ones((2, 2, 2), bool), [(38, 0), (0, 34), (28, 0)]), cube))
    full = np.ones(shape, bool)
    out.append(("whole volume", full, cube))
    edge = np.zeros(shape, bool)
    edge[0:4, :, 25:] = True
    out.append(("touches faces", edge, np.roll(edge, 2, axis=0)))
    single = np.zeros(shape, bool)
    single[10, 10, 10] = True
    out.append(("single voxel", single, cube))
    return out


@pytest.mark.parametrize("name,pred,label", _cases(), ids=[c[0] for c in _cases()])
def test_metrics_equal_medpy_exactly(name, pred, label):
    assert pred.any() and label.any()
    row = case_metrics(pred, label, spacing=0.625)
    dc, jc, hd95, asd = _medpy(pred, label)
    assert (row["dice"], row["jaccard"], row["hd95_vox"], row["asd_vox"]) == (dc, jc, hd95, asd)
    assert row["hd95_mm"] == hd95 * 0.625 and not row["empty_pred"] and not row["empty_label"]
    # ASD is one-directional (pred -> label): the swapped call must match medpy's swapped call.
    assert hd95_asd(label, pred) == (binary.hd95(label, pred), binary.asd(label, pred))


def test_metrics_on_hand_computed_cases():
    a = np.zeros((10, 10, 10), bool)
    b = np.zeros_like(a)
    a[2, 2, 2] = True
    b[2, 2, 5] = True  # two single voxels 3 apart
    row = case_metrics(a, b, spacing=2.0)
    assert (row["dice"], row["jaccard"], row["hd95_vox"], row["asd_vox"], row["hd95_mm"]) == (0, 0, 3, 3, 6)
    inner = np.zeros_like(a)
    inner[2:4, 2:4, 2:4] = True
    outer = np.zeros_like(a)
    outer[2:4, 2:4, 2:6] = True
    row = case_metrics(inner, outer, spacing=1.0)
    assert row["dice"] == pytest.approx(2 * 8 / (8 + 16)) and row["jaccard"] == pytest.approx(0.5)
    assert row["asd_vox"] == 0.0  # every voxel of `inner` is on the surface of `outer`
    assert row["hd95_vox"] == pytest.approx(np.percentile([0] * 8 + [0] * 8 + [1] * 4 + [2] * 4, 95))
    same = case_metrics(outer, outer, 1.0)
    assert same["dice"] == 1.0 and same["hd95_vox"] == 0.0


def test_empty_prediction_policies():
    label = np.zeros((20, 30, 40), np.uint8)
    label[5:10, 5:10, 5:10] = 1
    empty = np.zeros_like(label)
    worst = case_metrics(empty, label, spacing=0.5, empty_policy="worst")
    diagonal = math.sqrt(20**2 + 30**2 + 40**2)
    assert worst["empty_pred"] and not worst["empty_label"]
    got = (worst["dice"], worst["jaccard"], worst["hd95_vox"], worst["asd_vox"])
    assert got == (0, 0, diagonal, diagonal)
    assert worst["hd95_mm"] == pytest.approx(diagonal * 0.5)
    legacy = case_metrics(empty, label, spacing=0.5, empty_policy="legacy-zero")
    assert legacy["empty_pred"] and (legacy["dice"], legacy["hd95_vox"], legacy["asd_vox"]) == (0, 0, 0)


def test_empty_label():
    pred = np.zeros((8, 8, 8), np.uint8)
    pred[1:3, 1:3, 1:3] = 1
    row = case_metrics(pred, np.zeros_like(pred), spacing=1.0)
    assert row["empty_label"] and not row["empty_pred"]
    assert row["dice"] == 0 and row["hd95_vox"] == math.sqrt(3 * 64)
    both = case_metrics(np.zeros_like(pred), np.zeros_like(pred), spacing=1.0)
    assert both["empty_pred"] and both["empty_label"] and both["dice"] == 1.0 and both["hd95_vox"] == 0.0


def _noisy_volumes(seed: int, noise: float, n: int = 3) -> list[Volume]:
    """Blob labels and images = label +- 1 plus Gaussian noise: `threshold` predicts them more or less well."""
    rng = np.random.default_rng(seed)
    vols = []
    for i in range(n):
        label = _blob(rng, (24, 20, 18), 2, 0.1).astype(np.uint8)
        image = (label * 2.0 - 1.0 + noise * rng.normal(size=label.shape)).astype(np.float32)
        vols.append(Volume(f"c{i}", image, label))
    return vols


def threshold(x: torch.Tensor) -> torch.Tensor:
    """A 'network': foreground where the image is positive."""
    p1 = (x[:, 0] > 0).float()
    return torch.stack([1 - p1, p1], dim=1)


def test_evaluate_cases_and_summary():
    vols = _noisy_volumes(4, 0.1)
    vols.append(Volume("dark", -np.ones((24, 20, 18), np.float32), vols[0].label))  # predicted empty

    eval_cfg = SimpleNamespace(stride_xy=8, stride_z=8, sw_batch=4, largest_cc=False, empty_policy="worst")
    cases = evaluate_cases(threshold, vols, (16, 16, 16), eval_cfg, spacing=1.0)
    assert list(cases["case"]) == ["c0", "c1", "c2", "dark"]
    assert (cases["dice"][:3] == 1.0).all() and (cases["hd95_vox"][:3] == 0.0).all()
    assert bool(cases["empty_pred"][3]) and cases["dice"][3] == 0.0
    summary = summarize_cases(cases)
    assert summary["n_cases"] == 4 and summary["n_empty_pred"] == 1 and summary["dice"] == pytest.approx(0.75)
    assert summary["eval_s_per_volume"] > 0 and summary["metric_s_per_volume"] > 0


# --- anisotropic spacing and several classes ----------------------------------------------------------------
ANISO = (0.7, 0.8, 2.5)


@pytest.mark.parametrize("name,pred,label", _cases()[:8], ids=[c[0] for c in _cases()[:8]])
def test_distances_in_mm_use_each_axis_spacing_as_medpy_does(name, pred, label):
    row = case_metrics(pred, label, spacing=ANISO)
    hd95 = binary.hd95(pred, label, voxelspacing=ANISO)
    asd = binary.asd(pred, label, voxelspacing=ANISO)
    assert row["hd95_mm"] == pytest.approx(hd95, rel=1e-12) and row["asd_mm"] == pytest.approx(asd, rel=1e-12)
    assert row["hd95_vox"] == binary.hd95(pred, label)  # the voxel columns stay in voxels
    # isotropic spacing as three equal numbers: exactly the one-number path (today's LA numbers)
    assert case_metrics(pred, label, spacing=(0.625,) * 3) == case_metrics(pred, label, spacing=0.625)


def test_empty_prediction_diagonal_in_mm_with_anisotropic_spacing():
    label = np.zeros((20, 30, 40), np.uint8)
    label[5:10, 5:10, 5:10] = 1
    row = case_metrics(np.zeros_like(label), label, spacing=ANISO)
    assert row["hd95_mm"] == pytest.approx(math.sqrt((20 * 0.7) ** 2 + (30 * 0.8) ** 2 + (40 * 2.5) ** 2))


def test_several_classes_are_scored_per_class_and_averaged_over_the_foreground():
    label = np.zeros((24, 24, 16), np.uint8)
    label[2:10, 2:10, 2:8] = 1
    label[14:20, 14:22, 6:12] = 2
    pred = label.copy()
    pred[14:20, 14:22, 6:12] = 0
    pred[15:21, 14:22, 6:12] = 2  # class 2 shifted by one voxel; class 1 perfect
    row = case_metrics(pred, label, spacing=ANISO, n_classes=3)
    c2 = case_metrics(pred == 2, label == 2, spacing=ANISO)
    assert row["dice_1"] == 1.0 and row["hd95_mm_1"] == 0.0
    assert row["dice_2"] == c2["dice"] and row["hd95_mm_2"] == c2["hd95_mm"] < 1.0
    assert row["dice"] == pytest.approx((1.0 + c2["dice"]) / 2)
    assert row["hd95_mm"] == pytest.approx(c2["hd95_mm"] / 2)
    assert not row["empty_pred"] and not row["empty_pred_2"]
    missing = case_metrics(np.where(pred == 2, 0, pred), label, spacing=1.0, n_classes=3)
    assert missing["empty_pred_2"] and not missing["empty_pred"] and missing["dice_2"] == 0.0
    # two classes: no per-class columns (binary outputs keep their columns)
    assert "dice_1" not in case_metrics(label > 0, label > 0, 1.0, n_classes=2)


def test_metric_pool_gives_the_same_rows():
    vols = _noisy_volumes(5, 0.8)

    def run(workers):
        cfg = SimpleNamespace(
            stride_xy=8,
            stride_z=8,
            sw_batch=4,
            largest_cc=False,
            empty_policy="worst",
            metric_workers=workers,
        )
        return evaluate_cases(threshold, vols, (16, 16, 16), cfg, spacing=ANISO).drop(
            columns=["infer_s", "metric_s"]
        )

    serial, pooled = run(0), run(2)
    assert serial["dice"].between(0.3, 0.99).all()  # imperfect predictions: the distances are not trivial
    pd.testing.assert_frame_equal(serial, pooled)
