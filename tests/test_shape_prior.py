"""DTC and SASSnet: the two-head V-Net, the discriminator, the SASSnet discriminator step, smoke runs."""

from __future__ import annotations

import pytest
import torch

from sslbench.benchmark.config import build_config
from sslbench.benchmark.training.trainer import train_run
from sslbench.methods.algorithms.dtc import DCT, DCTConfig
from sslbench.methods.algorithms.sassnet import SASSnet, SASSnetConfig
from sslbench.methods.base import Batch, MethodContext
from sslbench.methods.networks.discriminator import FC3DDiscriminator
from sslbench.methods.networks.vnet_sdf import VNetSDF
from sslbench.methods.registry import get_method

PATCH = (16, 16, 16)


def make_batch(cls, n_l: int = 2, n_u: int = 2) -> Batch:
    g = torch.Generator().manual_seed(0)
    y_l = torch.zeros(n_l, *PATCH, dtype=torch.long)
    y_l[:, 4:12, 3:10, 5:13] = 1
    x_l = torch.randn(n_l, 1, *PATCH, generator=g) + 2.0 * y_l[:, None]
    x_u = torch.randn(n_u, 1, *PATCH, generator=g)
    extras = {k: torch.from_numpy(v) for k, v in cls.batch_targets(y_l.numpy()).items()}
    return Batch(x_l, y_l, x_u, extras)


@pytest.mark.parametrize("shape", [(2, 1, 16, 16, 16), (3, 1, 32, 32, 16), (1, 1, 112, 112, 80)])
def test_discriminator_accepts_any_crop_size(shape):
    d = FC3DDiscriminator(num_classes=1, ndf=4).eval()
    with torch.no_grad():
        logits = d(torch.randn(shape), torch.randn(shape))
    assert logits.shape == (shape[0], 2)


def test_discriminator_matches_sassnet_width_at_paper_size():
    d = FC3DDiscriminator()  # ndf 64
    assert d.classifier.in_features == 512 and d.map_stem.out_channels == 64
    assert SASSnet(SASSnetConfig(), MethodContext(n_filters=16)).discriminator.classifier.in_features == 512


def test_sdf_net_heads():
    net = VNetSDF(n_filters=2).eval()
    with torch.no_grad():
        sdf, seg = net(torch.randn(2, 1, 32, 16, 16))
    assert sdf.shape == seg.shape == (2, 1, 32, 16, 16)
    assert sdf.abs().max() <= 1.0 and not torch.equal(sdf, seg)


@pytest.mark.parametrize("cls,cfg", [(DCT, DCTConfig()), (SASSnet, SASSnetConfig())])
def test_train_step_finite_and_predict_is_thresholded_sigmoid(cls, cfg):
    torch.manual_seed(0)
    method = cls(cfg, MethodContext(n_filters=2, patch=PATCH)).train()
    out = method.train_step(make_batch(cls), step=9, max_steps=10)
    for key in ("loss", "loss_sup", "loss_unsup", "w_unsup"):
        assert torch.isfinite(out[key]), key
    assert out["loss_unsup"].requires_grad and float(out["w_unsup"]) > 0
    method.eval()
    x = torch.randn(1, 1, *PATCH)
    prob = method.predict(x)
    seg = torch.sigmoid(method.student(x)[1])
    assert prob.shape == (1, 2, *PATCH)
    assert torch.allclose(prob.sum(1), torch.ones(1, *PATCH))
    assert torch.equal(prob.argmax(1), (seg[:, 0] > 0.5).long())


def test_dct_consistency_is_zero_when_heads_agree():
    """sigmoid(-1500 tanh) equals sigmoid(seg) when seg = -1500 tanh: the dual-task term vanishes."""
    method = DCT(DCTConfig(), MethodContext(n_filters=2, patch=PATCH))
    tanh = torch.tensor([-0.5, -1e-3, 0.0, 2e-3, 0.9])
    from sslbench.methods.algorithms.dtc import sdf_to_prob

    assert torch.allclose(sdf_to_prob(tanh, method.cfg.k), torch.sigmoid(-1500 * tanh))
    assert float(sdf_to_prob(torch.tensor(0.0), 1500.0)) == 0.5


def test_sassnet_weight_from_split_and_override():
    assert SASSnet(SASSnetConfig(), MethodContext(n_filters=2, n_labeled=8)).w == 0.015
    assert SASSnet(SASSnetConfig(), MethodContext(n_filters=2, n_labeled=16)).w == 0.01
    assert SASSnet(SASSnetConfig(w=0.2), MethodContext(n_filters=2, n_labeled=8)).w == 0.2


def test_sassnet_discriminator_step_moves_only_the_discriminator():
    torch.manual_seed(0)
    method = SASSnet(SASSnetConfig(), MethodContext(n_filters=2, patch=PATCH)).train()
    student_ids = {id(p) for p in method.trainable_parameters()}
    assert not student_ids & {id(p) for p in method.discriminator.parameters()}
    assert get_method("sassnet").cls.auxiliary_networks == ("discriminator",)
    batch = make_batch(SASSnet)
    opts = method.extra_optimizers()
    assert isinstance(opts[0], torch.optim.Adam) and opts[0].defaults["betas"] == (0.9, 0.99)
    student_before = [p.detach().clone() for p in method.student.parameters()]
    d_before = [p.detach().clone() for p in method.discriminator.parameters()]
    out = method.extra_step(batch, 0, 10, opts)
    assert torch.isfinite(out["loss_d"])
    assert all(torch.equal(a, b) for a, b in zip(student_before, method.student.parameters(), strict=True))
    assert any(
        not torch.equal(a, b) for a, b in zip(d_before, method.discriminator.parameters(), strict=True)
    )
    assert method.student.training  # back in train mode for the next segmentation step
    assert all(p.grad is None for p in method.student.parameters())


@pytest.mark.parametrize("name", ["urpc", "dct", "sassnet"])
def test_smoke_train_run(name, tiny_data, tmp_path):
    cfg = build_config(name, "4/4", 1337, "smoke", {}, str(tiny_data))
    metrics = train_run(cfg, tmp_path / name, progress=False)
    for key in ("dice", "jaccard"):
        assert 0.0 <= metrics[key] <= 1.0
    log = (tmp_path / name / "log.jsonl").read_text()
    assert "loss_unsup" in log
    if name == "sassnet":
        assert "loss_d" in log
