"""`bench data ...`: generate the synthetic LA, check a dataset folder, convert the raw challenge download."""

from __future__ import annotations

from pathlib import Path

import click

from sslbench.datasets.synthetic import DEFAULT_DIFFICULTY, DEFAULT_SIZE


class _ProblemsFound(click.ClickException):
    exit_code = 2


@click.group("data")
def data() -> None:
    """Create, validate and prepare dataset folders (LA h5 layout, Decathlon / nnU-Net NIfTI)."""


@data.command("synth")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder to write the dataset to.")
@click.option("--cases", type=click.IntRange(2), default=100, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--size", type=click.IntRange(16), nargs=3, default=DEFAULT_SIZE, show_default=True, help="W H D"
)
@click.option("--n-train", type=click.IntRange(1), default=None, help="Cases in train.list [default: 80%].")
@click.option(
    "--difficulty",
    type=click.FloatRange(0),
    default=DEFAULT_DIFFICULTY,
    show_default=True,
    help="1 = the real LA's contrast and noise; 0 easy; above 1 harder (the default dataset uses 1.5).",
)
@click.option(
    "--classes",
    type=click.IntRange(2, 3),
    default=2,
    show_default=True,
    help="2 = the atrium; 3 = atrium body (with the appendage) and pulmonary veins as labels 1 and 2.",
)
def synth(
    out: Path,
    cases: int,
    seed: int,
    size: tuple[int, int, int],
    n_train: int | None,
    difficulty: float,
    classes: int,
):
    """Generate a synthetic LA-like dataset."""
    n_train = n_train if n_train is not None else max(1, round(0.8 * cases))
    if n_train >= cases:
        raise click.UsageError(f"--n-train {n_train} must be smaller than --cases {cases}")
    if (out / "dataset.json").exists():
        raise click.ClickException(f"{out}: already holds a dataset; choose another --out or delete it")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _ProblemsFound(f"--out {out}: cannot create the folder ({exc.strerror or exc})") from None
    from sslbench.datasets.synthetic import generate

    generate(
        out, cases=cases, seed=seed, size=size, n_train=n_train, progress=True, difficulty=difficulty,
        classes=classes,
    )  # fmt: skip
    click.echo(
        f"wrote {cases} cases ({n_train} train, {cases - n_train} test) of {'x'.join(map(str, size))} to {out}"
        + (f", {classes} classes" if classes != 2 else "")
    )


@data.command("check")
@click.argument("root", type=click.Path(path_type=Path))
def check(root: Path) -> None:
    """Validate a dataset folder; exit status 2 if anything is wrong."""
    from sslbench.datasets.readers import check_report

    report = check_report(root)
    if report.problems:
        for line in report.problems:
            click.echo(line)
        raise _ProblemsFound(f"{len(report.problems)} problem(s) in {root}")
    click.echo(f"OK: {report.summary()}")


@data.command("prepare-la")
@click.argument("raw_dir", type=click.Path(path_type=Path))
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="Folder to write the h5 layout to."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random crop margins.")
def prepare(raw_dir: Path, out: Path, seed: int) -> None:
    """Convert the raw 2018 challenge download (<ID>/lgemri.nrrd + laendo.nrrd) into the LA h5 layout."""
    try:
        from sslbench.datasets.prepare_la import prepare_la

        summary = prepare_la(raw_dir, out, seed=seed, progress=True)
    except FileNotFoundError as exc:
        raise _ProblemsFound(str(exc)) from exc
    for case_id, reason in summary["failed"].items():
        click.echo(f"failed: {case_id}: {reason}", err=True)
    if summary["missing"]:
        shown = ", ".join(summary["missing"][:10]) + (" ..." if len(summary["missing"]) > 10 else "")
        click.echo(f"missing from {raw_dir}: {len(summary['missing'])} listed case(s): {shown}", err=True)
    if summary["extra"]:
        click.echo(f"not in the protocol lists, skipped: {', '.join(summary['extra'])}", err=True)
    if not summary["converted"]:
        raise _ProblemsFound(f"{raw_dir}: no case could be converted")
    click.echo(
        f"converted {len(summary['converted'])} cases to {out}: {summary['n_train']} train, "
        f"{summary['n_test']} test, spacing {summary['spacing_mm']} mm"
    )


@data.command("prepare-pancreas")
@click.argument("raw_dir", type=click.Path(path_type=Path))
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="New folder to write the nifti layout to."
)
def prepare_pancreas_cmd(raw_dir: Path, out: Path) -> None:
    """Prepare Pancreas-CT NIfTI files (RAW/images + RAW/labels, or imagesTr + labelsTr) as the papers do:
    1 mm, CT window [-125, 275], crop around the label, z-score; MC-Net's 62/20 lists."""
    from sslbench.datasets.prepare_pancreas import PreparationFailed, prepare_pancreas

    try:
        summary = prepare_pancreas(raw_dir, out, progress=True)
    except PreparationFailed as exc:
        for line in exc.problems:
            click.echo(line)
        raise _ProblemsFound(
            f"{len(exc.problems)} problem(s) in {raw_dir}; nothing written to {out}"
        ) from None
    if summary["missing"]:
        shown = ", ".join(summary["missing"][:10]) + (" ..." if len(summary["missing"]) > 10 else "")
        click.echo(f"missing from {raw_dir}: {len(summary['missing'])} listed case(s): {shown}", err=True)
    if summary["extra"]:
        click.echo(f"not in MC-Net's lists, skipped: {', '.join(summary['extra'])}", err=True)
    click.echo(
        f"converted {len(summary['converted'])} cases to {out}: {summary['n_train']} train, {summary['n_test']} "
        f"test, 1 mm; labeled splits of the papers: --split 6/56 or 12/50 (bench data check {out})"
    )
