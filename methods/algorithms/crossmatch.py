"""CrossMatch (Zhao et al., CrossMatch: Enhance Semi-Supervised Medical Image Segmentation with Perturbation
Strategies and Knowledge Distillation, IEEE JBHI 2024), from the authors' `AiEson/CrossMatch`,
`LA/code/train_cross_match.py` with `LA/code/train.sh`.

Idea: UniMatch's weak-to-strong self-training in one V-Net, plus self-distillation between its classifiers. The
decoder also runs on the encoder features after channel dropout at two rates (0.25 "weak", 0.75 "strong";
`networks/vnet_multi_fp.py`), which gives two extra, perturbed classifiers. Their predictions are supervised by
the clean prediction of the weak view (teacher -> students, across image perturbations), and the perturbed
classifiers on a strong CutMix view are also taught by the same perturbed classifiers on the weak view (the cross
match between image- and feature-level perturbations).

Loss, with Dice_k(p, y | keep) = 1 - (2 sum p g + e) / (sum p^2 + sum g^2 + e) over the voxels kept (foreground
only, e = 1e-5), pseudo labels (y, c) = (argmax, max) of a prediction of the weak view u, "m" = CutMix-ed with the
partner crop by box k, keep = 1[c >= tau(t)]:
  L_x   = (CE + Dice)(p(x_l), y_l) / 2
  L_s1  = Dice(p(s1), y^m1),  L_s2 = Dice(p(s2), y^m2)                                    (clean classifier)
  L_kd  = (1 - eta) [Dice(p_w(u), y) + Dice(p_s(u), y) + Dice(p_w(s2), y^m2) + Dice(p_s(s2), y^m2)] / 4
          + eta [Dice(p_w(s2), y_w^m2) + Dice(p_s(s2), y_s^m2)] / 2,    eta = 0.3
  L     = (L_x + 0.25 L_s1 + 0.25 L_s2 + L_kd) / 2
where p_w, p_s are the weak- and strong-dropout classifiers, y from the clean classifier on u, y_w and y_s from
p_w(u) and p_s(u). tau(t) = ln 2 (0.75 + 0.25 sigmoid_rampup(t, 17000 / 14000 T)) (the reference's formula,
UA-MT's uncertainty threshold on a longer horizon). Logged: loss_sup = L_x / 2, loss_unsup = the rest x 2,
w_unsup = 0.5. No teacher, no ramp on the loss.
Strong views (their loader): bias field (torchio RandomBiasField, order 3, coefficients U(-0.5, 0.5)) then gamma
(log gamma ~ U(-0.5, 0.5)), together with p = 0.8; Gaussian blur sigma ~ U(0.1, 2) with p = 0.5; CutMix boxes
(UniMatch's, volume U(0.02, 0.4)) with p = 0.5. Evaluation: the clean network (the last checkpoint, iteration
14001, as `train.sh` tests).

C classes (the LA script is binary): every Dice becomes that of the authors' multi-class script
(`ACDC/train_cross_match.py`, UniMatch's `DiceLoss(n_classes)`): the squared-denominator Dice of every class,
background included, over the kept voxels, averaged over the classes (`losses.masked_dice_all_classes`; on the
labeled half `losses.dice_loss_all_classes`); pseudo labels stay argmax and max softmax. The threshold schedule,
the loss weights and the perturbations stay the LA recipe's (the ACDC script's 2D recipe differs in those too:
a fixed threshold 0.95, the distillation weighted 0.5, SGD). Two classes keep the LA script's foreground
Dice exactly. tau(t) is a threshold on the max softmax, so it keeps its ln 2 (at most 0.69, above 1/C for C >= 2).

Reported on LA (CrossMatch README, AdamW, 14,000 iterations): 8 labels 91.33 Dice / 5.29 HD95 (voxels), 16
labels 91.61 / 5.36.

Deviations from the reference code:
- The CutMix partner of each unlabeled crop is another crop of the same batch (rolled by one), with its pseudo
  labels from the same weak pass. The reference loads a second unlabeled batch and predicts it with two extra
  no-grad passes (in train mode); the benchmark has no second unlabeled stream. (With one unlabeled crop per
  batch the partner is the crop itself and CutMix does nothing.)
- Every pass here is a perturbed-stream pass, so the decoder's final dropout is never on; the reference's
  partner pass is a plain one (with it).
- The threshold horizon is 17000/14000 of the run's iterations (the reference: 17000 fixed); its first step
  uses the unscaled 0.75 once, which is not reproduced. The poly lr uses the run's length as its horizon (the
  reference decays over 17000 of its 14000 iterations, ending at 0.18^0.9 of the base lr, not 0).
- Blur is isotropic (torchio draws one sigma per axis); gamma works on the crop min-max scaled to [0, 1]
  (`strong_augment.intensity_jitter`), torchio on the raw intensities. All draws come from the method's stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from sslbench.datasets.mixing import cutmix_boxes, paste
from sslbench.datasets.strong_augment import gaussian_blur, intensity_jitter
from sslbench.methods.base import Batch, Method, MethodContext
from sslbench.methods.losses import dice_loss_all_classes, dice_loss_fg, masked_dice_all_classes
from sslbench.methods.networks.vnet_multi_fp import VNetMultiFP
from sslbench.methods.ramps import sigmoid_rampup
from sslbench.methods.registry import register
from sslbench.methods.seeded import SeededMixin

_STREAM = 0xC805  # this method's random stream (see seeded.py)


@dataclass(frozen=True)
class CrossMatchConfig:
    conf_thresh: float = 0.75  # train.sh --conf_thresh 0.75 (then x ln 2 and ramped to 1 x ln 2)
    thresh_horizon: float = 17000 / 14000  # sigmoid_rampup(iter_num, 17000) over --max_iterations 14000
    eta: float = 0.3  # --eta 0.3: share of the cross-perturbation distillation terms
    w_strong: float = 0.25  # loss_u_s1 * 0.25 + loss_u_s2 * 0.25
    pert_gap: float = 0.5  # --pert_gap 0.5: dropout rates 0.5 -+ 0.25
    bias_p: float = 0.8  # la_heart.py: RandomBiasField + RandomGamma with p = 0.8 ...
    bias_coefficient: float = 0.5  # ... RandomBiasField(coefficients=0.5, order=3) (torchio defaults) ...
    log_gamma: float = 0.5  # ... RandomGamma((-0.5, 0.5))
    blur_p: float = 0.5  # RandomBlur((0.1, 2)) with p = 0.5
    blur_sigma_max: float = 2.0
    cutmix_p: float = 0.5  # obtain_cutmix_box(p=0.5), size 0.02 - 0.4

    def __post_init__(self) -> None:
        if not 0.0 <= self.conf_thresh <= 1.0 or not 0.0 <= self.eta <= 1.0:
            raise ValueError("crossmatch: conf_thresh and eta in [0, 1] expected")
        if not 0.0 <= self.pert_gap < 1.0 or self.thresh_horizon <= 0 or self.blur_sigma_max <= 0.1:
            raise ValueError(
                "crossmatch: pert_gap in [0, 1), thresh_horizon > 0, blur_sigma_max > 0.1 expected"
            )
        for name in ("bias_p", "blur_p", "cutmix_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"crossmatch.{name}={getattr(self, name)}: expected a probability in [0, 1]")


def confidence_threshold(base: float, step: int, horizon: float) -> float:
    """tau(t) = ln 2 (base + (1 - base) sigmoid_rampup(t, horizon)): the reference's threshold on max softmax."""
    return math.log(2.0) * (base + (1.0 - base) * sigmoid_rampup(step, horizon))


def masked_dice_fg(prob_fg: torch.Tensor, target: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The squared-denominator foreground Dice over the kept voxels only (the reference's `ignore = 1 - keep`)."""
    keep = keep.to(prob_fg.dtype)
    return dice_loss_fg(prob_fg * keep, (target == 1).to(prob_fg.dtype) * keep)


def probability_maps(logits: torch.Tensor) -> torch.Tensor:
    """What the Dice terms compare with labels: the foreground softmax (B, ...) for two classes (the LA script),
    the whole softmax (B, C, ...) for more (the ACDC script)."""
    prob = torch.softmax(logits, dim=1)
    return prob[:, 1] if prob.shape[1] == 2 else prob


def masked_dice(prob: torch.Tensor, target: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The Dice over the kept voxels of a `probability_maps` output: foreground only (a (B, ...) map), or every
    class averaged (a (B, C, ...) map)."""
    if prob.dim() == target.dim():
        return masked_dice_fg(prob, target, keep)
    return masked_dice_all_classes(prob, target, keep)


def labeled_dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The Dice of L_x: foreground for two classes (LA script), every class averaged for more (ACDC script)."""
    prob = probability_maps(logits)
    return dice_loss_fg(prob, target) if prob.dim() == target.dim() else dice_loss_all_classes(prob, target)


def pseudo_label(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(label, confidence) of logits (B, C, ...), without gradient: (B, ...) each."""
    conf, label = torch.softmax(logits.detach().float(), dim=1).max(dim=1)
    return label, conf


def mixed_target(
    label: torch.Tensor, conf: torch.Tensor, partner: torch.Tensor, box: torch.Tensor, tau: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """A pseudo label CutMix-ed like its image (the partner's inside `box`) and its keep mask 1[conf >= tau]."""
    return paste(label, label[partner], box), (paste(conf, conf[partner], box) >= tau).float()


def distillation_loss(
    prob_fp_u: tuple[torch.Tensor, torch.Tensor],
    prob_fp_s2: tuple[torch.Tensor, torch.Tensor],
    target_u: tuple[torch.Tensor, torch.Tensor],
    target_s2: tuple[torch.Tensor, torch.Tensor],
    target_fp_s2: tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    eta: float,
) -> torch.Tensor:
    """L_kd: the perturbed classifiers (weak, strong) taught by the clean one on u and on s2 (weight 1 - eta) and
    by themselves on u, CutMix-ed, on s2 (weight eta). Probabilities are `probability_maps` outputs (foreground
    maps (B_u, W, H, D) for two classes); each target is a (label, keep) pair."""
    from_clean = [masked_dice(p, *target_u) for p in prob_fp_u]
    from_clean += [masked_dice(p, *target_s2) for p in prob_fp_s2]
    from_self = [masked_dice(p, *t) for p, t in zip(prob_fp_s2, target_fp_s2, strict=True)]
    return (1.0 - eta) * sum(from_clean) / 4.0 + eta * sum(from_self) / 2.0


def bias_field(
    x: torch.Tensor, generator: torch.Generator, coefficient: float = 0.5, order: int = 3
) -> torch.Tensor:
    """x exp(sum_{i+j+k <= order} a_ijk X^i Y^j Z^k), a ~ U(-coefficient, coefficient) per sample, X, Y, Z in
    [-1, 1] across the crop (torchio's RandomBiasField): a smooth multiplicative intensity inhomogeneity."""
    n, shape = x.shape[0], x.shape[2:]
    axes = [torch.linspace(-1.0, 1.0, s, device=x.device, dtype=x.dtype) for s in shape]
    grid = torch.meshgrid(*axes, indexing="ij")
    powers = [
        (i, j, k) for i in range(order + 1) for j in range(order + 1 - i) for k in range(order + 1 - i - j)
    ]
    coef = torch.rand(n, len(powers), generator=generator, device=generator.device).to(x.device, x.dtype)
    coef = coefficient * (2.0 * coef - 1.0)
    monomials = torch.stack(
        [grid[0] ** i * grid[1] ** j * grid[2] ** k for i, j, k in powers]
    )  # (M, W, H, D)
    log_field = torch.einsum("bm,mwhd->bwhd", coef, monomials)
    return x * torch.exp(log_field)[:, None]


@register(
    "crossmatch",
    display="CrossMatch",
    order=110,
    k_inferences=None,
    extra_passes=1,  # the strong views' pass (the perturbed streams run inside each pass)
    family="pseudo-label",
    paper="Zhao et al., CrossMatch: Enhance Semi-Supervised Medical Image Segmentation with Perturbation "
    "Strategies and Knowledge Distillation, IEEE JBHI 2024",
)
class CrossMatch(SeededMixin, Method):
    Config = CrossMatchConfig
    #: the authors' LA recipe (train.sh + train_cross_match.py): AdamW lr 0.001 (betas 0.9, 0.999), wd 1e-4,
    #: poly (1 - t/17000)^0.9 updated after each step, 14000 iterations, 2 labeled + 2 unlabeled crops.
    published_recipe: ClassVar[dict[str, Any]] = {
        "train.iterations": 14000,  # train.sh --max_iterations 14000
        "train.optimizer": "adamw",  # --optimizer AdamW
        "train.lr": 0.001,  # --base_lr 0.001
        "train.momentum": 0.9,  # AdamW's default beta1
        "train.weight_decay": 1e-4,  # optim.AdamW(weight_decay=0.0001)
        "train.lr_policy": "poly",  # lr_ = base_lr * (1 - iter_num / 17000) ** 0.9
        "train.batch_size": 4,  # --batch_size 2 labeled + 2 unlabeled
        "train.labeled_bs": 2,
    }
    #: with an untrained tiny network and tau ~ 0.52 the kept set may be empty; keep every voxel in the contract
    contract_config: ClassVar[dict[str, Any]] = {"conf_thresh": 0.0}

    def __init__(self, cfg: CrossMatchConfig, ctx: MethodContext):
        super().__init__(cfg, ctx)
        rates = (0.5 - cfg.pert_gap / 2, 0.5 + cfg.pert_gap / 2)
        self.student = VNetMultiFP(1, ctx.n_classes, ctx.n_filters, ctx.normalization, 0.5, fp_rates=rates)
        self.init_rng(_STREAM)

    def strong_view(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Bias field and gamma together with p = 0.8, then blur with p = 0.5 (before CutMix)."""
        cfg = self.cfg
        apply = torch.rand(x.shape[0], generator=generator, device=generator.device).to(x.device) < cfg.bias_p
        biased = bias_field(x, generator, cfg.bias_coefficient)
        gamma = intensity_jitter(
            biased, generator, p=1.0, brightness=0.0, contrast=0.0, log_gamma=cfg.log_gamma
        )
        x = torch.where(apply.view(-1, 1, 1, 1, 1), gamma, x)
        return gaussian_blur(x, generator, cfg.blur_p, (0.1, cfg.blur_sigma_max))

    def train_step(self, batch: Batch, step: int, max_steps: int) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        n_l, x_u = batch.n_l, batch.x_u
        n_u, shape, device = x_u.shape[0], tuple(x_u.shape[2:]), x_u.device
        partner = torch.roll(torch.arange(n_u, device=device), 1)  # the CutMix source of each unlabeled crop
        tau = confidence_threshold(cfg.conf_thresh, step, cfg.thresh_horizon * max_steps)

        with torch.no_grad():
            g = self.step_generator(device)
            boxes = [cutmix_boxes(n_u, shape, self.rng, p=cfg.cutmix_p, device=device) for _ in range(2)]
            x_s = []
            for box in boxes:
                view = self.strong_view(x_u, g)
                x_s.append(paste(view, view[partner], box[:, None]))

        # Pass 1: labeled + weak view, perturbed streams of the weak view; pass 2: both strong views, perturbed
        # streams of s2 (the reference's two calls).
        logits, logits_fp_u = self.student(batch.x, fp_from=n_l)
        logits_s, logits_fp_s2 = self.student(torch.cat(x_s), fp_from=n_u)
        logits_s1, logits_s2 = logits_s[:n_u], logits_s[n_u:]

        with torch.no_grad():
            label_u, conf_u = pseudo_label(logits[n_l:])
            target_u = (label_u, (conf_u >= tau).float())
            target_m1, target_m2 = (mixed_target(label_u, conf_u, partner, box, tau) for box in boxes)
            target_fp_s2 = tuple(
                mixed_target(*pseudo_label(lf), partner, boxes[1], tau) for lf in logits_fp_u
            )  # (weak, strong) classifiers' own labels of u, mixed like s2

        loss_x = 0.5 * (F.cross_entropy(logits[:n_l], batch.y_l) + labeled_dice(logits[:n_l], batch.y_l))
        loss_s1 = masked_dice(probability_maps(logits_s1), *target_m1)
        loss_s2 = masked_dice(probability_maps(logits_s2), *target_m2)
        loss_kd = distillation_loss(
            tuple(probability_maps(lf) for lf in logits_fp_u),
            tuple(probability_maps(lf) for lf in logits_fp_s2),
            target_u,
            target_m2,
            target_fp_s2,
            cfg.eta,
        )
        loss_u = cfg.w_strong * (loss_s1 + loss_s2) + loss_kd
        return self.consistency_result(
            0.5 * loss_x,
            loss_u,
            0.5,
            loss_x=loss_x,
            loss_s=0.5 * (loss_s1 + loss_s2),
            loss_kd=loss_kd,
            mask_ratio=target_u[1].mean(),
            tau=torch.tensor(tau),
        )
