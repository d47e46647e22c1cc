"""BCP stage 1 (Bai et al., CVPR 2023; `DeepMed-Lab-ECNU/BCP`, `code/LA_BCP_train.py`, `pre_train`): a pure function.

A V-Net is trained on the labeled crops only, each step mixing labeled pairs with BCP's copy-paste: crop a keeps
its voxels outside a cuboid (sides 2/3 of the crop), crop b fills the cuboid, and the labels are mixed the same
way. Loss: (CE + Dice) / 2 on the mixed crop, Dice = BCP's per-sample, per-class Dice (background included,
unsquared denominator). SGD lr 0.01 (constant in the reference), momentum 0.9, wd 1e-4.

No file IO: the caller (BCP.prepare_assets) stores the returned weights as a cached asset. Batches are a pure
function of (seed, step) and the global torch RNG is forked, so building the asset or loading it from the cache
leaves the caller's random stream unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sslbench.datasets.mixing import cuboid_mask, paste
from sslbench.datasets.transforms import random_crop, random_rot_flip
from sslbench.methods.networks.vnet import VNet

_STREAM = 0xBC91


@dataclass(frozen=True)
class Stage1Config:
    iterations: int = 2000  # LA_BCP_train.py --pre_max_iteration 2000
    pairs: int = 2  # --labeled_bs 4 split in halves a, b: 2 mixed crops from 4 labeled crops per step
    lr: float = 0.01  # --base_lr 0.01, never decayed in pre_train
    momentum: float = 0.9  # optim.SGD(..., momentum=0.9, ...)
    weight_decay: float = 1e-4  # ... weight_decay=0.0001
    mask_ratio: float = 2 / 3  # --mask_ratio 2/3

    def to_key(self) -> dict[str, Any]:
        return asdict(self)


def bcp_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """BCP's mask_DiceLoss: 1 - mean over samples and classes of (2 sum(p g m) + e) / (sum((p + g) m) + e).

    logits (B, C, ...), integer target (B, ...), mask (B, ...) in {0, 1} or None; e = 1e-5.
    """
    n, c = logits.shape[:2]
    prob = torch.softmax(logits, dim=1).reshape(n, c, -1)
    onehot = F.one_hot(target.long().reshape(n, -1), c).movedim(-1, 1).to(prob.dtype)  # (B, C, V)
    m = torch.ones_like(prob[:, :1]) if mask is None else mask.reshape(n, 1, -1).to(prob.dtype)
    inter = (prob * onehot * m).sum(-1)
    union = ((prob + onehot) * m).sum(-1)
    return 1.0 - ((2.0 * inter + 1e-5) / (union + 1e-5)).mean()


def masked_ce(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sum(CE m) / (sum(m) + 1e-16): BCP's cross-entropy over the voxels of one region."""
    ce = F.cross_entropy(logits, target.long(), reduction="none")
    return (ce * mask).sum() / (mask.sum() + 1e-16)


def _batch(
    images: list[np.ndarray], labels: list[np.ndarray], cfg: Stage1Config, patch, seed: int, step: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Crops (B, 1, W, H, D), labels (B, W, H, D) and the cuboid mask (W, H, D) of one step."""
    rng = np.random.default_rng([seed, _STREAM, step])
    n = 2 * cfg.pairs
    picks = rng.choice(len(images), size=n, replace=n > len(images))
    xs, ys = [], []
    for i in picks:
        image, label = random_rot_flip(images[i], labels[i], rng)
        image, label = random_crop(image, label, patch, rng)
        xs.append(np.ascontiguousarray(image, dtype=np.float32))
        ys.append(np.ascontiguousarray(label, dtype=np.int64))
    g = torch.Generator().manual_seed(int(rng.integers(2**62)))
    mask = cuboid_mask(tuple(patch), cfg.mask_ratio, g)
    return torch.from_numpy(np.stack(xs))[:, None], torch.from_numpy(np.stack(ys)), mask


def pretrain_stage1(
    images: list[np.ndarray],
    labels: list[np.ndarray],
    cfg: Stage1Config,
    patch: tuple[int, int, int],
    n_filters: int,
    normalization: str,
    device: torch.device,
    seed: int,
    n_classes: int = 2,
) -> dict[str, Any]:
    """Train the stage-1 V-Net (`n_classes` outputs) on labeled volumes; returns {"state": CPU state dict,
    "report": {...}}.

    The last model is returned (the reference keeps the one with the best Dice on the test set every 200
    steps, which the benchmark protocol does not allow).
    """
    if cfg.pairs < 1:
        raise ValueError(f"BCP stage 1 pairs={cfg.pairs}: expected at least 1")
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        net = VNet(1, n_classes, n_filters, normalization, 0.5).to(device)
        net.train()
        opt = torch.optim.SGD(
            net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
        half = cfg.pairs
        losses = []
        for step in range(cfg.iterations):
            x, y, mask = (t.to(device) for t in _batch(images, labels, cfg, patch, seed, step))
            x_mix = paste(x[:half], x[half:], mask)  # crop a outside the cuboid, crop b inside
            y_mix = paste(y[:half], y[half:], mask)
            logits = net(x_mix)
            loss = 0.5 * (F.cross_entropy(logits, y_mix) + bcp_dice_loss(logits, y_mix))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        tail = losses[-max(1, len(losses) // 10) :] if losses else [float("nan")]
        report = {"iterations": cfg.iterations, "final_loss": float(np.mean(tail))}
        return {"state": {k: v.detach().cpu() for k, v in net.state_dict().items()}, "report": report}
