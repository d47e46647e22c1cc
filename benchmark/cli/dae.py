"""`bench dae ...`: the labeling-representation DAE that lrep uses as its shape prior."""

from __future__ import annotations

import click

from sslbench.benchmark.cli.common import data_option, friendly_errors, preset_option, set_option
from sslbench.benchmark.config import DEFAULT_SEEDS, build_config, parse_sets


@click.group("dae")
def dae():
    """The labeling-representation DAE (lrep's prior), trained on a split's labeled masks only."""


@dae.command("train")
@click.option(
    "--split", default="8/72", show_default=True, help="N/M: the DAE learns the first N train masks."
)
@click.option("--seed", type=int, default=DEFAULT_SEEDS[0], show_default=True)
@data_option
@preset_option
@set_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
@friendly_errors
def train_cmd(split, seed, data_root, preset, sets, quiet):
    """Train (or load from the cache) the DAE of a split and seed; print its reconstruction report.

    The DAE is the one an lrep run with the same options would use (e.g. --set lrep.dae_iterations=2000).
    """
    from sslbench.benchmark.training.errors import RunFailed
    from sslbench.benchmark.training.trainer import prepare_assets
    from sslbench.methods.base import PreparationError

    cfg = build_config("lrep", split, seed, preset, parse_sets(sets), data_root)
    try:
        info = prepare_assets(cfg, progress=not quiet)["dae"]
    except PreparationError as exc:
        raise RunFailed(str(exc)) from None
    report = info["report"]
    ids = info["key"]["labeled_ids"]
    click.echo(
        f"DAE for {cfg.split} seed {cfg.seed} ({len(ids)} labeled masks: {', '.join(ids[:4])}"
        f"{', ...' if len(ids) > 4 else ''})"
    )
    click.echo(f"  {'trained now' if info['built_now'] else 'loaded from cache'}: {info['cache']}")
    curve = " ".join(f"{v:.3f}" for v in report.get("loss_curve", [report["final_loss"]]))
    click.echo(
        f"  {report['iterations']} iterations (lr halved every {report['halve_every']}), "
        f"{report['train_s']:.1f} s training; {report['loss']} loss by tenths: {curve}"
    )
    click.echo(
        f"  reconstruction Dice on {report['eval_samples']} corrupted crops of the labeled masks: "
        f"corrupted input {100 * report['dice_corrupted_vs_clean']:.2f}%  ->  "
        f"DAE output {100 * report['dice_dae_vs_clean']:.2f}%; on clean input "
        f"{100 * report['dice_dae_on_clean_vs_clean']:.2f}%"
    )
    click.echo(
        "  it denoises (its output is closer to the clean mask than its corrupted input)"
        if report.get("denoises")
        else "  WARNING: it does not denoise (its output is farther from the clean mask than its corrupted "
        "input), so lrep's uncertainty would mostly measure its reconstruction error"
    )
    if "holdout_n" in report:
        click.echo(
            f"  probe DAE without the last {report['holdout_n']} labeled mask(s), on those: corrupted "
            f"{100 * report['holdout_dice_corrupted_vs_clean']:.2f}%  ->  "
            f"DAE {100 * report['holdout_dice_dae_vs_clean']:.2f}%; on clean input "
            f"{100 * report['holdout_dice_dae_on_clean_vs_clean']:.2f}% "
            f"({'denoises' if report.get('holdout_denoises') else 'does not denoise'})"
        )
