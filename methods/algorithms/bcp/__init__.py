"""BCP: bidirectional copy-paste (Bai et al., CVPR 2023), `DeepMed-Lab-ECNU/BCP`, `code/LA_BCP_train.py`.

Idea: labeled and unlabeled crops are mixed so that both kinds of voxels are seen in the same context. Stage 1
pre-trains a V-Net on labeled pairs mixed by copy-paste (`bcp_stage1.py`, a prepared asset). Stage 2 is a mean
teacher initialised (student and teacher) from it. With a cuboid M (1 inside, sides 2/3 of the crop), labeled
crops a, b and unlabeled crops u_a, u_b:
  X_in  = a (1 - M) + u_a M      labeled background, unlabeled cuboid
  X_out = u_b (1 - M) + b M      unlabeled background, labeled cuboid
The teacher's pseudo labels q = LCC(1[p_t,fg >= 0.5]) (largest 26-connected component) supervise the unlabeled
voxels, the ground truth the labeled ones.

Loss, with L(out, y, R) = (Dice_R(out, y) + CE_R(out, y)) / 2 over region R (BCP's per-sample, per-class Dice):
  L_sup   = L(X_in, y_a, 1 - M) + L(X_out, y_b, M)            (labeled voxels)
  L_unsup = L(X_in, q_a, M) + L(X_out, q_b, 1 - M)            (unlabeled voxels)
  L       = L_sup + alpha L_unsup,  alpha = 0.5 (no ramp-up: the reference computes one and never uses it).
Teacher: EMA 0.99 of the student from the first step (no warm-up, it starts as the stage-1 model), in train mode.
Evaluation: the student.

C classes (the LA script is binary): the pseudo labels are those of the authors' multi-class script
(`ACDC_BCP_train.py`, `get_ACDC_masks(output, nms=1)`): the argmax of the teacher's softmax, then per foreground
class its largest connected component (a class without a voxel stays empty), the classes put back together.
`pl_threshold` is the binary script's foreground threshold and has no role there. The losses were per class
already (BCP's Dice over every class, background included, and the CE). Two classes keep the LA script's
1[p_fg >= 0.5] and its largest component exactly (where p_fg = 0.5 the threshold says foreground, the argmax
background).

Reported on LA (BCP paper): 8 labels (10 %) 89.62 Dice / 6.81 HD95 (voxels), 15000 stage-2 iterations.

Deviations from the reference code:
- Stage 1 keeps its last model; the released code picks the stage-1 model with the best Dice on the test set
  (every 200 steps), which the benchmark protocol forbids. Stage 2 is evaluated at its last step too (protocol).
- Stage-1 length: `pretrain_iterations` None = 2000/15000 of the run's iterations (the reference's 2000 before
  15000); its lr is the run's `train.lr` unless `pretrain_lr` is set (0.01 at the paper preset, the reference's).
- The teacher sees both unlabeled crops in one pass and the student both mixed crops in one pass (the reference
  calls each network twice, one half-batch each); the BN batch statistics are over both crops.
- One cuboid per step for the whole batch, as the reference, but its corner is drawn within this run's crop
  (the reference hard-codes the 112 x 112 x 80 LA crop in `context_mask`).
- The teacher's pseudo labels are computed under no_grad on the device; the largest component on the CPU with
  scipy (the reference: skimage `label`, same 26-connectivity).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from scipy import ndimage

from sslbench.datasets.mixing import cuboid_mask, paste
from sslbench.methods.algorithms.bcp.stage1 import Stage1Config, bcp_dice_loss, masked_ce, pretrain_stage1
from sslbench.methods.base import Batch, EMATeacherMixin, Method, MethodContext
from sslbench.methods.registry import register
from sslbench.methods.seeded import SeededMixin

STAGE1_VERSION = 1  # bump when stage-1 training changes, so cached weights of older code are not reused
_STREAM = 0xBC92
_PRETRAIN_SHARE = 2000 / 15000  # LA_BCP_train.py: --pre_max_iteration 2000, --self_max_iteration 15000


@dataclass(frozen=True)
class BCPConfig:
    mask_ratio: float = 2 / 3  # LA_BCP_train.py --mask_ratio 2/3 (cuboid side / crop side)
    u_weight: float = 0.5  # --u_weight 0.5 (the paper's alpha)
    ema_decay: float = 0.99  # update_ema_variables(model, ema_model, 0.99)
    pl_threshold: float = 0.5  # get_cut_mask(thres=0.5)
    largest_cc: bool = True  # get_cut_mask(nms=1)
    pretrain_iterations: int | None = None  # None = 2000/15000 of train.iterations (the reference's ratio)
    pretrain_lr: float | None = None  # None = train.lr (0.01 at the paper preset = the reference's)

    def __post_init__(self) -> None:
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"bcp.mask_ratio={self.mask_ratio}: expected a number in (0, 1)")
        if not 0.0 <= self.ema_decay < 1.0 or not 0.0 < self.pl_threshold < 1.0 or self.u_weight < 0:
            raise ValueError("bcp: ema_decay in [0, 1), pl_threshold in (0, 1) and u_weight >= 0 expected")
        if self.pretrain_iterations is not None and self.pretrain_iterations < 1:
            raise ValueError(
                f"bcp.pretrain_iterations={self.pretrain_iterations}: expected a positive integer"
            )


def stage1_config(cfg: BCPConfig, ctx: MethodContext) -> Stage1Config:
    """The resolved stage-1 settings of a run (its iterations and optimiser settings)."""
    iterations = cfg.pretrain_iterations or max(1, round(ctx.iterations * _PRETRAIN_SHARE))
    return Stage1Config(
        iterations=iterations,
        lr=cfg.pretrain_lr if cfg.pretrain_lr is not None else ctx.lr,
        momentum=ctx.momentum,
        weight_decay=ctx.weight_decay,
        mask_ratio=cfg.mask_ratio,
    )


def stage1_key(cfg: BCPConfig, ctx: MethodContext) -> dict[str, Any]:
    """Everything the stage-1 weights depend on: the dataset, the labeled case ids, the seed and the settings.

    The class count is named only when it is not 2, so the keys (and cached weights) of binary runs stay valid.
    """
    key = {
        "version": STAGE1_VERSION,
        "dataset": ctx.dataset_id,
        "labeled_ids": list(ctx.labeled_ids),
        "seed": ctx.seed,
        "stage1": stage1_config(cfg, ctx).to_key(),
        "patch": list(ctx.patch),
        "n_filters": ctx.n_filters,
        "normalization": ctx.normalization,
    }
    return key if ctx.n_classes == 2 else {**key, "n_classes": ctx.n_classes}


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected foreground component of a binary (W, H, D) mask (unchanged if empty)."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    return (labels == int(np.argmax(sizes)) + 1).astype(mask.dtype)


def largest_component_per_class(label_map: np.ndarray, n_classes: int) -> np.ndarray:
    """Each foreground class of a (W, H, D) label map reduced to its largest 26-connected component
    (`get_ACDC_2DLargestCC` in 3D); voxels of dropped components become background."""
    out = np.zeros_like(label_map)
    for c in range(1, n_classes):
        out[largest_component((label_map == c).astype(np.uint8)) == 1] = c
    return out


@register(
    "bcp",
    display="BCP",
    order=80,
    k_inferences=None,
    extra_passes=0,  # one teacher pass for the pseudo labels, one student pass over both mixed crops
    family="copy-paste",
    paper="Bai et al., Bidirectional copy-paste for semi-supervised medical image segmentation, CVPR 2023",
)
class BCP(SeededMixin, EMATeacherMixin, Method):
    Config = BCPConfig
    host_sync = (
        "the pseudo-label's largest connected component is found on the host (SciPy), as the reference does"
    )
    #: the authors' stage-2 recipe (LA_BCP_train.py): SGD 0.01, momentum 0.9, wd 1e-4, x0.1 every 2500
    #: iterations, 15000 iterations, batch 8 = 4 labeled + 4 unlabeled (stage 1: 2000 of them, see the config).
    published_recipe: ClassVar[dict[str, Any]] = {
        "train.iterations": 15000,  # --self_max_iteration 15000
        "train.lr": 0.01,  # --base_lr 0.01
        "train.lr_policy": "step",  # lr = base_lr * 0.1 ** (iter // 2500) ...
        "train.lr_step": 2500,  # ... every 2500 iterations
        "train.lr_gamma": 0.1,
        "train.batch_size": 8,  # --batch_size 8
        "train.labeled_bs": 4,  # --labeled_bs 4
    }

    def __init__(self, cfg: BCPConfig, ctx: MethodContext):
        super().__init__(cfg, ctx)
        if "bcp_stage1" not in ctx.assets:
            raise ValueError("bcp needs its stage-1 weights in ctx.assets['bcp_stage1'] (prepare_assets)")
        self.student = self.build_vnet()
        self.student.load_state_dict(ctx.assets["bcp_stage1"])
        self.init_teacher()  # the teacher starts as the stage-1 model too
        self.init_rng(_STREAM)

    @torch.no_grad()
    def pseudo_labels(self, logits_t: torch.Tensor) -> torch.Tensor:
        """(B, W, H, D) int64: 1[softmax_fg >= threshold], reduced to its largest component per crop; with more
        than two classes the argmax, reduced to each class's largest component (see the module docstring)."""
        prob = torch.softmax(logits_t.float(), dim=1)
        n_classes = prob.shape[1]
        if n_classes == 2:
            q = (prob[:, 1] >= self.cfg.pl_threshold).to(torch.int64)
            reduce = largest_component
        else:
            q = prob.argmax(dim=1)
            reduce = functools.partial(largest_component_per_class, n_classes=n_classes)
        if not self.cfg.largest_cc:
            return q
        kept = [reduce(m) for m in q.cpu().numpy()]
        return torch.from_numpy(np.stack(kept)).to(q.device)

    def train_step(self, batch: Batch, step: int, max_steps: int) -> dict[str, torch.Tensor]:
        n_l, n_u = batch.n_l, batch.x_u.shape[0]
        if n_l != n_u or n_l % 2:
            raise ValueError(
                f"bcp pairs labeled and unlabeled halves: needs B_l == B_u, even (got {n_l}, {n_u})"
            )
        h = n_l // 2
        x_l, y_l, x_u = batch.x_l, batch.y_l, batch.x_u
        with torch.no_grad():
            q = self.pseudo_labels(self.teacher(x_u))  # (B_u, W, H, D)
            m = cuboid_mask(tuple(x_l.shape[2:]), self.cfg.mask_ratio, self.rng, x_l.device)  # 1 inside
        x_in = paste(x_l[:h], x_u[:h], m)  # labeled a outside, unlabeled u_a in the cuboid
        x_out = paste(x_u[h:], x_l[h:], m)  # unlabeled u_b outside, labeled b in the cuboid
        logits = self.student(torch.cat([x_in, x_out]))
        out_in, out_out = logits[:h], logits[h:]
        inside = m.expand(h, *m.shape)
        outside = 1.0 - inside

        def region_loss(out: torch.Tensor, y: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
            return 0.5 * (bcp_dice_loss(out, y, region) + masked_ce(out, y, region))

        loss_sup = region_loss(out_in, y_l[:h], outside) + region_loss(out_out, y_l[h:], inside)
        loss_unsup = region_loss(out_in, q[:h], inside) + region_loss(out_out, q[h:], outside)
        return self.consistency_result(
            loss_sup, loss_unsup, self.cfg.u_weight, pseudo_fg=(q > 0).float().mean(), cuboid_frac=m.mean()
        )

    def on_after_optimizer_step(self, step: int) -> None:
        # The reference's EMA has no warm-up (alpha 0.99 from the first step: the teacher starts as the stage-1
        # model). The mixin's warm-up min(1 - 1/(k + 1), decay) equals `decay` once k >= 1 / (1 - decay).
        self.update_teacher(max(step, math.ceil(1.0 / (1.0 - self.cfg.ema_decay))), self.cfg.ema_decay)

    # --- stage 1 is a prepared asset (kept to these two hooks so the assets API can change in one place) ------
    @classmethod
    def asset_key(cls, cfg: BCPConfig, ctx: MethodContext) -> str:
        digest = hashlib.sha1(json.dumps(stage1_key(cfg, ctx), sort_keys=True).encode()).hexdigest()[:12]
        return f"bcp-stage1:{ctx.dataset_id}:first{ctx.n_labeled}:s{ctx.seed}:{digest}"

    @classmethod
    def prepare_assets(cls, cfg: BCPConfig, ctx: MethodContext) -> dict[str, Any]:
        """Stage 1 on this split's labeled volumes only (never unlabeled or test labels), once per key."""
        if ctx.cache is None or ctx.labeled_masks is None or ctx.labeled_images is None:
            raise ValueError(
                "bcp.prepare_assets needs ctx.cache and the labeled volumes (the trainer sets them)"
            )

        def build() -> dict[str, Any]:
            return pretrain_stage1(
                ctx.labeled_images(),
                ctx.labeled_masks(),
                stage1_config(cfg, ctx),
                ctx.patch,
                ctx.n_filters,
                ctx.normalization,
                torch.device(ctx.device),
                ctx.seed,
                ctx.n_classes,
            )

        asset = ctx.cache.cached("bcp_stage1", stage1_key(cfg, ctx), build)
        ctx.cache.record("bcp_stage1", {"report": asset.get("report")})
        return {"bcp_stage1": asset["state"]}
