"""AD-MT: entropy fusion and conflict resolution by hand, the alternation schedule, both teachers' EMA, recipe."""

from __future__ import annotations

import math

import pytest
import torch

from sslbench.benchmark.config import build_config
from sslbench.methods.algorithms.admt import (
    ADMT,
    ADMTConfig,
    AlternationSchedule,
    admt_cutmix_boxes,
    beta_sample,
    entropy_fusion,
    resolve_conflicts,
)
from sslbench.methods.base import Batch, MethodContext

PATCH = (16, 16, 16)


def two_class(p_fg: list[float]) -> torch.Tensor:
    """(1, 2, V) softmax maps from foreground probabilities."""
    p = torch.tensor(p_fg, dtype=torch.float64)
    return torch.stack([1 - p, p])[None]


def test_entropy_fusion_matches_hand_computation():
    p1, p2 = two_class([0.9, 0.5, 0.2]), two_class([0.6, 0.99, 0.2])

    def h(p):  # entropy in bits of a 2-class distribution (p, 1 - p)
        return -(p * math.log2(p + 1e-10) + (1 - p) * math.log2(1 - p + 1e-10))

    expected = []
    for a, b in zip([0.9, 0.5, 0.2], [0.6, 0.99, 0.2], strict=True):
        w1 = math.exp(-h(a)) / (math.exp(-h(a)) + math.exp(-h(b)))
        expected.append(w1 * a + (1 - w1) * b)
    fused = entropy_fusion(p1, p2)
    assert fused[0, 1].tolist() == pytest.approx(expected, rel=1e-9)
    torch.testing.assert_close(fused.sum(dim=1), torch.ones(1, 3, dtype=torch.float64))
    # The more certain teacher dominates: voxel 1 (0.5 vs 0.99) ends close to 0.99's side.
    assert expected[1] > 0.85
    # Temperature 0.5 squares and renormalises.
    sharp = entropy_fusion(p1, p2, temperature=0.5)
    q = torch.tensor(expected, dtype=torch.float64)
    torch.testing.assert_close(sharp[0, 1], q**2 / (q**2 + (1 - q) ** 2))


def test_conflicts_go_to_the_more_confident_student_only_where_the_teachers_disagree():
    label_t = torch.tensor([1, 1, 0, 0])
    conf_t = torch.tensor([0.6, 0.6, 0.9, 0.7])
    label_s = torch.tensor([0, 0, 1, 0])
    conf_s = torch.tensor([0.9, 0.9, 0.95, 0.99])
    disagree = torch.tensor([True, False, True, True])
    label, conf = resolve_conflicts(label_t, conf_t, label_s, conf_s, disagree)
    # voxel 0: teachers disagree, student differs and is surer -> student; voxel 1: teachers agree -> teacher;
    # voxel 2: student surer and different -> student; voxel 3: same label -> teacher's confidence kept.
    assert label.tolist() == [0, 1, 1, 0]
    assert conf.tolist() == pytest.approx([0.9, 0.6, 0.95, 0.7])


def test_alternation_runs_have_the_drawn_lengths():
    rng = torch.Generator().manual_seed(3)
    schedule = AlternationSchedule(19, True, rng)
    replay = torch.Generator().manual_seed(3)
    periods = [int(torch.randint(1, 20, (1,), generator=replay)) for _ in range(6)]
    flags = []
    for _ in range(sum(periods[:5])):
        flags.append(schedule.first)
        schedule.advance(rng)
    runs, start = [], 0  # lengths of the runs of equal flags
    for i in range(1, len(flags) + 1):
        if i == len(flags) or flags[i] != flags[start]:
            runs.append(i - start)
            start = i
    assert flags[0] is True and runs == periods[:5]
    assert all(1 <= p <= 19 for p in periods)


def test_fixed_period_alternates_every_period_steps():
    schedule = AlternationSchedule(3, False, torch.Generator())
    flags = []
    for _ in range(9):
        flags.append(schedule.first)
        schedule.advance(torch.Generator())
    assert flags == [True] * 3 + [False] * 3 + [True] * 3


def test_beta_sample_has_the_beta_mean_and_cutmix_boxes_follow_lam():
    rng = torch.Generator().manual_seed(0)
    draws = torch.tensor([beta_sample(4, 4, rng) for _ in range(2000)])
    assert float(draws.mean()) == pytest.approx(0.5, abs=0.02)
    assert float(draws.var()) == pytest.approx(4 * 4 / (8**2 * 9), rel=0.15)  # ab / ((a+b)^2 (a+b+1))
    boxes = admt_cutmix_boxes(3, (32, 32, 32), 0.75, torch.Generator().manual_seed(1))
    side = int(32 * 0.5)  # sqrt(1 - 0.75) = 0.5
    for box in boxes:
        extents = [int(box.sum(dim=[d for d in range(3) if d != a]).gt(0).sum()) for a in range(3)]
        assert all(0 < e <= side for e in extents)  # clipped at the crop border, never larger


def make_method(**kw) -> ADMT:
    torch.manual_seed(0)
    return ADMT(ADMTConfig(**kw), MethodContext(n_filters=2, patch=PATCH))


def make_batch() -> Batch:
    g = torch.Generator().manual_seed(0)
    y_l = torch.zeros(2, *PATCH, dtype=torch.long)
    y_l[:, 4:12, 4:12, 4:12] = 1
    x_l = torch.randn(2, 1, *PATCH, generator=g) + 2.0 * y_l[:, None]
    return Batch(x_l, y_l, torch.randn(2, 1, *PATCH, generator=g))


def sgd_step(method: ADMT, batch: Batch, step: int, opt: torch.optim.Optimizer) -> dict:
    out = method.train_step(batch, step, 10)
    opt.zero_grad(set_to_none=True)
    out["loss"].backward()
    opt.step()
    method.on_after_optimizer_step(step)
    return out


def test_both_teachers_get_no_gradient_and_each_moves_on_its_own_ema_step():
    method = make_method(random_period=False, period_max=1, conf_thresh=0.0)  # teacher 1, then teacher 2
    opt = torch.optim.SGD(method.student.parameters(), lr=0.1)
    batch = make_batch()
    moved = []
    for step in range(2):
        before = [[p.clone() for p in t.parameters()] for t in (method.teacher, method.teacher2)]
        out = sgd_step(method, batch, step, opt)
        assert int(out["teacher"]) == step + 1
        for t in (method.teacher, method.teacher2):
            assert all(p.grad is None and not p.requires_grad for p in t.parameters())
        moved.append(
            [
                any(not torch.equal(a, b) for a, b in zip(old, t.parameters(), strict=True))
                for old, t in zip(before, (method.teacher, method.teacher2), strict=True)
            ]
        )
    assert moved == [[True, False], [False, True]]  # alternately: each step moves exactly the scheduled one
    # During the hold (iter // 2 < 40) the updated teacher is a copy of the student.
    for p_s, p_t in zip(method.student.parameters(), method.teacher2.parameters(), strict=True):
        assert torch.equal(p_s, p_t)


def test_ema_after_the_hold_warms_up_like_the_reference():
    method = make_method(ema_hold=1)
    s = [p.detach().clone() for p in method.student.parameters()]
    t0 = [p.clone() for p in method.teacher.parameters()]
    with torch.no_grad():
        for p in method.student.parameters():
            p.add_(1.0)
    method.schedule.first = True
    method.on_after_optimizer_step(6)  # half = 3: alpha = min(1 - 1 / (3 - 1 + 1), 0.99) = 2/3
    for a, b, t in zip(t0, s, method.teacher.parameters(), strict=True):
        torch.testing.assert_close(t, 2 / 3 * a + 1 / 3 * (b + 1.0))


def test_state_dict_round_trip_restores_the_schedule_and_the_stream():
    method = make_method()
    for _ in range(7):
        method.schedule.advance(method.rng)
    state = method.state_dict()
    fresh = make_method()
    fresh.load_state_dict(state)
    assert fresh.schedule.state() == method.schedule.state()
    assert torch.equal(torch.rand(3, generator=fresh.rng), torch.rand(3, generator=method.rng))


def test_cutmix_step_mixes_the_teacher_step_uses_the_strong_view():
    method = make_method(random_period=False, period_max=1, conf_thresh=0.0)
    method.eval()  # no dropout: a deterministic student
    batch = make_batch()
    out1 = method.train_step(batch, 0, 10)  # teacher 1 step: strong view
    method.schedule.advance(method.rng)
    out2 = method.train_step(batch, 1, 10)  # teacher 2 step: CutMix
    assert int(out1["teacher"]) == 1 and int(out2["teacher"]) == 2
    for out in (out1, out2):
        assert torch.isfinite(out["loss"]) and float(out["mask_ratio"]) == 1.0


def test_published_recipe_is_applied():
    cfg = build_config("admt", "8/72", 1337, "paper", recipe="published")
    assert (cfg.train.iterations, cfg.train.optimizer, cfg.train.lr, cfg.train.lr_policy) == (
        15000,
        "sgd",
        0.01,
        "poly",
    )
    assert cfg.method_cfg.rampup_interval == 150
    assert build_config("admt", "8/72", 1337, "paper").method_cfg.rampup_interval is None
    method = ADMT(cfg.method_cfg, MethodContext(n_filters=2, patch=PATCH))
    assert method._weight(6000, 15000) == pytest.approx(2.0)  # the reference's ramp ends at 150 x 40
    assert method._weight(3000, 15000) == pytest.approx(2.0 * math.exp(-5 * 0.5**2))
