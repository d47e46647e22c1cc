"""The V-Net with two heads used by DTC and SASSnet (methods.md 2.1, "SDF variant").

The trunk is the LA V-Net of `vnet.py` (reused, not copied). Two 1x1x1 heads sit on the last decoder feature:
`out_conv` -> tanh gives the signed-distance prediction, `out_conv2` gives the segmentation logit (sigmoid).
The references' optional `has_residual` flag (default off, unused for LA) is not reproduced.
"""

from __future__ import annotations

import torch
from torch import nn

from sslbench.methods.networks.vnet import VNetDecoder, VNetEncoder


class VNetSDF(nn.Module):
    """V-Net returning (sdf_tanh, seg_logit), each (B, n_classes, W, H, D); n_classes = 1 for LA."""

    def __init__(
        self,
        n_channels: int = 1,
        n_classes: int = 1,
        n_filters: int = 16,
        normalization: str = "batchnorm",
        dropout: float = 0.5,
    ):
        super().__init__()
        self.encoder = VNetEncoder(n_channels, n_filters, normalization, dropout)
        self.decoder = VNetDecoder(n_filters, normalization, dropout)
        self.out_conv = nn.Conv3d(n_filters, n_classes, 1)  # SDF head (tanh)
        self.out_conv2 = nn.Conv3d(n_filters, n_classes, 1)  # segmentation head (logit)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.decoder(self.encoder(x))
        return torch.tanh(self.out_conv(feat)), self.out_conv2(feat)
