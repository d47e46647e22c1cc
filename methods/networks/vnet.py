"""The V-Net of the LA references (UA-MT, DTC, SASSnet), written from methods.md section 2.1.

Despite its name it uses plain (non-residual) conv blocks and *adds* the encoder skips in the decoder.
With n_filters 16 and 2 classes it has 9,448,866 parameters.
"""

from __future__ import annotations

import torch
from torch import nn


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batchnorm":
        return nn.BatchNorm3d(channels)
    if kind == "instancenorm":
        return nn.InstanceNorm3d(channels)
    if kind == "groupnorm":
        return nn.GroupNorm(num_groups=min(16, channels), num_channels=channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"normalization '{kind}': expected batchnorm, instancenorm, groupnorm or none")


class ConvStage(nn.Sequential):
    """`n` x (3x3x3 conv + norm + ReLU)."""

    def __init__(self, n: int, c_in: int, c_out: int, norm: str):
        layers: list[nn.Module] = []
        for i in range(n):
            layers += [nn.Conv3d(c_in if i == 0 else c_out, c_out, 3, padding=1), norm_layer(norm, c_out)]
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Down(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, norm: str):
        super().__init__(nn.Conv3d(c_in, c_out, 2, stride=2), norm_layer(norm, c_out), nn.ReLU(inplace=True))


class Up(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, norm: str):
        super().__init__(
            nn.ConvTranspose3d(c_in, c_out, 2, stride=2), norm_layer(norm, c_out), nn.ReLU(inplace=True)
        )


class VNetEncoder(nn.Module):
    """Five stages (1, 2, 3, 3, 3 convs) with strided-conv downsampling; returns the five stage features."""

    def __init__(self, n_channels: int, n_filters: int, norm: str, dropout: float):
        super().__init__()
        f = n_filters
        self.stage1 = ConvStage(1, n_channels, f, norm)
        self.down1 = Down(f, 2 * f, norm)
        self.stage2 = ConvStage(2, 2 * f, 2 * f, norm)
        self.down2 = Down(2 * f, 4 * f, norm)
        self.stage3 = ConvStage(3, 4 * f, 4 * f, norm)
        self.down3 = Down(4 * f, 8 * f, norm)
        self.stage4 = ConvStage(3, 8 * f, 8 * f, norm)
        self.down4 = Down(8 * f, 16 * f, norm)
        self.stage5 = ConvStage(3, 16 * f, 16 * f, norm)
        self.dropout = nn.Dropout3d(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x1 = self.stage1(x)
        x2 = self.stage2(self.down1(x1))
        x3 = self.stage3(self.down2(x2))
        x4 = self.stage4(self.down3(x3))
        x5 = self.dropout(self.stage5(self.down4(x4)))
        return [x1, x2, x3, x4, x5]


class VNetDecoder(nn.Module):
    """Mirror of the encoder; `skips=False` gives the DAE decoder (no encoder features added)."""

    def __init__(self, n_filters: int, norm: str, dropout: float, skips: bool = True):
        super().__init__()
        f = n_filters
        self.skips = skips
        self.up5 = Up(16 * f, 8 * f, norm)
        self.stage6 = ConvStage(3, 8 * f, 8 * f, norm)
        self.up6 = Up(8 * f, 4 * f, norm)
        self.stage7 = ConvStage(3, 4 * f, 4 * f, norm)
        self.up7 = Up(4 * f, 2 * f, norm)
        self.stage8 = ConvStage(2, 2 * f, 2 * f, norm)
        self.up8 = Up(2 * f, f, norm)
        self.stage9 = ConvStage(1, f, f, norm)
        self.dropout = nn.Dropout3d(dropout) if dropout > 0 else nn.Identity()

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x1, x2, x3, x4, x5 = feats
        x = self.up5(x5)
        x = self.stage6(x + x4 if self.skips else x)
        x = self.up6(x)
        x = self.stage7(x + x3 if self.skips else x)
        x = self.up7(x)
        x = self.stage8(x + x2 if self.skips else x)
        x = self.up8(x)
        x = self.stage9(x + x1 if self.skips else x)
        return self.dropout(x)  # (B, F, W, H, D): the last feature map, heads go on top


class VNet(nn.Module):
    """V-Net returning segmentation logits (B, n_classes, W, H, D)."""

    def __init__(
        self,
        n_channels: int = 1,
        n_classes: int = 2,
        n_filters: int = 16,
        normalization: str = "batchnorm",
        dropout: float = 0.5,
    ):
        super().__init__()
        self.encoder = VNetEncoder(n_channels, n_filters, normalization, dropout)
        self.decoder = VNetDecoder(n_filters, normalization, dropout)
        self.out_conv = nn.Conv3d(n_filters, n_classes, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_conv(self.features(x))
