"""One optimisation step of a built method; the trainer's loop, `bench perf` and the reference comparison time it."""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING

import torch

from sslbench.benchmark.config import TrainConfig
from sslbench.benchmark.training.compile import eager_forward
from sslbench.benchmark.training.errors import RunFailed
from sslbench.benchmark.training.passes import count_passes
from sslbench.benchmark.training.schedules import lr_at
from sslbench.methods.base import Batch, Method

if TYPE_CHECKING:
    from sslbench.benchmark.training.trainer import Trainer

WARMUP_STEPS = 5  # steps left out of the per-iteration times (allocator, cuDNN autotuning, first batches)


def scalar_outputs(out: dict) -> dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in out.items() if torch.is_tensor(v) and v.numel() == 1}


def build_optimizer(t: TrainConfig, params) -> torch.optim.Optimizer:
    """The main optimiser: SGD with momentum (the references), or AdamW (CrossMatch's recipe).

    AdamW takes `train.momentum` as beta1 and PyTorch's default beta2 (0.999); its weight decay is decoupled.
    """
    if t.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=t.lr, betas=(t.momentum, 0.999), weight_decay=t.weight_decay)
    return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)


class StepRunner:
    """One optimisation step of a built method: batch to the device, lr, autocast, backward, optimiser(s), EMA.

    The trainer's loop, `bench perf` and the comparison with the reference loop all time this same code.
    """

    def __init__(self, trainer: Trainer, method: Method):
        t = trainer.cfg.train
        self.trainer = trainer
        self.method = method
        self.optimizer = build_optimizer(t, method.trainable_parameters())
        self.extra_opts = method.extra_optimizers()
        self.flops_per_step: int | None = None  # counted on the first step of a run (`count=True`)
        self._unchecked: list[tuple[int, dict[str, torch.Tensor]]] = []

    def __call__(self, arrays: dict[str, torch.Tensor], step: int, count: bool = False) -> tuple[dict, dict]:
        """Run step `step` on a loader batch; returns (the method's outputs, forward passes if `count`)."""
        cfg, device = self.trainer.cfg, self.trainer.device
        extras = {k[6:]: v for k, v in arrays.items() if k.startswith("extra_")}
        batch = Batch(arrays["x_l"], arrays["y_l"], arrays["x_u"], extras).to(device, non_blocking=True)
        lr = lr_at(cfg, step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        passes: dict[str, float] = {}
        flops = contextlib.ExitStack()
        if count:
            # FLOPs of one whole step (forward, backward, the extra optimiser's step), counted once per run:
            # a cost figure no machine load distorts. The counting slows this step only (a warm-up step).
            from torch.utils.flop_counter import FlopCounterMode

            # Eagerly: under a dispatch mode and forward hooks torch.compile gives up on the networks' frames
            # and marks them skipped for good, so a compiled run would train eagerly from its first step on.
            flops.enter_context(eager_forward())
            counter = flops.enter_context(FlopCounterMode(display=False))
        with contextlib.ExitStack() as stack:
            if count:
                passes = stack.enter_context(count_passes(self.method))
            stack.enter_context(self.trainer.autocast())
            out = self.method.train_step(batch, step, cfg.train.iterations)
        if device.type != "cpu":
            # Reading the loss on the host would wait for the device mid-step: checked at log and checkpoint
            # steps. (On the CPU a read costs nothing.)
            self._unchecked.append((step, scalar_outputs(out)))
        elif not math.isfinite(float(out["loss"].detach())):
            values = {k: float(v) for k, v in scalar_outputs(out).items()}
            raise RunFailed(f"non-finite loss at step {step}: {values}")
        self.optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        self.optimizer.step()
        self.method.on_after_optimizer_step(step)
        if self.extra_opts:
            out.update(self.method.extra_step(batch, step, cfg.train.iterations, self.extra_opts))
        flops.close()
        if count:
            self.flops_per_step = int(counter.get_total_flops())
        return out, passes

    def check_finite(self) -> None:
        """On CUDA: raise RunFailed naming the first step since the last check whose loss was not finite.

        A failing run stops a few steps after the bad one, but the message names the same first bad step, and no
        checkpoint is written before this check passes. (On CPU every step is checked before its backward.)
        """
        if not self._unchecked:
            return
        pending, self._unchecked = self._unchecked, []
        finite = torch.stack([torch.isfinite(terms["loss"]) for _, terms in pending]).cpu()
        if bool(finite.all()):
            return
        step, terms = pending[int((~finite).nonzero()[0])]
        values = {k: float(v) for k, v in terms.items()}
        raise RunFailed(f"non-finite loss at step {step}: {values}")
