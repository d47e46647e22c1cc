"""`vs_reference` for every method: its step in our trainer against the same `train_step` in a plain loop.

For MT a full re-implementation of the reference script exists (`reference_loop.ReferenceLoop`). For the other
methods no second implementation is written: the reference here is the method's own `train_step` driven the way
the reference scripts drive a step, so the ratio measures what the trainer around the method does (batches built
ahead as a pure function of (seed, step) instead of per sample in the loop, the SDF-like `batch_targets` off the
training thread, channels-last weights, the losses read on the host only at log steps), not the method itself.
The plain loop: per iteration, `reference_sample` for each crop (RandomRotFlip copying the whole volume,
RandomCrop, ToTensor), `default_collate`, `batch_targets` in the loop, `.to(device)`, channels-first weights,
the step's lr, `train_step`, backward, SGD, the method's after-step hook (EMA, ...), and `.item()` of every
logged scalar, as the references log each iteration.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sslbench.benchmark.perf.reference_loop import _interleave, _summary, reference_sample
from sslbench.benchmark.training.device import seed_everything
from sslbench.benchmark.training.schedules import lr_at
from sslbench.benchmark.training.step import StepRunner, build_optimizer, scalar_outputs
from sslbench.benchmark.training.trainer import Trainer
from sslbench.methods.base import Batch


class PlainMethodLoop:
    """One method's `train_step` in the plain loop described in the module docstring."""

    def __init__(self, trainer: Trainer):
        cfg = trainer.cfg
        plain = replace(cfg, train=replace(cfg.train, channels_last=False, compile=False))
        seed_everything(cfg.seed, cfg.train.deterministic)
        self.trainer = Trainer(plain, Path("."), progress=False)
        self.method = self.trainer.build_method()
        self.method.train()
        self.optimizer = build_optimizer(plain.train, self.method.trainable_parameters())
        self.extra_opts = self.method.extra_optimizers()
        self.cfg, self.device = plain, self.trainer.device
        self.labeled = self.trainer.dataset.volumes(self.trainer.labeled_ids)
        self.unlabeled = self.trainer.dataset.volumes(self.trainer.unlabeled_ids)
        self.rng = np.random.RandomState(cfg.seed)
        self.log: list[dict[str, float]] = []

    def batch(self) -> Batch:
        t = self.cfg.train
        n_l = t.labeled_bs if self.unlabeled else t.batch_size
        lab = self.rng.choice(len(self.labeled), n_l, replace=len(self.labeled) < n_l)
        unl = self.rng.choice(len(self.unlabeled), t.batch_size - n_l) if self.unlabeled else []
        patch = tuple(self.cfg.data.patch)
        lab_samples = [reference_sample(self.labeled[i], patch, self.rng) for i in lab]
        unl_samples = [reference_sample(self.unlabeled[i], patch, self.rng) for i in unl]
        x_l = torch.stack([torch.from_numpy(s[0]) for s in lab_samples])
        y_l = torch.stack([torch.from_numpy(s[1]) for s in lab_samples])
        x_u = (
            torch.stack([torch.from_numpy(s[0]) for s in unl_samples])
            if unl_samples
            else torch.zeros((0, 1, *patch))
        )
        extras = {k: torch.from_numpy(v) for k, v in self.method.batch_targets(y_l.numpy()).items()}
        return Batch(x_l, y_l, x_u, extras).to(self.device)

    def step(self, step: int) -> None:
        batch = self.batch()
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(self.cfg, step)
        out = self.method.train_step(batch, step, self.cfg.train.iterations)
        self.optimizer.zero_grad()
        out["loss"].backward()
        self.optimizer.step()
        self.method.on_after_optimizer_step(step)
        if self.extra_opts:
            out.update(self.method.extra_step(batch, step, self.cfg.train.iterations, self.extra_opts))
        self.log.append({k: v.item() for k, v in scalar_outputs(out).items()})


def vs_reference(trainer: Trainer, method, iters: int, repeats: int = 2, warmup: int = 2) -> dict[str, Any]:
    """Our step (StepRunner and our loader, on the trainer's method) over the plain loop's, interleaved A/B in
    this process; MT against its full re-implementation. Returns `_summary` plus which reference was used."""
    cfg = trainer.cfg
    runner = StepRunner(trainer, method)
    method.train()
    batches = iter(trainer.loader(0, warmup + iters * repeats))
    counter = {"ours": 0, "reference": 0}
    if cfg.method == "mt":
        from sslbench.benchmark.perf.reference_loop import ReferenceLoop

        t = cfg.train
        ref = ReferenceLoop(
            trainer.dataset.volumes(trainer.labeled_ids), trainer.dataset.volumes(trainer.unlabeled_ids),
            tuple(cfg.data.patch), t.n_filters, trainer.device, cfg.seed, t.iterations, t.labeled_bs,
            t.batch_size,
        )  # fmt: skip
        kind = "the reference MT script, re-implemented (perf/reference_loop.py)"
    else:
        ref = PlainMethodLoop(trainer)
        kind = "the same train_step in a plain reference-style loop (perf/method_reference.py)"

    def ours() -> None:
        runner(next(batches), counter["ours"])
        counter["ours"] += 1

    def reference() -> None:
        ref.step(counter["reference"])
        counter["reference"] += 1

    times = _interleave({"ours": ours, "reference": reference}, trainer.device, warmup, iters, repeats)
    runner.check_finite()
    return {**_summary(times, "ours", "reference"), "reference": kind}
