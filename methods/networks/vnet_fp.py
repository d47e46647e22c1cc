"""The LA V-Net with UniMatch's feature perturbation stream (Yang et al., CVPR 2023).

`forward(x, n_fp)` runs the encoder once on x and the decoder once on the batch of all clean encoder features
followed by the features of the first `n_fp` samples after channel dropout (Dropout3d, p = 0.5) at every level,
so one call returns the clean logits of x and the feature-perturbed logits of its first n_fp samples. UniMatch's
medical U-Net does the same with Dropout2d(0.5) on each encoder level (`more-scenarios/medical/model/unet.py`).
With n_fp = 0 it is `vnet.VNet` (same modules and state-dict names), so it evaluates like the other V-Nets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sslbench.methods.networks.vnet import VNet


class VNetFP(VNet):
    def __init__(self, *args, fp_dropout: float = 0.5, **kwargs):
        super().__init__(*args, **kwargs)
        self.fp_dropout = fp_dropout

    def forward(self, x: torch.Tensor, n_fp: int = 0):
        if n_fp == 0:
            return super().forward(x)
        feats = self.encoder(x)
        # The perturbation is a training device: in eval mode the second stream equals the clean one.
        perturbed = [F.dropout3d(f[:n_fp], self.fp_dropout, training=self.training) for f in feats]
        logits = self.out_conv(
            self.decoder([torch.cat([f, p]) for f, p in zip(feats, perturbed, strict=True)])
        )
        b = x.shape[0]
        return logits[:b], logits[b:]  # (B, C, ...) clean, (n_fp, C, ...) feature-perturbed
