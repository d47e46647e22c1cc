"""URPC: uncertainty rectified pyramid consistency (Luo et al., MICCAI 2021 / MedIA 2022), SSL4MIS 3D script.

Idea: one network predicts at four scales (deep supervision). On unlabeled crops each scale is pulled towards the
average of the scales, voxel by voxel, with a weight exp(-D) that is small where that scale disagrees with the
average (D = KL divergence of the scale from the average, the "uncertainty"); the mean D itself is minimised too.
The uncertainty comes from the student's own single pass: K = 1, no teacher, no extra passes.

Loss, with p_s = softmax(out_s) for the scales s = 1..4 and p = mean_s p_s:
  L_sup  = (sum_s CE(out_s, y) + sum_s DiceAll(p_s, y)) / 8 on the labeled half (DiceAll: SSL4MIS all-class Dice)
  D_s    = sum_c p_c (log p_c - log p_s,c)                         (B_u, 1, W, H, D), gradients through both
  L_s    = mean((p - p_s)^2 exp(-D_s)) / (mean(exp(-D_s)) + 1e-8) + mean(D_s)
  L      = L_sup + lambda(t) * (L_1 + L_2 + L_3 + L_4) / 4,  lambda = 0.1 with the ramp-up, unlabeled half only.
Evaluation uses the main (finest) head's softmax.

C classes: nothing changes; the SSL4MIS script is written for any `num_classes` (CE, the all-class Dice, the
KL and the MSE are all over the class axis).

Deviations from the reference code:
- log p_s is taken as log_softmax(out_s) rather than log(softmax(out_s)): the same value where the softmax does
  not underflow, and finite where it does (the reference's KL would be inf there).
- The benchmark's common optimiser (SGD 0.01, step decay) is used; SSL4MIS's URPC uses lr 0.1 with poly decay
  (`--set train.lr=0.1 --set train.lr_policy=poly` reproduces it). The ramp is 40 steps over the run (SSL4MIS: 400
  over 60k iterations), scaled to LA's 6000 iterations as methods.md 3.4 recommends.
- `backbone="vnet"` (not in the reference) puts the same four pyramid heads on the LA V-Net's decoder stages, to
  separate the method from the U-Net backbone the seed paper's footnote says URPC used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sslbench.methods.base import Batch, Method, MethodContext
from sslbench.methods.losses import dice_loss_all_classes
from sslbench.methods.networks.unet3d_dv import UNet3DDeepSupervision
from sslbench.methods.networks.vnet_pyramid import VNetPyramid
from sslbench.methods.registry import register

BACKBONES = ("unet", "vnet")


@dataclass(frozen=True)
class URPCConfig:
    w: float = 0.1  # SSL4MIS train_uncertainty_rectified_pyramid_consistency_3D.py --consistency 0.1
    backbone: str = "unet"  # SEED footnote 1: "URPC uses multi-scale 3D U-Net"; "vnet" = the LA V-Net + heads

    def __post_init__(self):
        if self.backbone not in BACKBONES:
            raise ValueError(f"urpc.backbone '{self.backbone}': expected one of {', '.join(BACKBONES)}")


def pyramid_supervised_loss(logits: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """(sum_s CE(out_s, y) + sum_s DiceAll(softmax(out_s), y)) / (2 S) over the S scales."""
    terms = [
        F.cross_entropy(out, target.long()) + dice_loss_all_classes(torch.softmax(out, dim=1), target)
        for out in logits
    ]
    return torch.stack(terms).sum() / (2 * len(logits))


def rectified_pyramid_consistency(logits: list[torch.Tensor], eps: float = 1e-8) -> torch.Tensor:
    """URPC's uncertainty-rectified consistency averaged over the scales, for unlabeled logits (B_u, C, ...)."""
    probs = [torch.softmax(out, dim=1) for out in logits]
    prob_mean = torch.stack(probs).mean(dim=0)  # (B_u, C, W, H, D), not detached: gradients reach every scale
    losses = []
    for out, prob in zip(logits, probs, strict=True):
        # KL(p_mean || p_s) per voxel, summed over classes: (B_u, 1, W, H, D)
        kl = F.kl_div(F.log_softmax(out, dim=1), prob_mean, reduction="none").sum(dim=1, keepdim=True)
        weight = torch.exp(-kl)
        rectified = torch.mean((prob_mean - prob) ** 2 * weight) / (torch.mean(weight) + eps)
        losses.append(rectified + torch.mean(kl))
    return torch.stack(losses).mean()


@register(
    "urpc",
    display="URPC",
    order=50,
    k_inferences=1,
    extra_passes=0,  # the uncertainty comes from the student's own pass
    family="uncertainty",
    paper="Luo et al., Efficient semi-supervised gross target volume segmentation via uncertainty rectified "
    "pyramid consistency, MICCAI 2021",
)
class URPC(Method):
    Config = URPCConfig

    def __init__(self, cfg: URPCConfig, ctx: MethodContext):
        super().__init__(cfg, ctx)
        if cfg.backbone == "vnet":
            self.student = VNetPyramid(1, ctx.n_classes, ctx.n_filters, ctx.normalization)
        else:
            self.student = UNet3DDeepSupervision(1, ctx.n_classes, ctx.n_filters)

    def train_step(self, batch: Batch, step: int, max_steps: int) -> dict[str, torch.Tensor]:
        n_l = batch.n_l
        logits = list(self.student(batch.x))  # 4 x (B, C, W, H, D), finest first
        loss_sup = pyramid_supervised_loss([out[:n_l] for out in logits], batch.y_l)
        loss_unsup = rectified_pyramid_consistency([out[n_l:] for out in logits])
        w = self.consistency_weight(self.cfg.w, step, max_steps)
        return self.consistency_result(loss_sup, loss_unsup, w)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.student(x)[0], dim=1)  # the main head only (SSL4MIS test_urpc_util.py)
