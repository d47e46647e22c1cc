"""URPC: the pyramid losses against a hand computation, the two multi-scale backbones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sslbench.methods.algorithms.urpc import (
    URPC,
    URPCConfig,
    pyramid_supervised_loss,
    rectified_pyramid_consistency,
)
from sslbench.methods.base import Batch, MethodContext
from sslbench.methods.networks.unet3d_dv import UNet3DDeepSupervision
from sslbench.methods.networks.vnet_pyramid import VNetPyramid

# Foreground probability of each scale at 3 voxels of one unlabeled crop: a disagreeing voxel, an agreeing one,
# and a voxel where one scale is confidently wrong.
P_FG = np.array(
    [
        [0.9, 0.2, 0.99],
        [0.7, 0.2, 0.95],
        [0.5, 0.2, 0.97],
        [0.3, 0.2, 0.01],
    ]
)


def logits_from_probs(p_fg: np.ndarray) -> list[torch.Tensor]:
    """Two-class logits (1, 2, 3, 1, 1) whose softmax is [1 - p, p] at each voxel, one tensor per scale."""
    out = []
    for p in p_fg:
        probs = np.stack([1 - p, p])  # (2, 3)
        out.append(torch.tensor(np.log(probs), dtype=torch.float64).reshape(1, 2, 3, 1, 1))
    return out


def hand_consistency(p_fg: np.ndarray) -> float:
    probs = np.stack([1 - p_fg, p_fg], axis=1)  # (scale, class, voxel)
    mean = probs.mean(axis=0)
    total = 0.0
    for p in probs:
        kl = (mean * (np.log(mean) - np.log(p))).sum(axis=0)  # (voxel,)
        weight = np.exp(-kl)
        total += ((mean - p) ** 2 * weight).mean() / (weight.mean() + 1e-8) + kl.mean()
    return total / len(probs)


def test_rectified_consistency_matches_hand_computation():
    got = rectified_pyramid_consistency(logits_from_probs(P_FG))
    assert float(got) == pytest.approx(hand_consistency(P_FG), rel=1e-10)
    # Spot-check the hand formula itself on the agreeing voxel: KL = 0, weight 1, no squared difference.
    agree = np.repeat(P_FG[:, 1:2], 3, axis=1)
    assert hand_consistency(agree) == pytest.approx(0.0, abs=1e-12)
    assert float(rectified_pyramid_consistency(logits_from_probs(agree))) == pytest.approx(0.0, abs=1e-12)


def test_rectified_consistency_gradient_reaches_every_scale_and_downweights_disagreement():
    logits = [t.clone().requires_grad_(True) for t in logits_from_probs(P_FG)]
    rectified_pyramid_consistency(logits).backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in logits)
    # The confidently wrong scale-4 voxel has the largest KL, hence the smallest weight exp(-D).
    probs = np.stack([1 - P_FG, P_FG], axis=1)
    mean = probs.mean(axis=0)
    kl4 = (mean * (np.log(mean) - np.log(probs[3]))).sum(axis=0)
    assert np.argmax(kl4) == 2


def test_supervised_loss_averages_ce_and_all_class_dice_over_scales():
    logits = logits_from_probs(P_FG)
    y = torch.tensor([1, 0, 1]).reshape(1, 3, 1, 1)
    probs = np.stack([1 - P_FG, P_FG], axis=1)[:, :, :]  # (scale, class, voxel)
    onehot = np.stack([1 - y.numpy().ravel(), y.numpy().ravel()])
    total = 0.0
    for p in probs:
        ce = -np.log(p[y.numpy().ravel(), np.arange(3)]).mean()
        dice = np.mean(
            [
                1 - (2 * (p[c] * onehot[c]).sum() + 1e-5) / ((p[c] ** 2).sum() + onehot[c].sum() + 1e-5)
                for c in range(2)
            ]
        )
        total += ce + dice
    assert float(pyramid_supervised_loss(logits, y)) == pytest.approx(total / 8, rel=1e-9)


@pytest.mark.parametrize("backbone", ["unet", "vnet"])
@pytest.mark.parametrize("shape", [(2, 1, 32, 32, 16), (1, 1, 16, 48, 32)])
def test_backbones_return_four_full_resolution_maps(backbone, shape):
    net = UNet3DDeepSupervision(1, 2, n_filters=2) if backbone == "unet" else VNetPyramid(1, 2, n_filters=2)
    with torch.no_grad():
        outs = net.eval()(torch.randn(shape))
    assert len(outs) == 4
    for out in outs:
        assert out.shape == (shape[0], 2, *shape[2:])
    assert not torch.equal(outs[0], outs[3])  # different heads


def test_unet_widths_and_parameter_count():
    def block(ci, co):
        return 27 * ci * co + co + 27 * co * co + co

    w = [16, 32, 64, 128, 256]
    expected = block(1, 16) + block(16, 32) + block(32, 64) + block(64, 128) + block(128, 256)
    expected += block(128 + 256, 128) + block(64 + 128, 64) + block(32 + 64, 32) + block(16 + 32, 16)
    expected += sum(c * 2 + 2 for c in w[:4])  # four 1x1x1 heads
    net = UNet3DDeepSupervision(1, 2, n_filters=16)
    assert sum(p.numel() for p in net.parameters()) == expected
    assert UNet3DDeepSupervision(1, 2, n_filters=4).center[0].out_channels == 64  # quick preset: widths / 4
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in net.modules())


@pytest.mark.parametrize("backbone", ["unet", "vnet"])
def test_train_step_and_predict(backbone):
    torch.manual_seed(0)
    method = URPC(URPCConfig(backbone=backbone), MethodContext(n_filters=2, patch=(16, 16, 16)))
    x = torch.randn(4, 1, 16, 16, 16)
    y = (x[:2, 0] > 0.5).long()
    out = method.train_step(Batch(x[:2], y, x[2:]), step=9, max_steps=10)
    assert torch.isfinite(out["loss"]) and out["loss_unsup"].requires_grad
    assert float(out["w_unsup"]) == pytest.approx(0.1 * np.exp(-5 * (1 - 9 / 40) ** 2))
    method.eval()
    prob = method.predict(x[:1])
    assert prob.shape == (1, 2, 16, 16, 16)
    assert torch.allclose(prob, torch.softmax(method.student(x[:1])[0], dim=1))


def test_unknown_backbone_is_one_clear_error():
    with pytest.raises(ValueError, match="urpc.backbone 'resnet'"):
        URPCConfig(backbone="resnet")
