"""Consistency-weight ramp-ups (Laine & Aila), written from the formulas in methods.md 2.3."""

from __future__ import annotations

import math


def sigmoid_rampup(current: float, length: float) -> float:
    """exp(-5 (1 - t/L)^2) with t clipped to [0, L]; 1 when L is 0."""
    if length <= 0:
        return 1.0
    t = min(max(float(current), 0.0), float(length))
    return math.exp(-5.0 * (1.0 - t / length) ** 2)


def rampup_weight(
    weight: float, step: int, max_steps: int, kind: str = "staircase", length: int = 40
) -> float:
    """Consistency weight at `step`.

    staircase: the references' `w * sigmoid_rampup(step // interval, length)` with interval = max_steps // length
        (150 for the 6000-iteration protocol), so the ramp ends at the last iteration at any preset.
    gaussian: the paper's continuous `w * exp(-5 (1 - t/t_max)^2)`.
    """
    if kind == "staircase":
        interval = max(1, max_steps // length)
        return weight * sigmoid_rampup(step // interval, length)
    if kind == "gaussian":
        return weight * sigmoid_rampup(step, max_steps)
    raise ValueError(f"rampup '{kind}': expected 'staircase' or 'gaussian'")


def uamt_threshold(step: int, max_steps: int, n_classes: int = 2) -> float:
    """UA-MT's uncertainty threshold (0.75 + 0.25 ramp(t, t_max)) U_max; the ramp uses the raw iteration.

    U_max = ln C is the largest predictive entropy of C classes. UA-MT's paper ramps the threshold from 0.75 U_max
    to U_max, U_max the largest uncertainty (ln 2 for its two classes); with C classes it ramps towards ln C.
    """
    return (0.75 + 0.25 * sigmoid_rampup(step, max_steps)) * math.log(n_classes)
