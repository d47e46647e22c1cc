"""DTC: dual-task consistency (Luo et al., AAAI 2021), DTC `code/train_la_dtc.py` (the seed paper's "DCT").

Idea: one V-Net with two heads predicts both a segmentation (sigmoid) and a normalised signed distance map (tanh).
A smooth transform maps the SDF to a segmentation, sigmoid(-k * sdf) with k = 1500, and the two segmentations
must agree on every crop, labeled or not: the consistency needs no label, so it uses the unlabeled crops.

Loss: Dice_fg(sigmoid(seg_l), y) + 0.3 * MSE(tanh_l, sdf_gt)
      + lambda(t) * mean((sigmoid(-1500 tanh) - sigmoid(seg))^2) over the whole batch, lambda = 1.0 with the ramp-up.
The ground-truth SDF is computed from the labeled crops in the data loader workers (`batch_targets`).
Evaluation: sigmoid of the seg head, returned as the two channels [1 - p, p] so the shared argmax is p > 0.5.

Two classes only (`binary_only`): the SDF head regresses one signed distance map, the distance to the one
foreground's surface, and the task transform sigmoid(-k sdf) turns it into one foreground probability, which the
single-channel sigmoid segmentation head must match. A third class has no surface of its own in that map, and the
reference (`train_la_dtc.py`) is binary. SSL4MIS (HiLab, DTC's first author) has a 2D ACDC variant with one SDF
channel per class against a softmax head (`train_dtc_sdf_soft_sig_2D.py`); that is another network and loss than
the LA method benchmarked here, not its C-class form, so it is not used.

Deviations from the reference code:
- An all-foreground crop gets SDF -1 (the reference divides by zero and gives NaN; see `sdf.py`).
- The SDF targets come from the loader workers instead of the training loop (identical values, off the GPU
  thread); the reference's logged-but-unused BCE is not computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sslbench.methods.base import Batch, Method, MethodContext
from sslbench.methods.networks.vnet_sdf import VNetSDF
from sslbench.methods.registry import register
from sslbench.methods.sdf import batch_sdf, sdf_supervised_loss, sdf_targets


@dataclass(frozen=True)
class DCTConfig:
    w: float = 1.0  # DTC train_la_dtc.py --consistency 1.0 (its --consistency_weight 0.1 is unused)
    beta: float = 0.3  # weight of the SDF regression loss (DTC: loss_seg_dice + 0.3 * loss_sdf)
    k: float = 1500.0  # steepness of the SDF -> segmentation transform sigmoid(-k z)


def sdf_to_prob(sdf_tanh: torch.Tensor, k: float) -> torch.Tensor:
    """DTC's task transform: foreground probability sigmoid(-k * sdf) (the SDF is negative inside)."""
    return torch.sigmoid(-k * sdf_tanh)


def sdf_net(ctx: MethodContext) -> VNetSDF:
    """The two-head V-Net of DTC and SASSnet (one output channel per head)."""
    return VNetSDF(1, 1, ctx.n_filters, ctx.normalization, dropout=0.5)


def two_channel_probs(seg_logit: torch.Tensor) -> torch.Tensor:
    """[1 - sigmoid, sigmoid] (B, 2, ...), so argmax over channels equals sigmoid > 0.5."""
    p = torch.sigmoid(seg_logit)
    return torch.cat([1.0 - p, p], dim=1)


@register(
    "dct",
    display="DCT",
    order=30,
    aliases=("dtc",),
    k_inferences=None,
    family="shape-prior",
    paper="Luo et al., Semi-supervised medical image segmentation through dual-task consistency, AAAI 2021",
)
class DCT(Method):
    Config = DCTConfig
    binary_only = "one signed-distance head and its level-set transform describe a single foreground"
    batch_targets = staticmethod(sdf_targets)
    device_targets = (
        True  # on CUDA the SDF is built on the GPU (methods/edt.py), not by the loader on the CPU
    )

    def __init__(self, cfg: DCTConfig, ctx: MethodContext):
        super().__init__(cfg, ctx)
        self.student = sdf_net(ctx)

    def train_step(self, batch: Batch, step: int, max_steps: int) -> dict[str, torch.Tensor]:
        n_l = batch.n_l
        sdf_tanh, seg_logit = self.student(batch.x)  # each (B, 1, W, H, D)
        sdf_gt = batch_sdf(batch.extras, batch.y_l)
        loss_sup = sdf_supervised_loss(sdf_tanh[:n_l], seg_logit[:n_l], batch.y_l, sdf_gt, self.cfg.beta)
        loss_unsup = torch.mean((sdf_to_prob(sdf_tanh, self.cfg.k) - torch.sigmoid(seg_logit)) ** 2)
        w = self.consistency_weight(self.cfg.w, step, max_steps)
        return self.consistency_result(loss_sup, loss_unsup, w)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return two_channel_probs(self.student(x)[1])
