"""The method contract, checked for every registered method (so a new method is covered for free), on a 2-class
and a 3-class tiny batch: a method that declares `binary_only` is skipped at 3 classes with its declared reason."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from sslbench.benchmark.training.passes import count_passes
from sslbench.methods.base import Batch, MethodContext
from sslbench.methods.registry import list_methods

PATCH = (16, 16, 16)
CLASS_COUNTS = (2, 3)
# Tiny DAEs of a few steps do not denoise and say so; the warning is tested where it matters.
pytestmark = pytest.mark.filterwarnings("ignore:the lrep DAE does not denoise:UserWarning")


def method_cases():
    cases = []
    for info in list_methods():
        for variant in info.variants or (None,):
            cases.append(pytest.param(info, variant, id=f"{info.name}-{variant}" if variant else info.name))
    return cases


def ball(shape, center, radius) -> np.ndarray:
    grid = np.indices(shape) - np.asarray(center).reshape(-1, 1, 1, 1)
    return (grid**2).sum(axis=0) <= radius**2


def make_batch(info, n_l=2, n_u=2, n_classes=2) -> Batch:
    g = torch.Generator().manual_seed(0)
    x_l = torch.randn(n_l, 1, *PATCH, generator=g)
    y_l = torch.zeros(n_l, *PATCH, dtype=torch.long)
    y_l[:, 4:12, 4:12, 4:12] = 1
    if n_classes == 3:  # a box of class 1 and, beside it, a ball of class 2
        y_l[:, 4:12, 4:12, 4:12] = 0
        y_l[:, 2:8, 3:13, 3:13] = 1
        y_l[:, torch.from_numpy(ball(PATCH, (12, 8, 8), 3))] = 2
    x_l = x_l + 2.0 * y_l[:, None]  # a learnable foreground (each class its own brightness)
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


def tiny_masks(n_classes: int = 2) -> list[np.ndarray]:
    """Two labeled masks of 20^3 voxels: a box and a ball; with 3 classes each also holds the other shape, small,
    as class 2."""
    box = np.zeros((20, 20, 20), dtype=np.uint8)
    box[5:15, 6:14, 4:16] = 1
    round_ = ball((20, 20, 20), (10, 10, 10), 6).astype(np.uint8)
    if n_classes == 3:
        box[ball((20, 20, 20), (16, 16, 10), 3)] = 2
        round_[1:5, 1:5, 8:14] = 2
    return [box, round_]


def build(info, variant, n_classes=2):
    """A tiny instance of the method (n_filters 2), its assets (e.g. a DAE) prepared from tiny masks."""
    cfg = dataclasses.replace(info.cls.Config(), **info.cls.contract_config)
    if variant is not None:
        cfg = dataclasses.replace(cfg, variant=variant)
    ctx = MethodContext(
        n_classes=n_classes,
        n_filters=2,
        patch=PATCH,
        iterations=3,  # prepared assets that scale with the run (lrep's DAE) stay tiny
        seed=0,
        n_labeled=2,
        n_unlabeled=2,
        dataset_id="tiny",
        labeled_ids=("a", "b"),
        labeled_masks=lambda: tiny_masks(n_classes),
        labeled_images=lambda: [m.astype(np.float32) * 2.0 - 1.0 for m in tiny_masks(n_classes)],
        cache=MemoryCache(),
    )
    assets = info.cls.prepare_assets(cfg, ctx)
    # The initial weights decide whether CAML's two untrained branches agree anywhere on the unlabeled crops (its
    # correlation loss, and the gradient of its projection heads, exist only there); seed 0 at 2 classes and
    # seed 1 at 3 are draws where they do (at 3 classes seed 0 has them predict two different constant classes).
    torch.manual_seed(n_classes - 2)
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


def check_trains_and_predicts(name, method, batch, step, max_steps, n_classes) -> None:
    """One whole optimiser step as the trainer takes it (StepRunner), then class probabilities (B, C, ...)."""
    params = [p for p in method.trainable_parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    extra = method.extra_optimizers()
    before = [p.detach().clone() for p in params]
    out = method.train_step(batch, step, max_steps)  # a second step of this method (after the contract's)
    assert torch.isfinite(out["loss"]), f"{name}: non-finite loss at the second step"
    optimizer.zero_grad(set_to_none=True)
    out["loss"].backward()
    optimizer.step()
    method.on_after_optimizer_step(step)
    if extra:
        method.extra_step(batch, step, max_steps, extra)
    assert any(not torch.equal(b, p) for b, p in zip(before, params, strict=True)), f"{name}: nothing trained"
    method.eval()
    prob = method.predict(batch.x_l)
    assert prob.shape == (batch.n_l, n_classes, *PATCH), f"{name}: predict gave {tuple(prob.shape)}"
    assert torch.isfinite(prob).all() and torch.allclose(prob.sum(dim=1), torch.ones(())), name


@pytest.mark.parametrize("n_classes", CLASS_COUNTS, ids=lambda n: f"{n}cls")
@pytest.mark.parametrize("info,variant", method_cases())
def test_contract(info, variant, n_classes):
    if n_classes > 2 and info.cls.binary_only:
        pytest.skip(info.cls.binary_only)
    method = build(info, variant, n_classes)
    batch = make_batch(info, n_classes=n_classes)
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

    check_trains_and_predicts(info.name, method, batch, step, max_steps, n_classes)


def test_three_class_batch_and_masks_hold_every_class():
    """The 3-class cases see every class, in the batch and in the masks a DAE is trained on."""
    info = next(i for i in list_methods() if i.name == "mt")
    assert set(make_batch(info, n_classes=3).y_l.unique().tolist()) == {0, 1, 2}
    assert all(set(np.unique(m).tolist()) == {0, 1, 2} for m in tiny_masks(3))
    assert all(set(np.unique(m).tolist()) == {0, 1} for m in tiny_masks(2))


def test_binary_only_methods_say_why():
    """DTC and SASSnet are binary by construction; every other method handles C classes (no silent skips)."""
    binary = {i.name: i.cls.binary_only for i in list_methods() if i.cls.binary_only}
    assert set(binary) == {"dct", "sassnet"}
    assert all(isinstance(reason, str) and len(reason) > 20 for reason in binary.values())


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
