"""`bench show-uncertainty`: lrep's DAE reconstruction and uncertainty on one case of a finished run, as a PNG."""

from __future__ import annotations

from pathlib import Path

import click

from sslbench.benchmark.cli.common import data_option, friendly_errors


@click.command("show-uncertainty")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--case", "case_id", required=True, help="A case id of the run's dataset (e.g. a test case).")
@click.option("--slice", "slice_k", type=int, default=None, help="Axial slice (default: most foreground).")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="PNG path (default: RUN_DIR/uncertainty_<case>_z<slice>.png).",
)
@click.option("--net", type=click.Choice(["teacher", "student"]), default="teacher", show_default=True)
@data_option
@friendly_errors
def show_uncertainty(run_dir, case_id, slice_k, out, net, data_root):
    """Plot an lrep run's prediction, DAE reconstruction and uncertainty on one slice of a case."""
    from sslbench.benchmark.reporting.uncertainty import write_uncertainty_png

    path, view, k = write_uncertainty_png(run_dir, case_id, slice_k, out, net, data_root)
    click.echo(f"{path}  (case {case_id}, {view.role}, slice {k}; DAE {view.dae_cache})")
