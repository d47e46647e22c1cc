"""`bench train`, `bench eval` and `bench methods`: one run, its re-evaluation, and the registry's listing."""

from __future__ import annotations

from pathlib import Path

import click

from sslbench.benchmark.cli.common import (
    data_option,
    default_out,
    friendly_errors,
    preset_option,
    recipe_option,
    set_option,
    writable_dir,
)
from sslbench.benchmark.config import DEFAULT_SEEDS, build_config, parse_sets
from sslbench.benchmark.runs.folder import CONFIG_FILE


@click.command()
@click.option("--method", required=True, help="A registered method (see `bench methods`).")
@click.option(
    "--split", default="8/72", show_default=True, help="N/M: first N train cases labeled, next M not."
)
@click.option("--seed", type=int, default=DEFAULT_SEEDS[0], show_default=True)
@data_option
@preset_option
@recipe_option
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Parent folder of the run folder.")
@set_option
@click.option("--resume", is_flag=True, help="Continue from the run folder's last checkpoint.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@friendly_errors
def train(method, split, seed, data_root, preset, recipe, out, sets, resume, quiet):
    """Train and evaluate one run; writes config.json, log.jsonl, cases.csv, metrics.json and weights."""
    from sslbench.benchmark.training.trainer import train_run

    cfg = build_config(method, split, seed, preset, parse_sets(sets), data_root, recipe)
    run_dir = writable_dir(out or default_out()) / cfg.run_name()
    click.echo(f"run folder: {run_dir}", err=True)
    metrics = train_run(cfg, run_dir, progress=not quiet, resume=resume)
    cost = metrics["cost"]
    click.echo(
        f"{cfg.method} {cfg.split} seed {cfg.seed}: Dice {100 * metrics['dice']:.2f}%  "
        f"Jaccard {100 * metrics['jaccard']:.2f}%  HD95 {metrics['hd95_vox']:.2f} vox ({metrics['hd95_mm']:.2f} mm)  "
        f"ASD {metrics['asd_vox']:.2f} vox  | {cost['sec_per_iter_median']:.3f} s/iter, "
        f"{cost['total_wall_s']:.0f} s total"
    )


@click.command("eval")
@click.argument("run_dir", type=click.Path(path_type=Path))
@data_option
@click.option("--quiet", is_flag=True)
@friendly_errors
def eval_cmd(run_dir, data_root, quiet):
    """Re-evaluate a finished run's final weights."""
    from sslbench.benchmark.training.errors import RunFailed
    from sslbench.benchmark.training.trainer import evaluate_run

    if not (run_dir / CONFIG_FILE).is_file():
        raise RunFailed(f"{run_dir}: not a run folder (no config.json)")
    m = evaluate_run(run_dir, data_root, progress=not quiet)
    click.echo(
        f"Dice {100 * m['dice']:.2f}%  Jaccard {100 * m['jaccard']:.2f}%  HD95 {m['hd95_vox']:.2f} vox  "
        f"ASD {m['asd_vox']:.2f} vox  ({m['n_cases']} cases, {m['n_empty_pred']} empty predictions)"
    )


@click.command()
def methods():
    """List the registered methods with their #K (passes per unlabeled volume for uncertainty)."""
    from sslbench.benchmark.reporting.format import text_table
    from sslbench.methods.registry import discover, list_methods

    for problem in discover():
        click.echo(f"warning: {problem}", err=True)
    rows = [
        (m.name, m.k_label, m.family, ", ".join(m.variants) or "-", ", ".join(m.aliases) or "-", m.paper)
        for m in list_methods()
    ]
    click.echo(text_table(("method", "#K", "family", "variants", "aliases", "reference"), rows))
