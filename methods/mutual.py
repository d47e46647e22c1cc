"""Losses of mutual-consistency learning (MC-Net / MC-Net+, Wu et al.), shared by methods with several heads.

Not a method: it registers nothing (the built-in importer loads it like any module of the package).
"""

from __future__ import annotations

import torch


def sharpen(prob: torch.Tensor, temperature: float) -> torch.Tensor:
    """Element-wise p^(1/T) / (p^(1/T) + (1 - p)^(1/T)) (MC-Net+'s sharpening function, T = 0.1).

    Applied to each class channel of a 2-class softmax it keeps the channels summing to 1 (the two channels are
    p and 1 - p, and the map is symmetric under p -> 1 - p). One of p, 1 - p is at least 0.5, so the denominator
    never underflows. With C > 2 classes the channels no longer sum to 1 after it; MC-Net's multi-class script
    (`train_mcnet_2d.py`) applies it channel by channel all the same and does not renormalise, and so do we.
    """
    inv_t = 1.0 / temperature
    num = prob**inv_t
    return num / (num + (1.0 - prob) ** inv_t)


def binary_dice_loss(prob_fg: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """MC-Net's Dice: 1 - (2 sum(p g) + e) / (sum p + sum g + e), one Dice over the (sub-)batch.

    Unlike `losses.dice_loss_fg` (UA-MT's) the denominator is not squared (MC-Net `utils/losses.py`).
    """
    target = target.float()
    return 1.0 - (2.0 * (prob_fg * target).sum() + eps) / (prob_fg.sum() + target.sum() + eps)


def mutual_consistency(
    probs: list[torch.Tensor] | tuple[torch.Tensor, ...], temperature: float
) -> torch.Tensor:
    """sum over ordered pairs i != j of mean((p_i - sharpen(p_j))^2), for softmax maps p_i of the same shape.

    Each decoder's probabilities are pulled towards every other decoder's sharpened (soft pseudo-label)
    probabilities. No stop-gradient: the reference lets gradients flow through both sides, and so does this.
    """
    sharpened = [sharpen(p, temperature) for p in probs]
    total = probs[0].new_zeros(())
    for i, p_i in enumerate(probs):
        for j, s_j in enumerate(sharpened):
            if i != j:
                total = total + torch.mean((p_i - s_j) ** 2)
    return total
