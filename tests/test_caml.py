"""CAML: the memory bank (update, sampling, buffers), the correlation by hand, resume exactness, the recipe."""

from __future__ import annotations

import copy

import pytest
import torch

from sslbench.benchmark.config import build_config
from sslbench.methods.algorithms.caml import CAML, CAMLConfig, FeatureMemory, correlation_matrix
from sslbench.methods.base import Batch, MethodContext
from sslbench.methods.networks.vnet_caml import VNetCAML

PATCH = (16, 16, 16)


def test_memory_update_fills_slots_as_a_ring_and_caps_each_class():
    bank = FeatureMemory(slots=2, n_classes=2, capacity=3, dim=2)
    g = torch.Generator().manual_seed(0)
    feats = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [4.0, 0.0], [5.0, 5.0]])
    labels = torch.tensor([0, 0, 0, 0, 1])
    bank.update(feats, labels, g)
    assert bank.count.tolist() == [[3, 1], [0, 0]] and int(bank.cursor) == 1
    kept = bank.feat[0, :3, 0].tolist()
    assert len(set(kept)) == 3 and set(kept) <= {1.0, 2.0, 3.0, 4.0}  # 3 distinct of the 4 class-0 voxels
    assert bank.feat[1, 0].tolist() == [5.0, 5.0]  # row slot 0 x 2 classes + class 1
    bank.update(feats[4:], labels[4:], g)  # slot 1: one class-1 voxel, no class 0
    assert bank.count.tolist() == [[3, 1], [0, 1]]
    bank.update(feats[:1], labels[:1], g)  # the ring wraps: slot 0 is replaced
    assert bank.count.tolist() == [[1, 0], [0, 1]] and bank.feat[0, 0].tolist() == [1.0, 0.0]


def test_memory_sample_draws_from_every_slot_and_needs_enough_entries():
    bank = FeatureMemory(slots=2, n_classes=2, capacity=4, dim=1)
    g = torch.Generator().manual_seed(0)
    bank.update(torch.tensor([[1.0], [2.0], [9.0]]), torch.tensor([0, 0, 1]), g)
    bank.update(torch.tensor([[3.0]]), torch.tensor([0]), g)
    sample = bank.sample(3, g)
    assert sorted(sample[0][:, 0].tolist()) == [1.0, 2.0, 3.0]  # all three stored class-0 entries
    assert sample[1] is None  # one class-1 entry < 3


def test_correlation_matrix_matches_hand_computation():
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]], dtype=torch.float64)
    conf = torch.tensor([0.9, 0.8, 0.7, 0.95], dtype=torch.float64)
    label = torch.tensor([0, 0, 1, 1])
    memory = [
        torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64),
        torch.tensor([[1.0, 1.0], [-1.0, 0.0]], dtype=torch.float64),
    ]
    corr = correlation_matrix(features, conf, label, memory, 2, temperature=0.5, num_filtered=2)
    bank = torch.cat(memory)

    def row(f):
        logits = torch.tensor(f, dtype=torch.float64) @ bank.T / 0.5
        return torch.exp(logits) / torch.exp(logits).sum()

    # class 0 queries by confidence: [1, 0] (0.9), [0, 1] (0.8); class 1: [2, 0] (0.95), [1, 1] (0.7)
    expected = torch.stack([row([1.0, 0.0]), row([0.0, 1.0]), row([2.0, 0.0]), row([1.0, 1.0])])
    torch.testing.assert_close(corr, expected)
    # num_filtered keeps the most confident queries; a class with one query gives no row; no bank: None.
    top1 = correlation_matrix(features, conf, label, memory, 2, temperature=0.5, num_filtered=1)
    assert top1 is None  # every class reduced to one query
    assert correlation_matrix(features, conf, label, [None, None], 2) is None
    only_bg = correlation_matrix(features, conf, label, [memory[0], None], 2, temperature=0.5)
    assert only_bg.shape == (4, 2)


def ctx() -> MethodContext:
    return MethodContext(n_filters=2, patch=PATCH, n_labeled=2, n_unlabeled=2)


def make_batch(seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    y_l = torch.zeros(2, *PATCH, dtype=torch.long)
    y_l[:, 4:12, 4:12, 4:12] = 1
    x_l = torch.randn(2, 1, *PATCH, generator=g) + 2.0 * y_l[:, None]
    return Batch(x_l, y_l, torch.randn(2, 1, *PATCH, generator=g))


def test_bank_is_a_buffer_in_the_state_dict_not_a_parameter():
    torch.manual_seed(0)
    method = CAML(CAMLConfig(), ctx())
    names = {n for n, _ in method.named_parameters()}
    assert not any(n.startswith("memory.") for n in names)
    state = method.state_dict()
    assert {"memory.feat", "memory.count", "memory.cursor"} <= set(state)
    assert state["memory.feat"].shape == (2 * 2, 2048, 32)
    method.to(memory_format=torch.channels_last_3d)  # the trainer's conversion (it rejects 4D buffers)


def train(method: CAML, opt: torch.optim.Optimizer, step: int) -> torch.Tensor:
    out = method.train_step(make_batch(step), step, 10)
    opt.zero_grad(set_to_none=True)
    out["loss"].backward()
    opt.step()
    return out


def test_resume_from_a_state_dict_continues_exactly():
    torch.manual_seed(0)
    cfg = CAMLConfig(memory_num=4, bank_capacity=64)
    method = CAML(cfg, ctx())
    method.train()
    opt = torch.optim.SGD(method.student.parameters(), lr=0.01, momentum=0.9)
    for step in range(2):
        train(method, opt, step)
    assert int(method.memory.cursor) == 4 and int(method.memory.count.sum()) > 0
    state = copy.deepcopy(method.state_dict())  # tensors and the method's random stream (extra state)
    opt_state = copy.deepcopy(opt.state_dict())
    rng = torch.get_rng_state()

    torch.manual_seed(123)  # a different initialisation and stream, overwritten by the state dict
    resumed = CAML(cfg, ctx())
    resumed.load_state_dict(state)
    resumed.train()
    opt_resumed = torch.optim.SGD(resumed.student.parameters(), lr=0.01, momentum=0.9)
    opt_resumed.load_state_dict(opt_state)

    torch.set_rng_state(rng)
    out = train(method, opt, 2)
    torch.set_rng_state(rng)
    out_resumed = train(resumed, opt_resumed, 2)
    assert float(out["corr_available"]) == 1.0  # the correlation loss was part of the compared step
    for key in ("loss", "loss_sup", "loss_c", "loss_o"):
        assert torch.equal(out[key], out_resumed[key]), key
    for key in ("memory.feat", "memory.count", "memory.cursor"):
        assert torch.equal(method.state_dict()[key], resumed.state_dict()[key])
    assert torch.equal(torch.rand(2, generator=method.rng), torch.rand(2, generator=resumed.rng))


def test_correlation_loss_reaches_the_projection_and_prediction_heads():
    torch.manual_seed(0)
    method = CAML(CAMLConfig(memory_num=4), ctx())
    out = method.train_step(make_batch(), 5, 10)
    assert float(out["corr_available"]) == 1.0
    out["loss_o"].backward()
    for head in (method.student.prediction1, method.student.projection2):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    # The bank entries carry no gradient: they were stored under no_grad.
    assert not method.memory.feat.requires_grad


def test_attention_is_only_active_in_training_and_predict_uses_branch_v():
    torch.manual_seed(0)
    net = VNetCAML(1, 2, 2, "batchnorm", 0.5, 8)
    x = torch.randn(2, 1, *PATCH)
    net.eval()
    feats = net.encoder2.stage4(
        net.encoder2.down3(
            net.encoder2.stage3(
                net.encoder2.down2(net.encoder2.stage2(net.encoder2.down1(net.encoder2.stage1(x))))
            )
        )
    )
    torch.testing.assert_close(net.encoder2.attention(feats), feats)
    net.train()
    assert not torch.allclose(net.encoder2.attention(feats), feats)
    method = CAML(CAMLConfig(), ctx())
    method.eval()
    expected = torch.softmax(method.student(x)[0], dim=1)
    torch.testing.assert_close(method.predict(x), expected)


def test_published_recipe_and_per_split_ramp():
    cfg = build_config("caml", "8/72", 1337, "paper", recipe="published")
    assert (cfg.train.iterations, cfg.train.optimizer, cfg.train.lr, cfg.train.lr_step) == (
        15000,
        "sgd",
        0.01,
        15000,
    )
    assert (cfg.method_cfg.rampup_interval, cfg.method_cfg.rampup_length) == (150, 20)
    assert build_config("caml", "16/64", 1337, "paper", recipe="published").method_cfg.rampup_length == 15
    assert build_config("caml", "8/72", 1337, "paper").method_cfg.rampup_length is None  # the run's ramp
    method = CAML(cfg.method_cfg, MethodContext(n_filters=2, patch=PATCH, n_labeled=8))
    assert method._ramp(2999, 15000) == pytest.approx(1.0)  # (2999 + 1) // 150 = 20 of 20
    assert method._ramp(1499, 15000) == pytest.approx(float(torch.tensor(-5 * 0.25).exp()))
