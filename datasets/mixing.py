"""Region masks for mixing two crops: BCP's copy-paste cuboid and UniMatch's 3D CutMix boxes.

Masks are 1 inside the region that comes from the second ("pasted") crop. Positions and sizes are drawn from an
explicit CPU `torch.Generator` (host integers, no device synchronisation); the masks are built on `device`.
`paste(x_bg, x_fg, m)` = x_bg (1 - m) + x_fg m mixes images, labels and confidence maps alike, so a label mixed
with the same mask stays aligned with its image.
"""

from __future__ import annotations

import math

import torch


def _randint(low: int, high: int, generator: torch.Generator) -> int:
    """An integer in [low, high) (just `low` when the range is empty)."""
    if high <= low:
        return low
    return int(torch.randint(low, high, (1,), generator=generator))


def _uniform(low: float, high: float, generator: torch.Generator) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def cuboid_mask(
    shape: tuple[int, int, int],
    ratio: float,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """BCP's mask (W, H, D): 1 in a cuboid of sides int(s * ratio) on each axis, 0 elsewhere.

    With ratio 2/3 the cuboid holds about (2/3)^3 = 8/27 of the crop. Its corner is drawn uniformly in
    [0, s - side) on each axis (BCP `context_mask`, exclusive upper bound; one choice when the side is the crop).
    """
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"cuboid ratio {ratio}: expected a number in (0, 1]")
    mask = torch.zeros(shape, device=device)
    sides = [int(s * ratio) for s in shape]
    starts = [_randint(0, s - side, generator) for s, side in zip(shape, sides, strict=True)]
    mask[tuple(slice(a, a + side) for a, side in zip(starts, sides, strict=True))] = 1.0
    return mask


def cutmix_box(
    shape: tuple[int, int, int],
    generator: torch.Generator,
    p: float = 0.5,
    size: tuple[float, float] = (0.02, 0.4),
    ratio: tuple[float, float] = (0.3, 1 / 0.3),
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """UniMatch's CutMix box in 3D (W, H, D): with probability p, 1 in one box, else all 0.

    UniMatch (`dataset/transform.py`, `obtain_cutmix_box`) draws the box area as U(0.02, 0.4) of the image and an
    aspect ratio r ~ U(0.3, 1/0.3). In 3D the volume fraction v ~ U(size) is split over the axes as
    (v / r)^(1/3), (v r)^(1/3) and v^(1/3) of the W, H and D sides (their product is v), and a ratio is redrawn
    until the box fits; its corner is uniform among the positions where it fits.
    """
    mask = torch.zeros(shape, device=device)
    if float(torch.rand((), generator=generator)) >= p:
        return mask
    v = _uniform(size[0], size[1], generator)
    for _ in range(1000):  # r = 1 always fits (v <= 1), so this ends after a few draws
        r = _uniform(ratio[0], ratio[1], generator)
        fractions = ((v / r) ** (1 / 3), (v * r) ** (1 / 3), v ** (1 / 3))
        sides = [max(1, int(s * f)) for s, f in zip(shape, fractions, strict=True)]
        if all(side <= s for side, s in zip(sides, shape, strict=True)):
            break
    else:  # pragma: no cover - needs 1000 misses in a row
        sides = [max(1, int(s * v ** (1 / 3))) for s in shape]
    starts = [_randint(0, s - side + 1, generator) for s, side in zip(shape, sides, strict=True)]
    mask[tuple(slice(a, a + side) for a, side in zip(starts, sides, strict=True))] = 1.0
    return mask


def cutmix_boxes(n: int, shape: tuple[int, int, int], generator: torch.Generator, **kwargs) -> torch.Tensor:
    """`n` independent CutMix boxes (n, W, H, D), one per sample as UniMatch's loader draws them."""
    device = kwargs.pop("device", "cpu")
    if n == 0:
        return torch.zeros((0, *shape), device=device)
    return torch.stack([cutmix_box(shape, generator, device=device, **kwargs) for _ in range(n)])


def paste(x_bg: torch.Tensor, x_fg: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x_bg outside the mask, x_fg inside it; `mask` broadcasts against both (e.g. (W, H, D) or (B, 1, W, H, D))."""
    mask = mask.to(x_bg.dtype) if x_bg.is_floating_point() else mask.bool()
    if x_bg.is_floating_point():
        return x_bg * (1.0 - mask) + x_fg * mask
    return torch.where(mask, x_fg, x_bg)


def volume_fraction(mask: torch.Tensor) -> float:
    """The share of voxels inside a (W, H, D) mask."""
    return float(mask.sum()) / math.prod(mask.shape)
