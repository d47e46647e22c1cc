"""CAML: correlation-aware mutual learning (Gao et al., Correlation-Aware Mutual Learning for Semi-supervised
Medical Image Segmentation, MICCAI 2023), from the authors' `Herschel555/CAML`, `code/train_caml.py` with
`code/utils/feature_memory.py` and `code/utils/correlation.py`.

Idea: MC-Net-style mutual learning between two different branches (`networks/vnet_caml.py`: a plain V-Net
branch "v", and a branch "a" whose encoder attends across the samples of the batch, CMA), plus an omni-correlation
consistency (OCC): voxel embeddings of labeled crops that both branches predict correctly are kept in a memory
bank; for unlabeled voxels on which the branches agree, each branch's correlation with the bank (a softmax over
bank entries) is computed, and branch v's correlation is pulled towards branch a's.

Loss, with p_v, p_a the branch softmaxes, s(p) = p^10 / (p^10 + (1 - p)^10) (T = 0.1):
  L_s = sum_b Dice(p_b,fg, y) on the labeled half, Dice = 1 - (2 sum pg + e) / (sum p + sum g + e)
  L_c = mean((p_v - s(p_a))^2) + mean((p_a - s(p_v))^2) over the whole batch
  Bank (each step, no gradient): for each labeled crop, (proj_v(e_v) + proj_a(e_a)) / 2 at the voxels both
    branches predict correctly, with their labels; 256 entries per class are sampled from it (M, 512 x 32).
  Queries: unlabeled voxels where argmax p_v = argmax p_a = k, the 12800 most confident (by p_v) per class;
    r_b = softmax(pred_b(proj_b(e_b)) M^T / 0.1) over the bank entries (one row per query).
  L_o = - sum(r_a log(r_v + 1e-8)) / #queries          (both sides carry gradient, as the reference)
  L   = 0.5 L_s + lambda_c(t) L_c + lambda_o(t) L_o,  lambda_c = 1.0, lambda_o = 0.05, both ramped.
Logged: loss_unsup = 1.0 L_c + 0.05 L_o with w_unsup = the ramp value. Evaluation: branch v alone (the
reference's `test_3d.py` scores the first output).

C classes (the released code is LA only, and binary): L_s is the mean over the foreground classes 1..C-1 of the
same Dice, Dice(p_b,c, 1[y = c]) (`foreground_dice`; exactly the reference's Dice for two classes). The bank, the
queries and the correlations are per class in the reference already (`MemoryBank(num_cls=...)`,
`cal_correlation_matrix(..., num_classes)`), and so are they here; the sharpening is MC-Net's, channel by channel.

Reported on LA (CAML paper, the final iteration of 15,000): 8 labels 89.62 Dice / 8.76 HD95 (voxels), 16 labels
90.78 / 6.11; the ramp-up is tuned per label count (released models: 40, 20 and 15 steps of 150 iterations for
4, 8 and 16 labels).

Deviations from the reference code:
- The bank is a bounded registered buffer: one slot per labeled case, each holding at most `bank_capacity`
  randomly chosen correct voxels per class, filled as a ring over the labeled crops of the last steps. The
  reference keeps, per labeled case id, every correctly predicted voxel of its latest crop (up to about a
  million embeddings per case, in CPU lists that no checkpoint holds). Our batches carry no case ids; the ring
  of n_labeled slots holds the latest crop of each case when the labeled stream is aligned with its epochs (it
  walks one permutation of the labeled cases per epoch, as the reference's sampler).
- Branch a's labeled embeddings are projected voxel by voxel; the reference reshapes them without the channel
  permute it applies to branch v (`view(-1, 16)` on channel-first data mixes channels and voxels), a bug.
- The bank's draws and subsampling use the method's own seeded stream (Python's `random` in the reference).
- The ramp-up is the benchmark's (it ends at the last iteration). `caml.rampup_interval=150` restores the
  reference's staircase sigmoid_rampup((t + 1) // 150, L) with L per label count (`rampup_length`, resolved
  from the split: 4 -> 40, 8 -> 20, 16 -> 15, otherwise 40); the published recipe sets it.
- Fewer than two agreeing unlabeled voxels skip L_o (the reference's BatchNorm1d would fail on one row).
- The checkpoint is the last one (as the paper; the script also saves the best test Dice).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from sslbench.methods.base import Batch, Method, MethodContext
from sslbench.methods.mutual import binary_dice_loss, mutual_consistency
from sslbench.methods.networks.vnet_caml import VNetCAML
from sslbench.methods.ramps import sigmoid_rampup
from sslbench.methods.registry import register
from sslbench.methods.seeded import SeededMixin

_STREAM = 0xCA31  # this method's random stream (see seeded.py)
REFERENCE_RAMPS = {4: 40, 8: 20, 16: 15}  # consistency_rampup of the released LA models, by label count


@dataclass(frozen=True)
class CAMLConfig:
    lam: float = 0.5  # train_caml.py --lamda 0.5 (supervised Dice weight)
    w_c: float = 1.0  # --consistency 1 (lambda_c)
    w_o: float = 0.05  # --consistency_o 0.05 (lambda_o)
    temperature: float = 0.1  # --temperature 0.1 (sharpening)
    corr_temperature: float = 0.1  # cal_correlation_matrix(temperature=0.1)
    memory_num: int = 256  # --memory_num 256 (bank entries sampled per class)
    num_filtered: int = 12800  # --num_filtered 12800 (unlabeled queries per class)
    feat_dim: int = 32  # CAML3d_v1(feat_dim=32): net_factory never passes --embedding_dim (its 64 is unused)
    bank_capacity: int = 2048  # ours: stored voxels per labeled crop and class (the reference: all of them)
    rampup_interval: int | None = None  # None = the run's ramp; 150 = the reference's (iter_num // 150)
    rampup_length: int | None = None  # steps of the reference's ramp; None = by label count (REFERENCE_RAMPS)

    def __post_init__(self) -> None:
        if self.temperature <= 0 or self.corr_temperature <= 0:
            raise ValueError("caml: temperatures must be positive")
        if min(self.memory_num, self.num_filtered, self.feat_dim, self.bank_capacity) < 2:
            raise ValueError("caml: memory_num, num_filtered, feat_dim and bank_capacity must be at least 2")
        if self.rampup_interval is not None and self.rampup_interval < 1:
            raise ValueError(f"caml.rampup_interval={self.rampup_interval}: expected a positive integer")
        if self.rampup_length is not None and self.rampup_length < 0:
            raise ValueError(f"caml.rampup_length={self.rampup_length}: expected a non-negative integer")


class FeatureMemory(nn.Module):
    """CAML's memory bank of labeled voxel embeddings, as buffers (saved in checkpoints, moved with the method).

    `feat` (slots x classes, capacity, dim) holds in row slot x classes + class the first `count[slot, class]`
    embeddings (3D, not 4D: the trainer's channels-last conversion rejects 4D tensors); `cursor` is the number
    of crops stored so far (the next slot is cursor % slots).
    """

    def __init__(self, slots: int, n_classes: int, capacity: int, dim: int):
        super().__init__()
        self.n_classes = n_classes
        self.register_buffer("feat", torch.zeros(slots * n_classes, capacity, dim))
        self.register_buffer("count", torch.zeros(slots, n_classes, dtype=torch.long))
        self.register_buffer("cursor", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, features: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> None:
        """Store one labeled crop's embeddings (N, dim) with labels (N,) in the next slot, replacing it.

        A class with more than `capacity` voxels keeps a uniform random subset of them.
        """
        slot = int(self.cursor) % self.count.shape[0]
        capacity = self.feat.shape[1]
        for c in range(self.n_classes):
            feats_c = features[labels == c]
            if feats_c.shape[0] > capacity:
                pick = torch.randperm(feats_c.shape[0], generator=generator, device=generator.device)
                feats_c = feats_c[pick[:capacity].to(feats_c.device)]
            self.feat[slot * self.n_classes + c, : feats_c.shape[0]] = feats_c.to(self.feat.dtype)
            self.count[slot, c] = feats_c.shape[0]
        self.cursor += 1

    @torch.no_grad()
    def sample(self, num: int, generator: torch.Generator) -> list[torch.Tensor | None]:
        """Per class, `num` entries drawn without replacement from every slot (None if fewer are stored)."""
        position = torch.arange(self.feat.shape[1], device=self.feat.device)
        out: list[torch.Tensor | None] = []
        for c in range(self.n_classes):
            valid = position[None, :] < self.count[:, c, None]  # (slots, capacity)
            stored = self.feat[c :: self.n_classes][valid]  # (total, dim)
            if stored.shape[0] < num:
                out.append(None)
                continue
            pick = torch.randperm(stored.shape[0], generator=generator, device=generator.device)[:num]
            out.append(stored[pick.to(stored.device)])
        return out


def correlation_matrix(
    features: torch.Tensor,
    conf: torch.Tensor,
    label: torch.Tensor,
    memory: list[torch.Tensor | None],
    n_classes: int,
    temperature: float = 0.1,
    num_filtered: int = 12800,
) -> torch.Tensor | None:
    """Rows softmax(f M^T / T) for the `num_filtered` most confident queries of each class (class 0 first).

    features (N, dim), conf and label (N,); M is every class's bank sample with more than one entry, stacked
    in class order. None when no class has two queries or the bank has nothing (the reference's "unavailable").
    """
    keys = [m for m in memory if m is not None and m.shape[0] > 1]
    if not keys:
        return None
    bank = torch.cat(keys)  # (K, dim)
    rows = []
    for c in range(n_classes):
        in_class = label == c
        conf_c = conf[in_class]
        top = conf_c.topk(min(num_filtered, conf_c.shape[0])).indices  # most confident first
        queries = features[in_class][top]
        if queries.shape[0] <= 1:  # the reference's test, after the filtering
            continue
        rows.append(torch.softmax(queries @ bank.T / temperature, dim=1))
    return torch.cat(rows) if rows else None


def foreground_dice(prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CAML's Dice of a branch's labeled softmax (B_l, C, ...) against integer labels: of the foreground for two
    classes (the reference), the mean over the foreground classes for more."""
    if prob.shape[1] == 2:
        return binary_dice_loss(prob[:, 1], target == 1)
    return torch.stack([binary_dice_loss(prob[:, c], target == c) for c in range(1, prob.shape[1])]).mean()


def voxels(embedding: torch.Tensor) -> torch.Tensor:
    """(B, F, W, H, D) -> (B, W, H, D, F): each voxel's embedding on the last axis."""
    return embedding.permute(0, 2, 3, 4, 1)


@register(
    "caml",
    display="CAML",
    order=120,
    k_inferences=None,
    extra_passes=0,  # both branches run in the student's single pass
    family="mutual-learning",
    paper="Gao et al., Correlation-Aware Mutual Learning for Semi-supervised Medical Image Segmentation, "
    "MICCAI 2023",
)
class CAML(SeededMixin, Method):
    Config = CAMLConfig
    host_sync = "the feature memory keeps a data-dependent number of voxels per class (boolean selection)"
    #: the authors' LA recipe (train_caml.py): SGD 0.01, momentum 0.9, wd 1e-4, constant lr (the script never
    #: changes it: one "step" after the last iteration), 15000 iterations, batch 4 = 2 + 2, and the reference's
    #: staircase ramp (iter_num // 150 over 40 / 20 / 15 steps for 4 / 8 / 16 labels, via resolve_config).
    published_recipe: ClassVar[dict[str, Any]] = {
        "train.iterations": 15000,  # --max_iteration 15000
        "train.optimizer": "sgd",  # optim.SGD(momentum=0.9, weight_decay=0.0001)
        "train.lr": 0.01,  # --base_lr 0.01
        "train.lr_policy": "step",  # never decayed ...
        "train.lr_step": 15000,  # ... so one step past the end
        "train.batch_size": 4,  # --batch_size 4
        "train.labeled_bs": 2,  # --labeled_bs 2
        "caml.rampup_interval": 150,  # get_lambda_c(iter_num // 150)
    }
    #: a tiny untrained network rarely has 256 correct voxels of each class; a small bank sample lets the
    #: contract test see the correlation loss (and the heads' gradients).
    contract_config: ClassVar[dict[str, Any]] = {"memory_num": 4}

    def __init__(self, cfg: CAMLConfig, ctx: MethodContext):
        super().__init__(cfg, ctx)
        self.student = VNetCAML(1, ctx.n_classes, ctx.n_filters, ctx.normalization, 0.5, cfg.feat_dim)
        self.memory = FeatureMemory(max(1, ctx.n_labeled), ctx.n_classes, cfg.bank_capacity, cfg.feat_dim)
        self.init_rng(_STREAM)

    @classmethod
    def resolve_config(cls, cfg: CAMLConfig, split) -> CAMLConfig:
        if cfg.rampup_interval is None or cfg.rampup_length is not None:
            return cfg
        return dataclasses.replace(cfg, rampup_length=REFERENCE_RAMPS.get(split.n_labeled, 40))

    def _ramp(self, step: int, max_steps: int) -> float:
        cfg = self.cfg
        if cfg.rampup_interval is None:
            return self.consistency_weight(1.0, step, max_steps)
        length = (
            cfg.rampup_length
            if cfg.rampup_length is not None
            else REFERENCE_RAMPS.get(self.ctx.n_labeled, 40)
        )
        return sigmoid_rampup(
            (step + 1) // cfg.rampup_interval, length
        )  # the reference ramps after iter_num += 1

    @torch.no_grad()
    def update_memory(
        self,
        prob_1: torch.Tensor,
        prob_2: torch.Tensor,
        emb_1: torch.Tensor,
        emb_2: torch.Tensor,
        y_l: torch.Tensor,
        generator: torch.Generator,
    ) -> None:
        """Store each labeled crop's correctly predicted voxels (both branches right), projected in eval mode."""
        net = self.student
        correct = (prob_1.argmax(dim=1) == y_l) & (prob_2.argmax(dim=1) == y_l)  # (B_l, W, H, D)
        heads = (net.projection1, net.projection2)
        modes = [h.training for h in heads]
        for h in heads:
            h.eval()  # the reference projects the bank features with model.eval(): BN running statistics
        try:
            for i in range(y_l.shape[0]):
                sel = correct[i]
                f_1 = net.projection1(voxels(emb_1[i : i + 1])[0][sel].float())
                f_2 = net.projection2(voxels(emb_2[i : i + 1])[0][sel].float())
                self.memory.update((f_1 + f_2) / 2, y_l[i][sel], generator)
        finally:
            for h, mode in zip(heads, modes, strict=True):
                h.train(mode)

    def correlation_loss(
        self, prob_1: torch.Tensor, prob_2: torch.Tensor, emb_1: torch.Tensor, emb_2: torch.Tensor, memory
    ) -> torch.Tensor | None:
        """L_o on the unlabeled voxels where the branches agree; None when the correlation is unavailable."""
        net, cfg = self.student, self.cfg
        conf_1, label_1 = prob_1.detach().max(dim=1)
        agree = label_1 == prob_2.detach().argmax(dim=1)  # (B_u, W, H, D)
        if int(agree.sum()) < 2:  # BatchNorm1d needs two rows
            return None
        q_1 = net.prediction1(net.projection1(voxels(emb_1)[agree]))  # (N, feat_dim)
        q_2 = net.prediction2(net.projection2(voxels(emb_2)[agree]))
        conf, label = conf_1[agree].float(), label_1[agree]
        with torch.autocast(q_1.device.type, enabled=False):  # logits / 0.1 of unnormalised features: fp32
            args = (conf, label, memory, self.ctx.n_classes, cfg.corr_temperature, cfg.num_filtered)
            corr_1 = correlation_matrix(q_1.float(), *args)
            corr_2 = correlation_matrix(q_2.float(), *args)
        if corr_1 is None or corr_2 is None:
            return None
        return -(corr_2 * torch.log(corr_1 + 1e-8)).sum() / corr_1.shape[0]

    def train_step(self, batch: Batch, step: int, max_steps: int) -> dict[str, torch.Tensor]:
        cfg, n_l = self.cfg, batch.n_l
        logits_1, logits_2, emb_1, emb_2 = self.student(batch.x)
        prob_1, prob_2 = torch.softmax(logits_1, dim=1), torch.softmax(logits_2, dim=1)
        loss_s = foreground_dice(prob_1[:n_l], batch.y_l) + foreground_dice(prob_2[:n_l], batch.y_l)
        loss_c = mutual_consistency([prob_1, prob_2], cfg.temperature)

        g = self.step_generator(batch.x.device)
        self.update_memory(prob_1[:n_l], prob_2[:n_l], emb_1[:n_l], emb_2[:n_l], batch.y_l, g)
        memory = self.memory.sample(cfg.memory_num, g)
        loss_o = self.correlation_loss(prob_1[n_l:], prob_2[n_l:], emb_1[n_l:], emb_2[n_l:], memory)
        available = loss_o is not None
        loss_o = loss_o if available else loss_c.new_zeros(())
        return self.consistency_result(
            cfg.lam * loss_s,
            cfg.w_c * loss_c + cfg.w_o * loss_o,
            self._ramp(step, max_steps),
            loss_c=loss_c,
            loss_o=loss_o,
            corr_available=torch.tensor(float(available)),
        )

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.student.branch1(x), dim=1)  # branch v only, as test_3d.py
