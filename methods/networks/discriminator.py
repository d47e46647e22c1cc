"""SASSnet's SDF-space discriminator (`FC3DDiscriminator`), written from methods.md 3.6.

Two stems (Conv3d k4 s2 p1 to `ndf` channels), one on the predicted signed-distance map and one on the image,
are added; then LeakyReLU(0.2) and Dropout3d(0.5); conv2 (2 ndf), conv3 (4 ndf), both followed by LeakyReLU and
Dropout3d(0.5); conv4 (8 ndf) and LeakyReLU, all k4 s2 p1; global average pooling; Linear(8 ndf -> 2).
Class 1 = "from a labeled crop", class 0 = "from an unlabeled crop".

Deviations from the reference code:
- Global *adaptive* average pooling instead of the hard-wired AvgPool3d((7, 7, 5)). For the 112x112x80 crop the
  conv4 map is exactly 7x7x5, so the two are the same there; any other crop size now works too (the quick and
  smoke presets use 32^3 and 16^3).
- `ndf` is an argument; SASSnet uses 64 at n_filters 16, and the methods scale it by n_filters/16 for small presets.
"""

from __future__ import annotations

import torch
from torch import nn


def _down(c_in: int, c_out: int) -> nn.Conv3d:
    return nn.Conv3d(c_in, c_out, kernel_size=4, stride=2, padding=1)


class FC3DDiscriminator(nn.Module):
    """D(sdf_map, image) -> logits (B, 2)."""

    def __init__(self, num_classes: int = 1, ndf: int = 64, n_channel: int = 1, dropout: float = 0.5):
        super().__init__()
        self.map_stem = _down(num_classes, ndf)
        self.image_stem = _down(n_channel, ndf)
        self.conv2 = _down(ndf, 2 * ndf)
        self.conv3 = _down(2 * ndf, 4 * ndf)
        self.conv4 = _down(4 * ndf, 8 * ndf)
        self.act = nn.LeakyReLU(0.2, inplace=True)
        self.dropout = nn.Dropout3d(dropout)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.classifier = nn.Linear(8 * ndf, 2)

    def forward(self, sdf_map: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        h = self.dropout(self.act(self.map_stem(sdf_map) + self.image_stem(image)))
        h = self.dropout(self.act(self.conv2(h)))
        h = self.dropout(self.act(self.conv3(h)))
        h = self.act(self.conv4(h))
        return self.classifier(self.pool(h).flatten(1))  # (B, 2)
