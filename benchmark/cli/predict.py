"""`bench predict`: write a finished run's predicted masks as NIfTI (origin 0, the dataset's spacing)."""

from __future__ import annotations

from pathlib import Path

import click

from sslbench.benchmark.cli.common import data_option, friendly_errors


@click.command("predict")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for <case>.nii.gz files.")
@data_option
@click.option("--case", "case_ids", multiple=True, help="A case id (repeatable; default: every test case).")
@click.option("--quiet", is_flag=True)
@friendly_errors
def predict(run_dir, out, data_root, case_ids, quiet):
    """Write the predicted mask of each test case as NIfTI, for ITK-SNAP or 3D Slicer."""
    from sslbench.benchmark.evaluation.predict import predict_run

    written = predict_run(run_dir, out, data_root, list(case_ids) or None, progress=not quiet)
    click.echo(f"wrote {len(written)} masks to {out}")
