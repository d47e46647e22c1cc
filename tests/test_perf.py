"""`bench perf`, the cost block of a run, the fast-path switches, and the copy-free crops (bit-identical)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from sslbench.benchmark.config import ConfigError, build_config
from sslbench.benchmark.training.device import resolve_workers
from sslbench.benchmark.training.trainer import train_run
from sslbench.datasets.batches import TwoStreamBatches
from sslbench.datasets.la import Volume
from sslbench.datasets.transforms import crop_padding
from sslbench.methods.registry import get_method, list_methods


# --- bench perf ---------------------------------------------------------------------------------------------
def test_bench_perf_rows_for_every_method_and_pass_counts(tiny_data):
    from sslbench.benchmark.cli.perf import perf

    names = {m.name for m in list_methods()}
    args = ["--preset", "smoke", "--data", str(tiny_data), "--iters", "3", "--warmup", "1", "--eval-volumes", "1",
            "--json"]  # fmt: skip
    if "lrep" in names:
        args += ["--set", "lrep.dae_iterations=2"]  # the DAE's quality does not matter for the timing
    result = CliRunner().invoke(perf, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    rows = {r["method"]: r for r in report["rows"]}
    assert set(rows) == names
    for name, r in rows.items():
        assert "error" not in r, r
        assert r["ms_per_iter"] > 0 and r["ms_p90"] >= r["ms_per_iter"] and r["eval_ms_per_volume"] > 0
        assert r["peak_memory_mb"] > 0
        # our step over the plain loop's, measured for every method (MT: against the re-implemented reference)
        assert r["vs_reference"] > 0 and len(r["vs_reference_detail"]["round_ratios"]) == 2
        assert ("re-implemented" in r["vs_reference_detail"]["reference"]) == (name == "mt")
        # 1 student pass, 1 for a teacher's target, plus the declared extra passes (UA-MT's 8, lrep's DAE...)
        expected = 1 + ("teacher" in r["passes"]) + get_method(name).extra_passes
        assert sum(r["passes"].values()) == pytest.approx(expected), (name, r["passes"])
    assert rows["mt"]["ratio_to_mt"] == 1.0 and rows["mt"]["passes_per_unlabeled"] == 2
    assert rows["uamt"]["passes_per_unlabeled"] - rows["mt"]["passes_per_unlabeled"] == 8
    n_u = rows["mt"]["unlabeled_per_batch"]
    assert rows["uamt"]["samples_per_step"] - rows["mt"]["samples_per_step"] == 8 * n_u
    assert rows["sup"]["split"].endswith("/0") and rows["sup"]["passes_per_unlabeled"] is None
    if "lrep" in names:
        assert rows["lrep"]["passes_per_unlabeled"] - rows["mt"]["passes_per_unlabeled"] == 1
    assert report["machine"]["device"] == "cpu" and report["settings"]["iters"] == 3


def test_bench_perf_rejects_bad_options(tiny_data):
    from sslbench.benchmark.cli.perf import perf

    result = CliRunner().invoke(perf, ["--data", str(tiny_data), "--methods", "nope"])
    assert result.exit_code == 2 and "unknown method 'nope'" in result.output
    result = CliRunner().invoke(perf, ["--data", str(tiny_data), "--set", "nosuch.x=1"])
    assert result.exit_code == 2 and "nosuch" in result.output


def test_perf_sets_and_split_fit():
    from sslbench.benchmark.perf.timing import _fit_split, sets_for

    sets = {"train.amp": "false", "uamt.K": "4", "mt.w": "0.2"}
    assert sets_for("mt", sets) == {"train.amp": "false", "mt.w": "0.2"}
    assert sets_for("uamt", sets) == {"train.amp": "false", "uamt.K": "4"}
    with pytest.raises(ConfigError, match="unknown section 'nosuch'"):
        sets_for("mt", {"nosuch.a": "1"})
    assert _fit_split("8/72", 80, False) == "8/72" and _fit_split("8/72", 10, False) == "8/2"
    assert _fit_split("8/72", 10, True) == "8/0"


def test_reference_comparison_runs(tiny_data):
    from sslbench.benchmark.perf.reference_loop import compare_reference, format_comparison

    result = compare_reference("smoke", str(tiny_data), iters=2, repeats=2, warmup=1)
    assert result["train"]["ours_ms"] > 0 and result["train"]["reference_ms"] > 0
    assert len(result["train"]["round_ratios"]) == 2 and result["eval"]["ratio"] > 0
    assert result["eval_max_abs_diff"] < 1e-4  # batched windows give the same probabilities
    assert "ours/reference" in format_comparison(result)


# --- the cost block of a run and the fast-path switches -----------------------------------------------------
def test_run_records_its_cost(tmp_path, tiny_data):
    cfg = build_config("uamt", "4/4", 1337, "smoke", {"train.iterations": "7"}, str(tiny_data))
    cost = train_run(cfg, tmp_path / "run", progress=False)["cost"]
    assert cost["timed_steps"] == 2 and cost["warmup_steps"] == 5  # 7 steps: the first 5 are warm-up
    assert 0 < cost["sec_per_iter_median"] <= cost["sec_per_iter_p90"]
    assert cost["forward_passes"] == {"student": 1.0, "teacher": 9.0} and cost["forward_passes_total"] == 10
    assert cost["peak_memory_mb"] > 0 and cost["memory_kind"] == "cpu_peak_rss"
    assert cost["eval_s_per_volume"] > 0 and cost["metric_s_per_volume"] >= 0
    assert cost["data_wait_per_iter"] >= 0
    assert cost["setup_s"] + cost["loop_s"] == pytest.approx(cost["train_wall_s"])
    assert cost["total_wall_s"] >= cost["train_wall_s"] + cost["eval_s"] - 1e-6
    # On CPU the CUDA-only switches are off whatever the config says; the record says what was in effect.
    assert cost["fast_paths"] == {"amp_bf16": False, "channels_last": True, "cudnn_benchmark": False,
                                  "compile": False, "sw_batch": 8, "num_workers": 0}  # fmt: skip


def test_worker_auto_sizing_and_validation():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_workers(-1, cpu) == 0 and resolve_workers(3, cpu) == 3
    assert 1 <= resolve_workers(-1, cuda) <= 4 and resolve_workers(-1, cuda, threads=1) == 1
    with pytest.raises(ConfigError, match="data.num_workers"):
        build_config("mt", "8/72", sets={"data.num_workers": "-2"})


def test_speed_switches_do_not_change_the_run_id():
    base = build_config("mt", "8/72")
    fast = build_config("mt", "8/72", sets={"train.channels_last": "false", "train.compile": "true",
                                             "data.num_workers": "2"})  # fmt: skip
    assert base.run_id() == fast.run_id()
    no_amp = build_config("mt", "8/72", sets={"train.amp": "false"})
    assert no_amp.run_id() != base.run_id()  # bf16 changes the numerics on CUDA


# --- copy-free crops are bit-identical to pad-the-volume-then-crop ------------------------------------------
def _straightforward_augment(image, label, patch, rng):
    """The reference's order with explicit copies: rot90, flip (copied), pad the whole volume, crop."""
    k = int(rng.integers(0, 4))
    axis = int(rng.integers(0, 2))
    image = np.flip(np.rot90(image, k, axes=(0, 1)), axis=axis).copy()
    label = np.flip(np.rot90(label, k, axes=(0, 1)), axis=axis).copy()
    pad = crop_padding(label.shape, patch)
    image, label = np.pad(image, pad), np.pad(label, pad)
    starts = [int(rng.integers(0, s - p)) if s > p else 0 for s, p in zip(label.shape, patch, strict=True)]
    sl = tuple(slice(w, w + p) for w, p in zip(starts, patch, strict=True))
    return image[sl].copy(), label[sl].copy()


@pytest.mark.parametrize(
    "shape,patch",
    [((24, 20, 18), (16, 16, 16)), ((16, 20, 18), (16, 16, 16)), ((12, 30, 10), (16, 16, 16)),
     ((17, 16, 40), (16, 16, 32)), ((9, 9, 9), (16, 16, 16))],
)  # fmt: skip
def test_batches_are_bit_identical_to_the_straightforward_pipeline(shape, patch):
    rng = np.random.default_rng(5)
    vols = [Volume(f"c{i}", rng.normal(size=shape).astype(np.float32),
                   (rng.random(shape) > 0.6).astype(np.uint8)) for i in range(5)]  # fmt: skip
    batches = TwoStreamBatches(vols[:2], vols[2:], 2, 2, patch, seed=11, length=40)
    for step in range(12):
        got = batches[step]
        ids = [(vols[:2][i], s) for s, i in enumerate(batches.labeled_indices(step))]
        ids += [(vols[2:][i], 2 + s) for s, i in enumerate(batches.unlabeled_indices(step))]
        crops = [_straightforward_augment(v.image, v.label, patch, np.random.default_rng([11, 2, step, s]))
                 for v, s in ids]  # fmt: skip
        x = np.stack([c[0] for c in crops])[:, None].astype(np.float32)
        y = np.stack([c[1] for c in crops[:2]]).astype(np.int64)
        assert got["x_l"].dtype == np.float32 and got["y_l"].dtype == np.int64
        assert np.array_equal(got["x_l"], x[:2]) and np.array_equal(got["x_u"], x[2:])
        assert np.array_equal(got["y_l"], y)
