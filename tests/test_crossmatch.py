"""CrossMatch: the distillation targets and loss by hand, the threshold, the perturbed streams, the recipe."""

from __future__ import annotations

import math

import pytest
import torch

from sslbench.benchmark.config import build_config
from sslbench.methods.algorithms.crossmatch import (
    CrossMatch,
    CrossMatchConfig,
    bias_field,
    confidence_threshold,
    distillation_loss,
    masked_dice_fg,
    mixed_target,
)
from sslbench.methods.base import Batch, MethodContext
from sslbench.methods.networks.vnet_multi_fp import VNetMultiFP

PATCH = (16, 16, 16)


def hand_dice(p, g, keep, e=1e-5):
    p, g = [a for a, k in zip(p, keep, strict=True) if k], [b for b, k in zip(g, keep, strict=True) if k]
    inter = sum(a * b for a, b in zip(p, g, strict=True))
    return 1 - (2 * inter + e) / (sum(a * a for a in p) + sum(b * b for b in g) + e)


def test_masked_dice_counts_only_the_kept_voxels():
    p = torch.tensor([0.9, 0.2, 0.7, 0.4], dtype=torch.float64)
    y = torch.tensor([1, 0, 0, 1])
    keep = torch.tensor([1.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    assert float(masked_dice_fg(p, y, keep)) == pytest.approx(hand_dice(p.tolist(), y.tolist(), [1, 1, 0, 1]))


def test_mixed_target_takes_the_partners_label_and_confidence_inside_the_box():
    label = torch.tensor([[0, 1, 1, 0], [1, 1, 0, 0]])
    conf = torch.tensor([[0.9, 0.6, 0.8, 0.5], [0.7, 0.95, 0.55, 0.99]])
    box = torch.tensor([[0, 0, 1, 1], [1, 0, 0, 0]])
    partner = torch.tensor([1, 0])
    mixed, keep = mixed_target(label, conf, partner, box, tau=0.6)
    assert mixed.tolist() == [[0, 1, 0, 0], [0, 1, 0, 0]]
    # confidences after mixing: [0.9, 0.6, 0.55, 0.99], [0.9, 0.95, 0.55, 0.99]; kept where >= 0.6
    assert keep.tolist() == [[1, 1, 0, 1], [1, 1, 0, 1]]


def test_distillation_loss_matches_hand_computation():
    # One crop of 4 voxels; foreground probabilities of the weak/strong-dropout classifiers on u and on s2.
    fp_u = ([0.8, 0.3, 0.6, 0.1], [0.7, 0.4, 0.5, 0.2])
    fp_s2 = ([0.9, 0.1, 0.4, 0.3], [0.6, 0.2, 0.7, 0.35])
    t_u = ([1, 0, 1, 0], [1, 1, 0, 1])  # (label, keep) from the clean classifier on u
    t_s2 = ([1, 0, 0, 0], [1, 1, 1, 0])  # ... CutMix-ed like s2
    t_self = (([1, 0, 1, 0], [1, 0, 1, 1]), ([0, 0, 1, 0], [1, 1, 1, 1]))  # each fp classifier's own, mixed
    eta = 0.3
    clean = [hand_dice(p, *t_u) for p in fp_u] + [hand_dice(p, *t_s2) for p in fp_s2]
    own = [hand_dice(p, *t) for p, t in zip(fp_s2, t_self, strict=True)]
    expected = (1 - eta) * sum(clean) / 4 + eta * sum(own) / 2

    def f(v):
        return torch.tensor(v, dtype=torch.float64)

    def pair(t):
        return torch.tensor(t[0]), f(t[1])

    got = distillation_loss(
        tuple(f(p) for p in fp_u),
        tuple(f(p) for p in fp_s2),
        pair(t_u),
        pair(t_s2),
        tuple(pair(t) for t in t_self),
        eta,
    )
    assert float(got) == pytest.approx(expected, rel=1e-10)


def test_threshold_is_ln2_times_the_ramped_confidence():
    assert confidence_threshold(0.75, 0, 17000) == pytest.approx(
        0.75 * math.log(2) + 0.25 * math.log(2) * math.exp(-5)
    )
    assert confidence_threshold(0.75, 17000, 17000) == pytest.approx(math.log(2))
    assert confidence_threshold(0.75, 8500, 17000) == pytest.approx(
        math.log(2) * (0.75 + 0.25 * math.exp(-5 * 0.25))
    )


def test_perturbed_streams_cover_only_the_unlabeled_part_and_vanish_in_eval():
    torch.manual_seed(0)
    net = VNetMultiFP(1, 2, 2, "batchnorm", 0.5, fp_rates=(0.25, 0.75))
    x = torch.randn(4, 1, *PATCH)
    clean, fps = net(x, fp_from=1)
    assert clean.shape == (4, 2, *PATCH) and [f.shape for f in fps] == [(3, 2, *PATCH)] * 2
    assert not torch.allclose(fps[0], fps[1])
    net.eval()
    clean, fps = net(x, fp_from=1)
    torch.testing.assert_close(fps[0], clean[1:])
    torch.testing.assert_close(net(x), clean)


def test_bias_field_is_smooth_positive_and_multiplicative():
    x = torch.ones(2, 1, 8, 8, 8)
    out = bias_field(x, torch.Generator().manual_seed(0), 0.5, 3)
    assert out.shape == x.shape and bool((out > 0).all())
    assert not torch.allclose(out[0], out[1])  # per-sample coefficients
    # Order 0: a constant field exp(a) with |a| <= 0.5.
    const = bias_field(x, torch.Generator().manual_seed(1), 0.5, 0)
    assert float(const[0].std()) < 1e-6 and math.exp(-0.5) <= float(const[0, 0, 0, 0, 0]) <= math.exp(0.5)


def test_train_step_combines_the_terms_as_the_reference():
    torch.manual_seed(0)
    method = CrossMatch(CrossMatchConfig(conf_thresh=0.0), MethodContext(n_filters=2, patch=PATCH))
    g = torch.Generator().manual_seed(0)
    y_l = torch.zeros(2, *PATCH, dtype=torch.long)
    y_l[:, 4:12, 4:12, 4:12] = 1
    batch = Batch(torch.randn(2, 1, *PATCH, generator=g), y_l, torch.randn(2, 1, *PATCH, generator=g))
    out = method.train_step(batch, 5, 10)
    total = 0.5 * (out["loss_x"] + 0.25 * 2 * out["loss_s"] + out["loss_kd"])
    torch.testing.assert_close(out["loss"], total)
    torch.testing.assert_close(out["loss_unsup"], 0.5 * out["loss_s"] + out["loss_kd"])
    assert float(out["w_unsup"]) == 0.5


def test_published_recipe_is_adamw():
    cfg = build_config("crossmatch", "8/72", 1337, "paper", recipe="published")
    assert cfg.train.optimizer == "adamw"
    assert (cfg.train.lr, cfg.train.iterations, cfg.train.lr_policy) == (0.001, 14000, "poly")
    assert build_config("crossmatch", "8/72", 1337, "paper").train.optimizer == "sgd"
