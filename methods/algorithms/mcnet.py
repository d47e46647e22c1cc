"""MC-Net+: mutual consistency learning (Wu et al., Medical Image Analysis 81, 2022), `ycwu1997/MC-Net`.

Idea: one V-Net encoder feeds three decoders that differ only in their up-sampling (transposed conv, trilinear,
nearest; `networks/vnet_multi.py`). Their disagreement marks uncertain voxels; each decoder is trained towards the
others' sharpened predictions (soft pseudo labels at temperature T = 0.1), which pushes all of them to low-entropy,
consistent outputs there. No teacher, one forward pass (the decoders share the encoder pass).

Loss (code/train_mcnet_3d.py), with p_i = softmax(decoder_i), s(p) = p^(1/T) / (p^(1/T) + (1 - p)^(1/T)):
  L_sup = lam * sum_i Dice(p_i,fg, y) on the labeled half, Dice = 1 - (2 sum pg + e) / (sum p + sum g + e)
  L_mc  = sum_{i != j} mean((p_i - s(p_j))^2) over the WHOLE batch (labeled + unlabeled)
  L     = L_sup + lambda(t) L_mc,  lam = 0.5, lambda = 1.0 with the ramp-up.
Evaluation: decoder 1 (transposed conv) alone. The reference's `test_3d.py` builds a plain V-Net and loads the
MC-Net+ weights with strict=False, so only the encoder and `decoder1` are used; `predict` does the same.

C classes (the 3D script is binary): the supervised Dice becomes that of the authors' own multi-class script,
`train_mcnet_2d.py` (ACDC, 4 classes): `losses.DiceLoss(num_classes)`, the squared-denominator Dice of every class,
background included, averaged over the classes (`losses.dice_loss_all_classes`). The sharpening stays element-wise
on every class channel and the MSE covers all of them, as in that script (the sharpened channels then no longer sum
to 1; the reference does not renormalise them). Two classes keep the 3D script's foreground Dice exactly.

Reported on LA (MC-Net+ paper, Table 1; 15,000 iterations, best checkpoint on the test set): 8 labels 88.96 Dice /
7.93 HD95 (voxels), 16 labels 91.07 / 5.84.

Deviations from the reference code:
- The ramp-up is the benchmark's (it ends at the last iteration; the reference's `iter // 150` over 40 ends at
  iteration 6000 of 15000). `mcnet.rampup_end=6000` restores the reference's: lambda(t) = w sigmoid_rampup(t //
  (6000 / 40), 40).
- The reference computes a CE term on the labeled half and never adds it to the loss; it is left out here
  (`ce=True` adds 0.5 CE per decoder if wanted), so the supervised loss is Dice only, as in the code.
- The reference stores the decoder probabilities in CPU buffers before the MSE (a speed quirk, same values).
- The checkpoint is the last one (benchmark protocol); the reference keeps the best test Dice every 200 steps.
- C classes: the 2D script's DiceLoss computes 1 - sum(p g) / (sum p^2 + sum g^2), without the factor 2 of a Dice
  (= 0.5 + 0.5 x the Dice loss, so half its gradient), with 1e-10 in the denominator only; ours is the Dice as
  written everywhere else, 1 - (2 sum(p g) + 1e-5) / (sum p^2 + sum g^2 + 1e-5). `mcnet.lam=0.25` gives the
  reference's gradient scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from sslbench.methods.base import Batch, Method, MethodContext
from sslbench.methods.losses import dice_loss_all_classes
from sslbench.methods.mutual import binary_dice_loss, mutual_consistency
from sslbench.methods.networks.vnet_multi import UP_MODES, VNetMultiDecoder
from sslbench.methods.ramps import sigmoid_rampup
from sslbench.methods.registry import register


@dataclass(frozen=True)
class MCNetConfig:
    w: float = 1.0  # consistency weight lambda (train_mcnet_3d.py --consistency 1)
    lam: float = 0.5  # weight of the Dice loss (--lamda 0.5)
    temperature: float = 0.1  # sharpening temperature T (--temperature 0.1; the paper's T = 0.1)
    n_decoders: int = 3  # MC-Net+ = mcnet3d_v2: transposed conv, trilinear, nearest (2 = MC-Net, MICCAI 2021)
    rampup_end: int | None = None  # None = the run's ramp; 6000 = the reference's (iter // 150 over 40 steps)
    ce: bool = False  # add the CE the reference computes but does not use

    def __post_init__(self) -> None:
        if not 2 <= self.n_decoders <= len(UP_MODES):
            raise ValueError(f"mcnet.n_decoders={self.n_decoders}: expected 2 or 3")
        if self.temperature <= 0:
            raise ValueError(f"mcnet.temperature={self.temperature}: expected a positive number")
        if self.rampup_end is not None and self.rampup_end < 1:
            raise ValueError(f"mcnet.rampup_end={self.rampup_end}: expected a positive integer")


def supervised_dice(prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The Dice of one decoder's labeled softmax (B_l, C, ...): the 3D script's foreground Dice for two classes,
    the 2D (multi-class) script's Dice of every class for more (see the module docstring)."""
    if prob.shape[1] == 2:
        return binary_dice_loss(prob[:, 1], target == 1)
    return dice_loss_all_classes(prob, target)


@register(
    "mcnet",
    display="MC-Net+",
    order=70,
    k_inferences=None,
    extra_passes=0,  # the three decoders share the student's single encoder pass
    family="mutual-learning",
    paper="Wu et al., Mutual consistency learning for semi-supervised medical image segmentation, MedIA 2022",
)
class MCNetPlus(Method):
    Config = MCNetConfig
    #: the authors' recipe (train_mcnet_3d.py): SGD 0.01, momentum 0.9, wd 1e-4, constant lr (no decay in the
    #: script), 15000 iterations, batch 4 = 2 + 2. A step policy with one step past the end is a constant lr.
    published_recipe: ClassVar[dict[str, Any]] = {
        "train.iterations": 15000,  # --max_iteration 15000
        "train.lr": 0.01,  # --base_lr 0.01
        "train.lr_policy": "step",  # the script never changes the lr ...
        "train.lr_step": 15000,  # ... so: one "step" after the last iteration
        "train.batch_size": 4,  # --batch_size 4
        "train.labeled_bs": 2,  # --labeled_bs 2
    }

    def __init__(self, cfg: MCNetConfig, ctx: MethodContext):
        super().__init__(cfg, ctx)
        self.student = VNetMultiDecoder(
            1, ctx.n_classes, ctx.n_filters, ctx.normalization, 0.5, UP_MODES[: cfg.n_decoders]
        )

    def _weight(self, step: int, max_steps: int) -> float:
        if self.cfg.rampup_end is None:
            return self.consistency_weight(self.cfg.w, step, max_steps)
        length = self.ctx.rampup_length
        return self.cfg.w * sigmoid_rampup(step // max(1, self.cfg.rampup_end // length), length)

    def train_step(self, batch: Batch, step: int, max_steps: int) -> dict[str, torch.Tensor]:
        n_l = batch.n_l
        logits = self.student(batch.x)  # n_decoders x (B_l + B_u, C, W, H, D)
        probs = [torch.softmax(out, dim=1) for out in logits]
        loss_dice = torch.stack([supervised_dice(p[:n_l], batch.y_l) for p in probs]).sum()
        loss_sup = self.cfg.lam * loss_dice
        if self.cfg.ce:
            loss_sup = loss_sup + 0.5 * sum(F.cross_entropy(out[:n_l], batch.y_l) for out in logits)
        loss_mc = mutual_consistency(probs, self.cfg.temperature)
        return self.consistency_result(loss_sup, loss_mc, self._weight(step, max_steps), loss_dice=loss_dice)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.student.head(x, 0), dim=1)  # decoder 1 (transposed conv), as test_3d.py
