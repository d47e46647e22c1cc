"""MC-Net+: sharpening and mutual consistency against hand computations, the three-decoder V-Net, predict."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sslbench.methods.algorithms.mcnet import MCNetConfig, MCNetPlus
from sslbench.methods.base import Batch, MethodContext
from sslbench.methods.mutual import binary_dice_loss, mutual_consistency, sharpen
from sslbench.methods.networks.vnet import Up
from sslbench.methods.networks.vnet_multi import InterpUp, VNetMultiDecoder

PATCH = (16, 16, 16)


@pytest.mark.parametrize(
    "p,expected",
    [
        (0.5, 0.5),  # the fixed point
        (0.6, 0.6**10 / (0.6**10 + 0.4**10)),  # = 0.98303...
        (0.4, 0.4**10 / (0.4**10 + 0.6**10)),
        (0.9, 0.9**10 / (0.9**10 + 0.1**10)),
        (0.0, 0.0),
        (1.0, 1.0),
    ],
)
def test_sharpen_at_temperature_0_1_matches_formula(p, expected):
    got = sharpen(torch.tensor([p], dtype=torch.float64), 0.1)
    assert float(got) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_sharpen_keeps_two_class_probabilities_summing_to_one():
    p = torch.rand(1000, dtype=torch.float64)
    s = sharpen(torch.stack([p, 1 - p]), 0.1)
    torch.testing.assert_close(s.sum(0), torch.ones_like(p))
    assert torch.all((s[0] - 0.5).abs() >= (p - 0.5).abs() - 1e-12)  # pushed away from 0.5


def probs_from_fg(p_fg: list[list[float]]) -> list[torch.Tensor]:
    """One 2-class probability map (1, 2, V, 1, 1) per decoder from foreground probabilities."""
    out = []
    for row in p_fg:
        p = torch.tensor(row, dtype=torch.float64)
        out.append(torch.stack([1 - p, p]).reshape(1, 2, len(row), 1, 1))
    return out


def test_mutual_consistency_matches_hand_computation():
    p_fg = np.array([[0.9, 0.3], [0.6, 0.2], [0.5, 0.45]])  # 3 decoders x 2 voxels

    def s(p):
        return p**10 / (p**10 + (1 - p) ** 10)

    expected = 0.0
    for i in range(3):
        for j in range(3):
            if i != j:
                # mean over (1, 2 classes, 2 voxels): both classes have the same squared difference
                d_fg = (p_fg[i] - s(p_fg[j])) ** 2
                d_bg = ((1 - p_fg[i]) - s(1 - p_fg[j])) ** 2
                expected += (d_fg.sum() + d_bg.sum()) / 4
    got = mutual_consistency(probs_from_fg(p_fg.tolist()), 0.1)
    assert float(got) == pytest.approx(expected, rel=1e-12)
    # Identical, already one-hot decoders agree with their sharpened selves: no loss.
    assert float(mutual_consistency(probs_from_fg([[1.0, 0.0]] * 3), 0.1)) == pytest.approx(0.0, abs=1e-15)


def test_mutual_consistency_gradient_reaches_both_sides():
    probs = [p.clone().requires_grad_(True) for p in probs_from_fg([[0.9, 0.3], [0.6, 0.2]])]
    mutual_consistency(probs, 0.1).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in probs)


def test_binary_dice_loss_has_unsquared_denominator():
    p = torch.tensor([0.5, 0.5, 0.0])
    g = torch.tensor([1, 0, 0])
    # 1 - 2 * 0.5 / (1.0 + 1) = 0.5; a squared denominator would give 1 - 1 / (0.5 + 1) = 1/3
    assert float(binary_dice_loss(p, g)) == pytest.approx(0.5, abs=1e-7)


def test_decoders_differ_in_upsampling_and_share_the_encoder():
    net = VNetMultiDecoder(1, 2, 2, "batchnorm", 0.5)
    assert isinstance(net.decoders[0].up5, Up)
    modes = [dec.up5[0].mode for dec in net.decoders[1:]]
    assert modes == ["trilinear", "nearest"] and all(isinstance(d.up8, InterpUp) for d in net.decoders[1:])
    net.eval()
    x = torch.randn(1, 1, *PATCH)
    outs = net(x)
    assert len(outs) == 3 and all(o.shape == (1, 2, *PATCH) for o in outs)
    torch.testing.assert_close(net.head(x, 0), outs[0])
    assert not torch.allclose(outs[0], outs[1])


def test_predict_uses_the_transposed_conv_decoder_only():
    torch.manual_seed(0)
    method = MCNetPlus(MCNetConfig(), MethodContext(n_filters=2, patch=PATCH))
    method.eval()
    x = torch.randn(1, 1, *PATCH)
    expected = torch.softmax(method.student(x)[0], dim=1)
    torch.testing.assert_close(method.predict(x), expected)
    # Perturbing decoders 2 and 3 does not change the evaluated prediction.
    with torch.no_grad():
        for head in method.student.heads[1:]:
            head.bias.add_(5.0)
    torch.testing.assert_close(method.predict(x), expected)


def test_train_step_loss_is_sup_plus_weighted_consistency_on_the_whole_batch():
    torch.manual_seed(0)
    method = MCNetPlus(MCNetConfig(), MethodContext(n_filters=2, patch=PATCH))
    g = torch.Generator().manual_seed(0)
    y_l = torch.zeros(2, *PATCH, dtype=torch.long)
    y_l[:, 4:12, 4:12, 4:12] = 1
    batch = Batch(torch.randn(2, 1, *PATCH, generator=g), y_l, torch.randn(2, 1, *PATCH, generator=g))
    method.eval()  # no dropout: the step and the hand computation see the same outputs
    out = method.train_step(batch, 9, 10)
    probs = [torch.softmax(o, dim=1) for o in method.student(batch.x)]
    sup = 0.5 * sum(binary_dice_loss(p[:2, 1], y_l) for p in probs)
    torch.testing.assert_close(out["loss_sup"], sup)
    torch.testing.assert_close(out["loss_unsup"], mutual_consistency(probs, 0.1))
    torch.testing.assert_close(out["loss"], out["loss_sup"] + float(out["w_unsup"]) * out["loss_unsup"])


def test_reference_ramp_ends_at_rampup_end():
    ctx = MethodContext(n_filters=2, patch=PATCH)
    method = MCNetPlus(MCNetConfig(rampup_end=6000), ctx)
    assert method._weight(6000, 15000) == pytest.approx(1.0)
    assert method._weight(3000, 15000) == pytest.approx(np.exp(-5 * 0.5**2))  # step 3000 // 150 = 20 of 40
    assert MCNetPlus(MCNetConfig(), ctx)._weight(6000, 15000) < 0.5  # the run's ramp ends at 15000
