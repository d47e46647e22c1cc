"""UniMatch 3D: masked Dice, the loss combination, the feature-perturbation network, the owned random stream."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from sslbench.methods.algorithms.unimatch import UniMatch, UniMatchConfig, masked_dice_all_classes
from sslbench.methods.base import Batch, MethodContext
from sslbench.methods.networks.vnet import VNet
from sslbench.methods.networks.vnet_fp import VNetFP
from sslbench.methods.registry import list_methods

PATCH = (16, 16, 16)


def make_batch() -> Batch:
    g = torch.Generator().manual_seed(0)
    y_l = torch.zeros(2, *PATCH, dtype=torch.long)
    y_l[:, 4:12, 4:12, 4:12] = 1
    x_l = torch.randn(2, 1, *PATCH, generator=g) + 2.0 * y_l[:, None]
    return Batch(x_l, y_l, torch.randn(2, 1, *PATCH, generator=g))


def build(**overrides) -> UniMatch:
    torch.manual_seed(0)
    cfg = dataclasses.replace(UniMatchConfig(), **overrides)
    return UniMatch(cfg, MethodContext(n_filters=2, patch=PATCH, n_labeled=2, n_unlabeled=2))


def test_masked_dice_matches_hand_computation():
    # 1 sample, 4 voxels; foreground probabilities, pseudo labels, kept voxels
    p_fg = torch.tensor([0.9, 0.2, 0.6, 0.7])
    target = torch.tensor([1, 0, 1, 0])
    keep = torch.tensor([1.0, 1.0, 0.0, 1.0])
    prob = torch.stack([1 - p_fg, p_fg]).reshape(1, 2, 4)
    s = 1e-5
    kept = [0, 1, 3]
    dice = []
    for c, pc in ((0, 1 - p_fg), (1, p_fg)):
        t = (target == c).float()
        inter = sum(float(pc[i] * t[i]) for i in kept)
        den = sum(float(pc[i] ** 2) for i in kept) + sum(float(t[i] ** 2) for i in kept)
        dice.append(1 - (2 * inter + s) / (den + s))
    got = masked_dice_all_classes(prob, target.reshape(1, 4), keep.reshape(1, 4))
    assert float(got) == pytest.approx(sum(dice) / 2, rel=1e-6)
    # Nothing kept: no loss and no gradient (the reason for contract_config).
    prob.requires_grad_(True)
    none = masked_dice_all_classes(prob, target.reshape(1, 4), torch.zeros(1, 4))
    none.backward()
    assert float(none.detach()) == 0.0 and float(prob.grad.abs().sum()) == 0.0


def test_vnet_fp_is_a_vnet_and_perturbs_only_in_training():
    torch.manual_seed(0)
    net = VNetFP(1, 2, 2, "batchnorm", 0.5)
    plain = VNet(1, 2, 2, "batchnorm", 0.5)
    plain.load_state_dict(net.state_dict())  # same module names
    net.eval()
    plain.eval()
    x = torch.randn(2, 1, *PATCH)
    torch.testing.assert_close(net(x), plain(x))
    clean, fp = net(x, need_fp=True)
    torch.testing.assert_close(clean, fp)  # no dropout in eval mode
    net.train()
    clean, fp = net(x, need_fp=True)
    assert clean.shape == fp.shape == (2, 2, *PATCH) and not torch.allclose(clean, fp)


def test_loss_is_the_papers_combination():
    method = build(conf_thresh=0.0)
    method.train()
    out = method.train_step(make_batch(), 5, 10)
    loss_u = 0.25 * 2 * out["loss_s"] + 0.5 * out["loss_fp"]
    torch.testing.assert_close(out["loss_unsup"], loss_u)
    torch.testing.assert_close(out["loss"], (out["loss_x"] + loss_u) / 2)
    assert float(out["mask_ratio"]) == 1.0


def test_random_stream_is_seeded_saved_and_restored():
    a, b = build(), build()
    batch = make_batch()
    g_a, g_b = a.step_generator(torch.device("cpu")), b.step_generator(torch.device("cpu"))
    torch.testing.assert_close(a.strong_view(batch.x_u, g_a), b.strong_view(batch.x_u, g_b))
    # The generator state travels in the state dict: a copy loaded from it draws what the original draws next.
    state = a.state_dict()
    assert "_extra_state" in state
    expected = torch.rand(5, generator=a.rng)
    c = build()
    torch.rand(17, generator=c.rng)  # move c's stream elsewhere first
    c.load_state_dict(state)
    torch.testing.assert_close(torch.rand(5, generator=c.rng), expected)


def test_strong_views_differ_from_each_other_and_from_the_weak_view():
    method = build(jitter_p=1.0, blur_p=1.0)
    x_u = make_batch().x_u
    g = method.step_generator(torch.device("cpu"))
    s1, s2 = method.strong_view(x_u, g), method.strong_view(x_u, g)
    assert not torch.allclose(s1, x_u) and not torch.allclose(s1, s2)


def test_rejects_bad_threshold():
    with pytest.raises(ValueError, match="conf_thresh"):
        UniMatchConfig(conf_thresh=1.5)


def test_unimatch_without_confident_voxels_has_no_unlabeled_gradient():
    """Why the override exists: when no voxel passes the threshold the unlabeled loss is exactly 0 (here forced
    with threshold 1; at 0.95 an untrained network is in that state or close to it, depending on its init)."""
    info = next(i for i in list_methods() if i.name == "unimatch")
    torch.manual_seed(0)
    cfg = dataclasses.replace(info.cls.Config(), conf_thresh=1.0)
    method = info.cls(cfg, MethodContext(n_filters=2, patch=PATCH, n_labeled=2, n_unlabeled=2))
    method.train()
    out = method.train_step(make_batch(), 9, 10)
    assert float(out["loss_unsup"].detach()) == 0.0 and float(out["mask_ratio"]) == 0.0
