"""Table-driven checks of the shared maths against hand computations: ramps, losses, lr schedules."""

from __future__ import annotations

import math

import pytest
import torch

from sslbench.benchmark.config import build_config
from sslbench.benchmark.training.schedules import lr_at
from sslbench.methods.losses import dice_loss_fg, masked_mean, weighted_mean
from sslbench.methods.ramps import rampup_weight, sigmoid_rampup, uamt_threshold


@pytest.mark.parametrize(
    "current,length,expected",
    [
        (0, 40, math.exp(-5.0)),
        (20, 40, math.exp(-5.0 * 0.25)),
        (40, 40, 1.0),
        (55, 40, 1.0),  # clipped at the end of the ramp
        (-3, 40, math.exp(-5.0)),  # and at its start
        (5, 0, 1.0),  # no ramp
    ],
)
def test_sigmoid_rampup(current, length, expected):
    assert sigmoid_rampup(current, length) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "weight,step,max_steps,kind,length,expected",
    [
        # staircase: interval = 6000 // 40 = 150, so step 1499 is stair 9 and step 1500 stair 10
        (0.1, 1499, 6000, "staircase", 40, 0.1 * math.exp(-5.0 * (1 - 9 / 40) ** 2)),
        (0.1, 1500, 6000, "staircase", 40, 0.1 * math.exp(-5.0 * (1 - 10 / 40) ** 2)),
        (0.1, 5999, 6000, "staircase", 40, 0.1 * math.exp(-5.0 * (1 - 39 / 40) ** 2)),
        # quick preset: 300 // 40 = 7; step 280 is stair 40, the end of the ramp
        (1.0, 280, 300, "staircase", 40, 1.0),
        (1.0, 6, 10, "staircase", 40, math.exp(-5.0 * (1 - 6 / 40) ** 2)),  # interval clipped to 1
        # gaussian: the paper's continuous ramp over the whole run
        (0.1, 3000, 6000, "gaussian", 40, 0.1 * math.exp(-5.0 * 0.25)),
        (0.1, 6000, 6000, "gaussian", 40, 0.1),
    ],
)
def test_rampup_weight(weight, step, max_steps, kind, length, expected):
    assert rampup_weight(weight, step, max_steps, kind, length) == pytest.approx(expected, rel=1e-12)


def test_rampup_weight_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="rampup 'linear'"):
        rampup_weight(0.1, 1, 10, "linear")


@pytest.mark.parametrize("step,expected", [(0, 0.75 + 0.25 * math.exp(-5.0)), (6000, 1.0)])
def test_uamt_threshold(step, expected):
    assert uamt_threshold(step, 6000) == pytest.approx(expected * math.log(2.0), rel=1e-12)


@pytest.mark.parametrize(
    "prob,target,expected",
    [
        # 1 - (2 sum(s g) + e) / (sum s^2 + sum g^2 + e), one Dice over the whole batch
        ([1.0, 1.0, 0.0, 0.0], [1, 1, 0, 0], 0.0),
        ([0.5, 0.5, 0.0, 0.0], [1, 1, 0, 0], 1 - (2 * 1.0 + 1e-5) / (0.5 + 2 + 1e-5)),
        ([0.0, 0.0, 0.0, 0.0], [1, 0, 0, 0], 1 - 1e-5 / (1 + 1e-5)),
        ([0.0, 0.0, 0.0, 0.0], [0, 0, 0, 0], 0.0),  # empty both: the smoothing makes it 0, not NaN
        ([0.2, 0.9, 0.4, 0.0], [0, 1, 1, 0], 1 - (2 * 1.3 + 1e-5) / (0.04 + 0.81 + 0.16 + 2 + 1e-5)),
    ],
)
def test_dice_loss_fg(prob, target, expected):
    got = dice_loss_fg(torch.tensor(prob, dtype=torch.float64).view(2, 2), torch.tensor(target).view(2, 2))
    assert float(got) == pytest.approx(expected, abs=1e-12)


def test_masked_mean_and_weighted_mean():
    # d: (B=1, C=2, 3 voxels); m: (1, 1, 3)
    d = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]], dtype=torch.float64)
    m = torch.tensor([[[1.0, 0.0, 1.0]]], dtype=torch.float64)
    # UA-MT: sum(m d) / (C sum m) = (1 + 3 + 4 + 6) / (2 * 2)
    assert float(masked_mean(d, m)) == pytest.approx(14 / 4)
    w = torch.tensor([[[0.5, 1.0, 0.0]]], dtype=torch.float64)
    # sum(w d) / sum(w), w broadcast over classes: (0.5 + 2 + 2 + 5) / (2 * 1.5)
    assert float(weighted_mean(d, w)) == pytest.approx(9.5 / 3.0)
    assert float(masked_mean(d, torch.zeros_like(m))) == 0.0  # nothing certain: 0, not NaN


@pytest.mark.parametrize(
    "policy,sets,step,expected",
    [
        ("step", {}, 0, 0.01),
        ("step", {}, 2499, 0.01),  # x0.1 every 2500 of 6000 (UA-MT)
        ("step", {}, 2500, 0.001),
        ("step", {}, 5000, 0.0001),
        ("step", {"train.lr_step": "1000"}, 3500, 0.01 * 0.1**3),
        ("poly", {}, 0, 0.01),
        ("poly", {}, 3000, 0.01 * 0.5**0.9),  # (1 - s/N)^0.9 at step s
        ("cosine", {}, 3000, 0.01 * 0.5),
        ("cosine", {}, 6000, 0.0),
        ("cosine", {"train.cosine_extra": "2000"}, 6000, 0.01 * 0.5 * (1 + math.cos(math.pi * 6000 / 8000))),
    ],
)
def test_lr_at(policy, sets, step, expected):
    cfg = build_config("sup", "8/0", preset="paper", sets={"train.lr_policy": policy, **sets})
    assert lr_at(cfg, step) == pytest.approx(expected, rel=1e-12, abs=1e-15)
