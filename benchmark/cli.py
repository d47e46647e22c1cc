"""The `bench` command line. Each command parses options and calls one library function."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from sslbench.benchmark.config import DEFAULT_SEEDS, PRESETS, ConfigError, build_config, parse_sets
from sslbench.datasets.la import DatasetError
from sslbench.methods.registry import UnknownMethodError

USAGE_ERRORS = (ConfigError, UnknownMethodError, DatasetError)


def friendly_errors(fn):
    """Turn the library's expected errors into one line on stderr and an exit code (2 usage, 1 run failure)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from sslbench.benchmark.trainer import RunFailed

        try:
            return fn(*args, **kwargs)
        except USAGE_ERRORS as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except RunFailed as exc:
            click.echo(f"run failed: {exc}", err=True)
            sys.exit(1)

    return wrapper


def default_out() -> Path:
    return Path("runs")


def _writable_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"--out {path}: cannot write there ({exc.strerror or exc})") from None
    return path


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sslbench")
def main():
    """sslbench: semi-supervised 3D segmentation methods on LA, one protocol, tables with mean±std."""
    import sslbench.methods  # noqa: F401  (registers the built-in methods)


data_option = click.option(
    "--data",
    "data_root",
    type=str,
    default=None,
    help="LA-layout data folder (default: the built-in synthetic dataset).",
)
preset_option = click.option(
    "--preset",
    type=click.Choice(list(PRESETS)),
    default="quick",
    show_default=True,
    help="paper = the LA protocol (GPU); quick = CPU proxy; smoke = seconds.",
)
set_option = click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config field, e.g. train.iterations=500 or mt.w=0.2 (repeatable).",
)


@main.command()
@click.option("--method", required=True, help="A registered method (see `bench methods`).")
@click.option(
    "--split", default="8/72", show_default=True, help="N/M: first N train cases labeled, next M not."
)
@click.option("--seed", type=int, default=DEFAULT_SEEDS[0], show_default=True)
@data_option
@preset_option
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Parent folder of the run folder.")
@set_option
@click.option("--resume", is_flag=True, help="Continue from the run folder's last checkpoint.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@friendly_errors
def train(method, split, seed, data_root, preset, out, sets, resume, quiet):
    """Train and evaluate one run; writes config.json, log.jsonl, cases.csv, metrics.json and weights."""
    from sslbench.benchmark.trainer import train_run

    cfg = build_config(method, split, seed, preset, parse_sets(sets), data_root)
    run_dir = _writable_dir(out or default_out()) / cfg.run_name()
    click.echo(f"run folder: {run_dir}", err=True)
    metrics = train_run(cfg, run_dir, progress=not quiet, resume=resume)
    cost = metrics["cost"]
    click.echo(
        f"{cfg.method} {cfg.split} seed {cfg.seed}: Dice {100 * metrics['dice']:.2f}%  "
        f"Jaccard {100 * metrics['jaccard']:.2f}%  HD95 {metrics['hd95_vox']:.2f} vox ({metrics['hd95_mm']:.2f} mm)  "
        f"ASD {metrics['asd_vox']:.2f} vox  | {cost['sec_per_iter_median']:.3f} s/iter, "
        f"{cost['total_wall_s']:.0f} s total"
    )


@main.command("eval")
@click.argument("run_dir", type=click.Path(path_type=Path))
@data_option
@click.option("--quiet", is_flag=True)
@friendly_errors
def eval_cmd(run_dir, data_root, quiet):
    """Re-evaluate a finished run's final weights."""
    from sslbench.benchmark.trainer import RunFailed, evaluate_run

    if not (run_dir / "config.json").is_file():
        raise RunFailed(f"{run_dir}: not a run folder (no config.json)")
    m = evaluate_run(run_dir, data_root, progress=not quiet)
    click.echo(
        f"Dice {100 * m['dice']:.2f}%  Jaccard {100 * m['jaccard']:.2f}%  HD95 {m['hd95_vox']:.2f} vox  "
        f"ASD {m['asd_vox']:.2f} vox  ({m['n_cases']} cases, {m['n_empty_pred']} empty predictions)"
    )


@main.command()
def methods():
    """List the registered methods with their #K (passes per unlabeled volume for uncertainty)."""
    from sslbench.methods.registry import list_methods, load_plugins

    for problem in load_plugins():
        click.echo(f"warning: {problem}", err=True)
    rows = [
        (m.name, m.k_label, m.family, ", ".join(m.variants) or "-", ", ".join(m.aliases) or "-", m.paper)
        for m in list_methods()
    ]
    header = ("method", "#K", "family", "variants", "aliases", "reference")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


# Commands that live in their own modules: (module, attribute).
_COMMAND_MODULES = [
    ("cli_data", "data"),
    ("cli_run", "run"),
    ("cli_results", "table"),
    ("cli_results", "report"),
    ("cli_perf", "perf"),
    ("cli_dae", "dae"),
    ("cli_uncertainty", "show_uncertainty"),
]


def _add_commands() -> None:
    import importlib

    for module, attr in _COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"sslbench.benchmark.{module}")
        except ModuleNotFoundError as exc:  # TEMPORARY while the command modules land
            if exc.name != f"sslbench.benchmark.{module}":
                raise
            continue
        main.add_command(getattr(mod, attr))


_add_commands()
