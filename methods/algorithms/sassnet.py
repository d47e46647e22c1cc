"""SASSnet: shape-aware semi-supervised segmentation (Li et al., MICCAI 2020), SASSnet `code/train_gan_sdfloss.py`.

Idea: the two-head V-Net of DTC predicts a segmentation and a signed distance map. A discriminator looks at an
SDF prediction together with its image and guesses whether the crop was labeled; the segmentation network is
trained to make its SDFs on unlabeled crops look like those on labeled ones (an adversarial shape prior).

Loss of the segmentation network:
  Dice_fg(sigmoid(seg_l), y) + 0.3 * MSE(tanh_l, sdf_gt) + lambda(t) * CE(D(tanh_u, x_u), "labeled"),
  lambda = w with the ramp-up; w = 0.015 with <= 8 labeled cases, else 0.01 (the README's best settings).
Discriminator step (after the SGD step, own Adam(1e-4, betas (0.9, 0.99))): the segmentation net in eval mode
recomputes tanh for the whole batch without gradient; CE(D(tanh, x), [1] * B_l + [0] * B_u).
Evaluation: sigmoid of the seg head > 0.5 (as [1 - p, p] for the shared argmax).

Two classes only (`binary_only`): the shape prior is one signed distance map of one foreground (DTC's two-head
V-Net with single-channel heads), and the discriminator judges that one map against the labeled crops' maps.
The reference is binary (LA) and gives no C-class form (a discriminator over C maps would be a new method).

Deviations from the reference code:
- The discriminator pools adaptively (any crop size) and its width is 4 * n_filters (64 at the paper's 16), see
  `networks/discriminator.py`.
- An all-foreground crop gets SDF -1 (the reference gives NaN); SDF targets come from the loader workers.
- The discriminator runs in eval mode (no dropout) in the segmentation step, as in the reference; its gradients
  from that step are discarded by the discriminator step's zero_grad, as in the reference.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sslbench.methods.algorithms.dtc import sdf_net, two_channel_probs
from sslbench.methods.base import Batch, Method, MethodContext
from sslbench.methods.networks.discriminator import FC3DDiscriminator
from sslbench.methods.registry import register
from sslbench.methods.sdf import batch_sdf, sdf_supervised_loss, sdf_targets

LABELED, UNLABELED = 1, 0  # discriminator classes


@dataclass(frozen=True)
class SASSnetConfig:
    w: float | None = (
        None  # adversarial weight; None = from the split: 0.015 if n_labeled <= 8 else 0.01 (README)
    )
    beta: float = 0.3  # SDF regression weight (train_gan_sdfloss.py: loss_seg_dice + 0.3 * loss_sdf)
    d_lr: float = 1e-4  # discriminator Adam lr (train_gan_sdfloss.py)
    d_betas: tuple[float, float] = (0.9, 0.99)  # discriminator Adam betas


def split_weight(n_labeled: int) -> float:
    """The README's best adversarial weight for the split: 0.015 for 8 labels, 0.01 for 16."""
    return 0.015 if n_labeled <= 8 else 0.01


@register(
    "sassnet",
    display="SASSnet",
    order=20,
    k_inferences=None,
    family="shape-prior",
    paper="Li et al., Shape-aware semi-supervised 3D semantic segmentation for medical images, MICCAI 2020",
)
class SASSnet(Method):
    Config = SASSnetConfig
    batch_targets = staticmethod(sdf_targets)
    device_targets = (
        True  # on CUDA the SDF is built on the GPU (methods/edt.py), not by the loader on the CPU
    )
    auxiliary_networks = ("discriminator",)
    binary_only = "its adversarial shape prior judges one signed-distance map of a single foreground"

    def __init__(self, cfg: SASSnetConfig, ctx: MethodContext):
        super().__init__(cfg, ctx)
        self.student = sdf_net(ctx)
        self.discriminator = FC3DDiscriminator(num_classes=1, ndf=max(1, 4 * ctx.n_filters), n_channel=1)
        self.w = cfg.w if cfg.w is not None else split_weight(ctx.n_labeled)

    @classmethod
    def resolve_config(cls, cfg: SASSnetConfig, split) -> SASSnetConfig:
        # Record the weight actually used in config.json, not "None".
        return cfg if cfg.w is not None else dataclasses.replace(cfg, w=split_weight(split.n_labeled))

    def train_step(self, batch: Batch, step: int, max_steps: int) -> dict[str, torch.Tensor]:
        n_l = batch.n_l
        x = batch.x
        sdf_tanh, seg_logit = self.student(x)  # each (B, 1, W, H, D)
        sdf_gt = batch_sdf(batch.extras, batch.y_l)
        loss_sup = sdf_supervised_loss(sdf_tanh[:n_l], seg_logit[:n_l], batch.y_l, sdf_gt, self.cfg.beta)
        self.discriminator.eval()
        d_logits = self.discriminator(sdf_tanh[n_l:], x[n_l:])  # (B_u, 2)
        fooled = torch.full((d_logits.shape[0],), LABELED, dtype=torch.long, device=d_logits.device)
        loss_unsup = F.cross_entropy(d_logits, fooled)
        w = self.consistency_weight(self.w, step, max_steps)
        return self.consistency_result(loss_sup, loss_unsup, w)

    def extra_optimizers(self) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.discriminator.parameters(), lr=self.cfg.d_lr, betas=self.cfg.d_betas)]

    def extra_step(
        self, batch: Batch, step: int, max_steps: int, optimizers: list[torch.optim.Optimizer]
    ) -> dict[str, torch.Tensor]:
        (optimizer,) = optimizers
        x = batch.x
        self.student.eval()
        try:
            with torch.no_grad():
                sdf_tanh, _ = self.student(x)
        finally:
            self.student.train()
        self.discriminator.train()
        targets = torch.tensor(
            [LABELED] * batch.n_l + [UNLABELED] * (x.shape[0] - batch.n_l), device=x.device
        )
        loss_d = F.cross_entropy(self.discriminator(sdf_tanh, x), targets)
        optimizer.zero_grad(set_to_none=True)  # drops the gradients the segmentation step left on D
        loss_d.backward()
        optimizer.step()
        return {"loss_d": loss_d.detach()}

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return two_channel_probs(self.student(x)[1])
