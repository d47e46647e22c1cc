"""Labeling-representation uncertainty (Adiga V., Dolz, Lombaert, MICCAI 2022): the method this benchmark reproduces.

Idea: a denoising autoencoder (DAE) pre-trained on the labeled masks only (`dae_training.py`) maps the mean
teacher's prediction p_t to a plausible mask p_hat. Where the two disagree the teacher is not trusted:
U = ||p_hat - p_t||^2 and the consistency is weighted by exp(-beta U). One DAE pass per step (#K = 1) replaces
UA-MT's 8 stochastic teacher passes.

Loss: 0.5 (CE + Dice_fg) on the labeled half + lambda(t) L_c, with on the WHOLE batch (labeled + unlabeled)
    d = (softmax(student(x)) - softmax(teacher(x + eps)))^2,  q = argmax_c p_t (1-channel float label map),
    p_hat = sigmoid(DAE(q)),  U = sum_c (p_hat_c - p_t,c)^2,  m = exp(-beta U),
    L_c = mean_i [sum_v m_i,v ||d_i,v||^2 / sum_v m_i,v] (per volume i, then the batch mean),
    lambda(t) = lam exp(-5 (1 - t/t_max)^2), lam = 0.1, beta = 1.
Student: SGD lr 0.1, cosine annealing (the paper's policy, set through `train_defaults`). Teacher: EMA 0.99, kept
in train mode. DAE: frozen, in eval mode, no gradient.

Ablations (`variant`, paper Table 3): "threshold" = UA-MT's binary mask 1[U < tau(t)], tau = (0.75 + 0.25
ramp(t, t_max)) ln 2, with UA-MT's normalisation sum(m d) / (C sum m); U is reduced to one channel by the sum over
classes (the paper's norm; with uncertainty_reduce="per-class", by the max over classes, i.e. certain only where
every class channel is). "entropy" = U = -sum_c p_hat_c log p_hat_c (the entropy of the DAE output), then
exp(-beta U) as in the default. Table 4 sweeps `beta` and `lam` (`--set lrep.beta=2 --set lrep.lam=0.5`).

Where the paper and the authors' later (FLARE, journal) code differ, the paper is the default and the code's
choice an option (methods.md section 6):
- `dae_input`: "argmax" is the code's (and the paper is silent on the encoding); "prob" feeds the paper's p_t as
  the expected label index sum_c c p_t,c (the foreground probability for LA), a soft version of the map the DAE
  was trained on.
- `uncertainty_reduce`: "sum" = the paper's ||.||^2 over classes (1 channel); "per-class" = the code's U per class.
- `normalisation`: "paper" = the paper's L_c(p_s,i, p_t,i) = sum_v m_v ||d_v||^2 / sum_v m_v within each volume i
  (with a per-class m: C sum(m d) / sum(m)), averaged over the batch's volumes; "pooled" = the same ratio pooled
  over the whole batch (one sum over all volumes' voxels; this benchmark's default before); "code" = sum(m d) /
  (2 sum m) pooled over the batch (the authors' code, as UA-MT). The paper's objective sums L_c over the volumes
  i = 1..N+M, as it sums L_s over i = 1..N; we average instead, because our L_s is a batch mean (one Dice and
  the mean CE over the labeled half, as in UA-MT and the authors' code) and lam = 0.1 is the value those means
  were tuned with: the mean keeps lam's meaning (with equal weight mass per volume it equals the pooled form),
  a sum would scale the consistency by the batch size (4). The per-volume form gives each volume the same say
  whatever its certain mass, the pooled one lets the volumes with more weight dominate. With m = 1 and C = 2
  the paper's form is 2 mean(d); the code's is mean(d) with a 1-channel m and mean(d) / 2 with its per-class m,
  so the code as a whole weighs the consistency 4x less at equal lam.
- DAE loss ("mse" vs "mse+dice"), DAE lr schedule (halving vs cosine), latent noise (off vs on), corruptions
  (shapes and resizing on vs off): see `dae_training.py` and `corruptions.py`.

C classes, as the authors' FLARE code (`code_DAE_MT/train_Abdomen_meanteacher_DAE_certainty.py`, 5 classes) does:
the DAE is trained on the C-class labeled masks (`dae_training.py`, `corruptions.py`), its input stays the
1-channel map of class indices q = argmax_c p_t as floats (their `VNetDAE(n_channels=1, n_classes=C)`; "prob"
feeds the expected index sum_c c p_t,c), its C sigmoid outputs p_hat are compared with the C softmax channels of
p_t, so U = ||p_hat - p_t||^2 sums over the C channels ("per-class": their U per channel); the supervised loss is
0.5 (CE + the mean foreground Dice) (their `dice_loss_all`). Where the code keeps a binary constant: "code"
normalisation divides by 2 sum(m) as their 5-class script does (not by C sum(m), the class mean that UA-MT's 2
means for two classes); the "threshold" ablation ramps towards ln C like UA-MT (`ramps.uamt_threshold`).

Deviations from the reference code:
- L_c is normalised per volume (the paper's equation, see `normalisation`), not pooled over the batch as in the
  authors' code; this changed lrep's numbers and run ids compared with earlier versions of this benchmark (which
  pooled: `normalisation="pooled"`).
- The DAE's iterations are not given in the paper; by default they scale with the run (`dae_iterations`: 20000
  at the paper preset, twice the student's at the CPU presets) and the lr halves every quarter of them (every
  5000 of 20000 at the paper preset, as the paper says). At the quick preset 300 steps were too few: the DAE
  leaves its all-background plateau only after ~150-300 steps at lr 0.1, and without the halvings lr 0.1 does
  not settle (Dice 0.47 after 300 steps, 0.26 after 600). The last DAE is used (the authors' FLARE code keeps
  the best on a validation split, which the LA protocol lacks).
- DAE init: PyTorch's default, not the authors' uniform init (`dae_init="authors"`). The paper does not give one;
  the authors' init slows the start. On the synthetic quick data (32^3 crops, F = 4), reconstruction Dice after
  400 steps with the lr halved every 100: authors 0 (all background), PyTorch 0.75; after 300 steps without
  halving: 0.50 vs 0.62.
- Corruption sizes (swap radius 3-8, disk radius 1-4, shapes up to 15 px) are the authors' LA-voxel sizes scaled
  by 0.625 mm / data spacing (`corrupt_scale`), so that coarser data (la-half, the synthetic default) get the same
  physical corruption instead of shapes half as large as the crop; on the real LA the scale is 1.
- The DAE weights are not saved in the run's model.pt (they are a cached asset shared by every run with the same
  labeled masks, seed and DAE config; config.json records the cache path, the key and the DAE report).
- `dae_channels_last` (speed only, off by default, on in the GPU presets): the DAE trains with channels-last
  weights, as the segmentation networks do (`train.channels_last`); with bf16 autocast (`train.amp` on CUDA) the
  DAE's forward passes run in bf16 and its loss in fp32 (the DAE's cache key names both).
- BN running buffers are copied to the teacher at each EMA step (harmless, the teacher runs in train mode).
- Every DAE build reports its reconstruction Dice against the clean crop on held-out crops (of the labeled masks)
  and corruptions: of the corrupted input, of the DAE's output on it and of its output on the clean crop, plus
  `denoises` (output closer to the clean crop than its input); a DAE that does not denoise warns at every run
  that uses it. At the CPU presets the default DAE does not denoise (it learns a blurred average of the crops'
  poses, see `dae_training.py`); `dae_pose="canonical"` (off by default: not in the paper) and `dae_seed` (one
  longer-trained DAE shared by the seeds of a split) are the options that help.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from sslbench.datasets.la import LA_SPACING_MM
from sslbench.methods.algorithms.lrep.corruptions import CorruptionConfig
from sslbench.methods.algorithms.lrep.dae_training import LOSSES, DAEConfig, denoising_problem, train_dae
from sslbench.methods.algorithms.lrep.pose import POSES, dae_probabilities
from sslbench.methods.base import Batch, EMATeacherMixin, Method, MethodContext, teacher_noise
from sslbench.methods.losses import (
    ce_dice_loss,
    entropy,
    masked_mean,
    softmax_mse,
    weighted_mean,
    weighted_mean_per_sample,
)
from sslbench.methods.networks.dae import LabelDAE
from sslbench.methods.ramps import uamt_threshold
from sslbench.methods.registry import register

VARIANTS = ("l2exp", "threshold", "entropy")
DAE_VERSION = 2  # bump when DAE training changes, so cached DAEs of older code are not reused
# Default DAE iterations per student iteration. The paper gives no total but halves the lr every 5000, so the
# paper preset sets `lrep.dae_iterations=20000` (within the spec's 20k-50k) for its 6000 student steps. Elsewhere
# the DAE trains twice the student's steps (a DAE step costs about a student step; the quick preset's 600 took
# 77 s on one core of the shared 2-core machine), the fewest that left the all-background plateau there. Such a
# DAE does not denoise (its report's `denoises` is false and every run warns), see dae_training.py.
DAE_ITERS_PER_STEP = 2.0


@dataclass(frozen=True)
class LRepConfig:
    variant: str = "l2exp"  # paper Table 3: l2exp ("Ours"), threshold, entropy
    lam: float = 0.1  # consistency weight omega (paper section 3, Table 4)
    beta: float = 1.0  # uncertainty weighting factor gamma (paper section 2.3, Table 4)
    ema_decay: float = 0.99  # paper section 3
    noise_std: float = 0.1  # teacher input noise clip(N(0, 0.1^2), +-0.2) (authors' code, as UA-MT)
    noise_clip: float = 0.2
    dae_input: str = "argmax"  # authors' code (argmax of p_t); "prob" = the paper's p_t as a soft label map
    uncertainty_reduce: str = "sum"  # paper ||p_hat - p_t||^2 over classes; "per-class" = authors' code
    normalisation: str = "paper"  # paper: per volume sum(m ||d||^2) / sum(m), batch mean; "pooled"; "code"
    dae_latent_noise: float = 0.0  # DAE latent noise std (paper: none; authors' journal MT code: 0.1)
    # --- DAE pre-training (paper section 3) ---
    dae_iterations: int | None = None  # not in the paper; None = 2 x the student's (paper preset: 20000)
    dae_halve_every: int | None = None  # paper: halve every 5000 (of 20000); None = dae iterations / 4
    dae_lr: float = 0.1  # paper
    dae_momentum: float = 0.9  # paper
    dae_weight_decay: float = 1e-4  # authors' train_DAE.py
    dae_loss: str = "mse"  # paper; "mse+dice" = authors' code
    dae_latent_dim: int = 512  # authors' --emb_dim 512 (paper: "d")
    dae_init: str = "pytorch"  # not in the paper; "authors" = their uniform init (slow start)
    dae_pose: str = "as-is"  # "canonical": every DAE input in a canonical pose (pose.py; not in the paper)
    dae_seed: int | None = None  # None = the run's seed; an int: one DAE per split, shared by every run seed
    dae_holdout: int = 0  # k > 0: a probe DAE without the last k labeled masks reports unseen shapes
    # The DAE's weights in channels-last 3D (its step 0.74x the time on the CPU, la-half shapes, one thread). Off
    # by default: it changes the DAE's rounding, hence every lrep number made before it existed; the GPU presets
    # (paper, pancreas) turn it on. Named in the run id and the DAE's cache key only when on.
    dae_channels_last: bool = False
    corrupt_p: float = 0.2  # per-slice probability of each corruption (authors' train_DAE.py)
    shapes: bool = True  # add/remove random shapes (paper; off in the authors' release)
    resize: bool = True  # per-slice zoom f ~ U(0.8, 1.1) (paper; image+label augmentation in the code)
    corrupt_scale: float | None = None  # corruption sizes x this; None = 0.625 mm / data spacing (1 on LA)

    def __post_init__(self) -> None:
        choices = {
            "variant": VARIANTS,
            "dae_input": ("argmax", "prob"),
            "uncertainty_reduce": ("sum", "per-class"),
            "normalisation": ("paper", "pooled", "code"),
            "dae_pose": POSES,
            "dae_loss": LOSSES,
            "dae_init": ("pytorch", "authors"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"lrep.{name}={getattr(self, name)!r}: expected one of {', '.join(allowed)}")
        non_negative = (
            "lam",
            "beta",
            "dae_lr",
            "noise_std",
            "dae_latent_noise",
            "corrupt_p",
            "dae_weight_decay",
        )
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"lrep.{name}={getattr(self, name)}: expected a non-negative number")
        if not 0.0 <= self.ema_decay < 1.0 or self.corrupt_p > 1.0:
            raise ValueError("lrep.ema_decay must be in [0, 1) and lrep.corrupt_p in [0, 1]")
        for name in ("dae_iterations", "dae_halve_every", "dae_latent_dim"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"lrep.{name}={value}: expected a positive integer")
        if self.dae_seed is not None and self.dae_seed < 0:
            raise ValueError(f"lrep.dae_seed={self.dae_seed}: expected a non-negative integer")
        if self.dae_holdout < 0:
            raise ValueError(f"lrep.dae_holdout={self.dae_holdout}: expected 0 or more")
        if self.corrupt_scale is not None and self.corrupt_scale <= 0:
            raise ValueError(f"lrep.corrupt_scale={self.corrupt_scale}: expected a positive number")


def dae_config(cfg: LRepConfig, ctx: MethodContext) -> DAEConfig:
    """The resolved DAE pre-training settings of a run (its student iterations and data spacing)."""
    iterations = cfg.dae_iterations or max(1, round(ctx.iterations * DAE_ITERS_PER_STEP))
    # Corruptions are drawn per axial slice, so the in-plane spacing sets their physical size.
    scale = cfg.corrupt_scale or LA_SPACING_MM / ctx.spacing[0]
    corruption = CorruptionConfig(p=cfg.corrupt_p, shapes=cfg.shapes, resize=cfg.resize)
    return DAEConfig(
        iterations=iterations,
        lr=cfg.dae_lr,
        momentum=cfg.dae_momentum,
        weight_decay=cfg.dae_weight_decay,
        halve_every=cfg.dae_halve_every or max(1, round(iterations * 5000 / 20000)),
        loss=cfg.dae_loss,
        latent_dim=cfg.dae_latent_dim,
        init=cfg.dae_init,
        holdout=cfg.dae_holdout,
        pose=cfg.dae_pose,
        corruption=corruption.scaled(scale) if scale != 1.0 else corruption,
    )


def dae_seed(cfg: LRepConfig, ctx: MethodContext) -> int:
    """The DAE's seed: the run's, or `dae_seed` (one DAE for every seed of a split, e.g. a longer-trained one)."""
    return ctx.seed if cfg.dae_seed is None else cfg.dae_seed


def dae_key(cfg: LRepConfig, ctx: MethodContext) -> dict[str, Any]:
    """Everything a trained DAE depends on: the dataset, the labeled case ids, the seed and its settings.

    The class count, bf16 autocast and the channels-last DAE are named only when they differ from the settings
    before they existed (2 classes, fp32, standard layout), so the keys (and cached DAEs) of earlier runs stay
    valid. Channels-last changes only the DAE's floating-point rounding, but that is enough to give another DAE
    (and other lrep numbers), so a DAE built one way is never reused for the other.
    """
    key = {
        "version": DAE_VERSION,
        "dataset": ctx.dataset_id,
        "labeled_ids": list(ctx.labeled_ids),
        "seed": dae_seed(cfg, ctx),
        "dae": dae_config(cfg, ctx).to_key(),
        "patch": list(ctx.patch),
        "n_filters": ctx.n_filters,
    }
    if ctx.n_classes != 2:
        key["n_classes"] = ctx.n_classes
    if ctx.autocast:  # a bf16 DAE is another DAE (its weights differ materially from the fp32 one's)
        key["autocast"] = "bf16"
    if cfg.dae_channels_last:
        key["channels_last"] = True
    return key


# --- the uncertainty, shared by training and the show-uncertainty command ---------------------------------
def dae_input_map(prob_t: torch.Tensor, mode: str) -> torch.Tensor:
    """The DAE's 1-channel float input from teacher probabilities (B, C, ...) -> (B, 1, ...)."""
    if mode == "argmax":
        return prob_t.argmax(dim=1, keepdim=True).float()
    classes = torch.arange(prob_t.shape[1], device=prob_t.device, dtype=prob_t.dtype)
    return (prob_t * classes.view(1, -1, *([1] * (prob_t.dim() - 2)))).sum(dim=1, keepdim=True)


def uncertainty_map(prob_t: torch.Tensor, prob_hat: torch.Tensor, cfg: LRepConfig) -> torch.Tensor:
    """U from teacher probabilities and the DAE's sigmoid outputs, both (B, C, ...): (B, 1, ...) or (B, C, ...)."""
    if cfg.variant == "entropy":
        return entropy(prob_hat)  # (B, 1, ...)
    sq = (prob_hat - prob_t) ** 2
    if cfg.uncertainty_reduce == "sum":
        return sq.sum(dim=1, keepdim=True)  # (B, 1, ...): the paper's squared norm over classes
    return sq.amax(dim=1, keepdim=True) if cfg.variant == "threshold" else sq


def weighted_consistency(d: torch.Tensor, weight: torch.Tensor, cfg: LRepConfig) -> torch.Tensor:
    """L_c from the squared differences d (B, C, ...) and the certainty weights m (B, 1, ...) or (B, C, ...)."""
    if cfg.variant == "threshold":
        return masked_mean(d, weight)  # sum(m d) / (C sum m) over the batch: UA-MT's
    if cfg.normalisation == "code":
        # The authors' code: sum(m d) / (2 sum m) over the batch; their 5-class FLARE script keeps the 2.
        return masked_mean(d, weight, n_classes=2)
    if cfg.normalisation == "pooled":
        return d.shape[1] * weighted_mean(d, weight)  # sum_v m_v ||d_v||^2 / sum_v m_v over the whole batch
    # The paper's L_c(p_s,i, p_t,i) = sum_v m_i,v ||d_i,v||^2 / sum_v m_i,v per volume i, averaged over the batch.
    return d.shape[1] * weighted_mean_per_sample(d, weight).mean()


@register(
    "lrep",
    display="Ours",
    order=60,
    k_inferences=1,
    family="uncertainty",
    variants=VARIANTS,
    extra_passes=1,  # the DAE pass
    paper="Adiga V. et al., Leveraging labeling representations in uncertainty-based SSL segmentation, MICCAI 2022",
)
class LabelingRepresentation(EMATeacherMixin, Method):
    Config = LRepConfig
    train_defaults = {"lr": 0.1, "lr_policy": "cosine", "rampup": "gaussian"}  # paper section 3

    def __init__(self, cfg: LRepConfig, ctx: MethodContext):
        super().__init__(cfg, ctx)
        if "dae" not in ctx.assets:
            raise ValueError("lrep needs its pre-trained DAE in ctx.assets['dae'] (prepare_assets builds it)")
        self.student = self.build_vnet()
        self.init_teacher()
        self.dae = LabelDAE(
            ctx.patch, ctx.n_classes, ctx.n_filters, cfg.dae_latent_dim, latent_noise=cfg.dae_latent_noise
        )
        self.dae.load_state_dict(ctx.assets["dae"])
        for p in self.dae.parameters():
            p.requires_grad_(False)
        self.dae.eval()

    def train(self, mode: bool = True) -> LabelingRepresentation:
        """Train/eval the student and teacher; the frozen DAE always stays in eval mode (BN running stats)."""
        super().train(mode)
        self.dae.eval()
        return self

    @torch.no_grad()
    def reconstruct(self, prob_t: torch.Tensor) -> torch.Tensor:
        """p_hat = sigmoid(DAE(q)) for teacher probabilities (B, C, W, H, D) of crop size."""
        return dae_probabilities(self.dae, dae_input_map(prob_t, self.cfg.dae_input), self.cfg.dae_pose)

    def train_step(self, batch: Batch, step: int, max_steps: int) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        x = batch.x  # (B_l + B_u, 1, W, H, D): the consistency covers the whole batch (paper and code)
        logits_s = self.student(x)
        with torch.no_grad():
            logits_t = self.teacher(teacher_noise(x, cfg.noise_std, cfg.noise_clip))
            prob_t = torch.softmax(logits_t, dim=1)
            u = uncertainty_map(prob_t, self.reconstruct(prob_t), cfg)
            if cfg.variant == "threshold":
                threshold = uamt_threshold(step, max_steps, self.ctx.n_classes)
                weight = (u < threshold).float()
            else:
                weight = torch.exp(-cfg.beta * u)
        loss_unsup = weighted_consistency(softmax_mse(logits_s, logits_t), weight, cfg)
        loss_sup = ce_dice_loss(logits_s[: batch.n_l], batch.y_l)
        w = self.consistency_weight(cfg.lam, step, max_steps)
        out = self.consistency_result(loss_sup, loss_unsup, w, u_mean=u.mean(), weight_mean=weight.mean())
        if cfg.variant == "threshold":
            out["certain_frac"] = weight.mean()
            out["threshold"] = torch.tensor(threshold)
        return out

    def on_after_optimizer_step(self, step: int) -> None:
        self.update_teacher(step, self.cfg.ema_decay)

    # --- the DAE is a cached asset: keep it out of model.pt and checkpoints --------------------------------
    def state_dict(self, *args, **kwargs):
        state = super().state_dict(*args, **kwargs)
        prefix = kwargs.get("prefix", "") + "dae."
        for key in [k for k in state if k.startswith(prefix)]:
            del state[key]
        return state

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        full = dict(state_dict)
        for key, value in self.dae.state_dict().items():
            full.setdefault(f"dae.{key}", value)
        return super().load_state_dict(full, strict=strict, assign=assign)

    # --- assets --------------------------------------------------------------------------------------------
    @classmethod
    def asset_key(cls, cfg: LRepConfig, ctx: MethodContext) -> str:
        digest = hashlib.sha1(json.dumps(dae_key(cfg, ctx), sort_keys=True).encode()).hexdigest()[:12]
        return f"dae:{ctx.dataset_id}:first{ctx.n_labeled}:s{dae_seed(cfg, ctx)}:{digest}"

    @classmethod
    def prepare_assets(cls, cfg: LRepConfig, ctx: MethodContext) -> dict[str, Any]:
        """Train the DAE on this split's labeled masks (never unlabeled or test labels), once per key."""
        if ctx.cache is None or ctx.labeled_masks is None:
            raise ValueError(
                "lrep.prepare_assets needs ctx.cache and ctx.labeled_masks (the trainer sets them)"
            )
        built = []

        def build() -> dict[str, Any]:
            built.append(True)
            state, report = train_dae(
                ctx.labeled_masks(),
                dae_config(cfg, ctx),
                ctx.patch,
                ctx.n_filters,
                torch.device(ctx.device),
                dae_seed(cfg, ctx),
                ctx.progress,
                ctx.num_workers,
                ctx.n_classes,
                channels_last=cfg.dae_channels_last,
                autocast=ctx.autocast,
            )
            return {"state": state, "report": report}

        asset = ctx.cache.cached("dae", dae_key(cfg, ctx), build)
        report = asset["report"]
        ctx.cache.record(
            "dae", {"report": report, "built_now": bool(built), "denoises": report.get("denoises")}
        )
        problem = denoising_problem(report)
        if problem:
            warnings.warn(problem, stacklevel=2)
        return {"dae": asset["state"]}
