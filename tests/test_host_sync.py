"""No host synchronisation inside a training step: every method's step runs on the meta device.

A meta tensor has a shape and no values, so anything in a step that reads a device value on the host (`.item()`,
`float(t)`, `if t.any():`, `.cpu()`, `.numpy()`, a boolean-mask selection or `nonzero`, whose output size
depends on values) raises there. On a GPU each such read is a stall that waits for every queued kernel. The
trainer's own step (StepRunner) keeps the losses on the device and reads them at log steps only; a method that
must read values declares why (`Method.host_sync`), and the test checks the declaration is still needed.
"""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import pytest
import torch
from test_method_contract import build, make_batch, method_cases

from sslbench.benchmark.config import build_config
from sslbench.benchmark.training.step import StepRunner

pytestmark = pytest.mark.filterwarnings("ignore:the lrep DAE does not denoise:UserWarning")


def meta_steps(info, variant, steps=(1, 2, 3)) -> StepRunner:
    method = build(info, variant).to_empty(device="meta")
    cfg = build_config(info.name, "4/4" if info.cls.uses_unlabeled else "4/0", 0, "smoke", {})
    trainer = SimpleNamespace(cfg=cfg, device=torch.device("meta"), autocast=contextlib.nullcontext)
    runner = StepRunner(trainer, method)
    batch = make_batch(info)
    arrays = {"x_l": batch.x_l, "y_l": batch.y_l, "x_u": batch.x_u}
    arrays.update({f"extra_{k}": v for k, v in batch.extras.items()})
    for step in steps:  # none of them a log step's check
        runner(arrays, step)
    return runner


@pytest.mark.parametrize(("info", "variant"), method_cases())
def test_a_training_step_never_reads_device_values_on_the_host(info, variant):
    if info.cls.host_sync:
        with pytest.raises((RuntimeError, NotImplementedError)):
            meta_steps(info, variant)  # still needed: else delete the method's `host_sync` declaration
        pytest.skip(f"{info.name} declares a host read: {info.cls.host_sync}")
    runner = meta_steps(info, variant)
    # the losses wait on the device for the next log step's single read
    assert [step for step, _ in runner._unchecked] == [1, 2, 3]
    assert all(terms["loss"].device.type == "meta" for _, terms in runner._unchecked)
