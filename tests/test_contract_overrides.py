"""The method contract under a method's `contract_config` (a proposed extension of test_method_contract.py).

Thresholded pseudo-label methods (UniMatch: confidence >= 0.95) have, by design, no unlabeled gradient while no
voxel passes the threshold, which an untrained network may or may not reach depending on its init. The generic
contract test builds every method with its paper defaults, so whether it sees their unlabeled gradient path is
a matter of chance (with the test's seed UniMatch has no confident unlabeled voxel: it fails there). A method
declares `contract_config` (config overrides that keep voxels, e.g. threshold 0); this file runs the same checks
with it. The change proposed for test_method_contract.py is one line in `build`:
    cfg = dataclasses.replace(cfg, **getattr(info.cls, "contract_config", {}))
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from test_method_contract import PATCH, check_unlabeled_reaches_student, make_batch

import sslbench.methods  # noqa: F401  (registers the built-in methods)
from sslbench.benchmark.passes import count_passes
from sslbench.methods.base import MethodContext
from sslbench.methods.registry import list_methods

OVERRIDDEN = [pytest.param(i, id=i.name) for i in list_methods() if getattr(i.cls, "contract_config", None)]


@pytest.mark.parametrize("info", OVERRIDDEN)
def test_contract_with_contract_config(info):
    cfg = dataclasses.replace(info.cls.Config(), **info.cls.contract_config)
    torch.manual_seed(0)
    method = info.cls(cfg, MethodContext(n_filters=2, patch=PATCH, n_labeled=2, n_unlabeled=2))
    method.train()
    with count_passes(method) as passes:
        out = method.train_step(make_batch(info), 9, 10)
    assert out["loss"].dim() == 0 and torch.isfinite(out["loss"])
    method.zero_grad(set_to_none=True)
    out["loss"].backward(retain_graph=True)
    missing = [n for n, p in method.student.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
    check_unlabeled_reaches_student(info.name, method, out)
    teacher = getattr(method, "teacher", None)
    assert sum(passes.values()) == pytest.approx(1 + (teacher is not None) + info.extra_passes)


def test_unimatch_without_confident_voxels_has_no_unlabeled_gradient():
    """Why the override exists: when no voxel passes the threshold the unlabeled loss is exactly 0 (here forced
    with threshold 1; at 0.95 an untrained network is in that state or close to it, depending on its init)."""
    info = next(i for i in list_methods() if i.name == "unimatch")
    torch.manual_seed(0)
    cfg = dataclasses.replace(info.cls.Config(), conf_thresh=1.0)
    method = info.cls(cfg, MethodContext(n_filters=2, patch=PATCH, n_labeled=2, n_unlabeled=2))
    method.train()
    out = method.train_step(make_batch(info), 9, 10)
    assert float(out["loss_unsup"].detach()) == 0.0 and float(out["mask_ratio"]) == 0.0
