"""Strong augmentations: reproducible from the generator's seed, per-sample probabilities, labels stay aligned."""

from __future__ import annotations

import pytest
import torch

from sslbench.datasets.mixing import cutmix_boxes, paste
from sslbench.datasets.strong_augment import gaussian_blur, gaussian_kernels, gaussian_noise, intensity_jitter

SHAPE = (12, 10, 8)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 4) -> torch.Tensor:
    return torch.randn(n, 1, *SHAPE, generator=gen(123))


AUGMENTS = {
    "jitter": lambda x, g: intensity_jitter(x, g, p=1.0, log_gamma=0.5),
    "blur": lambda x, g: gaussian_blur(x, g, p=1.0),
    "noise": lambda x, g: gaussian_noise(x, g, p=1.0),
}


@pytest.mark.parametrize("name", AUGMENTS)
def test_reproducible_from_seed_and_seed_dependent(name):
    aug, x = AUGMENTS[name], images()
    a = aug(x, gen(1))
    assert a.shape == x.shape and torch.isfinite(a).all()
    assert torch.equal(a, aug(x, gen(1)))
    assert not torch.equal(a, aug(x, gen(2)))
    assert not torch.equal(a, x)


@pytest.mark.parametrize(
    "aug",
    [
        lambda x, g: intensity_jitter(x, g, p=0.5),
        lambda x, g: gaussian_blur(x, g, p=0.5),
        lambda x, g: gaussian_noise(x, g, p=0.5),
    ],
)
def test_probability_is_per_sample(aug):
    x = images(64)
    out = aug(x, gen(0))
    unchanged = sum(torch.equal(out[i], x[i]) for i in range(64))
    assert 16 < unchanged < 48


def test_intensity_jitter_matches_colorjitter_formula():
    """With p = 1, brightness b and contrast c on the crop scaled to [0, 1], then mapped back."""
    x = images(2)
    g = gen(5)
    out = intensity_jitter(x, g, p=1.0, brightness=0.5, contrast=0.5)
    # Replay the draws: apply flags, then b, then c (log_gamma 0 draws but does not use gamma).
    r = gen(5)
    torch.rand(2, generator=r)
    b = 1 + 0.5 * (2 * torch.rand(2, generator=r) - 1)
    c = 1 + 0.5 * (2 * torch.rand(2, generator=r) - 1)
    for i in range(2):
        lo, hi = x[i].min(), x[i].max()
        u = ((x[i] - lo) / (hi - lo) * b[i]).clamp(0, 1)
        u = (c[i] * u + (1 - c[i]) * u.mean()).clamp(0, 1)
        torch.testing.assert_close(out[i], lo + u * (hi - lo))


def test_blur_kernels_and_effect():
    k = gaussian_kernels(torch.tensor([0.1, 2.0]), 6)
    torch.testing.assert_close(k.sum(1), torch.ones(2))
    assert float(k[0, 6]) == pytest.approx(1.0, abs=1e-6)  # sigma 0.1: a delta
    # A blur keeps the mean of a constant volume and lowers the variance of noise.
    const = torch.full((1, 1, *SHAPE), 3.0)
    torch.testing.assert_close(gaussian_blur(const, gen(0), p=1.0), const)
    x = images(8)
    assert gaussian_blur(x, gen(0), p=1.0, sigma=(1.0, 2.0)).std() < 0.7 * x.std()


def test_noise_is_clipped():
    x = torch.zeros(2, 1, *SHAPE)
    out = gaussian_noise(x, gen(0), p=1.0, std=1.0, clip=0.2)
    assert out.abs().max() <= 0.2 + 1e-7 and out.abs().max() > 0.15


def test_intensity_augmentations_leave_the_label_aligned():
    """They change intensities only: the foreground (bright cube) stays where the label says."""
    x = torch.zeros(2, 1, *SHAPE)
    y = torch.zeros(2, *SHAPE, dtype=torch.long)
    y[:, 3:8, 2:7, 2:6] = 1
    x = x + 2.0 * y[:, None]
    for aug in AUGMENTS.values():
        out = aug(x, gen(9))
        inside = out[:, 0][y == 1].mean()
        outside = out[:, 0][y == 0].mean()
        assert inside > outside + 0.5
    jittered = intensity_jitter(x, gen(9), p=1.0)
    assert torch.equal(jittered[:, 0] > jittered.amin(dim=(1, 2, 3, 4), keepdim=True)[:, 0], y == 1)


def test_cutmix_keeps_image_and_pseudo_label_aligned():
    """CutMix, the spatial strong augmentation: image and label mixed with one box stay aligned."""
    n = 3
    y_a = torch.zeros(n, *SHAPE, dtype=torch.long)
    y_b = torch.ones(n, *SHAPE, dtype=torch.long)
    x_a, x_b = y_a[:, None].float() * 10, y_b[:, None].float() * 10  # image = 10 x label
    boxes = cutmix_boxes(n, SHAPE, gen(4), p=1.0)
    x_mix, y_mix = paste(x_a, x_b, boxes[:, None]), paste(y_a, y_b, boxes)
    assert torch.equal(x_mix[:, 0], 10 * y_mix.float())
    assert torch.equal(y_mix.bool(), boxes.bool())
