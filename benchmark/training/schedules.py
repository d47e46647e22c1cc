"""The learning-rate schedules of the trainer."""

from __future__ import annotations

import math

from sslbench.benchmark.config import RunConfig


def lr_at(cfg: RunConfig, step: int) -> float:
    """The learning rate used for optimisation step `step` (0-based).

    step: `lr * gamma^(step // every)`, every = `train.lr_step` or 2500 per 6000 iterations (UA-MT, DTC, SASSnet:
        x0.1 every 2500 of 6000).
    cosine: `lr * (1 + cos(pi * step / T)) / 2` with T = iterations + `train.cosine_extra` (the paper's policy
        for lrep; the authors' FLARE code uses T = iterations + 2000).
    poly: `lr * (1 - step / iterations)^0.9`. This is one step ahead of SSL4MIS, which trains step s with the
        value it computed after step s - 1, i.e. `(1 - (s - 1) / N)^0.9` (and its first step with the base lr
        for s = 0 and s = 1). The relative difference is about 0.9 / (N - s): 0.015 % at the start of a
        6000-iteration run, 1 % 90 steps before its end (where the lr is already 2.3 % of the base).
    """
    t = cfg.train
    if t.lr_policy == "step":
        every = t.lr_step or max(1, round(t.iterations * 2500 / 6000))
        return t.lr * t.lr_gamma ** (step // every)
    if t.lr_policy == "cosine":
        t_max = t.iterations + t.cosine_extra
        return t.lr * 0.5 * (1.0 + math.cos(math.pi * min(step, t_max) / t_max))
    return t.lr * (1.0 - step / t.iterations) ** 0.9  # poly (SSL4MIS)
