"""The learning-rate schedules of the trainer."""

from __future__ import annotations

import math

from sslbench.benchmark.config import RunConfig


def lr_at(cfg: RunConfig, step: int) -> float:
    t = cfg.train
    if t.lr_policy == "step":
        every = t.lr_step or max(1, round(t.iterations * 2500 / 6000))
        return t.lr * t.lr_gamma ** (step // every)
    if t.lr_policy == "cosine":
        t_max = t.iterations + t.cosine_extra
        return t.lr * 0.5 * (1.0 + math.cos(math.pi * min(step, t_max) / t_max))
    return t.lr * (1.0 - step / t.iterations) ** 0.9  # poly (SSL4MIS)
