"""Sweeps: grid expansion from the registry, a real Dask cluster, resume, failure isolation, shared assets."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import pytest
import torch
from click.testing import CliRunner

import sslbench.benchmark.sweep.local as sweep_local
import sslbench.benchmark.sweep.tasks as sweep_tasks
from sslbench.benchmark.cli import main  # noqa: F401  (import the group first: it registers `run`)
from sslbench.benchmark.cli.run import run
from sslbench.benchmark.config import ConfigError
from sslbench.benchmark.runs.folder import load_outcome
from sslbench.benchmark.sweep.grid import default_seeds, expand_grid
from sslbench.benchmark.sweep.runner import run_sweep
from sslbench.methods.base import Method
from sslbench.methods.losses import ce_dice_loss
from sslbench.methods.registry import list_methods, register, unregister

SMOKE = {"train.threads": "1"}  # two cores: one torch thread per run


# --- throwaway methods ---------------------------------------------------------------------------------------
class _Tiny(Method):
    """Supervised loss on the labeled crops only; enough to train and evaluate."""

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        self.student = self.build_vnet()

    def train_step(self, batch, step, max_steps):
        return {"loss": ce_dice_loss(self.student(batch.x_l), batch.y_l)}


class _Boom(_Tiny):
    fail = True

    def train_step(self, batch, step, max_steps):
        if step == 2 and type(self).fail:
            raise RuntimeError("boom at step 2")
        return super().train_step(batch, step, max_steps)


class _Asset(_Tiny):
    prepares = 0
    builds = 0
    tag = ""

    @classmethod
    def asset_key(cls, cfg, ctx):
        return f"{ctx.n_labeled}/{ctx.n_unlabeled}"

    @classmethod
    def prepare_assets(cls, cfg, ctx):
        cls.prepares += 1

        def build():
            cls.builds += 1
            return torch.ones(1)

        return {"w": ctx.cache.cached("sweeptest", {"ids": list(ctx.labeled_ids), "tag": cls.tag}, build)}


class _BadPrep(_Tiny):
    @classmethod
    def asset_key(cls, cfg, ctx):
        return "always"

    @classmethod
    def prepare_assets(cls, cfg, ctx):
        raise ValueError("no DAE for you")


@dataclass(frozen=True)
class _VariantConfig:
    variant: str = "a"
    w: float = 0.1


class _Variants(_Tiny):
    Config = _VariantConfig


@pytest.fixture
def test_methods():
    names = {"t-boom": _Boom, "t-asset": _Asset, "t-badprep": _BadPrep, "t-var": _Variants}
    for name, cls in names.items():
        variants = ("a", "b") if name == "t-var" else ()
        register(name, k_inferences=None, family="consistency", paper="test", variants=variants)(cls)
    _Boom.fail = True
    _Asset.prepares = _Asset.builds = 0
    _Asset.tag = uuid.uuid4().hex  # a fresh cache entry for this test
    yield
    for name in names:
        unregister(name)


# --- grid ----------------------------------------------------------------------------------------------------
def test_expand_grid_all_from_registry(test_methods):
    cfgs = expand_grid("all", ["8/72", "16/64"], [1, 2], "smoke", {}, None)
    semi = {(m.name, v) for m in list_methods() if m.cls.uses_unlabeled for v in (m.variants or ("",))}
    assert {(c.method, c.variant) for c in cfgs if c.method != "sup"} == semi
    assert ("t-var", "a") in semi and ("t-var", "b") in semi  # every registry variant
    assert sorted(c.split for c in cfgs if c.method == "sup") == ["16/0", "16/0", "8/0", "8/0"]
    assert all(c.split in ("8/72", "16/64") for c in cfgs if c.method != "sup")
    assert len(cfgs) == len({c.run_name() for c in cfgs}) == (len(semi) + 1) * 2 * 2
    # The upper bound only when asked for; semi-supervised methods skip N/0 splits.
    upper = expand_grid("all", ["80/0"], [1], "smoke", {}, None)
    assert [(c.method, c.split) for c in upper] == [("sup", "80/0")]


def test_expand_grid_names_variants_overrides_and_duplicates(test_methods):
    cfgs = expand_grid("sup,sup", ["8/72", "8/64"], [1, 2], "smoke", {}, None)
    assert [(c.split, c.seed) for c in cfgs] == [("8/0", 1), ("8/0", 2)]  # 8/72 and 8/64 both give sup 8/0
    assert [c.variant for c in expand_grid("t-var", ["8/72"], [1], "smoke", {}, None)] == ["a"]
    assert [c.variant for c in expand_grid(["t-var:b"], ["8/72"], [1], "smoke", {}, None)] == ["b"]
    # Per-method overrides reach that method only; grid_sets multiply the grid; mt's copies collapse.
    cfgs = expand_grid(
        "t-var:a,mt",
        ["8/72"],
        [1],
        "smoke",
        {"mt.w": "0.3"},
        None,
        grid_sets=[{"t-var.w": "1"}, {"t-var.w": "2"}],
    )
    assert sorted(c.method_cfg.w for c in cfgs if c.method == "t-var") == [1.0, 2.0]
    assert [c.method_cfg.w for c in cfgs if c.method == "mt"] == [0.3]
    # What tells the grid's runs apart in a progress line: only the fields that differ from the plain preset.
    assert sorted(c.changed_settings()["t-var.w"] for c in cfgs if c.method == "t-var") == [1.0, 2.0]
    assert [c.changed_settings() for c in cfgs if c.method == "mt"] == [{"mt.w": 0.3}]
    assert expand_grid("mt", ["8/72"], [1], "smoke", {}, None)[0].changed_settings() == {}
    with pytest.raises(ConfigError, match="semi-supervised"):
        expand_grid("uamt", ["80/0"], [1], "smoke", {}, None)
    with pytest.raises(ConfigError, match="not in this sweep"):
        expand_grid("mt", ["8/72"], [1], "smoke", {"uamt.w": "1"}, None)
    with pytest.raises(ConfigError, match="unknown section"):
        expand_grid("mt", ["8/72"], [1], "smoke", {"nosuch.w": "1"}, None)
    with pytest.raises(ConfigError, match="no variant"):
        expand_grid("t-var:z", ["8/72"], [1], "smoke", {}, None)
    assert default_seeds(5) == [1337, 1338, 1339, 1340, 1341]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--seeds", "0"], "--seeds"),
        (["--seeds", "100000"], "--seeds"),
        (["--seeds", "2", "--seed-list", "1,2"], "either --seeds or --seed-list"),
        (["--seed-list", "1,x"], "--seed-list"),
        (["--scheduler", "tcp://x:1"], "--backend dask"),
    ],
)
def test_cli_rejects_bad_options(args, message, tmp_path):
    result = CliRunner().invoke(run, ["--methods", "sup", "--out", str(tmp_path), *args])
    assert result.exit_code == 2 and message in result.output, result.output


# --- running -------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_smoke_sweep_on_a_dask_cluster(tiny_data, tmp_path):
    from dask.distributed import LocalCluster

    cfgs = expand_grid("mt,sup", ["4/4"], [1, 2], "smoke", SMOKE, str(tiny_data))
    assert len(cfgs) == 4
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        outcomes = run_sweep(
            cfgs, tmp_path, backend="dask", scheduler=cluster.scheduler_address, progress=False
        )
    assert [o.status for o in outcomes] == ["done"] * 4, [o.error for o in outcomes]
    for cfg, o in zip(cfgs, outcomes, strict=True):
        assert o.run_dir == tmp_path.resolve() / cfg.run_name()
        assert (o.run_dir / "metrics.json").is_file()
        assert 0 <= o.metrics["dice"] <= 1
        assert load_outcome(o.run_dir).cfg.run_id() == cfg.run_id()


def test_resume_skips_finished_runs_and_redoes_only_the_interrupted_one(tiny_data, tmp_path, monkeypatch):
    calls = []
    real = sweep_tasks.train_run

    def spy(cfg, run_dir, progress=False, resume=False):
        calls.append(cfg.seed)
        return real(cfg, run_dir, progress=progress, resume=resume)

    monkeypatch.setattr(sweep_tasks, "train_run", spy)
    cfgs = expand_grid("sup", ["4/4"], [1, 2], "smoke", SMOKE, str(tiny_data))
    first = run_sweep(cfgs, tmp_path, jobs=1, progress=False)
    assert [o.status for o in first] == ["done", "done"] and calls == [1, 2]
    mtimes = [(o.run_dir / "metrics.json").stat().st_mtime_ns for o in first]

    again = run_sweep(cfgs, tmp_path, jobs=1, progress=False)
    assert [o.status for o in again] == ["skipped", "skipped"] and calls == [1, 2]
    assert again[0].metrics == first[0].metrics

    (first[1].run_dir / "metrics.json").unlink()  # as if the run was killed before finishing
    third = run_sweep(cfgs, tmp_path, jobs=1, progress=False)
    assert [o.status for o in third] == ["skipped", "done"] and calls == [1, 2, 2]
    assert (first[0].run_dir / "metrics.json").stat().st_mtime_ns == mtimes[0]

    # --force empties the folder and redoes the run (here with a trainer that fails at once).
    def broken(cfg, run_dir, progress=False, resume=False):
        raise RuntimeError("fake trainer")

    monkeypatch.setattr(sweep_tasks, "train_run", broken)
    forced = run_sweep(cfgs[:1], tmp_path, jobs=1, force=True, progress=False)
    assert forced[0].status == "failed" and forced[0].error == "RuntimeError: fake trainer"
    assert not (forced[0].run_dir / "metrics.json").exists()


def test_a_failing_run_is_isolated_recorded_and_resumed(tiny_data, tmp_path, test_methods):
    args = [
        "--methods",
        "t-boom,sup",
        "--split",
        "4/4",
        "--seed-list",
        "7",
        "--data",
        str(tiny_data),
        "--preset",
        "smoke",
        "--set",
        "train.threads=1",
        "--set",
        "train.checkpoint_every=2",
        "--out",
        str(tmp_path),
        "--quiet",
        "--jobs",
        "1",  # in this process: the test method is registered here only
    ]
    result = CliRunner().invoke(run, args)
    assert result.exit_code == 1, result.output
    assert "1 done, 0 skipped (already finished), 1 failed" in result.output
    assert "FAILED t-boom 4/4 s7: RuntimeError: boom at step 2" in result.output

    cfgs = expand_grid(
        "t-boom,sup",
        ["4/4"],
        [7],
        "smoke",
        {"train.threads": "1", "train.checkpoint_every": "2"},
        str(tiny_data),
    )
    boom_dir, sup_dir = (tmp_path / c.run_name() for c in cfgs)
    record = json.loads((boom_dir / "failed.json").read_text())
    assert record["error"] == "RuntimeError: boom at step 2" and "train_step" in record["traceback"]
    assert record["when"] and (boom_dir / "checkpoint.pt").is_file()
    assert (sup_dir / "metrics.json").is_file()
    assert load_outcome(boom_dir).status == "failed"

    _Boom.fail = False  # the bug is fixed: the run resumes from its step-2 checkpoint
    outcomes = run_sweep(cfgs, tmp_path, jobs=1, progress=False)
    assert [o.status for o in outcomes] == ["done", "skipped"]
    assert outcomes[0].metrics["resumed_from_step"] == 2
    assert not (boom_dir / "failed.json").exists()


def test_assets_are_prepared_once_and_a_failing_prepare_fails_only_its_runs(
    tiny_data, tmp_path, test_methods, capsys
):
    cfgs = expand_grid("t-asset,t-badprep", ["4/4"], [1, 2], "smoke", SMOKE, str(tiny_data))
    outcomes = run_sweep(cfgs, tmp_path, jobs=1, progress=False)
    said = capsys.readouterr().err  # the preparations are not silent phases
    assert "[prepare] t-asset 4/4 s1: building or loading its assets for 2 run(s)" in said
    assert "[prepare] t-asset 4/4 s1: ready" in said and "[prepare] t-badprep 4/4 s1: failed: " in said
    status = {(o.cfg.method, o.cfg.seed): o for o in outcomes}
    assert status[("t-asset", 1)].status == status[("t-asset", 2)].status == "done"
    assert _Asset.builds == 1  # one build for the split's key ...
    assert _Asset.prepares == 3  # ... in the prepare task, then loaded from the cache by each run
    for seed in (1, 2):
        bad = status[("t-badprep", seed)]
        assert bad.status == "failed" and bad.error == "preparing assets failed: ValueError: no DAE for you"
        assert (bad.run_dir / "failed.json").is_file() and not (bad.run_dir / "model.pt").exists()


def test_cpu_default_is_one_run_per_core_with_the_cores_shared_out(monkeypatch):
    monkeypatch.setattr(sweep_local, "gpu_count", lambda: 0)
    monkeypatch.setattr(sweep_local, "cpu_cores", lambda: 2)
    assert sweep_local.local_slots(None) == ([None, None], 1)
    assert sweep_local.local_slots(1) == ([None], 0)  # one run: torch keeps its default thread count
    monkeypatch.setattr(sweep_local, "cpu_cores", lambda: 32)
    assert sweep_local.local_slots(None) == (
        [None] * sweep_local.CPU_DEFAULT_JOBS,
        32 // sweep_local.CPU_DEFAULT_JOBS,
    )
    monkeypatch.setattr(sweep_local, "gpu_count", lambda: 2)
    assert sweep_local.local_slots(None, runs_per_gpu=2) == (["cuda:0", "cuda:1", "cuda:0", "cuda:1"], 8)


def test_a_damaged_builtin_dataset_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLBENCH_CACHE", str(tmp_path / "cache"))
    from sslbench.datasets.default import default_dataset_name

    (tmp_path / "cache" / default_dataset_name()).mkdir(parents=True)  # a folder without dataset.json
    args = [
        "--methods",
        "sup",
        "--split",
        "4/0",
        "--seed-list",
        "1",
        "--preset",
        "smoke",
        "--out",
        str(tmp_path),
    ]
    result = CliRunner().invoke(main, ["run", *args])
    assert result.exit_code == 2, result.output
    assert "built-in dataset:" in result.output and "not a complete dataset" in result.output
    assert "Traceback" not in result.output
