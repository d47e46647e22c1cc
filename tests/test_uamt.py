"""UA-MT: `repeats` (copies of the unlabeled batch per teacher pass) changes the certainty mask, not only speed."""

from __future__ import annotations

import dataclasses

import torch

from sslbench.methods.algorithms.uamt import UAMT, UAMTConfig, stochastic_mean_prob
from sslbench.methods.base import MethodContext
from sslbench.methods.losses import entropy
from sslbench.methods.ramps import uamt_threshold

PATCH = (16, 16, 16)


def certainty(method: UAMT, x_u: torch.Tensor, repeats: int, step: int, max_steps: int):
    """(mean probability, certainty mask) of UA-MT's K teacher passes, drawn from the same seed."""
    cfg = dataclasses.replace(method.cfg, repeats=repeats)
    torch.manual_seed(5)
    with torch.no_grad():
        prob = stochastic_mean_prob(method.teacher, x_u, cfg.K, cfg.repeats, cfg.noise_std, cfg.noise_clip)
    return prob, entropy(prob) < uamt_threshold(step, max_steps)


def test_repeats_changes_the_certainty_mask():
    torch.manual_seed(0)
    method = UAMT(UAMTConfig(), MethodContext(n_filters=2, patch=PATCH))
    x_u = torch.randn(2, 1, *PATCH, generator=torch.Generator().manual_seed(1))

    # As in training: the teacher in train mode (BN batch statistics, dropout on).
    method.teacher.train()
    _, mask2 = certainty(method, x_u, 2, 8, 10)
    _, mask8 = certainty(method, x_u, 8, 8, 10)
    assert mask2.any() and mask8.any()
    assert not torch.equal(mask2, mask8)  # 4 BN batches of 4 volumes vs 1 of 16: another mask

    # The cause is the shared BN batch: with per-sample normalisation (eval mode, running statistics; no
    # dropout) the same seed gives the same noise, hence the same mean probability, whatever `repeats`.
    method.teacher.eval()
    prob2, _ = certainty(method, x_u, 2, 8, 10)
    prob8, _ = certainty(method, x_u, 8, 8, 10)
    assert torch.allclose(prob2, prob8, atol=1e-5)
