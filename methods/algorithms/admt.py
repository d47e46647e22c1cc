"""AD-MT: alternate diverse teaching (Zhao et al., Alternate Diverse Teaching for Semi-supervised Medical Image
Segmentation, ECCV 2024), from the authors' `ZhenZHAO/AD-MT`, `code/train_post_3d_aut.py` with
`cfgs/config_3d_la_aut.yml`.

Idea: one student, two EMA teachers that are never trained and are updated in turn. A random periodic alternation
(RPA) decides which teacher the student's EMA step goes to: it stays with one teacher for a period drawn from
U{1, ..., 19} iterations, then switches and draws a new period. Each half of the schedule also sees a different
perturbation: while teacher 1 is updated, the student learns on the strong intensity view of the unlabeled crops;
while teacher 2 is updated, on a CutMix of the weak crops (images and pseudo labels mixed with the same box).
The conflict-combating module (CCM) fuses both teachers' predictions of the weak crop voxel by voxel, weighting
each by exp(-entropy), and lets the student's own weak prediction replace the fused label where the teachers
disagree with each other, the student disagrees with them and is more confident.

Loss, with p_k = softmax(teacher_k(x_u)), H_k = -sum_c p_k log2(p_k + 1e-10), q = softmax(student(x_u)):
  w_1   = exp(-H_1) / (exp(-H_1) + exp(-H_2)),   p = w_1 p_1 + (1 - w_1) p_2,   (c, y) = (max, argmax) of p
  conflict = (argmax p_1 != argmax p_2) & (argmax q != y);  where conflict and max q > c: (c, y) <- (max q, argmax q)
  L_sup = (CE + DiceAll)(student(x_l), y_l) / 2            DiceAll: squared-denominator Dice per class, mean
  L_u   = CE(student(x_view), y) averaged over the voxels with c >= 0.8 (x_view: strong view or CutMix, as above)
  L     = L_sup + lambda(t) L_u,  lambda = 2.0 with the ramp-up.
Teachers: EMA 0.99 of the student; the updated one copies the student while iter // 2 < 40, then warms up as
min(1 - 1 / (iter // 2 - 40 + 1), 0.99); BN running buffers are averaged like the weights. The teacher that is
being updated runs in train mode, the other in eval mode. Evaluation: the student (`test_3d.sh` tests the best
student checkpoint).

Reported on LA (AD-MT paper; 15,000 iterations): 8 labels 90.55 Dice / 5.81 HD95 (voxels). The released code
validates on test.list and keeps the best checkpoint; the benchmark takes the last one.

C classes: nothing changes; the pseudo labels are the argmax and the max of softmax maps, the entropies sum
over the class axis and the losses (CE, the all-class Dice) are per class, as in the released code.

Deviations from the reference code:
- The student's weak pseudo labels are CutMix-ed with the same box as the teachers' before the conflict
  resolution. The reference compares the mixed teacher labels with the student's unmixed ones, so inside the box
  it pits predictions of two different crops against each other.
- The ramp-up is the benchmark's (it ends at the last iteration); `admt.rampup_interval=150` restores the
  reference's lambda(t) = 2 sigmoid_rampup(t // 150, 40) (it ends at iteration 6000 of 15000; published recipe).
- No confident voxel gives L_u = 0 (the reference's CE with every voxel ignored is NaN).
- The strong view is made on the training device inside `train_step` (the reference's loader: brightness and
  contrast on the min-max scaled crop with p = 0.8, Gaussian noise sigma ~ U(0.1, 1) clipped at 2 sigma with
  p = 0.2); all draws come from the method's own seeded stream (numpy's global RNG in the reference).
- The unused branches of the reference (self-training stage, student pseudo labels, Dice unlabeled loss, a
  conflict weight other than 1) are left out: the LA configuration never reaches them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from sslbench.datasets.mixing import paste
from sslbench.methods.base import Batch, Method, MethodContext
from sslbench.methods.losses import dice_loss_all_classes
from sslbench.methods.ramps import sigmoid_rampup
from sslbench.methods.registry import register
from sslbench.methods.seeded import SeededMixin

_STREAM = 0xAD17  # this method's random stream (see seeded.py)


@dataclass(frozen=True)
class ADMTConfig:
    w: float = 2.0  # config_3d_la_aut.yml consistency: 2.0
    conf_thresh: float = 0.8  # conf_threshold: 0.8
    ema_decay: float = 0.99  # ema_decay: 0.99
    ema_hold: int = 40  # update_ema_variables: alpha = 0 while iter // 2 < consistency_rampup (40)
    period_max: int = 19  # alt_param_updating_period_iters: 19 (a period is drawn from U{1..19}) ...
    random_period: bool = True  # ... alt_flag_updating_period_random: True (False: fixed periods of 1 step)
    temperature: float = 1.0  # alt_param_ensemble_temp: 1.0 (sharpening of the fused probabilities; 1 = none)
    cutmix_p: float = 1.0  # cutmix_prob: 1.0
    cutmix_beta: int = 4  # mixaugs.rand_bbox_3d: lam ~ Beta(4, 4), box side = sqrt(1 - lam) of each axis
    color_p: float = 0.8  # WeakStrongAugment p_color=0.8 ...
    brightness: float = 0.5  # ... RandomBrightnessContrast(brightness_limit=0.5, ...
    contrast: float = 0.5  # ... contrast_limit=0.5)
    noise_p: float = 0.2  # p_blur=0.2 (RandomGaussianNoise, despite the name) ...
    noise_sigma: tuple[float, float] = (0.1, 1.0)  # ... sigma ~ U(0.1, 1.0), noise clipped to +-2 sigma
    rampup_interval: int | None = None  # None = the run's ramp; 150 = the reference's (iter // 150 over 40)

    def __post_init__(self) -> None:
        if not 0.0 <= self.conf_thresh <= 1.0 or not 0.0 <= self.ema_decay < 1.0:
            raise ValueError("admt: conf_thresh in [0, 1] and ema_decay in [0, 1) expected")
        if self.period_max < 1 or self.ema_hold < 0 or self.cutmix_beta < 1 or self.temperature <= 0:
            raise ValueError(
                "admt: period_max >= 1, ema_hold >= 0, cutmix_beta >= 1, temperature > 0 expected"
            )
        for name in ("cutmix_p", "color_p", "noise_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"admt.{name}={getattr(self, name)}: expected a probability in [0, 1]")
        if self.rampup_interval is not None and self.rampup_interval < 1:
            raise ValueError(f"admt.rampup_interval={self.rampup_interval}: expected a positive integer")


def entropy_fusion(prob_1: torch.Tensor, prob_2: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """CCM's ensemble of two softmax maps (B, C, ...): each voxel weighted by exp(-entropy in bits), then sharpened.

    w_1 = exp(-H_1) / (exp(-H_1) + exp(-H_2)), p = w_1 p_1 + (1 - w_1) p_2, then p^(1/T) renormalised.
    """
    h_1 = -(prob_1 * torch.log2(prob_1 + 1e-10)).sum(dim=1, keepdim=True)
    h_2 = -(prob_2 * torch.log2(prob_2 + 1e-10)).sum(dim=1, keepdim=True)
    w_1 = torch.sigmoid(h_2 - h_1)  # = exp(-H1) / (exp(-H1) + exp(-H2)), without overflow
    fused = w_1 * prob_1 + (1.0 - w_1) * prob_2
    if temperature != 1.0:
        fused = fused ** (1.0 / temperature)
        fused = fused / fused.sum(dim=1, keepdim=True)
    return fused


def resolve_conflicts(
    label_t: torch.Tensor,
    conf_t: torch.Tensor,
    label_s: torch.Tensor,
    conf_s: torch.Tensor,
    teachers_disagree: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the teachers disagree, the student disagrees with the fused label and is more confident, the
    student's own (label, confidence) replace the fused ones ("pixel_confidence" mode)."""
    take_s = teachers_disagree & (label_s != label_t) & (conf_s > conf_t)
    return torch.where(take_s, label_s, label_t), torch.where(take_s, conf_s, conf_t)


class AlternationSchedule:
    """RPA: which teacher the EMA step goes to. True = teacher 1, for a random number of steps, then the other.

    `period` steps in a row go to the same teacher; after them the flag flips and a new period is drawn from
    U{1, ..., period_max} (random) or is period_max (fixed). The state is three integers, saved with the method.
    """

    def __init__(self, period_max: int, random_period: bool, rng: torch.Generator):
        self.period_max = period_max
        self.random_period = random_period
        self.first = True
        self.counter = 0
        self.period = self._draw(rng)

    def _draw(self, rng: torch.Generator) -> int:
        if not self.random_period:
            return self.period_max
        return int(torch.randint(1, self.period_max + 1, (1,), generator=rng))

    def advance(self, rng: torch.Generator) -> None:
        self.counter += 1
        if self.counter >= self.period:
            self.first = not self.first
            self.counter = 0
            self.period = self._draw(rng)

    def state(self) -> dict[str, int]:
        return {"first": int(self.first), "counter": self.counter, "period": self.period}

    def load(self, state: dict[str, int]) -> None:
        self.first, self.counter, self.period = bool(state["first"]), state["counter"], state["period"]


def beta_sample(a: int, b: int, rng: torch.Generator) -> float:
    """One draw of Beta(a, b) for integers a, b: the a-th smallest of a + b - 1 uniforms (exact, seeded)."""
    u = torch.rand(a + b - 1, generator=rng).sort().values
    return float(u[a - 1])


def admt_cutmix_boxes(
    n: int, shape: tuple[int, ...], lam: float, rng: torch.Generator, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """AD-MT's 3D CutMix boxes (n, W, H, D): sides int(s sqrt(1 - lam)) on every axis (one lam for the batch),
    a centre per sample drawn from [s / 8, s) per axis, the box clipped to the crop."""
    masks = torch.zeros((n, *shape), device=device)
    cut = (1.0 - lam) ** 0.5
    for i in range(n):
        region = []
        for s in shape:
            side = int(s * cut)
            centre = int(torch.randint(int(s / 8), s, (1,), generator=rng))
            region.append(slice(max(0, centre - side // 2), min(s, centre + side // 2)))
        masks[(i, *region)] = 1.0
    return masks


def brightness_contrast(
    x: torch.Tensor, generator: torch.Generator, p: float, brightness: float, contrast: float
) -> torch.Tensor:
    """With probability p per sample, on the crop min-max scaled to [0, 1]: u <- clip(a u + b mean(u), 0, 1),
    a ~ 1 + U(-contrast, contrast), b ~ U(-brightness, brightness) (albumentations' rule), mapped back."""
    n, dims = x.shape[0], tuple(range(1, x.dim()))
    view = (-1, *([1] * (x.dim() - 1)))
    rand = torch.rand(3, n, generator=generator, device=generator.device).to(x.device, x.dtype)
    alpha = (1.0 + contrast * (2.0 * rand[0] - 1.0)).view(view)
    beta = (brightness * (2.0 * rand[1] - 1.0)).view(view)
    lo, hi = x.amin(dim=dims, keepdim=True), x.amax(dim=dims, keepdim=True)
    scale = (hi - lo).clamp_min(1e-6)
    u = (x - lo) / scale
    u = alpha * u
    u = (u + beta * u.mean(dim=dims, keepdim=True)).clamp(0.0, 1.0)
    return torch.where((rand[2] < p).view(view), lo + u * scale, x)


def clipped_noise(
    x: torch.Tensor, generator: torch.Generator, p: float, sigma: tuple[float, float]
) -> torch.Tensor:
    """With probability p per sample: x + clip(N(0, s^2), -2 s, 2 s), s ~ U(sigma) per sample."""
    n, view = x.shape[0], (-1, *([1] * (x.dim() - 1)))
    rand = torch.rand(2, n, generator=generator, device=generator.device).to(x.device, x.dtype)
    s = (sigma[0] + (sigma[1] - sigma[0]) * rand[0]).view(view)
    noise = torch.randn(x.shape, generator=generator, device=generator.device).to(x.device, x.dtype) * s
    noise = torch.maximum(torch.minimum(noise, 2 * s), -2 * s)
    return x + (rand[1] < p).view(view).to(x.dtype) * noise


@register(
    "admt",
    display="AD-MT",
    order=100,
    k_inferences=None,
    extra_passes=1,  # the second teacher's pass (the first is the usual teacher target)
    family="pseudo-label",
    paper="Zhao et al., Alternate Diverse Teaching for Semi-supervised Medical Image Segmentation, ECCV 2024",
)
class ADMT(SeededMixin, Method):
    Config = ADMTConfig
    #: the authors' LA recipe (config_3d_la_aut.yml + train_post_3d_aut.py): SGD 0.01, momentum 0.9, wd 1e-4,
    #: poly (1 - t/T)^0.9, 15000 iterations, batch 4 = 2 + 2, lambda ramped as iter // 150 over 40.
    published_recipe: ClassVar[dict[str, Any]] = {
        "train.iterations": 15000,  # max_iterations: 15000
        "train.optimizer": "sgd",  # optim.SGD(momentum=0.9, weight_decay=0.0001)
        "train.lr": 0.01,  # base_lr: 0.01
        "train.lr_policy": "poly",  # poly: True
        "train.batch_size": 4,  # batch_size: 4
        "train.labeled_bs": 2,  # labeled_bs: 2
        "train.rampup_length": 40,  # consistency_rampup: 40 ...
        "admt.rampup_interval": 150,  # ... get_current_consistency_weight(iter_num // 150)
    }
    #: at the paper's threshold 0.8 an untrained tiny network may have no confident voxel (L_u = 0, no gradient)
    contract_config: ClassVar[dict[str, Any]] = {"conf_thresh": 0.0}

    def __init__(self, cfg: ADMTConfig, ctx: MethodContext):
        super().__init__(cfg, ctx)
        self.student = self.build_vnet()
        self.teacher = copy.deepcopy(self.student)
        self.teacher2 = copy.deepcopy(self.student)
        for p in (*self.teacher.parameters(), *self.teacher2.parameters()):
            p.requires_grad_(False)
        self.init_rng(_STREAM)
        self.schedule = AlternationSchedule(cfg.period_max, cfg.random_period, self.rng)

    # --- state: the owned random stream and the alternation schedule ---------------------------------
    def get_extra_state(self) -> Any:
        return {**super().get_extra_state(), "schedule": self.schedule.state()}

    def set_extra_state(self, state: Any) -> None:
        super().set_extra_state(state)
        self.schedule.load(state["schedule"])

    def _weight(self, step: int, max_steps: int) -> float:
        if self.cfg.rampup_interval is None:
            return self.consistency_weight(self.cfg.w, step, max_steps)
        return self.cfg.w * sigmoid_rampup(step // self.cfg.rampup_interval, self.ctx.rampup_length)

    def strong_view(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        cfg = self.cfg
        x = brightness_contrast(x, generator, cfg.color_p, cfg.brightness, cfg.contrast)
        return clipped_noise(x, generator, cfg.noise_p, cfg.noise_sigma)

    def train_step(self, batch: Batch, step: int, max_steps: int) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        n_l, x_u = batch.n_l, batch.x_u
        n_u, device = x_u.shape[0], x_u.device
        first = self.schedule.first  # the teacher that this step's EMA update goes to
        active, other = (self.teacher, self.teacher2) if first else (self.teacher2, self.teacher)

        with torch.no_grad():
            active.train()  # as the reference: batch statistics (and dropout) for the teacher being updated
            other.eval()
            prob_t1 = torch.softmax(self.teacher(x_u).float(), dim=1)
            prob_t2 = torch.softmax(self.teacher2(x_u).float(), dim=1)
            disagree = prob_t1.argmax(dim=1) != prob_t2.argmax(dim=1)  # (B_u, W, H, D)
            conf_t, label_t = entropy_fusion(prob_t1, prob_t2, cfg.temperature).max(dim=1)
            g = self.step_generator(device)
            box = None
            if first:
                x_view = self.strong_view(x_u, g)
            elif float(torch.rand((), generator=self.rng)) < cfg.cutmix_p:
                lam = beta_sample(cfg.cutmix_beta, cfg.cutmix_beta, self.rng)
                box = admt_cutmix_boxes(n_u, tuple(x_u.shape[2:]), lam, self.rng, device)  # (B_u, W, H, D)
                partner = torch.randperm(n_u, generator=self.rng).to(device)
                x_view = paste(x_u, x_u[partner], box[:, None])
                label_t, conf_t = paste(label_t, label_t[partner], box), paste(conf_t, conf_t[partner], box)
                disagree = paste(disagree, disagree[partner], box)
            else:
                x_view = x_u

        logits = self.student(torch.cat([batch.x, x_view]))  # (B_l + 2 B_u, C, W, H, D)
        logits_l, logits_w, logits_view = logits[:n_l], logits[n_l : n_l + n_u], logits[n_l + n_u :]
        with torch.no_grad():
            conf_s, label_s = torch.softmax(logits_w.detach().float(), dim=1).max(dim=1)
            if box is not None:  # aligned with the mixed teacher labels (see the deviations)
                label_s, conf_s = paste(label_s, label_s[partner], box), paste(conf_s, conf_s[partner], box)
            label, conf = resolve_conflicts(label_t, conf_t, label_s, conf_s, disagree)
            keep = (conf >= cfg.conf_thresh).float()

        loss_sup = 0.5 * (
            F.cross_entropy(logits_l, batch.y_l)
            + dice_loss_all_classes(torch.softmax(logits_l, dim=1), batch.y_l)
        )
        ce_u = F.cross_entropy(logits_view, label, reduction="none")  # (B_u, W, H, D)
        loss_u = (ce_u * keep).sum() / keep.sum().clamp_min(1.0)
        return self.consistency_result(
            loss_sup,
            loss_u,
            self._weight(step, max_steps),
            mask_ratio=keep.mean(),
            conflict_ratio=disagree.float().mean(),
            teacher=torch.tensor(1 if first else 2),
        )

    @torch.no_grad()
    def on_after_optimizer_step(self, step: int) -> None:
        active = self.teacher if self.schedule.first else self.teacher2
        half = step // 2  # the reference counts each teacher's steps as iter // 2
        hold = self.cfg.ema_hold
        alpha = 0.0 if half < hold else min(1.0 - 1.0 / (half - hold + 1), self.cfg.ema_decay)
        t_params, s_params = list(active.parameters()), list(self.student.parameters())
        torch._foreach_mul_(t_params, alpha)
        torch._foreach_add_(t_params, s_params, alpha=1.0 - alpha)
        for b_t, b_s in zip(active.buffers(), self.student.buffers(), strict=True):
            if b_t.is_floating_point():  # BN running statistics are averaged like the weights (reference)
                b_t.mul_(alpha).add_(b_s, alpha=1.0 - alpha)
            else:
                b_t.copy_(b_s)  # num_batches_tracked
        self.schedule.advance(self.rng)
