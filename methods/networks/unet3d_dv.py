"""URPC's multi-scale 3D U-Net (SSL4MIS `unet_3D_dv_semi`), written from methods.md 3.4.

Encoder: four blocks of 2 x (3x3x3 conv -> InstanceNorm (affine=False) -> ReLU), each followed by 2x max-pooling,
then a centre block. Widths [16, 32, 64, 128, 256] (feature_scale 4) at `n_filters=16`; other `n_filters` scale
them by n_filters/16 (the quick preset's 4 gives [4, 8, 16, 32, 64]). Decoder: trilinear 2x upsampling of the
deeper map, concatenation with the skip, a conv block, then Dropout3d (0.5, 0.3, 0.2, 0.1 from deep to shallow).
Four deep-supervision heads (1x1x1 convs on the four decoder stages) are upsampled to the input size; the forward
pass returns (dsv1, dsv2, dsv3, dsv4), dsv1 (full resolution) being the main output. Kaiming-normal init.

Deviations from the reference code:
- Instance norm of a map with a single voxel (the centre of a 16^3 crop, the smoke preset) is undefined
  (PyTorch raises, and the normalised value would be identically 0); `InstanceNorm3dOrIdentity` passes such a map
  through unchanged. Crops of at least 32 voxels per side (every real preset) are unaffected.
- The heads are upsampled with `size=` the input size rather than a fixed scale factor; for sides divisible by 16
  this is the same interpolation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

WIDTHS = (16, 32, 64, 128, 256)  # feature_scale 4 of (64, 128, 256, 512, 1024)
DECODER_DROPOUT = (0.5, 0.3, 0.2, 0.1)  # after up4, up3, up2, up1 (SSL4MIS unet_3D_dv_semi)


def scaled_widths(n_filters: int) -> list[int]:
    return [max(1, w * n_filters // 16) for w in WIDTHS]


class InstanceNorm3dOrIdentity(nn.InstanceNorm3d):
    """InstanceNorm3d (affine=False) that leaves a single-voxel map unchanged instead of raising."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x[0, 0].numel() == 1:
            return x
        return super().forward(x)


class ConvBlock(nn.Sequential):
    """2 x (3x3x3 conv -> InstanceNorm -> ReLU): SSL4MIS `UnetConv3` (its `is_batchnorm` flag builds IN)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(
            nn.Conv3d(c_in, c_out, 3, padding=1),
            InstanceNorm3dOrIdentity(c_out),
            nn.ReLU(inplace=True),
            nn.Conv3d(c_out, c_out, 3, padding=1),
            InstanceNorm3dOrIdentity(c_out),
            nn.ReLU(inplace=True),
        )


class UpBlock(nn.Module):
    """Trilinear 2x upsampling of the deeper map, concatenation with the skip, then a conv block."""

    def __init__(self, c_skip: int, c_deep: int):
        super().__init__()
        self.conv = ConvBlock(c_skip + c_deep, c_skip)

    def forward(self, skip: torch.Tensor, deep: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(deep, size=skip.shape[2:], mode="trilinear", align_corners=False)
        return self.conv(torch.cat([skip, up], dim=1))


def upsample_to(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    if x.shape[2:] == size:
        return x
    return F.interpolate(x, size=size, mode="trilinear", align_corners=False)


def kaiming_init(module: nn.Module) -> None:
    """Kaiming-normal (fan_in) conv weights, as SSL4MIS `init_weights(..., 'kaiming')`; biases keep the default."""
    for m in module.modules():
        if isinstance(m, nn.Conv3d | nn.Linear):
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class UNet3DDeepSupervision(nn.Module):
    """URPC's U-Net: returns four class-logit maps (B, n_classes, W, H, D), main (finest) head first."""

    def __init__(self, n_channels: int = 1, n_classes: int = 2, n_filters: int = 16):
        super().__init__()
        w = scaled_widths(n_filters)
        self.enc = nn.ModuleList(
            [ConvBlock(n_channels, w[0]), ConvBlock(w[0], w[1]), ConvBlock(w[1], w[2]), ConvBlock(w[2], w[3])]
        )
        self.center = ConvBlock(w[3], w[4])
        # up[0] is the deepest decoder stage (SSL4MIS up_concat4), up[3] the finest (up_concat1).
        self.up = nn.ModuleList(
            [UpBlock(w[3], w[4]), UpBlock(w[2], w[3]), UpBlock(w[1], w[2]), UpBlock(w[0], w[1])]
        )
        self.dropout = nn.ModuleList([nn.Dropout3d(p) for p in DECODER_DROPOUT])
        # heads[0] = dsv1 (finest, w[0] channels) ... heads[3] = dsv4 (w[3] channels)
        self.heads = nn.ModuleList([nn.Conv3d(w[i], n_classes, 1) for i in range(4)])
        kaiming_init(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        skips = []
        h = x
        for block in self.enc:
            h = block(h)
            skips.append(h)
            h = F.max_pool3d(h, 2)
        h = self.center(h)
        decoded = []  # deepest first: up4, up3, up2, up1
        for up, drop, skip in zip(self.up, self.dropout, reversed(skips), strict=True):
            h = drop(up(skip, h))
            decoded.append(h)
        size = x.shape[2:]
        dsv = [
            upsample_to(head(feat), size) for head, feat in zip(self.heads, reversed(decoded), strict=True)
        ]
        return dsv[0], dsv[1], dsv[2], dsv[3]
