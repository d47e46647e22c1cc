"""Entropy minimisation (Grandvalet & Bengio, NIPS 2004): the example method of the README, "Adding a method".

Idea: push the network to be confident on unlabeled voxels. Loss: 0.5 (CE + Dice_fg) on the labeled half
+ lambda(t) * mean entropy of the softmax on the unlabeled half.

Deviations from the reference code: none (there is no reference 3D LA implementation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sslbench.methods import Batch, Method, MethodContext, register
from sslbench.methods.losses import ce_dice_loss, entropy


@dataclass(frozen=True)
class EntropyMinConfig:
    w: float = 0.1  # weight of the entropy term, ramped up like the other consistency weights


@register("entmin", k_inferences=None, family="consistency", paper="Grandvalet & Bengio, NIPS 2004")
class EntropyMin(Method):
    Config = EntropyMinConfig

    def __init__(self, cfg: EntropyMinConfig, ctx: MethodContext):
        super().__init__(cfg, ctx)
        self.student = self.build_vnet()

    def train_step(self, batch: Batch, step: int, max_steps: int) -> dict[str, torch.Tensor]:
        logits = self.student(batch.x)  # (B_l + B_u, 2, W, H, D), labeled first
        loss_sup = ce_dice_loss(logits[: batch.n_l], batch.y_l)
        loss_unsup = entropy(torch.softmax(logits[batch.n_l :], dim=1)).mean()
        w = self.consistency_weight(self.cfg.w, step, max_steps)
        return self.consistency_result(loss_sup, loss_unsup, w)
