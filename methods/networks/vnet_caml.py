"""CAML's two-branch V-Net (Gao et al., MICCAI 2023; `Herschel555/CAML`, `code/networks/VNet.py`, `CAML3d_v1`).

Branch 1 ("v"): a V-Net encoder and the transposed-conv decoder. Branch 2 ("a"): a second encoder with
cross-sample mutual attention (CMA) on its stage-4 features, and a decoder with trilinear up-sampling
(`vnet_multi.make_decoder`). CMA is two transformer encoder layers (4 heads, feed-forward 4 x width, dropout
0.5, post-norm): intra-sample attention over the voxels of each sample, then inter-sample attention over the
samples of the batch at each voxel. As in the reference it is active in training mode only (the identity in eval
mode). Each branch returns its logits and its last decoder feature map (the voxel embeddings, after the
decoder's dropout); CAML puts a projection head (Linear, BN, ReLU, Linear) and a prediction head of the same form
on each branch's embeddings.
"""

from __future__ import annotations

import torch
from torch import nn

from sslbench.methods.networks.vnet import VNetDecoder, VNetEncoder
from sslbench.methods.networks.vnet_multi import make_decoder


def mlp_head(c_in: int, dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(c_in, dim), nn.BatchNorm1d(dim), nn.ReLU(inplace=True), nn.Linear(dim, dim)
    )


class CrossSampleAttention(nn.Module):
    """Intra-sample then inter-sample self-attention on (B, C, W, H, D) features; identity in eval mode."""

    def __init__(self, channels: int, heads: int = 4, dropout: float = 0.5):
        super().__init__()

        def layer() -> nn.TransformerEncoderLayer:
            return nn.TransformerEncoderLayer(channels, heads, 4 * channels, dropout, batch_first=True)

        self.intra = layer()
        self.inter = layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        b, c, *spatial = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (B, N_vox, C): a sequence of voxels per sample
        tokens = self.intra(tokens)
        tokens = self.inter(tokens.transpose(0, 1)).transpose(0, 1)  # (N_vox, B, C): a sequence of samples
        return tokens.transpose(1, 2).reshape(b, c, *spatial)


class CMAEncoder(VNetEncoder):
    """`vnet.VNetEncoder` with cross-sample attention on the stage-4 features (before they are down-sampled)."""

    def __init__(self, n_channels: int, n_filters: int, norm: str, dropout: float):
        super().__init__(n_channels, n_filters, norm, dropout)
        self.attention = CrossSampleAttention(8 * n_filters)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x1 = self.stage1(x)
        x2 = self.stage2(self.down1(x1))
        x3 = self.stage3(self.down2(x2))
        x4 = self.attention(self.stage4(self.down3(x3)))
        x5 = self.dropout(self.stage5(self.down4(x4)))
        return [x1, x2, x3, x4, x5]


class VNetCAML(nn.Module):
    def __init__(
        self,
        n_channels: int = 1,
        n_classes: int = 2,
        n_filters: int = 16,
        normalization: str = "batchnorm",
        dropout: float = 0.5,
        feat_dim: int = 32,
    ):
        super().__init__()
        self.encoder1 = VNetEncoder(n_channels, n_filters, normalization, dropout)
        self.encoder2 = CMAEncoder(n_channels, n_filters, normalization, dropout)
        self.decoder1: VNetDecoder = make_decoder(n_filters, normalization, dropout, "transpose")
        self.decoder2: VNetDecoder = make_decoder(n_filters, normalization, dropout, "trilinear")
        self.out_conv1 = nn.Conv3d(n_filters, n_classes, 1)
        self.out_conv2 = nn.Conv3d(n_filters, n_classes, 1)
        self.projection1 = mlp_head(n_filters, feat_dim)
        self.prediction1 = mlp_head(feat_dim, feat_dim)
        self.projection2 = mlp_head(n_filters, feat_dim)
        self.prediction2 = mlp_head(feat_dim, feat_dim)

    def branch1(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of branch 1 alone (what the reference evaluates)."""
        return self.out_conv1(self.decoder1(self.encoder1(x)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits_1, logits_2, embedding_1, embedding_2): (B, C, W, H, D) twice, then (B, F, W, H, D) twice."""
        emb_1 = self.decoder1(self.encoder1(x))
        emb_2 = self.decoder2(self.encoder2(x))
        return self.out_conv1(emb_1), self.out_conv2(emb_2), emb_1, emb_2
