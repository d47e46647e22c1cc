"""The LA V-Net with UniMatch's feature perturbation stream (Yang et al., CVPR 2023).

`forward(x, need_fp=True)` runs the encoder once and the decoder once on the batch of the clean encoder features
followed by the same features after channel dropout (Dropout3d, p = 0.5) at every level, so one call returns the
clean logits and the feature-perturbed logits of the same inputs. UniMatch's medical U-Net does the same with
Dropout2d(0.5) on each encoder level (`more-scenarios/medical/model/unet.py`). Without `need_fp` it is `vnet.VNet`
(same modules and state-dict names), so it trains and evaluates like the other V-Net methods.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sslbench.methods.networks.vnet import VNet


class VNetFP(VNet):
    def __init__(self, *args, fp_dropout: float = 0.5, **kwargs):
        super().__init__(*args, **kwargs)
        self.fp_dropout = fp_dropout

    def forward(self, x: torch.Tensor, need_fp: bool = False):
        if not need_fp:
            return super().forward(x)
        feats = self.encoder(x)
        # The perturbation is a training device: in eval mode the second stream equals the clean one.
        perturbed = [F.dropout3d(f, self.fp_dropout, training=self.training) for f in feats]
        logits = self.out_conv(
            self.decoder([torch.cat([f, p]) for f, p in zip(feats, perturbed, strict=True)])
        )
        clean, fp = logits.chunk(2)  # (B, C, W, H, D) each
        return clean, fp
