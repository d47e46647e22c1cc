"""UA-MT: uncertainty-aware mean teacher (Yu et al., MICCAI 2019), LA script `_unlabel` variant.

Idea: as MT, but the consistency only counts voxels where the teacher is certain. Certainty comes from K = 8
stochastic teacher passes (input noise + dropout): the predictive entropy U of their mean, compared with the
threshold tau(t) = (0.75 + 0.25 ramp(t, t_max)) ln 2.
Loss: 0.5 (CE + Dice_fg) + lambda(t) * sum(1[U < tau] d) / (2 sum(1[U < tau])), d = (p_s - p_t)^2 on the
unlabeled half; lambda = 0.1 with the ramp-up.

C classes (the reference is binary): the threshold ramps towards ln C instead of ln 2 (the paper's U_max, the
largest entropy; `ramps.uamt_threshold`), the consistency divides by C sum(mask) instead of 2 sum(mask) (the
mean over the classes, `losses.masked_mean`), and Dice_fg is the mean foreground Dice (`losses.ce_dice_loss`).
SSL4MIS's 4-class 2D port (`train_uncertainty_aware_mean_teacher_2D.py`) keeps the binary constants ln 2 and 2,
which makes its mask stricter (0.75 ln 2 is 0.38 of ln 4) and its consistency twice the class mean; we follow
the paper's definitions instead. For two classes every number is the reference's.

Deviations from the reference code:
- None in the default: the K passes run as ceil(K / repeats) forward passes over the unlabeled batch replicated
  `repeats` times, and `repeats` = 2 is the reference's 2 copies x 4 loops. Each copy draws its own noise, and
  dropout masks are per sample.
- `repeats` changes the maths, not only the speed: the teacher runs in train mode, so its BatchNorm normalises
  each forward pass with that pass's batch statistics. With repeats = 8 the 8 passes share one BN batch of
  8 x 2 = 16 noisy volumes instead of four batches of 4, which changes every pass's normalisation, hence the
  mean probability, the entropy and the certainty mask (tests/test_uamt.py); it also draws the noise and
  dropout masks in another order. Runs with another `repeats` are another experiment (and another run id),
  not a faster version of the same one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sslbench.methods.base import Batch, EMATeacherMixin, Method, MethodContext, teacher_noise
from sslbench.methods.losses import ce_dice_loss, entropy, masked_mean, softmax_mse
from sslbench.methods.ramps import uamt_threshold
from sslbench.methods.registry import register


@dataclass(frozen=True)
class UAMTConfig:
    w: float = 0.1  # UA-MT --consistency
    ema_decay: float = 0.99  # UA-MT --ema_decay
    K: int = 8  # stochastic teacher passes (UA-MT T = 8)
    repeats: int = 2  # copies of the unlabeled batch per pass (UA-MT: 2 copies x 4 loops); changes BN batches
    noise_std: float = 0.1
    noise_clip: float = 0.2


def stochastic_mean_prob(
    net: torch.nn.Module, x: torch.Tensor, k: int, repeats: int, std: float, clip: float
):
    """Mean softmax of `k` noisy passes of `net` over `x` (B, 1, ...), run as batched passes of `repeats` copies."""
    b = x.shape[0]
    total = None
    done = 0
    while done < k:
        r = min(repeats, k - done)
        x_rep = x.repeat(r, 1, 1, 1, 1)  # (r*B, 1, W, H, D): copy j holds samples j*B..(j+1)*B
        prob = torch.softmax(net(teacher_noise(x_rep, std, clip)), dim=1)
        summed = prob.view(r, b, *prob.shape[1:]).sum(0)
        total = summed if total is None else total + summed
        done += r
    return total / k


@register(
    "uamt",
    display="UA-MT",
    order=40,
    k_inferences=8,
    family="uncertainty",
    paper="Yu et al., Uncertainty-aware self-ensembling model, MICCAI 2019",
)
class UAMT(EMATeacherMixin, Method):
    Config = UAMTConfig

    def __init__(self, cfg: UAMTConfig, ctx: MethodContext):
        super().__init__(cfg, ctx)
        self.student = self.build_vnet()
        self.init_teacher()

    def train_step(self, batch: Batch, step: int, max_steps: int) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        logits_s = self.student(batch.x)
        with torch.no_grad():
            logits_t = self.teacher(teacher_noise(batch.x_u, cfg.noise_std, cfg.noise_clip))
            prob_mean = stochastic_mean_prob(
                self.teacher, batch.x_u, cfg.K, cfg.repeats, cfg.noise_std, cfg.noise_clip
            )
            uncertainty = entropy(prob_mean)  # (B_u, 1, W, H, D), at most ln C
            threshold = uamt_threshold(step, max_steps, self.ctx.n_classes)
            mask = (uncertainty < threshold).float()
        loss_sup = ce_dice_loss(logits_s[: batch.n_l], batch.y_l)
        loss_unsup = masked_mean(softmax_mse(logits_s[batch.n_l :], logits_t), mask)
        w = self.consistency_weight(cfg.w, step, max_steps)
        return self.consistency_result(
            loss_sup,
            loss_unsup,
            w,
            certain_frac=mask.mean(),
            threshold=torch.tensor(threshold / math.log(self.ctx.n_classes)),  # the ramp, as a share of ln C
        )

    def on_after_optimizer_step(self, step: int) -> None:
        self.update_teacher(step, self.cfg.ema_decay)
