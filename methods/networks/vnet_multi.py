"""The LA V-Net with one encoder and several decoders that differ in their up-sampling (MC-Net+).

MC-Net+ (Wu et al., MedIA 2022; `ycwu1997/MC-Net`, `code/networks/VNet.py`, `MCNet3d_v2`) shares one V-Net
encoder between three decoders. They have the same stages and encoder skips (added, as in `vnet.py`) and differ
only in how each stage doubles the resolution:

- "transpose": a 2x2x2 transposed conv with stride 2 (the plain V-Net decoder; `vnet.Up`);
- "trilinear": trilinear up-sampling (align_corners=True, as the reference) then a 3x3x3 conv;
- "nearest": nearest-neighbour up-sampling then a 3x3x3 conv;

each followed by norm + ReLU. Every decoder has its own 1x1x1 output conv. The encoder, the decoder stages and
the transposed-conv block are `vnet.py`'s, reused; only the interpolating up block is new here.
"""

from __future__ import annotations

import torch
from torch import nn

from sslbench.methods.networks.vnet import VNetDecoder, VNetEncoder, norm_layer

UP_MODES = ("transpose", "trilinear", "nearest")


class InterpUp(nn.Sequential):
    """x2 interpolation (trilinear or nearest), 3x3x3 conv, norm, ReLU: MC-Net's non-learned up-sampling."""

    def __init__(self, c_in: int, c_out: int, norm: str, mode: str):
        align = True if mode == "trilinear" else None  # the reference's nn.Upsample(..., align_corners=True)
        super().__init__(
            nn.Upsample(scale_factor=2, mode=mode, align_corners=align),
            nn.Conv3d(c_in, c_out, 3, padding=1),
            norm_layer(norm, c_out),
            nn.ReLU(inplace=True),
        )


def make_decoder(n_filters: int, norm: str, dropout: float, up_mode: str) -> VNetDecoder:
    """`vnet.VNetDecoder` with its four up blocks replaced for the interpolating modes."""
    if up_mode not in UP_MODES:
        raise ValueError(f"up_mode '{up_mode}': expected one of {', '.join(UP_MODES)}")
    decoder = VNetDecoder(n_filters, norm, dropout)
    if up_mode != "transpose":
        f = n_filters
        stages = (("up5", 16 * f, 8 * f), ("up6", 8 * f, 4 * f), ("up7", 4 * f, 2 * f), ("up8", 2 * f, f))
        for name, c_in, c_out in stages:
            setattr(decoder, name, InterpUp(c_in, c_out, norm, up_mode))
    return decoder


class VNetMultiDecoder(nn.Module):
    """One V-Net encoder, one decoder + 1x1x1 head per entry of `up_modes`; returns a tuple of logit maps."""

    def __init__(
        self,
        n_channels: int = 1,
        n_classes: int = 2,
        n_filters: int = 16,
        normalization: str = "batchnorm",
        dropout: float = 0.5,
        up_modes: tuple[str, ...] = UP_MODES,
    ):
        super().__init__()
        self.up_modes = tuple(up_modes)
        self.encoder = VNetEncoder(n_channels, n_filters, normalization, dropout)
        self.decoders = nn.ModuleList(
            [make_decoder(n_filters, normalization, dropout, mode) for mode in self.up_modes]
        )
        self.heads = nn.ModuleList([nn.Conv3d(n_filters, n_classes, 1) for _ in self.up_modes])

    def head(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """Logits (B, n_classes, W, H, D) of decoder `index` alone (evaluation uses decoder 0 only)."""
        return self.heads[index](self.decoders[index](self.encoder(x)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feats = self.encoder(x)
        return tuple(head(dec(feats)) for dec, head in zip(self.decoders, self.heads, strict=True))
