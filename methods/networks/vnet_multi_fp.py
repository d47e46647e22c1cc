"""The LA V-Net with CrossMatch's feature-perturbed decoder streams (Zhao et al., 2024; `AiEson/CrossMatch`,
`LA/code/networks/vnet.py`).

`forward(x, fp_from=k)` runs the encoder once on x and the decoder once on a batch made of the clean features of
all of x followed by, for each dropout rate, the features of x[k:] after channel dropout (Dropout3d) at every
encoder level. CrossMatch uses two rates, 0.5 -+ gap / 2 = 0.25 ("weak") and 0.75 ("strong"): the same decoder
seen through two perturbations acts as two extra classifiers that are distilled from the clean one.

The decoder's final dropout is off (its `dropout` is the identity): the reference's perturbed-stream call skips
it (`no_drop=True`) for every sample of that call, and every training pass of CrossMatch is such a call. The
encoder's dropout on the deepest features stays, as in the reference. Without `fp_from` it is `vnet.VNet`
(same module names), so it evaluates like the other V-Net methods.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sslbench.methods.networks.vnet import VNet


class VNetMultiFP(VNet):
    def __init__(self, *args, fp_rates: tuple[float, ...] = (0.25, 0.75), **kwargs):
        super().__init__(*args, **kwargs)
        self.fp_rates = tuple(fp_rates)
        self.decoder.dropout = nn.Identity()

    def forward(self, x: torch.Tensor, fp_from: int | None = None):
        """Logits (B, C, W, H, D); with `fp_from`, also one logit map (B - fp_from, C, ...) per dropout rate."""
        if fp_from is None:
            return super().forward(x)
        feats = self.encoder(x)
        streams = [feats]
        for rate in self.fp_rates:
            # Perturbation is a training device: in eval mode these streams equal the clean one.
            streams.append([F.dropout3d(f[fp_from:], rate, training=self.training) for f in feats])
        logits = self.out_conv(self.decoder([torch.cat(level) for level in zip(*streams, strict=True)]))
        n, m = x.shape[0], x.shape[0] - fp_from
        return logits[:n], list(logits[n:].split(m)) if m else [logits[n:] for _ in self.fp_rates]
