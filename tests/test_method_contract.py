"""The method contract, checked for every registered method (so a new method is covered for free)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from sslbench.benchmark.training.passes import count_passes
from sslbench.methods.base import Batch, MethodContext
from sslbench.methods.registry import list_methods

PATCH = (16, 16, 16)
# Tiny DAEs of a few steps do not denoise and say so; the warning is tested where it matters.
pytestmark = pytest.mark.filterwarnings("ignore:the lrep DAE does not denoise:UserWarning")


def method_cases():
    cases = []
    for info in list_methods():
        for variant in info.variants or (None,):
            cases.append(pytest.param(info, variant, id=f"{info.name}-{variant}" if variant else info.name))
    return cases


def make_batch(info, n_l=2, n_u=2) -> Batch:
    g = torch.Generator().manual_seed(0)
    x_l = torch.randn(n_l, 1, *PATCH, generator=g)
    y_l = torch.zeros(n_l, *PATCH, dtype=torch.long)
    y_l[:, 4:12, 4:12, 4:12] = 1
    x_l = x_l + 2.0 * y_l[:, None]  # a learnable foreground
    x_u = torch.randn(n_u if info.cls.uses_unlabeled else 0, 1, *PATCH, generator=g)
    extras = {k: torch.from_numpy(v) for k, v in info.cls.batch_targets(y_l.numpy()).items()}
    return Batch(x_l, y_l, x_u, extras)


class MemoryCache:
    """An in-memory `AssetCache`: the contract test builds every method without the benchmark's trainer."""

    def __init__(self):
        self.assets: dict[str, object] = {}
        self.info: dict[str, dict] = {}

    def cached(self, kind, key, build):
        name = f"{kind}:{sorted(key.items())}"
        if name not in self.assets:
            self.assets[name] = build()
        return self.assets[name]

    def record(self, kind, info):
        self.info.setdefault(kind, {}).update(info)


def tiny_masks() -> list[np.ndarray]:
    """Two labeled masks of 20^3 voxels: a box and a ball."""
    box = np.zeros((20, 20, 20), dtype=np.uint8)
    box[5:15, 6:14, 4:16] = 1
    grid = np.indices((20, 20, 20)) - 10
    ball = ((grid**2).sum(axis=0) <= 36).astype(np.uint8)
    return [box, ball]


def build(info, variant):
    """A tiny instance of the method (n_filters 2), its assets (e.g. a DAE) prepared from tiny masks."""
    cfg = dataclasses.replace(info.cls.Config(), **info.cls.contract_config)
    if variant is not None:
        cfg = dataclasses.replace(cfg, variant=variant)
    ctx = MethodContext(
        n_filters=2,
        patch=PATCH,
        iterations=3,  # prepared assets that scale with the run (lrep's DAE) stay tiny
        seed=0,
        n_labeled=2,
        n_unlabeled=2,
        dataset_id="tiny",
        labeled_ids=("a", "b"),
        labeled_masks=tiny_masks,
        labeled_images=lambda: [m.astype(np.float32) * 2.0 - 1.0 for m in tiny_masks()],
        cache=MemoryCache(),
    )
    assets = info.cls.prepare_assets(cfg, ctx)
    torch.manual_seed(0)
    method = info.cls(cfg, dataclasses.replace(ctx, assets=assets))
    method.train()
    return method


def check_unlabeled_reaches_student(name, method, out) -> None:
    assert "loss_unsup" in out, f"{name}: SSL methods must return loss_unsup"
    assert float(out.get("w_unsup", 1.0)) > 0
    loss_unsup = out["loss_unsup"]
    assert loss_unsup.requires_grad, (
        f"{name}: the unlabeled loss has no gradient path (compared with itself?)"
    )
    method.zero_grad(set_to_none=True)
    loss_unsup.backward()
    reached = [p for p in method.student.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert reached, f"{name}: the unlabeled loss alone does not reach the student"


@pytest.mark.parametrize("info,variant", method_cases())
def test_contract(info, variant):
    method = build(info, variant)
    batch = make_batch(info)
    max_steps = 10
    # A late step: every ramp-up is above zero, so the unlabeled term must carry gradient.
    step = max_steps - 1

    with count_passes(method) as passes:
        out = method.train_step(batch, step, max_steps)

    loss = out["loss"]
    assert loss.dim() == 0 and torch.isfinite(loss), f"{info.name}: loss must be a finite scalar"

    student_params = [p for p in method.trainable_parameters() if p.requires_grad]
    assert student_params, "the method has nothing to train"
    method.zero_grad(set_to_none=True)
    loss.backward(retain_graph=info.cls.uses_unlabeled)
    missing = [n for n, p in method.student.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"{info.name}: student parameters without gradient: {missing[:5]}"

    teacher = getattr(method, "teacher", None)
    if teacher is not None:
        assert all(p.grad is None for p in teacher.parameters()), "the teacher must get no gradient"

    if info.cls.uses_unlabeled:
        check_unlabeled_reaches_student(info.name, method, out)

    # Forward passes: 1 for the student, 1 for a teacher's target, plus the declared extra (uncertainty) passes.
    expected = 1 + (1 if teacher is not None else 0) + info.extra_passes
    assert sum(passes.values()) == pytest.approx(expected), f"{info.name}: counted passes {passes}"

    if teacher is not None:
        before = [p.detach().clone() for p in teacher.parameters()]
        with torch.no_grad():
            for p in method.student.parameters():
                p.add_(0.01)
        method.on_after_optimizer_step(step)
        moved = any(not torch.equal(b, p) for b, p in zip(before, teacher.parameters(), strict=True))
        assert moved, f"{info.name}: the teacher did not move after the EMA step"


def test_ema_warmup_copies_student_at_step0():
    info = next(i for i in list_methods() if i.name == "mt")
    method = info.cls(info.cls.Config(), MethodContext(n_filters=2, patch=PATCH))
    with torch.no_grad():
        for p in method.student.parameters():
            p.add_(1.0)
    method.on_after_optimizer_step(0)  # alpha = min(1 - 1/1, 0.99) = 0: the teacher becomes the student
    for ps, pt in zip(method.student.parameters(), method.teacher.parameters(), strict=True):
        assert torch.equal(ps, pt)


def test_contract_catches_detached_student(monkeypatch):
    """The contract's unlabeled-gradient check fails when MT's consistency compares against a detached student."""
    from sslbench.methods.algorithms import mt

    original = mt.softmax_mse
    monkeypatch.setattr(mt, "softmax_mse", lambda a, b: original(a.detach(), b))
    info = next(i for i in list_methods() if i.name == "mt")
    method = info.cls(info.cls.Config(), MethodContext(n_filters=2, patch=PATCH))
    out = method.train_step(make_batch(info), 9, 10)
    with pytest.raises(AssertionError, match="no gradient path"):
        check_unlabeled_reaches_student("mt", method, out)
