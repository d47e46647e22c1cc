"""Supervised baseline: the lower bound (N/0) and, with the split 80/0, the upper bound.

Paper: Yu et al., "Uncertainty-aware self-ensembling model for semi-supervised 3D left atrium segmentation",
MICCAI 2019 (its `train_LA.py` baseline). Loss: 0.5 (CE + Dice_fg) on the labeled crops.

C classes (the reference is binary): Dice_fg is the mean foreground Dice over classes 1..C-1
(`losses.dice_loss_foreground`, UA-MT's Dice exactly for two classes), as the lrep authors' 5-class FLARE script.

Deviations from the reference code:
- The reference runs 6001 iterations (its loop stops at `iter > max`); we run exactly `iterations`.
- The batch holds `labeled_bs` labeled crops only when the split has unlabeled cases; the trainer gives a
  supervised run a batch of `batch_size` labeled crops, as the reference does.
"""

from __future__ import annotations

import torch

from sslbench.methods.base import Batch, Method, MethodContext, NoConfig
from sslbench.methods.losses import ce_dice_loss
from sslbench.methods.registry import register


@register(
    "sup",
    display="Supervised",
    order=0,
    baseline=True,
    k_inferences=None,
    family="supervised",
    paper="Yu et al., MICCAI 2019 (train_LA.py baseline)",
)
class Supervised(Method):
    Config = NoConfig
    uses_unlabeled = False

    def __init__(self, cfg: NoConfig, ctx: MethodContext):
        super().__init__(cfg, ctx)
        self.student = self.build_vnet()

    def train_step(self, batch: Batch, step: int, max_steps: int) -> dict[str, torch.Tensor]:
        loss = ce_dice_loss(self.student(batch.x_l), batch.y_l)
        return {"loss": loss, "loss_sup": loss.detach()}
