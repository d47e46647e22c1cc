"""`bench table` (regenerate the paper's Tables 1-4) and `bench report` (one page with every table and plot)."""

from __future__ import annotations

from pathlib import Path

import click

from sslbench.benchmark.cli.common import (
    config_option,
    data_option,
    default_out,
    execution_options,
    friendly_errors,
    merged_sets,
    preset_option,
    recipe_option,
    set_option,
    writable_dir,
)
from sslbench.benchmark.config import ConfigError


@click.command("table")
@click.argument("which", type=click.Choice(["1", "2", "3", "4", "5", "all"]))
@data_option
@preset_option
@recipe_option
@click.option(
    "--seeds",
    "n_seeds",
    type=int,
    default=3,
    show_default=True,
    help="Seeds per row: the fixed seeds 1337, 1338, 1339, then 1340...",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder of the run folders (default: runs/). Finished runs there are reused, not retrained.",
)
@execution_options
@click.option(
    "--render-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where table<N>.md/.tex/.csv go (default: OUT/tables, next to the runs they come from).",
)
@click.option(
    "--run/--no-run",
    "run",
    default=True,
    show_default=True,
    help="--no-run renders from the finished runs only, training nothing.",
)
@click.option(
    "--paper-columns",
    is_flag=True,
    help="Show the paper's numbers and the differences even beside runs that are not the LA data at full "
    "resolution under the paper preset (by default they are left out there, and the caption says why).",
)
@config_option
@set_option
@friendly_errors
def table(
    which,
    data_root,
    preset,
    recipe,
    n_seeds,
    out,
    jobs,
    backend,
    scheduler,
    runs_per_gpu,
    render_dir,
    run,
    paper_columns,
    config_file,
    sets,
):
    """Regenerate the paper's Table 1, 2, 3, 4 (or all four), or Table 5: every registered method at 8/72 and
    16/64 beside each method's own reported numbers. Runs what is missing, then renders.

    Rows shared between tables (e.g. Ours at beta 1, lambda 0.1) are the same runs, trained once. Rows whose
    method is not registered are left empty with a note.
    """
    from sslbench.benchmark.reporting.tables.pipeline import run_tables
    from sslbench.benchmark.reporting.tables.render import to_markdown
    from sslbench.benchmark.reporting.tables.specs import PAPER_TABLES
    from sslbench.benchmark.sweep.grid import default_seeds
    from sslbench.benchmark.sweep.runner import summarize_outcomes

    numbers = list(PAPER_TABLES) if which == "all" else [int(which)]
    out = writable_dir(out or default_out())
    render_dir = writable_dir(render_dir or out / "tables")
    results, outcomes = run_tables(
        numbers,
        out,
        render_dir,
        default_seeds(n_seeds),
        preset,
        merged_sets(config_file, sets)[1],
        data_root,
        recipe=recipe,
        run=run,
        paper_columns=True if paper_columns else None,
        jobs=jobs,
        backend=backend,
        scheduler=scheduler,
        runs_per_gpu=runs_per_gpu,
    )
    if outcomes:
        counts = summarize_outcomes(outcomes)
        click.echo(
            f"runs: {counts['done']} trained, {counts['skipped']} already finished, {counts['failed']} failed",
            err=True,
        )
    for result in results:
        click.echo(to_markdown(result))
    click.echo(f"tables written to {render_dir} (table<N>.md, .tex, .csv)", err=True)


@click.command("report")
@click.argument("results_dir", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder of report.md, tables/ and figures/ (default: RESULTS_DIR/report).",
)
@click.option(
    "--qualitative/--no-qualitative",
    default=True,
    show_default=True,
    help="The qualitative figure re-runs inference from model.pt (one test case per method).",
)
@friendly_errors
def report(results_dir, out, qualitative):
    """Write report.md: every experiment (mean±std over seeds), the paper's tables, significance, and plots."""
    from sslbench.benchmark.reporting.report import build_report

    if not results_dir.is_dir():
        raise ConfigError(f"RESULTS_DIR {results_dir}: not a folder")
    if out is not None:
        writable_dir(out)
    try:
        path = build_report(results_dir, out, qualitative=qualitative)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"report written to {path}")
