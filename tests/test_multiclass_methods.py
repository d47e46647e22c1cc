"""C classes in the methods: each C-class form checked by hand, and each two-class path the binary one exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sslbench.methods.algorithms import bcp as bcp_mod
from sslbench.methods.algorithms import lrep as lrep_mod
from sslbench.methods.algorithms.caml import foreground_dice
from sslbench.methods.algorithms.crossmatch import labeled_dice, masked_dice, masked_dice_fg, probability_maps
from sslbench.methods.algorithms.lrep import corruptions as C
from sslbench.methods.algorithms.lrep.dae_training import DAEConfig, dae_loss, dice_score, train_dae
from sslbench.methods.algorithms.mcnet import supervised_dice
from sslbench.methods.base import MethodContext
from sslbench.methods.losses import (
    dice_loss_all_classes,
    dice_loss_fg,
    masked_dice_all_classes,
    masked_mean,
)
from sslbench.methods.mutual import binary_dice_loss
from sslbench.methods.ramps import sigmoid_rampup, uamt_threshold


def softmax_batch(n_classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities (2, C, 6, 6, 6) in float64 and integer labels holding every class."""
    g = torch.Generator().manual_seed(seed)
    prob = torch.softmax(torch.randn(2, n_classes, 6, 6, 6, generator=g, dtype=torch.float64), dim=1)
    y = torch.randint(0, n_classes, (2, 6, 6, 6), generator=g)
    return prob, y


def test_uamt_threshold_ramps_towards_ln_c_and_keeps_the_binary_float():
    for step in (0, 37, 100):
        binary = (0.75 + 0.25 * sigmoid_rampup(step, 100)) * math.log(2.0)  # the formula before C classes
        assert uamt_threshold(step, 100) == binary == uamt_threshold(step, 100, 2)
    assert uamt_threshold(0, 100, 3) == pytest.approx(
        0.75 * math.log(3.0) + 0.25 * math.exp(-5) * math.log(3.0)
    )
    assert uamt_threshold(100, 100, 3) == pytest.approx(math.log(3.0))


def test_mcnet_dice_is_the_3d_scripts_for_two_classes_and_the_2d_scripts_for_more():
    prob, y = softmax_batch(2)
    assert torch.equal(supervised_dice(prob, y), binary_dice_loss(prob[:, 1], y == 1))
    prob, y = softmax_batch(3)
    assert torch.equal(supervised_dice(prob, y), dice_loss_all_classes(prob, y))
    # The 2D script's Dice counts the background: a prediction right on classes 1, 2 but wrong where the
    # background is (there it says class 1) loses on classes 0 and 1 only.
    onehot = torch.nn.functional.one_hot(y, 3).movedim(-1, 1).double()
    wrong_bg = onehot.clone()
    wrong_bg[:, 0], wrong_bg[:, 1] = 0.0, onehot[:, 1] + onehot[:, 0]
    assert float(supervised_dice(onehot, y)) == pytest.approx(0.0, abs=1e-9)
    assert float(supervised_dice(wrong_bg, y)) > 0.1


def test_caml_dice_is_the_mean_foreground_dice():
    prob, y = softmax_batch(2)
    assert torch.equal(foreground_dice(prob, y), binary_dice_loss(prob[:, 1], y == 1))
    prob, y = softmax_batch(3)
    expected = (binary_dice_loss(prob[:, 1], y == 1) + binary_dice_loss(prob[:, 2], y == 2)) / 2
    torch.testing.assert_close(foreground_dice(prob, y), expected)


def test_crossmatch_dice_is_foreground_for_two_classes_and_every_class_for_more():
    g = torch.Generator().manual_seed(1)
    keep = (torch.rand(2, 6, 6, 6, generator=g) > 0.3).double()
    logits = torch.randn(2, 2, 6, 6, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (2, 6, 6, 6), generator=g)
    fg = probability_maps(logits)
    assert torch.equal(fg, torch.softmax(logits, dim=1)[:, 1])
    assert torch.equal(masked_dice(fg, y, keep), masked_dice_fg(fg, y, keep))
    assert torch.equal(labeled_dice(logits, y), dice_loss_fg(fg, y))
    logits = torch.randn(2, 3, 6, 6, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (2, 6, 6, 6), generator=g)
    prob = probability_maps(logits)
    assert prob.shape == (2, 3, 6, 6, 6)
    assert torch.equal(masked_dice(prob, y, keep), masked_dice_all_classes(prob, y, keep))
    assert torch.equal(labeled_dice(logits, y), dice_loss_all_classes(prob, y))


def bcp_method(n_classes: int) -> bcp_mod.BCP:
    from sslbench.methods.networks.vnet import VNet

    ctx = MethodContext(n_classes=n_classes, n_filters=2, patch=(16, 16, 16))
    state = VNet(1, n_classes, 2).state_dict()
    return bcp_mod.BCP(
        bcp_mod.BCPConfig(), MethodContext(**{**ctx.__dict__, "assets": {"bcp_stage1": state}})
    )


def test_bcp_pseudo_labels_keep_each_classs_largest_component():
    # Class 1: a big box and a stray voxel; class 2: a small box and a smaller one apart; background elsewhere.
    label = torch.zeros(1, 12, 12, 12, dtype=torch.long)
    label[0, 1:6, 1:6, 1:6] = 1
    label[0, 10, 10, 10] = 1
    label[0, 7:10, 1:4, 1:4] = 2
    label[0, 1:3, 9:11, 9:11] = 2
    logits = 5.0 * torch.nn.functional.one_hot(label, 3).movedim(-1, 1).float()
    q = bcp_method(3).pseudo_labels(logits)
    expected = label.clone()
    expected[0, 10, 10, 10] = 0
    expected[0, 1:3, 9:11, 9:11] = 0
    assert torch.equal(q, expected)


def test_bcp_two_class_pseudo_labels_threshold_the_foreground():
    # p_fg = 0.5 exactly: the binary script's threshold says foreground where an argmax would say background.
    logits = torch.zeros(1, 2, 4, 4, 4)
    logits[0, 1, :2] = 3.0
    q = bcp_method(2).pseudo_labels(logits)
    assert bool((q == 1).all())


def test_asset_keys_name_the_class_count_only_beyond_two():
    ctx = MethodContext(dataset_id="d", labeled_ids=("a",), iterations=10)
    ctx3 = MethodContext(n_classes=3, dataset_id="d", labeled_ids=("a",), iterations=10)
    for key_fn, cfg in ((bcp_mod.stage1_key, bcp_mod.BCPConfig()), (lrep_mod.dae_key, lrep_mod.LRepConfig())):
        assert "n_classes" not in key_fn(cfg, ctx)  # binary keys as before: cached assets stay valid
        assert key_fn(cfg, ctx3) == {**key_fn(cfg, ctx), "n_classes": 3}


def test_lrep_code_normalisation_keeps_the_authors_2_and_threshold_takes_c():
    g = torch.Generator().manual_seed(2)
    d = torch.rand(2, 3, 4, 4, 4, generator=g, dtype=torch.float64)
    m = torch.rand(2, 1, 4, 4, 4, generator=g, dtype=torch.float64)
    code = lrep_mod.weighted_consistency(d, m, lrep_mod.LRepConfig(normalisation="code"))
    torch.testing.assert_close(code, (m * d).sum() / (2 * m.sum()))
    threshold = lrep_mod.weighted_consistency(d, m, lrep_mod.LRepConfig(variant="threshold"))
    torch.testing.assert_close(threshold, (m * d).sum() / (3 * m.sum()))
    d2 = d[:, :2]
    assert torch.equal(
        lrep_mod.weighted_consistency(d2, m, lrep_mod.LRepConfig(normalisation="code")), masked_mean(d2, m)
    )


def three_class_slice() -> np.ndarray:
    """A 40x40 slice: a disk of class 1 with a disk of class 2 inside it, on background."""
    xs, ys = np.ogrid[:40, :40]
    sl = ((xs - 20) ** 2 + (ys - 20) ** 2 <= 15**2).astype(np.uint8)
    sl[(xs - 20) ** 2 + (ys - 20) ** 2 <= 6**2] = 2
    return sl


def test_grey_morphology_moves_class_boundaries_in_index_order():
    sl = three_class_slice()
    eroded = C.morphology(sl, np.random.default_rng(0), "erosion", 2)
    dilated = C.morphology(sl, np.random.default_rng(0), "dilation", 2)
    assert (eroded == 2).sum() < (sl == 2).sum() < (dilated == 2).sum()
    assert (eroded > 0).sum() < (sl > 0).sum() < (dilated > 0).sum()
    assert set(np.unique(eroded)) == set(np.unique(dilated)) == {0, 1, 2}


def test_added_shapes_take_foreground_classes_and_keep_the_binary_stream():
    empty = np.zeros((40, 40), np.uint8)
    painted = [C.add_shapes(empty, np.random.default_rng(s), n_classes=3) for s in range(8)]
    assert set().union(*(set(np.unique(p)) for p in painted)) == {0, 1, 2}
    for s in range(4):  # two classes: no extra draw, the same shapes as the binary call
        assert np.array_equal(
            C.add_shapes(empty, np.random.default_rng(s), n_classes=2),
            C.add_shapes(empty, np.random.default_rng(s)),
        )


def test_corrupting_a_three_class_map_keeps_its_classes_and_changes_both():
    vol = np.repeat(three_class_slice()[:, :, None], 8, axis=2)
    out = C.corrupt(vol, np.random.default_rng(5), C.CorruptionConfig(p=0.9, shapes=False), n_classes=3)
    assert out.dtype == vol.dtype and set(np.unique(out)) <= {0, 1, 2}
    changed = out != vol
    assert changed.any() and (vol[changed] == 1).any() and (vol[changed] == 2).any()


def test_dae_report_dice_is_the_mean_over_foreground_classes():
    target = np.array([0, 1, 1, 2, 2, 2])
    pred = np.array([0, 1, 0, 2, 2, 1])
    per_class = [2 * 1 / (2 + 2), 2 * 2 / (2 + 3)]
    assert dice_score(pred, target, 3) == pytest.approx(np.mean(per_class))
    assert dice_score(pred, target) == pytest.approx(2 * 4 / (4 + 5))  # two classes: foreground = any label


def test_dae_mse_dice_loss_keeps_the_binary_form():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 2, 4, 4, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (2, 4, 4, 4), generator=g)
    prob = torch.sigmoid(logits)
    onehot = torch.nn.functional.one_hot(y, 2).movedim(-1, 1).double()
    expected = 0.5 * (torch.nn.functional.mse_loss(prob, onehot) + dice_loss_fg(prob[:, 1], y))
    assert torch.equal(dae_loss(logits, y, "mse+dice"), expected)


def test_dae_trains_on_three_class_masks_with_one_input_and_c_outputs():
    vol = np.zeros((20, 20, 20), np.uint8)
    vol[4:16, 4:16, 4:16] = 1
    vol[8:12, 8:12, 8:12] = 2
    cfg = DAEConfig(iterations=2, halve_every=1, latent_dim=8, eval_samples=2)
    state, report = train_dae([vol, vol.copy()], cfg, (16, 16, 16), 2, "cpu", seed=0, n_classes=3)
    assert state["out_conv.weight"].shape[:2] == (3, 2)  # C sigmoid outputs
    assert state["encoder.stage1.0.weight"].shape[1] == 1  # one input channel: the class-index map
    assert 0.0 <= report["dice_corrupted_vs_clean"] <= 1.0 and report["n_masks"] == 2
