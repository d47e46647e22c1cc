"""The LA V-Net with URPC's four pyramid heads (URPC's `backbone="vnet"` option).

The trunk is `vnet.py`'s encoder and decoder, reused. A 1x1x1 head sits on each of the four decoder stages
(1/8, 1/4, 1/2 and full resolution), and the coarse outputs are upsampled trilinearly to the input size, as in
URPC's U-Net (`unet3d_dv.py`). The V-Net keeps its own dropout (bottleneck and last decoder stage) instead of the
U-Net's per-stage decoder dropout, so it is the same network the other V-Net methods train, plus three heads.
"""

from __future__ import annotations

import torch
from torch import nn

from sslbench.methods.networks.unet3d_dv import upsample_to
from sslbench.methods.networks.vnet import VNetDecoder, VNetEncoder


class VNetPyramid(nn.Module):
    """V-Net returning four class-logit maps (B, n_classes, W, H, D), main (finest) head first."""

    def __init__(
        self,
        n_channels: int = 1,
        n_classes: int = 2,
        n_filters: int = 16,
        normalization: str = "batchnorm",
        dropout: float = 0.5,
    ):
        super().__init__()
        f = n_filters
        self.encoder = VNetEncoder(n_channels, f, normalization, dropout)
        self.decoder = VNetDecoder(f, normalization, dropout)
        # heads[0] on the full-resolution stage (F channels) ... heads[3] on the 1/8 stage (8F channels)
        self.heads = nn.ModuleList([nn.Conv3d(c, n_classes, 1) for c in (f, 2 * f, 4 * f, 8 * f)])

    def stage_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four decoder stage outputs, finest first (the decoder's own forward keeps only the last)."""
        x1, x2, x3, x4, x5 = self.encoder(x)
        d = self.decoder
        h4 = d.stage6(d.up5(x5) + x4)  # 1/8 resolution, 8F channels
        h3 = d.stage7(d.up6(h4) + x3)
        h2 = d.stage8(d.up7(h3) + x2)
        h1 = d.dropout(d.stage9(d.up8(h2) + x1))  # full resolution, F channels
        return [h1, h2, h3, h4]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        size = x.shape[2:]
        feats = self.stage_features(x)
        dsv = [upsample_to(head(f), size) for head, f in zip(self.heads, feats, strict=True)]
        return dsv[0], dsv[1], dsv[2], dsv[3]
