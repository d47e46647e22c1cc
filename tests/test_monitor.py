"""Training monitoring: TensorBoard event files when asked (holding the logged scalars) and progress.png."""

from __future__ import annotations

import json

from click.testing import CliRunner

from sslbench.benchmark.cli import main


def test_tensorboard_scalars_and_progress_png(tiny_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    args = ["train", "--method", "mt", "--split", "4/4", "--preset", "smoke", "--data", str(tiny_data)]
    res = CliRunner().invoke(main, [*args, "--out", str(tmp_path), "--tensorboard", "--quiet"])
    assert res.exit_code == 0, res.output
    assert f"on {tiny_data.name}: Dice" in res.output  # the summary line names the data
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert (run_dir / "progress.png").stat().st_size > 2_000
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    losses = [e.value for e in events.Scalars("train/loss")]
    assert [e.step for e in events.Scalars("train/loss")] == [r["step"] for r in log]
    # TensorBoard stores float32: the logged losses to float32 precision
    assert all(
        abs(a - r["loss"]) <= 1e-6 * max(1.0, abs(r["loss"])) for a, r in zip(losses, log, strict=True)
    )
    assert {"train/w_unsup", "train/lr", "train/loss_unsup"} <= set(events.Tags()["scalars"])
    # the same run without --tensorboard: same run id (monitoring changes no number), no event files
    plain = tmp_path / "plain"
    res = CliRunner().invoke(main, [*args, "--out", str(plain), "--quiet"])
    assert res.exit_code == 0, res.output
    (plain_run,) = list(plain.iterdir())
    assert plain_run.name == run_dir.name and not (plain_run / "tensorboard").exists()


def _smoke_mt(data, out_root, name, seed, **sets):
    """A smoke MT run with `sets`: (config, metrics, log records)."""
    from sslbench.benchmark.config import build_config
    from sslbench.benchmark.training.trainer import train_run

    cfg = build_config("mt", "4/4", seed, "smoke", {"train.threads": "1", **sets}, str(data))
    out = out_root / name / cfg.run_name()
    metrics = train_run(cfg, out, progress=False)
    return cfg, metrics, [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_validation_dice_on_held_out_training_cases_changes_no_number(tiny_data, tmp_path):
    def run(name, **sets):
        return _smoke_mt(tiny_data, tmp_path, name, 3, **sets)

    cfg_v, with_val, log_v = run("val", **{"train.val_every": "2"})
    cfg_p, plain, log_p = run("plain")
    assert cfg_v.run_id() == cfg_p.run_id()  # monitoring is not part of the identity ...
    assert with_val["dice"] == plain["dice"] and [r["loss"] for r in log_v] == [
        r["loss"] for r in log_p
    ]  # ...
    vals = [r["val_dice"] for r in log_v if "val_dice" in r]  # ... nor of the numbers
    assert len(vals) == len(log_v) and all(0.0 <= v <= 1.0 for v in vals)
    assert not any("val_dice" in r for r in log_p)


def test_learning_curve_on_the_test_set_changes_no_number(tiny_data, tmp_path):
    from sslbench.benchmark.config import ConfigError, build_config

    def run(name, **sets):
        return _smoke_mt(tiny_data, tmp_path, name, 5, **sets)

    cfg_c, with_curve, log_c = run("curve", **{"train.curve_every": "4"})
    cfg_p, plain, log_p = run("plain")
    assert cfg_c.run_id() == cfg_p.run_id()
    assert with_curve["dice"] == plain["dice"] and [r["loss"] for r in log_c] == [r["loss"] for r in log_p]
    curve = {r["step"]: r["test_dice_curve"] for r in log_c if "test_dice_curve" in r}
    assert sorted(curve) == [0, 4, 5]  # every 4th step and the last one
    # the last point is the final weights on the test set, only with non-overlapping windows: close to, not
    # necessarily equal to, the reported Dice
    assert all(0.0 <= v <= 1.0 for v in curve.values())
    try:
        build_config("mt", "4/4", 5, "smoke", {"train.curve_every": "3"}, str(tiny_data))
    except ConfigError as exc:
        assert "train.curve_every 3" in str(exc) and "log_every" in str(exc)
    else:
        raise AssertionError("curve_every that is not a multiple of log_every was accepted")
