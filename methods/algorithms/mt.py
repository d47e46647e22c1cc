"""Mean Teacher (Tarvainen & Valpola, NeurIPS 2017) as UA-MT's LA loop without the certainty mask.

Idea: an EMA teacher sees the unlabeled crops with small input noise; the student is pulled towards the
teacher's softmax. Loss: 0.5 (CE + Dice_fg) on the labeled half + lambda(t) * mean((p_s - p_t)^2) on the
unlabeled half, lambda = 0.1 with the ramp-up, EMA decay 0.99.

Which reference: UA-MT's `train_LA_meanteacher_certainty_unlabel.py` with the mask set to 1 (UA-MT's V-Net,
foreground-only Dice, its step lr schedule and ramp-up, the trainer's defaults), not SSL4MIS's
`train_mean_teacher_3D.py`, which is written for BraTS with a 3-D U-Net, a Dice over all classes (background
included) and a poly lr. SSL4MIS is the reference only for the weight 0.1 and the softmax-MSE form, which the
two share.

C classes (the reference is binary): Dice_fg is the mean foreground Dice over classes 1..C-1
(`losses.ce_dice_loss`, UA-MT's Dice exactly for two classes); the softmax MSE covers every class already.

Deviations from the reference code:
- BN running buffers are copied to the teacher at each EMA step (the references leave them; their teacher always
  runs in train mode, so this does not change training).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sslbench.methods.base import Batch, EMATeacherMixin, Method, MethodContext, teacher_noise
from sslbench.methods.losses import ce_dice_loss, softmax_mse
from sslbench.methods.registry import register


@dataclass(frozen=True)
class MTConfig:
    w: float = 0.1  # consistency weight (UA-MT --consistency 0.1, as SSL4MIS)
    ema_decay: float = 0.99  # UA-MT --ema_decay
    noise_std: float = 0.1  # teacher input noise N(0, 0.1^2) ...
    noise_clip: float = 0.2  # ... clipped to +-0.2 (UA-MT)


@register(
    "mt",
    display="MT",
    order=10,
    k_inferences=None,
    family="consistency",
    paper="Tarvainen & Valpola, NeurIPS 2017",
)
class MeanTeacher(EMATeacherMixin, Method):
    Config = MTConfig

    def __init__(self, cfg: MTConfig, ctx: MethodContext):
        super().__init__(cfg, ctx)
        self.student = self.build_vnet()
        self.init_teacher()

    def train_step(self, batch: Batch, step: int, max_steps: int) -> dict[str, torch.Tensor]:
        logits_s = self.student(batch.x)
        with torch.no_grad():
            logits_t = self.teacher(teacher_noise(batch.x_u, self.cfg.noise_std, self.cfg.noise_clip))
        loss_sup = ce_dice_loss(logits_s[: batch.n_l], batch.y_l)
        loss_unsup = softmax_mse(logits_s[batch.n_l :], logits_t).mean()
        w = self.consistency_weight(self.cfg.w, step, max_steps)
        return self.consistency_result(loss_sup, loss_unsup, w)

    def on_after_optimizer_step(self, step: int) -> None:
        self.update_teacher(step, self.cfg.ema_decay)
