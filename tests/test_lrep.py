"""lrep: the DAE sees labeled masks only and is cached; the uncertainty and its variants; end to end; the CLIs."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_method_contract import MemoryCache, tiny_masks

from sslbench.benchmark.config import build_config
from sslbench.benchmark.training.assets import AssetStore
from sslbench.benchmark.training.trainer import Trainer, asset_key, train_run
from sslbench.methods.algorithms import lrep as lrep_mod
from sslbench.methods.algorithms.lrep import (
    LabelingRepresentation,
    LRepConfig,
    dae_training,
    uncertainty_map,
    weighted_consistency,
)
from sslbench.methods.algorithms.lrep.dae_training import DAEConfig
from sslbench.methods.base import Batch, MethodContext
from sslbench.methods.networks.dae import LabelDAE

PATCH = (16, 16, 16)
# Tiny DAEs of a few steps do not denoise and say so; the warning is tested where it matters.
pytestmark = pytest.mark.filterwarnings("ignore:the lrep DAE does not denoise:UserWarning")
DAE_STEPS = {"lrep.dae_iterations": 3}


def prepared(cfg, cache_dir) -> tuple[Trainer, MethodContext, AssetStore]:
    """The trainer's own method context for `cfg`, with a private cache folder."""
    trainer = Trainer(cfg, cache_dir, progress=False)
    store = AssetStore(cache_dir)
    return trainer, trainer.context(store), store


@pytest.fixture
def spy_train_dae(monkeypatch):
    """Records the masks every DAE training receives, then trains for real."""
    calls: list[list[np.ndarray]] = []
    real = lrep_mod.train_dae

    def spy(masks, *args, **kwargs):
        calls.append(list(masks))
        return real(masks, *args, **kwargs)

    monkeypatch.setattr(lrep_mod, "train_dae", spy)
    return calls


def test_dae_is_trained_on_labeled_masks_only_and_cached(tiny_data, tmp_path, spy_train_dae, monkeypatch):
    cfg = build_config("lrep", "3/5", 11, "smoke", DAE_STEPS, str(tiny_data))
    trainer, ctx, store = prepared(cfg, tmp_path)
    ds = trainer.dataset
    requested: list[str] = []
    real_volume = ds.volume
    monkeypatch.setattr(ds, "volume", lambda case_id: requested.append(case_id) or real_volume(case_id))

    rng_before = torch.get_rng_state()
    assets = LabelingRepresentation.prepare_assets(cfg.method_cfg, ctx)
    # Training the DAE (vs loading it) must not move the global RNG the student is then initialised from.
    assert torch.equal(torch.get_rng_state(), rng_before)

    assert len(spy_train_dae) == 1
    assert set(requested) == set(trainer.labeled_ids) == set(ds.train_ids[:3])
    seen = spy_train_dae[0]
    assert len(seen) == 3 and all(
        m is real_volume(i).label for m, i in zip(seen, trainer.labeled_ids, strict=True)
    )
    for other in trainer.unlabeled_ids + ds.test_ids:  # never an unlabeled or a test label
        assert not any(m is real_volume(other).label for m in seen)
    info = store.info["dae"]
    assert info["built_now"] and info["key"]["labeled_ids"] == trainer.labeled_ids
    assert {"dice_corrupted_vs_clean", "dice_dae_vs_clean", "train_s"} <= set(info["report"])
    assert 0.0 <= info["report"]["dice_dae_vs_clean"] <= 1.0

    # Second time: a cache hit, no training, the same weights.
    _, again, again_store = prepared(cfg, tmp_path)
    assets2 = LabelingRepresentation.prepare_assets(cfg.method_cfg, again)
    assert len(spy_train_dae) == 1 and not again_store.info["dae"]["built_now"]
    assert all(torch.equal(assets["dae"][k], assets2["dae"][k]) for k in assets["dae"])

    # Another seed is another DAE.
    other_seed = build_config("lrep", "3/5", 12, "smoke", DAE_STEPS, str(tiny_data))
    LabelingRepresentation.prepare_assets(other_seed.method_cfg, prepared(other_seed, tmp_path)[1])
    assert len(spy_train_dae) == 2


def test_asset_key_identifies_the_dae(tiny_data):
    def key(split="3/5", seed=1, **sets):
        return asset_key(build_config("lrep", split, seed, "smoke", sets, str(tiny_data)))

    assert key() == key("3/4")  # same labeled masks: same DAE, whatever the unlabeled part
    assert key() == key(**{"lrep.beta": 2.0, "lrep.lam": 0.5})  # segmentation settings do not change the DAE
    assert len({key(), key("4/5"), key(seed=2), key(**{"lrep.dae_loss": "mse+dice"}), key(**DAE_STEPS)}) == 5
    # dae_seed: one DAE for every seed of the split (e.g. a longer-trained one), another than the per-seed ones.
    shared = {"lrep.dae_seed": 0}
    assert key(seed=1, **shared) == key(seed=2, **shared) != key(seed=1)
    assert key(**{"lrep.dae_pose": "canonical"}) != key()


def _ctx(cfg, spacing: float = 0.625) -> MethodContext:
    return MethodContext(iterations=cfg.train.iterations, spacing=(spacing,) * 3)


def test_dae_iterations_scale_with_the_preset():
    quick = build_config("lrep", "8/72", 1, "quick")
    paper = build_config("lrep", "8/72", 1, "paper")
    q = lrep_mod.dae_config(quick.method_cfg, _ctx(quick))
    p = lrep_mod.dae_config(paper.method_cfg, _ctx(paper))
    assert q.iterations == 2 * quick.train.iterations and q.halve_every == round(q.iterations / 4)
    assert (p.iterations, p.halve_every) == (20000, 5000)  # the paper's halving every 5000
    assert paper.train.lr == 0.1 and paper.train.lr_policy == "cosine" and paper.train.rampup == "gaussian"
    fixed = build_config("lrep", "8/72", 1, "quick", {"lrep.dae_iterations": 1000})
    assert lrep_mod.dae_config(fixed.method_cfg, _ctx(fixed)).halve_every == 250
    own = build_config("lrep", "8/72", 1, "quick", {"lrep.dae_halve_every": 100})
    assert lrep_mod.dae_config(own.method_cfg, _ctx(own)).halve_every == 100
    # Corruption sizes are LA voxels scaled to the data's spacing: unchanged on LA, halved on la-half.
    assert lrep_mod.dae_config(paper.method_cfg, _ctx(paper)).corruption.swap_radius == (3, 8)
    half = lrep_mod.dae_config(paper.method_cfg, _ctx(paper, 1.25)).corruption
    assert half.swap_radius == (2, 4) and half.morph_radius == (1, 2) and half.shape_max_size == 8


def test_bad_option_values_are_rejected():
    with pytest.raises(ValueError, match="lrep.variant"):
        LRepConfig(variant="nope")
    with pytest.raises(ValueError, match="lrep.normalisation"):
        LRepConfig(normalisation="both")
    with pytest.raises(ValueError, match="lrep.dae_pose"):
        LRepConfig(dae_pose="upright")


def test_uncertainty_is_zero_where_the_dae_agrees_with_the_prediction():
    g = torch.Generator().manual_seed(0)
    prob_t = torch.softmax(torch.randn(2, 2, 4, 4, 4, generator=g), dim=1)
    prob_hat = prob_t.clone()
    prob_hat[:, :, :2] = torch.rand(2, 2, 2, 4, 4, generator=g)  # the DAE disagrees in the first half only
    for reduce in ("sum", "per-class"):
        cfg = LRepConfig(uncertainty_reduce=reduce)
        u = uncertainty_map(prob_t, prob_hat, cfg)
        assert u.shape[1] == (1 if reduce == "sum" else 2)
        assert torch.all(u[:, :, 2:] == 0) and torch.all(u[:, :, :2].sum(1) > 0)
        assert torch.all(torch.exp(-u[:, :, 2:]) == 1)  # full weight where the DAE agrees
    # The paper's norm over classes: U = sum_c (p_hat_c - p_t,c)^2.
    expected = ((prob_hat - prob_t) ** 2).sum(1, keepdim=True)
    assert torch.allclose(uncertainty_map(prob_t, prob_hat, LRepConfig()), expected)
    # Entropy variant: the entropy of the DAE output, whatever the teacher says.
    half = torch.full_like(prob_hat, 0.5)
    assert torch.allclose(
        uncertainty_map(prob_t, half, LRepConfig(variant="entropy")),
        torch.full((2, 1, 4, 4, 4), 2 * 0.5 * np.log(2), dtype=torch.float32),
        atol=1e-5,
    )


def test_consistency_normalisations():
    d = torch.rand(2, 2, 4, 4, 4)
    ones = torch.ones(2, 1, 4, 4, 4)
    assert torch.allclose(
        weighted_consistency(d, ones, LRepConfig()), d.sum(1).mean()
    )  # paper: mean of ||d||^2
    code = LRepConfig(normalisation="code")
    assert torch.allclose(weighted_consistency(d, ones, code), d.mean())  # sum(m d) / (2 sum m), 1-channel m
    # The authors' code as a whole (per-class m, its normalisation): half the mean, 4x below the paper's form.
    assert torch.allclose(weighted_consistency(d, torch.ones_like(d), code), d.mean() / 2)
    assert torch.allclose(weighted_consistency(d, torch.ones_like(d), LRepConfig()), d.sum(1).mean())
    assert torch.allclose(weighted_consistency(d, ones, LRepConfig(variant="threshold")), d.mean())  # UA-MT
    # Zero-weight voxels do not count, in numerator or denominator.
    m = torch.zeros_like(ones)
    m[:, :, :2] = 1
    assert torch.allclose(weighted_consistency(d, m, LRepConfig()), d[:, :, :2].sum(1).mean())


def test_consistency_is_normalised_per_volume_as_in_the_paper():
    # Two volumes of two voxels, C = 2: d[i, c, v] and 1-channel weights m[i, v] with unequal mass per volume.
    d = torch.tensor([[[0.1, 0.3], [0.2, 0.5]], [[0.1, 0.6], [0.3, 0.4]]]).view(2, 2, 1, 1, 2)
    m = torch.tensor([[1.0, 0.0], [0.5, 0.25]]).view(2, 1, 1, 1, 2)
    # ||d_v||^2 = sum over classes: volume 0 (0.3, 0.8), volume 1 (0.4, 1.0).
    # Paper, per volume: L_0 = (1 * 0.3 + 0 * 0.8) / 1 = 0.3; L_1 = (0.5 * 0.4 + 0.25 * 1.0) / 0.75 = 0.6.
    per_volume = (0.3 + 0.6) / 2  # averaged over the batch's volumes (lrep's docstring says why not summed)
    assert float(weighted_consistency(d, m, LRepConfig())) == pytest.approx(per_volume)
    # Pooled over the batch: (0.3 + 0.45) / (1 + 0.75); the authors' code: sum(m d) / (2 sum m).
    pooled = LRepConfig(normalisation="pooled")
    assert float(weighted_consistency(d, m, pooled)) == pytest.approx(0.75 / 1.75)
    code = LRepConfig(normalisation="code")
    assert float(weighted_consistency(d, m, code)) == pytest.approx(0.75 / 3.5)
    # With the same weight mass in every volume the per-volume mean equals the pooled ratio (lam keeps its scale).
    even = torch.ones_like(m)
    assert torch.allclose(weighted_consistency(d, even, LRepConfig()), weighted_consistency(d, even, pooled))


def tiny_method(variant: str = "l2exp", **fields) -> LabelingRepresentation:
    cfg = LRepConfig(variant=variant, **fields)
    torch.manual_seed(0)
    dae_state = LabelDAE(PATCH, 2, 2, cfg.dae_latent_dim).state_dict()
    ctx = MethodContext(
        n_filters=2, patch=PATCH, n_labeled=2, n_unlabeled=2, rampup="gaussian", assets={"dae": dae_state}
    )
    return LabelingRepresentation(cfg, ctx)


def tiny_batch() -> Batch:
    g = torch.Generator().manual_seed(0)
    y_l = torch.zeros(2, *PATCH, dtype=torch.long)
    y_l[:, 4:12, 4:12, 4:12] = 1
    return Batch(
        torch.randn(2, 1, *PATCH, generator=g) + 2.0 * y_l[:, None],
        y_l,
        torch.randn(2, 1, *PATCH, generator=g),
    )


@pytest.mark.parametrize(
    "variant,extra",
    [
        ("l2exp", {}),
        ("threshold", {}),
        ("entropy", {}),
        (
            "l2exp",
            {
                "dae_input": "prob",
                "uncertainty_reduce": "per-class",
                "normalisation": "code",
                "dae_latent_noise": 0.1,
            },
        ),
    ],
)
def test_variants_give_finite_losses_with_gradient_into_the_student_only(variant, extra):
    method = tiny_method(variant, **extra)
    method.train()
    assert not method.dae.training  # the frozen DAE stays in eval mode when the method trains
    assert method.teacher.training
    trainable = {id(p) for p in method.trainable_parameters()}
    assert not any(id(p) in trainable for p in method.dae.parameters())
    assert not any(p.requires_grad for p in method.dae.parameters())
    running_mean = method.dae.encoder.stage1[1].running_mean.clone()

    out = method.train_step(tiny_batch(), 9, 10)

    for key in ("loss", "loss_sup", "loss_unsup", "w_unsup", "u_mean", "weight_mean"):
        assert torch.isfinite(out[key]), key
    assert 0 < float(out["weight_mean"]) <= 1
    out["loss_unsup"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.student.parameters())
    assert all(p.grad is None for p in method.teacher.parameters())
    assert all(p.grad is None for p in method.dae.parameters())
    assert torch.equal(method.dae.encoder.stage1[1].running_mean, running_mean)  # BN stats untouched
    if variant == "threshold":
        assert 0 <= float(out["certain_frac"]) <= 1


def test_dae_weights_stay_out_of_the_state_dict():
    method = tiny_method()
    state = method.state_dict()
    assert state and not any(k.startswith("dae.") for k in state)
    other = tiny_method()
    with torch.no_grad():
        for p in other.student.parameters():
            p.add_(1.0)
    other.load_state_dict(state)  # strict: the DAE keys come from the loaded asset
    assert all(
        torch.equal(a, b)
        for a, b in zip(other.student.parameters(), method.student.parameters(), strict=True)
    )


@pytest.fixture(scope="module")
def smoke_run(tiny_data, tmp_path_factory):
    cfg = build_config("lrep", "3/5", 5, "smoke", DAE_STEPS, str(tiny_data))
    run_dir = tmp_path_factory.mktemp("lrep-run") / cfg.run_name()
    metrics = train_run(cfg, run_dir, progress=False)
    return cfg, run_dir, metrics


def test_smoke_train_run_end_to_end(smoke_run):
    cfg, run_dir, metrics = smoke_run
    assert (run_dir / "metrics.json").is_file() and 0.0 <= metrics["dice"] <= 1.0
    record = json.loads((run_dir / "config.json").read_text())
    assert record["lrep"]["beta"] == 1.0 and record["train"]["lr_policy"] == "cosine"
    dae_info = record["assets"]["dae"]
    assert dae_info["key"]["labeled_ids"] == record["split_ids"]["labeled"]
    assert "dice_dae_vs_clean" in dae_info["report"]
    assert metrics["cost"]["forward_passes"] == {"student": 1.0, "teacher": 1.0, "dae": 1.0}
    logged = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["u_mean"]) and 0 < r["weight_mean"] <= 1 for r in logged)
    state = torch.load(run_dir / "model.pt", weights_only=False)["state"]
    assert not any(k.startswith("dae.") for k in state)


def test_cli_dae_train_trains_then_loads_from_cache(tiny_data):
    from sslbench.benchmark.cli import main  # the real command line (cli.py registers the `dae` group)

    args = [
        "dae",
        "train",
        "--split",
        "2/3",
        "--seed",
        "3",
        "--data",
        str(tiny_data),
        "--preset",
        "smoke",
        "--quiet",
        "--set",
        "lrep.dae_iterations=2",
    ]
    runner = CliRunner()
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "trained now" in first.output and "reconstruction Dice" in first.output
    second = runner.invoke(main, args)
    assert second.exit_code == 0 and "loaded from cache" in second.output
    bad = runner.invoke(main, [*args[:-1], "lrep.dae_loss=l1"])
    assert bad.exit_code == 2 and "lrep.dae_loss" in bad.output and "Traceback" not in bad.output


def test_show_uncertainty_writes_a_png(smoke_run, tmp_path):
    from sslbench.benchmark.cli import main

    cfg, run_dir, _ = smoke_run
    case = json.loads((run_dir / "config.json").read_text())["split_ids"]["test"][0]
    out = tmp_path / "u.png"
    result = CliRunner().invoke(main, ["show-uncertainty", str(run_dir), "--case", case, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
    missing = CliRunner().invoke(main, ["show-uncertainty", str(run_dir), "--case", "NOPE"])
    assert missing.exit_code == 2 and "--case NOPE" in missing.output


def test_dae_network_shapes_and_inits():
    dae = LabelDAE((32, 16, 16), n_classes=2, n_filters=2, latent_dim=8).eval()
    assert dae.fc_enc.in_features == 32 * 2 * 1 * 1  # 16 F x (W/16)(H/16)(D/16), sized from the crop
    with torch.no_grad():
        assert dae(torch.zeros(3, 1, 32, 16, 16)).shape == (3, 2, 32, 16, 16)
    with pytest.raises(ValueError, match="built for"):
        dae(torch.zeros(1, 1, 16, 16, 16))
    authors = LabelDAE(PATCH, n_filters=2, latent_dim=8, init="authors")
    for p in authors.parameters():  # every tensor ~ U(-1/sqrt(size(0)), +1/sqrt(size(0)))
        assert p.abs().max() <= 1 / np.sqrt(p.shape[0])
    bn_scale = authors.encoder.stage1[1].weight
    assert not torch.equal(bn_scale, torch.ones_like(bn_scale))  # BN scales too, unlike PyTorch's ones


RecordingCache = MemoryCache  # the contract test's in-memory AssetCache (it keeps what `record` receives)


def test_a_dae_that_does_not_denoise_is_flagged_and_warns():
    cfg = LRepConfig(dae_iterations=1)  # one step: the output is noise, far from its (mostly clean) input
    cache = RecordingCache()
    ctx = MethodContext(
        n_filters=2,
        patch=PATCH,
        seed=0,
        dataset_id="tiny",
        labeled_ids=("a", "b"),
        labeled_masks=tiny_masks,
        cache=cache,
    )
    with pytest.warns(UserWarning, match="does not denoise") as caught:
        LabelingRepresentation.prepare_assets(cfg, ctx)
    info = cache.info["dae"]
    report = info["report"]
    assert info["denoises"] is False and report["denoises"] is False
    assert report["dice_dae_vs_clean"] < report["dice_corrupted_vs_clean"]
    assert 0.0 <= report["dice_dae_on_clean_vs_clean"] <= 1.0
    message = str(caught[0].message)
    assert f"{100 * report['dice_dae_vs_clean']:.2f}%" in message
    assert f"{100 * report['dice_corrupted_vs_clean']:.2f}%" in message
    # A cache hit warns again: every run that uses this DAE is told.
    with pytest.warns(UserWarning, match="does not denoise"):
        LabelingRepresentation.prepare_assets(cfg, ctx)
    good = {**report, "dice_dae_vs_clean": 0.99, "denoises": True}
    assert lrep_mod.denoising_problem(good) is None


# --- the run's speed switches in DAE pre-training (channels-last, bf16 autocast) ----------------------------
CL3D = torch.channels_last_3d


def fit_tiny_dae(
    monkeypatch, patch=PATCH, n_filters=2, lr=0.1, **switches
) -> tuple[LabelDAE, list, list[dict]]:
    """`_fit` for 4 steps from seed 0 (default 16^3, F = 2); also what every training forward saw."""
    seen: list[dict] = []

    class Spy(LabelDAE):
        def forward(self, x):
            # Convolution weights with more than one input channel and a kernel above 1: the only ones whose
            # channels-last and standard strides differ (with a size-1 dim the two layouts are the same bytes).
            convs = [p for p in self.parameters() if p.dim() == 5 and p.shape[1] > 1 and p.shape[2] > 1]
            features = []  # the decoder's last activations, (B, F, W, H, D) (the 1x1x1 logits conv on the CPU
            hook = self.decoder.register_forward_hook(
                lambda m, i, out: features.append(out)
            )  # returns NCDHW)
            try:
                out = super().forward(x)
            finally:
                hook.remove()
            seen.append(
                {
                    "weights_cl": bool(convs) and all(p.is_contiguous(memory_format=CL3D) for p in convs),
                    "weights_standard": any(p.is_contiguous() for p in convs),
                    "features_cl": features[0].is_contiguous(memory_format=CL3D)
                    and not features[0].is_contiguous(),
                    "dtype": out.dtype,
                }
            )
            return out

    monkeypatch.setattr(dae_training, "LabelDAE", Spy)
    cfg = DAEConfig(iterations=4, halve_every=2, latent_dim=16, lr=lr)
    masks = [np.pad(m, (max(patch) - 20 + 4) // 2) for m in tiny_masks()]  # 20^3 masks, larger than the crop
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model, curve = dae_training._fit(
            masks, cfg, patch, n_filters, torch.device("cpu"), 0, False, 0, "DAE", **switches
        )
    return model, curve, seen


def test_dae_trains_channels_last_with_the_same_numbers(monkeypatch):
    # 32^3, F = 4, lr 0.01: at 16^3, F = 2 the 1x1x1 bottleneck stages normalise 4 values per channel, and their
    # BatchNorm makes the encoder's gradients ill-conditioned (a float32 run leaves a float64 one by ~6e-4 after
    # a step); the CPU's channels-last BatchNorm3d is ~1e3x less accurate than its standard one (float
    # accumulation: 1e-5 to 1e-4 relative at these sizes, torch 2.13), so there the two trainings part by 1e-3
    # in the loss within 2 steps, as would runs on different CPUs. Here the losses stay within rounding.
    run = {"patch": (32, 32, 32), "n_filters": 4, "lr": 0.01}
    model, curve, seen = fit_tiny_dae(monkeypatch, **run)
    model_cl, curve_cl, seen_cl = fit_tiny_dae(monkeypatch, channels_last=True, **run)
    # The switch takes effect: channels-last weights (not standard ones) and activations at every step, and
    # still after the optimiser's steps; without it, the standard layout throughout.
    assert len(seen_cl) == 4 and all(s["weights_cl"] and not s["weights_standard"] for s in seen_cl)
    assert all(s["features_cl"] for s in seen_cl)
    assert len(seen) == 4 and all(s["weights_standard"] and not s["features_cl"] for s in seen)
    convs = [p for p in model_cl.parameters() if p.dim() == 5 and p.shape[1] > 1 and p.shape[2] > 1]
    assert convs and all(p.is_contiguous(memory_format=CL3D) and not p.is_contiguous() for p in convs)
    # Only the rounding changes (still another DAE: lrep.dae_channels_last names it in the key). The weights after
    # 4 steps differ by up to 3e-5 (BatchNorm's above): 10x the losses' tolerance, far below a real difference.
    assert np.allclose(curve_cl, curve, rtol=1e-4, atol=1e-5)
    state, state_cl = model.state_dict(), model_cl.state_dict()
    for k, v in state.items():
        assert torch.allclose(state_cl[k], v, rtol=1e-3, atol=1e-4), k


def test_train_dae_returns_standard_layout_weights_whatever_the_training():
    cfg = DAEConfig(iterations=2, halve_every=1, latent_dim=16, eval_samples=2)
    state, report = dae_training.train_dae(tiny_masks(), cfg, PATCH, 2, "cpu", 0, channels_last=True)
    assert all(v.is_contiguous() for v in state.values())  # a cached DAE does not depend on the switch
    assert np.isfinite(report["final_loss"]) and 0.0 <= report["dice_dae_vs_clean"] <= 1.0


def test_dae_under_bf16_autocast_on_cpu_trains_with_a_float32_loss(monkeypatch):
    # The trainer sets autocast on CUDA only, but the switch itself works on any device: bf16 forward passes.
    _, curve, seen = fit_tiny_dae(monkeypatch, autocast=True)
    assert len(seen) == 4 and all(s["dtype"] == torch.bfloat16 for s in seen)
    assert len(curve) == 4 and all(np.isfinite(curve))
    _, _, fp32 = fit_tiny_dae(monkeypatch)
    assert all(s["dtype"] == torch.float32 for s in fp32)


def test_dae_key_names_bf16_autocast_only_when_in_effect():
    ctx = MethodContext(dataset_id="d", labeled_ids=("a", "b"), iterations=10)
    cfg = LRepConfig()
    key = lrep_mod.dae_key(cfg, ctx)
    assert "autocast" not in key and "channels_last" not in key
    # The key of this context before the switches existed: earlier runs keep their cached DAEs.
    old = "dae:d:first8:s1337:75f4667c39f1"
    assert LabelingRepresentation.asset_key(cfg, ctx) == old
    bf16 = replace(ctx, autocast=True)
    assert lrep_mod.dae_key(cfg, bf16) == {**key, "autocast": "bf16"}
    assert LabelingRepresentation.asset_key(cfg, bf16) != old
    # A channels-last DAE has other rounding, so other weights: never the cached standard-layout one.
    cl = LRepConfig(dae_channels_last=True)
    assert lrep_mod.dae_key(cl, ctx) == {**key, "channels_last": True}
    assert LabelingRepresentation.asset_key(cl, ctx) != old


def test_dae_channels_last_is_in_the_run_id_only_when_on():
    base = build_config("lrep", "8/72", 1337, "quick")
    assert base.method_cfg.dae_channels_last is False
    before = (
        "lrep-l2exp_8-72_s1337_6ee6d5b5df"  # this run's name before the setting existed (issue 15's note)
    )
    assert base.run_name() == before
    on = build_config("lrep", "8/72", 1337, "quick", {"lrep.dae_channels_last": "true"})
    assert on.run_id() != base.run_id()
    assert build_config("lrep", "8/72", 1337, "paper").method_cfg.dae_channels_last is True  # GPU presets


def test_method_context_sets_the_speed_switches(tiny_data):
    from sslbench.benchmark.training.trainer import method_context

    amp = build_config("lrep", "3/5", 1, "smoke", {"train.amp": True}, str(tiny_data))
    trainer = Trainer(amp, tiny_data, progress=False)
    ctx = trainer.context()
    assert ctx.autocast is False  # train.amp is bf16 autocast on CUDA only: on the CPU the DAE trains in fp32
    ids = (trainer.labeled_ids, trainer.unlabeled_ids)
    cuda = torch.device("cuda")  # only named: nothing runs on it
    assert method_context(amp, trainer.dataset, *ids, cuda).autocast is True
    fp32 = build_config(
        "lrep", "3/5", 1, "smoke", {"train.amp": False, "train.channels_last": False}, str(tiny_data)
    )
    assert method_context(fp32, trainer.dataset, *ids, cuda).autocast is False


def test_prepare_assets_passes_the_speed_switches_to_train_dae(monkeypatch):
    calls: list[dict] = []

    def fake(masks, *args, **kwargs):
        calls.append(kwargs)
        return {}, {"denoises": True}

    monkeypatch.setattr(lrep_mod, "train_dae", fake)
    ctx = MethodContext(
        n_filters=2, patch=PATCH, labeled_ids=("a",), labeled_masks=tiny_masks, cache=MemoryCache()
    )
    LabelingRepresentation.prepare_assets(LRepConfig(dae_channels_last=True), replace(ctx, autocast=True))
    LabelingRepresentation.prepare_assets(LRepConfig(), ctx)
    assert [(c["channels_last"], c["autocast"]) for c in calls] == [(True, True), (False, False)]
