"""Loss functions shared by the methods (methods.md 2.2). Each is written once here."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dice_loss_fg(prob_fg: torch.Tensor, target: torch.Tensor, smooth: float = 1e-5) -> torch.Tensor:
    """UA-MT Dice: 1 - (2 sum(s g) + e) / (sum s^2 + sum g^2 + e), one Dice over the whole (sub-)batch."""
    target = target.float()
    inter = (prob_fg * target).sum()
    denom = (prob_fg * prob_fg).sum() + (target * target).sum()
    return 1.0 - (2.0 * inter + smooth) / (denom + smooth)


def dice_loss_foreground(prob: torch.Tensor, target: torch.Tensor, smooth: float = 1e-5) -> torch.Tensor:
    """The mean over foreground classes 1..C-1 of `dice_loss_fg(prob[:, c], target == c)`; for two classes it is
    exactly UA-MT's `dice_loss_fg(prob[:, 1], target)` (the same float operations)."""
    n_classes = prob.shape[1]
    if n_classes == 2:
        return dice_loss_fg(prob[:, 1], target)
    return torch.stack([dice_loss_fg(prob[:, c], target == c, smooth) for c in range(1, n_classes)]).mean()


def dice_loss_all_classes(prob: torch.Tensor, target: torch.Tensor, smooth: float = 1e-5) -> torch.Tensor:
    """SSL4MIS DiceLoss: the squared-denominator Dice per class (background included), averaged over classes."""
    n_classes = prob.shape[1]
    onehot = F.one_hot(target.long(), n_classes).movedim(-1, 1).float()
    losses = [dice_loss_fg(prob[:, c], onehot[:, c], smooth) for c in range(n_classes)]
    return torch.stack(losses).mean()


def masked_dice_all_classes(
    prob: torch.Tensor, target: torch.Tensor, keep: torch.Tensor, smooth: float = 1e-5
) -> torch.Tensor:
    """UniMatch's DiceLoss with `ignore`: the squared-denominator Dice of each class over the kept voxels only,
    averaged over the classes. prob (B, C, ...), integer target (B, ...), keep (B, ...) in {0, 1}."""
    keep = keep.to(prob.dtype)
    losses = []
    for c in range(prob.shape[1]):
        score = prob[:, c] * keep
        truth = (target == c).to(prob.dtype) * keep
        inter = (score * truth).sum()
        losses.append(1.0 - (2.0 * inter + smooth) / ((score * score).sum() + (truth * truth).sum() + smooth))
    return torch.stack(losses).mean()


def ce_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """0.5 (CE + Dice_fg) on C-class logits (B, C, ...) and integer targets (B, ...); Dice_fg is the mean
    foreground Dice (`dice_loss_foreground`: UA-MT's for two classes)."""
    ce = F.cross_entropy(logits, target.long())
    dice = dice_loss_foreground(torch.softmax(logits, dim=1), target)
    return 0.5 * (ce + dice)


def softmax_mse(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Element-wise (softmax(a) - softmax(b))^2, unreduced, shape (B, C, ...)."""
    return (torch.softmax(logits_a, dim=1) - torch.softmax(logits_b, dim=1)) ** 2


def entropy(prob: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Predictive entropy over the class axis, keepdim: (B, C, ...) -> (B, 1, ...)."""
    return -(prob * torch.log(prob + eps)).sum(dim=1, keepdim=True)


def masked_mean(
    values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-16, n_classes: int | None = None
) -> torch.Tensor:
    """sum(m d) / (C sum(m)) for d of shape (B, C, ...) and a 1-channel mask: UA-MT's normalisation.

    With C classes this is the mean of d over the certain voxels and the classes; `n_classes` replaces C where a
    reference divides by a fixed count (lrep's "code" normalisation keeps UA-MT's 2 for any C).
    """
    n_classes = values.shape[1] if n_classes is None else n_classes
    return (mask * values).sum() / (n_classes * mask.sum() + eps)


def weighted_mean(values: torch.Tensor, weights: torch.Tensor, eps: float = 1e-16) -> torch.Tensor:
    """sum(w d) / sum(w) with `weights` broadcast to `values` (the paper's normalised weighted consistency)."""
    weights = weights.expand_as(values)
    return (weights * values).sum() / (weights.sum() + eps)


def weighted_mean_per_sample(values: torch.Tensor, weights: torch.Tensor, eps: float = 1e-16) -> torch.Tensor:
    """sum_v w d / sum_v w within each sample: (B,) for `values` (B, C, ...) and `weights` broadcast to them."""
    weights = weights.expand_as(values)
    dims = tuple(range(1, values.dim()))
    return (weights * values).sum(dims) / (weights.sum(dims) + eps)
