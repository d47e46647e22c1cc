"""Mixing masks: BCP's copy-paste cuboid (ratio, placement, which voxels come from where) and 3D CutMix boxes."""

from __future__ import annotations

import math

import pytest
import torch

from sslbench.datasets.mixing import cuboid_mask, cutmix_box, cutmix_boxes, paste, volume_fraction

SHAPE = (24, 18, 12)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("seed", range(5))
def test_cuboid_has_sides_of_the_stated_ratio(seed):
    m = cuboid_mask(SHAPE, 2 / 3, gen(seed))
    idx = m.nonzero()
    sides = (idx.max(0).values - idx.min(0).values + 1).tolist()
    assert sides == [16, 12, 8]  # int(24 * 2/3), int(18 * 2/3), int(12 * 2/3)
    assert volume_fraction(m) == pytest.approx(16 * 12 * 8 / math.prod(SHAPE))  # = (2/3)^3 here
    assert volume_fraction(m) == pytest.approx(8 / 27)
    # A solid cuboid: every voxel of its bounding box is inside.
    assert int(m.sum()) == math.prod(sides)
    # The corner is drawn in [0, s - side): the cuboid never touches the far face (BCP's exclusive bound).
    assert all(int(hi) < s - 1 for hi, s in zip(idx.max(0).values, SHAPE, strict=True))


def test_cuboid_placement_is_reproducible_and_varies():
    a = cuboid_mask(SHAPE, 2 / 3, gen(3))
    assert torch.equal(a, cuboid_mask(SHAPE, 2 / 3, gen(3)))
    placements = {tuple(cuboid_mask(SHAPE, 2 / 3, gen(s)).nonzero()[0].tolist()) for s in range(20)}
    assert len(placements) > 5


def test_bidirectional_copy_paste_puts_labeled_and_unlabeled_voxels_where_bcp_says():
    """BCP: X_in = labeled background + unlabeled cuboid; X_out = unlabeled background + labeled cuboid."""
    m = cuboid_mask(SHAPE, 2 / 3, gen(0))
    x_l = torch.full((1, 1, *SHAPE), 1.0)
    x_u = torch.full((1, 1, *SHAPE), -1.0)
    y_l = torch.ones(1, *SHAPE, dtype=torch.long)
    y_pseudo = torch.zeros(1, *SHAPE, dtype=torch.long)
    x_in, x_out = paste(x_l, x_u, m), paste(x_u, x_l, m)
    inside = m.bool()
    assert torch.all(x_in[0, 0][inside] == -1) and torch.all(x_in[0, 0][~inside] == 1)
    assert torch.all(x_out[0, 0][inside] == 1) and torch.all(x_out[0, 0][~inside] == -1)
    # Labels mixed with the same mask: ground truth exactly where the labeled image is.
    y_in, y_out = paste(y_l, y_pseudo, m), paste(y_pseudo, y_l, m)
    assert y_in.dtype == torch.long
    assert torch.equal(y_in[0] == 1, x_in[0, 0] == 1) and torch.equal(y_out[0] == 1, x_out[0, 0] == 1)
    # The two mixed images hold every voxel of both crops exactly once.
    assert torch.equal(x_in + x_out, x_l + x_u)


def test_cuboid_rejects_bad_ratio():
    with pytest.raises(ValueError, match="ratio"):
        cuboid_mask(SHAPE, 1.5, gen(0))


def test_cutmix_box_volume_and_probability():
    fractions, empty = [], 0
    for seed in range(200):
        m = cutmix_box((32, 32, 32), gen(seed), p=0.5)
        if m.sum() == 0:
            empty += 1
            continue
        idx = m.nonzero()
        sides = idx.max(0).values - idx.min(0).values + 1
        assert int(m.sum()) == int(sides.prod())  # one solid box
        fractions.append(volume_fraction(m))
    assert 70 < empty < 130  # p = 0.5
    # int() rounding of each side shrinks the box a little below U(0.02, 0.4)
    assert min(fractions) > 0.003 and max(fractions) <= 0.4


def test_cutmix_boxes_reproducible_and_per_sample():
    a = cutmix_boxes(4, SHAPE, gen(7), p=1.0)
    assert a.shape == (4, *SHAPE)
    assert torch.equal(a, cutmix_boxes(4, SHAPE, gen(7), p=1.0))
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(a, cutmix_boxes(4, SHAPE, gen(8), p=1.0))
    assert cutmix_boxes(0, SHAPE, gen(7)).shape == (0, *SHAPE)
