"""The data pipeline, the V-Net, and end-to-end training: determinism, resume after SIGKILL, the NaN guard."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from sslbench.benchmark.config import build_config
from sslbench.benchmark.training.errors import RunFailed
from sslbench.benchmark.training.trainer import train_run
from sslbench.datasets.batches import TwoStreamBatches
from sslbench.datasets.la import Volume
from sslbench.datasets.transforms import crop_padding, random_crop
from sslbench.methods.networks.vnet import VNet


def test_vnet_parameter_count_and_shape():
    net = VNet(n_channels=1, n_classes=2, n_filters=16)
    assert sum(p.numel() for p in net.parameters()) == 9_448_866  # the references' LA V-Net
    small = VNet(n_filters=2).eval()
    with torch.no_grad():
        assert small(torch.zeros(1, 1, 32, 48, 16)).shape == (1, 2, 32, 48, 16)


@pytest.mark.parametrize(
    "shape,patch,pad",
    [
        ((183, 140, 88), (112, 112, 80), 0),
        ((100, 140, 88), (112, 112, 80), 9),
        ((112, 140, 88), (112, 112, 80), 3),
    ],
)
def test_crop_padding_rule(shape, patch, pad):
    widths = crop_padding(shape, patch)
    assert widths[0] == (pad, pad)  # (p - s)//2 + 3 when a side is <= the patch, on every axis
    if pad:
        assert widths[2] == (max((80 - 88) // 2 + 3, 0),) * 2


def test_random_crop_shape_and_content():
    rng = np.random.default_rng(0)
    image = np.arange(20 * 18 * 10, dtype=np.float32).reshape(20, 18, 10)
    label = (image > 1000).astype(np.uint8)
    crop_i, crop_l = random_crop(image, label, (16, 16, 16), rng)
    assert crop_i.shape == crop_l.shape == (16, 16, 16)
    assert np.array_equal(crop_l, (crop_i > 1000).astype(np.uint8) * (crop_i != 0))


def _volumes(n, seed=0):
    rng = np.random.default_rng(seed)
    return [
        Volume(
            f"c{i}",
            rng.normal(size=(24, 20, 18)).astype(np.float32),
            (rng.random((24, 20, 18)) > 0.7).astype(np.uint8),
        )
        for i in range(n)
    ]


def test_batches_are_a_function_of_seed_and_step():
    make = lambda seed: TwoStreamBatches(_volumes(4), _volumes(6, 1), 2, 2, (16, 16, 16), seed, length=20)  # noqa: E731
    a, b, c = make(5), make(5), make(6)
    for step in (0, 3, 17):
        for key in ("x_l", "y_l", "x_u"):
            assert np.array_equal(a[step][key], b[step][key])
    assert not np.array_equal(a[3]["x_u"], c[3]["x_u"])
    # Labeled stream: one permutation per epoch, so each labeled case appears once per 2 steps.
    seen = sorted(a.labeled_indices(0) + a.labeled_indices(1))
    assert seen == [0, 1, 2, 3]
    batch = a[0]
    assert batch["x_l"].shape == (2, 1, 16, 16, 16) and batch["y_l"].dtype == np.int64


def _run(tmp_path, name, tiny_data, seed=1337, method="mt", **sets):
    cfg = build_config(
        method, "4/4", seed, "smoke", {k.replace("__", "."): str(v) for k, v in sets.items()}, str(tiny_data)
    )
    out = tmp_path / name
    metrics = train_run(cfg, out, progress=False)
    return metrics, [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()], out


def test_same_seed_same_numbers_different_seed_differs(tmp_path, tiny_data):
    m1, log1, run1 = _run(tmp_path, "a", tiny_data)
    m2, log2, _ = _run(tmp_path, "b", tiny_data)
    m3, log3, _ = _run(tmp_path, "c", tiny_data, seed=7)
    assert [r["loss"] for r in log1] == [r["loss"] for r in log2]
    assert m1["dice"] == m2["dice"] and m1["hd95_vox"] == m2["hd95_vox"]
    assert [r["loss"] for r in log1] != [r["loss"] for r in log3]
    config = json.loads((run1 / "config.json").read_text())
    # The split is data: the first N of train.list labeled, the next M unlabeled, recorded as case ids.
    train_list = (tiny_data / "train.list").read_text().split()
    assert config["split_ids"]["labeled"] == train_list[:4]
    assert config["split_ids"]["unlabeled"] == train_list[4:8] and "commit" in config["code"]
    assert (run1 / "cases.csv").read_text().count("\n") == 1 + m1["n_cases"]


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    import sslbench.methods
    from sslbench.benchmark.config import build_config
    from sslbench.benchmark.training.trainer import train_run
    from sslbench.methods.algorithms.mt import MeanTeacher

    original = MeanTeacher.on_after_optimizer_step
    def die_at_step_7(self, step):
        original(self, step)
        if step == 7:
            os.kill(os.getpid(), signal.SIGKILL)
    MeanTeacher.on_after_optimizer_step = die_at_step_7
    cfg = build_config("mt", "4/4", 1337, "smoke", {"train.iterations": "10", "train.checkpoint_every": "3"},
                       sys.argv[1])
    train_run(cfg, sys.argv[2], progress=False)
    """
)


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path, tiny_data):
    sets = {"train__iterations": 10, "train__checkpoint_every": 3}
    full, full_log, _ = _run(tmp_path, "full", tiny_data, **sets)
    run_dir = tmp_path / "killed"
    proc = subprocess.run([sys.executable, "-c", KILLER, str(tiny_data), str(run_dir)], capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert (run_dir / "checkpoint.pt").is_file() and not (run_dir / "metrics.json").exists()
    cfg = build_config(
        "mt", "4/4", 1337, "smoke", {"train.iterations": "10", "train.checkpoint_every": "3"}, str(tiny_data)
    )
    resumed = train_run(cfg, run_dir, progress=False, resume=True)
    assert resumed["resumed_from_step"] == 6
    resumed_log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in resumed_log] == [r["step"] for r in full_log]
    assert [r["loss"] for r in resumed_log] == pytest.approx([r["loss"] for r in full_log], rel=1e-6)
    for key in ("dice", "jaccard", "hd95_vox", "asd_vox"):
        assert resumed[key] == pytest.approx(full[key], rel=1e-6)


def test_non_finite_loss_stops_the_run(tmp_path, tiny_data):
    with pytest.raises(RunFailed, match="non-finite loss at step"):
        _run(tmp_path, "nan", tiny_data, train__lr=1e38, train__iterations=3)


def test_result_files_are_readable_by_the_team(tmp_path):
    """The atomic writer's temporary file is 0600; what lands in a run folder is 0644 (under a 022 umask)."""
    import os
    import stat

    from sslbench.benchmark.runs.io import write_json, write_text

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "metrics.json", {"dice": 0.5})
        write_text(tmp_path / "cases.csv", "case,dice\n")
    finally:
        os.umask(old)
    for name in ("metrics.json", "cases.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644


def test_a_run_records_its_machine_load_and_parameter_counts(tmp_path, tiny_data):
    """Cost that survives a busy machine: the load around the run (and whether it was contended) and the
    parameter counts, which no load distorts."""
    metrics, _, _ = _run(tmp_path, "load", tiny_data, train__threads=1)
    load, params = metrics["cost"]["machine_load"], metrics["cost"]["parameters"]
    assert load["cores"] >= 1 and isinstance(load["contended"], bool) and load["threads"] == 1
    assert load["contended"] == (max(load["load_start"], load["load_end"]) > load["cores"] + 0.5)
    assert 0 < params["trainable"] < params["total"]  # MT: the teacher's parameters are not trained
    assert metrics["cost"]["flops_per_step"] > 0


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("method", ["caml", "admt", "crossmatch", "unimatch", "bcp", "lrep"])
def test_stateful_methods_resume_exactly_from_a_trainer_checkpoint(method, tmp_path, tiny_data, monkeypatch):
    """Memory banks, alternation schedules, method-owned random streams and teachers are all in the checkpoint:
    a run interrupted after its step-3 checkpoint and resumed gives the uninterrupted run's losses and metrics."""
    from sslbench.benchmark.training.step import StepRunner

    sets = {
        "train.iterations": "6",
        "train.checkpoint_every": "3",
        "train.threads": "1",
    }
    if method == "lrep":
        sets["lrep.dae_iterations"] = "2"  # the DAE's quality does not matter here
    cfg = build_config(method, "4/4", 1337, "smoke", sets, str(tiny_data))
    full = train_run(cfg, tmp_path / "full", progress=False)
    full_log = [json.loads(line) for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]

    real = StepRunner.__call__

    def stop_at_4(self, arrays, step, count=False):
        if step == 4:
            raise _Interrupt
        return real(self, arrays, step, count)

    monkeypatch.setattr(StepRunner, "__call__", stop_at_4)
    with pytest.raises(_Interrupt):
        train_run(cfg, tmp_path / "cut", progress=False)
    monkeypatch.setattr(StepRunner, "__call__", real)
    resumed = train_run(cfg, tmp_path / "cut", progress=False, resume=True)
    log = [json.loads(line) for line in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    assert resumed["resumed_from_step"] == 3
    assert [r["loss"] for r in log] == [r["loss"] for r in full_log]
    assert resumed["dice"] == full["dice"]
