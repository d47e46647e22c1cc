"""The labeling-representation denoising autoencoder (methods.md 3.7.A; Adiga V. et al., MICCAI 2022, section 3).

The V-Net encoder and decoder of `vnet.py` *without* the skip additions (an autoencoder must squeeze everything
through its bottleneck), with a dense linear bottleneck in between:

    label map (B, 1, W, H, D) -> encoder -> (B, 16F, W/16, H/16, D/16) -> flatten -> Linear -> z (B, d)
    z -> Linear -> reshape -> decoder -> 1x1x1 conv -> C logits (B, C, W, H, D); sigmoid per channel

There is no activation between or after the two linears (the authors' `VNetDAE`), no dropout, and the flat size
comes from the crop, so the network only accepts inputs of that crop size. With the LA crop 112x112x80 and
F = 16 the flat size is 256*7*7*5 = 62,720 and each linear holds about 32 M weights at d = 512.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sslbench.methods.networks.vnet import VNetDecoder, VNetEncoder


def bottleneck_shape(patch: tuple[int, int, int], n_filters: int) -> tuple[int, int, int, int]:
    """(channels, W/16, H/16, D/16) of the deepest encoder stage for a crop `patch`."""
    if any(p % 16 for p in patch):
        raise ValueError(
            f"DAE patch {tuple(patch)}: each side must be a multiple of 16 (four 2x downsamplings)"
        )
    return (16 * n_filters, *(p // 16 for p in patch))


def authors_init_(module: nn.Module) -> None:
    """Draw every parameter tensor from U(-1/sqrt(size(0)), +1/sqrt(size(0))), as the authors' DAE does.

    size(0) is the output-channel count for weights and the length for vectors (biases, BN affine terms).
    """
    with torch.no_grad():
        for p in module.parameters():
            bound = 1.0 / math.sqrt(p.shape[0])
            p.uniform_(-bound, bound)


class LabelDAE(nn.Module):
    """Denoising autoencoder of label maps: 1-channel float label map in, C logits out.

    Args:
        patch: the crop it is trained and used on; fixes the size of the dense bottleneck.
        n_classes: output channels C (one sigmoid each; the target is the one-hot label).
        n_filters: width F of the first V-Net stage.
        latent_dim: size d of the linear bottleneck (the authors' scripts use 512).
        normalization: the V-Net's normalisation layer (batchnorm in the authors' DAE).
        latent_noise: std sigma of clip(sigma N(0, 1), +-2 sigma) added to z in every forward pass (0 = off);
            the authors' journal code has it (sigma 0.1 inside mean-teacher training), the MICCAI paper does not.
        init: "pytorch" (PyTorch's default initialisation) or "authors" (`authors_init_`). The paper says nothing;
            the authors' uniform init makes every conv weight about 5x larger than PyTorch's, which shrinks the
            effective step of the BN-followed convs about 25x: their 50k iterations absorb it, a short schedule
            does not (see methods/algorithms/lrep/__init__.py).
    """

    def __init__(
        self,
        patch: tuple[int, int, int],
        n_classes: int = 2,
        n_filters: int = 16,
        latent_dim: int = 512,
        normalization: str = "batchnorm",
        latent_noise: float = 0.0,
        init: str = "pytorch",
    ):
        super().__init__()
        self.patch = tuple(int(p) for p in patch)
        self.latent_noise = float(latent_noise)
        self.feat_shape = bottleneck_shape(self.patch, n_filters)
        flat = math.prod(self.feat_shape)
        self.encoder = VNetEncoder(1, n_filters, normalization, dropout=0.0)
        self.fc_enc = nn.Linear(flat, latent_dim)
        self.fc_dec = nn.Linear(latent_dim, flat)
        self.decoder = VNetDecoder(n_filters, normalization, dropout=0.0, skips=False)
        self.out_conv = nn.Conv3d(n_filters, n_classes, 1)
        if init == "authors":
            authors_init_(self)
        elif init != "pytorch":
            raise ValueError(f"DAE init '{init}': expected 'pytorch' or 'authors'")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, W, H, D) label map -> (B, d) latent code."""
        if tuple(x.shape[2:]) != self.patch:
            raise ValueError(
                f"DAE input has spatial shape {tuple(x.shape[2:])}; it was built for {self.patch}"
            )
        deepest = self.encoder(x)[
            -1
        ]  # (B, 16F, W/16, H/16, D/16); the shallower stages are unused (no skips)
        return self.fc_enc(deepest.flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, d) latent code -> (B, C, W, H, D) logits."""
        feat = self.fc_dec(z).view(z.shape[0], *self.feat_shape)
        return self.out_conv(self.decoder([None, None, None, None, feat]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.encode(x)
        if self.latent_noise > 0:
            sigma = self.latent_noise
            z = z + torch.clamp(torch.randn_like(z) * sigma, -2 * sigma, 2 * sigma)
        return self.decode(z)
