"""BCP: the bidirectional mixed losses against a hand-built split of regions, stage 1, pseudo labels, EMA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sslbench.datasets.mixing import cuboid_mask, paste
from sslbench.methods.algorithms.bcp import BCP, BCPConfig, largest_component
from sslbench.methods.algorithms.bcp.stage1 import Stage1Config, bcp_dice_loss, masked_ce, pretrain_stage1
from sslbench.methods.base import Batch, MethodContext
from sslbench.methods.networks.vnet import VNet

PATCH = (16, 16, 16)


def stage1_state(seed: int = 0) -> dict:
    torch.manual_seed(seed)
    return VNet(1, 2, 2, "batchnorm", 0.5).state_dict()


def build(**kw) -> BCP:
    torch.manual_seed(0)
    ctx = MethodContext(n_filters=2, patch=PATCH, assets={"bcp_stage1": stage1_state()})
    return BCP(BCPConfig(**kw), ctx)


def make_batch() -> Batch:
    g = torch.Generator().manual_seed(0)
    y_l = torch.zeros(2, *PATCH, dtype=torch.long)
    y_l[:, 4:12, 4:12, 4:12] = 1
    x_l = torch.randn(2, 1, *PATCH, generator=g) + 2.0 * y_l[:, None]
    return Batch(x_l, y_l, torch.randn(2, 1, *PATCH, generator=g))


def test_bcp_dice_matches_hand_computation():
    # (B=1, C=2, V=3) log-probabilities: p_fg = 0.8, 0.4, 0.1
    logits = torch.log(torch.tensor([[0.2, 0.6, 0.9], [0.8, 0.4, 0.1]]))[None]
    target = torch.tensor([[1, 1, 0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    p_fg = np.array([0.8, 0.4])  # the two voxels in the region
    fg = (2 * (0.8 + 0.4) + 1e-5) / ((p_fg + 1).sum() + 1e-5)
    bg = (2 * 0 + 1e-5) / ((1 - p_fg).sum() + 1e-5)
    assert float(bcp_dice_loss(logits, target, mask)) == pytest.approx(1 - (fg + bg) / 2, rel=1e-5)
    ce = -(np.log(0.8) + np.log(0.4)) / 2
    assert float(masked_ce(logits, target, mask)) == pytest.approx(ce, rel=1e-5)


def test_largest_component_keeps_the_biggest_26_connected_blob():
    m = np.zeros((8, 8, 8), dtype=np.int64)
    m[0:2, 0:2, 0:2] = 1  # 8 voxels
    m[4:7, 4:7, 4:7] = 1  # 27 voxels
    m[7, 7, 7] = 1  # touches the big blob by a corner only: 26-connected to it
    out = largest_component(m)
    assert out.sum() == 28 and out[0, 0, 0] == 0 and out[7, 7, 7] == 1
    empty = np.zeros((4, 4, 4), dtype=np.int64)
    assert largest_component(empty).sum() == 0


def test_losses_use_ground_truth_on_labeled_voxels_and_pseudo_labels_on_unlabeled_ones():
    """Replays the step's mixing with the same draws and checks the split of L_sup / L_unsup by region."""
    method = build()
    method.eval()  # deterministic forward passes (no dropout, running BN statistics)
    batch = make_batch()
    rng_state = method.rng.get_state()
    out = method.train_step(batch, 5, 10)
    # Replay: the same cuboid (the same generator state) and the teacher's pseudo labels.
    method.rng.set_state(rng_state)
    with torch.no_grad():
        q = method.pseudo_labels(method.teacher(batch.x_u))
    m = cuboid_mask(PATCH, 2 / 3, method.rng)
    assert m.sum() == 10**3  # int(16 * 2/3) = 10 on each axis
    x_in = paste(batch.x_l[:1], batch.x_u[:1], m)
    x_out = paste(batch.x_u[1:], batch.x_l[1:], m)
    # X_in: labeled voxels outside the cuboid, unlabeled inside; X_out the reverse.
    inside = m.bool()
    assert torch.equal(x_in[0, 0][~inside], batch.x_l[0, 0][~inside])
    assert torch.equal(x_in[0, 0][inside], batch.x_u[0, 0][inside])
    assert torch.equal(x_out[0, 0][inside], batch.x_l[1, 0][inside])
    logits = method.student(torch.cat([x_in, x_out]))
    ins, outs = m[None], 1 - m[None]

    def region(o, y, r):
        return 0.5 * (bcp_dice_loss(o, y, r) + masked_ce(o, y, r))

    sup = region(logits[:1], batch.y_l[:1], outs) + region(logits[1:], batch.y_l[1:], ins)
    unsup = region(logits[:1], q[:1], ins) + region(logits[1:], q[1:], outs)
    torch.testing.assert_close(out["loss_sup"], sup)
    torch.testing.assert_close(out["loss_unsup"], unsup)
    torch.testing.assert_close(out["loss"], sup + 0.5 * unsup)


def test_ema_has_no_warmup():
    method = build()
    with torch.no_grad():
        for p in method.student.parameters():
            p.add_(1.0)
    before = [p.clone() for p in method.teacher.parameters()]
    method.on_after_optimizer_step(0)  # the mixin's warm-up would copy the student here (alpha 0)
    for b, t in zip(before, method.teacher.parameters(), strict=True):
        torch.testing.assert_close(t, b + 0.01)  # 0.99 b + 0.01 (b + 1)


def test_student_and_teacher_start_from_stage1():
    method = build()
    for k, v in stage1_state().items():
        torch.testing.assert_close(method.student.state_dict()[k], v)
        torch.testing.assert_close(method.teacher.state_dict()[k], v)


def test_pretrain_stage1_is_deterministic_and_learns():
    rng = np.random.default_rng(0)
    labels = [np.zeros((20, 20, 20), dtype=np.uint8) for _ in range(3)]
    for y in labels:
        y[5:15, 5:15, 5:15] = 1
    images = [(rng.normal(size=y.shape) + 2.0 * y).astype(np.float32) for y in labels]
    cfg = Stage1Config(iterations=12, lr=0.1)
    before = torch.get_rng_state()
    a = pretrain_stage1(images, labels, cfg, PATCH, 2, "batchnorm", torch.device("cpu"), seed=3)
    assert torch.equal(torch.get_rng_state(), before)  # the caller's stream is untouched
    b = pretrain_stage1(images, labels, cfg, PATCH, 2, "batchnorm", torch.device("cpu"), seed=3)
    for k in a["state"]:
        torch.testing.assert_close(a["state"][k], b["state"][k])
    assert np.isfinite(a["report"]["final_loss"])
    net = VNet(1, 2, 2, "batchnorm", 0.5)
    net.load_state_dict(a["state"])  # loads into the benchmark's V-Net


def test_rejects_unpaired_batch():
    method = build()
    batch = make_batch()
    bad = Batch(batch.x_l, batch.y_l, batch.x_u[:1])
    with pytest.raises(ValueError, match="B_l == B_u"):
        method.train_step(bad, 0, 10)
