"""3D strong (intensity) augmentations for weak-to-strong consistency (UniMatch), on batched tensors.

Each function takes images (B, 1, W, H, D) on any device and an explicit `torch.Generator`; every random
draw (per-sample parameters, noise fields) comes from that generator on its own device, so the same generator
state gives the same output. Intensity augmentations never move voxels: a label stays aligned with its image.
The spatial strong augmentation (CutMix) is in `mixing.py`.

UniMatch's medical loader (`more-scenarios/medical/dataset/acdc.py`) applies to each strong view: ColorJitter
(brightness 0.5, contrast 0.5; saturation and hue do nothing on a grey image) with p = 0.8, Gaussian blur with
sigma ~ U(0.1, 2) with p = 0.5, and CutMix with p = 0.5. Its images are in [0, 1]; ours are z-scored, so the
jitter works on each crop min-max scaled to [0, 1] and maps back (ColorJitter's clamping to [0, 1] included).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _rand(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=generator.device)


def _per_sample(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, 1, 1, 1) on x's device and dtype."""
    return values.to(device=x.device, dtype=x.dtype).view(-1, *([1] * (x.dim() - 1)))


def intensity_jitter(
    x: torch.Tensor,
    generator: torch.Generator,
    p: float = 0.8,
    brightness: float = 0.5,
    contrast: float = 0.5,
    log_gamma: float = 0.0,
) -> torch.Tensor:
    """With probability p per sample: brightness b, contrast c, gamma g on the crop scaled to [0, 1].

    b, c ~ U(1 - brightness, 1 + brightness), U(1 - contrast, 1 + contrast) as torchvision's ColorJitter:
    u <- clamp(b u), u <- clamp(c u + (1 - c) mean(u)); then u <- u^g with log g ~ U(-log_gamma, log_gamma)
    (torchio's RandomGamma, used by CrossMatch's 3D port; 0 = off, as UniMatch).
    """
    n = x.shape[0]
    apply = _per_sample(_rand(n, generator) < p, x)
    b = _per_sample(1.0 + brightness * (2.0 * _rand(n, generator) - 1.0), x)
    c = _per_sample(1.0 + contrast * (2.0 * _rand(n, generator) - 1.0), x)
    g = _per_sample(torch.exp(log_gamma * (2.0 * _rand(n, generator) - 1.0)), x)
    dims = tuple(range(1, x.dim()))
    lo, hi = x.amin(dim=dims, keepdim=True), x.amax(dim=dims, keepdim=True)
    scale = (hi - lo).clamp_min(1e-6)
    u = (x - lo) / scale
    u = (u * b).clamp(0.0, 1.0)
    u = (c * u + (1.0 - c) * u.mean(dim=dims, keepdim=True)).clamp(0.0, 1.0)
    u = u.clamp_min(1e-12) ** g if log_gamma > 0 else u
    return torch.where(apply.bool(), lo + u * scale, x)


def gaussian_kernels(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """Normalised 1D Gaussian kernels (B, 2 radius + 1) for the per-sample sigmas (B,)."""
    t = torch.arange(-radius, radius + 1, device=sigma.device, dtype=sigma.dtype)
    k = torch.exp(-0.5 * (t[None, :] / sigma[:, None]) ** 2)
    return k / k.sum(dim=1, keepdim=True)


def gaussian_blur(
    x: torch.Tensor,
    generator: torch.Generator,
    p: float = 0.5,
    sigma: tuple[float, float] = (0.1, 2.0),
) -> torch.Tensor:
    """With probability p per sample: an isotropic 3D Gaussian blur, sigma ~ U(sigma) voxels (UniMatch's blur).

    Separable, with edge-replicated borders and one kernel width (3 sigma_max) for the whole batch, so the batch
    is blurred in three grouped convolutions whatever the sigmas.
    """
    n = x.shape[0]
    apply = _per_sample(_rand(n, generator) < p, x)
    s = (sigma[0] + (sigma[1] - sigma[0]) * _rand(n, generator)).to(device=x.device, dtype=x.dtype)
    if n == 0:
        return x
    radius = max(1, math.ceil(3 * sigma[1]))
    kernels = gaussian_kernels(s, radius)  # (B, k)
    out = x.reshape(1, n, *x.shape[2:])  # samples as channels: one grouped conv blurs each with its own sigma
    for axis in range(3):
        shape = [n, 1, 1, 1, 1]
        shape[2 + axis] = 2 * radius + 1
        pad = [0, 0, 0, 0, 0, 0]
        pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = radius  # F.pad lists the last axis first
        out = F.conv3d(F.pad(out, pad, mode="replicate"), kernels.view(shape), groups=n)
    return torch.where(apply.bool(), out.reshape(x.shape), x)


def gaussian_noise(
    x: torch.Tensor, generator: torch.Generator, p: float = 1.0, std: float = 0.1, clip: float | None = 0.2
) -> torch.Tensor:
    """With probability p per sample: x + N(0, std^2) per voxel, clipped to +-clip (None: not clipped)."""
    apply = _per_sample(_rand(x.shape[0], generator) < p, x)
    noise = torch.randn(x.shape, generator=generator, device=generator.device).to(x.device, x.dtype) * std
    if clip is not None:
        noise = noise.clamp(-clip, clip)
    return x + apply * noise
