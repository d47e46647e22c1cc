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
