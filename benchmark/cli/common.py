"""What every `bench` command shares: error handling and the common options."""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
from pathlib import Path

import click

from sslbench.benchmark.config import PRESETS, RECIPES, ConfigError
from sslbench.datasets.errors import DatasetError
from sslbench.methods.registry import UnknownMethodError

USAGE_ERRORS = (ConfigError, UnknownMethodError, DatasetError)


INTERRUPTED = (
    "finished runs are kept, interrupted ones resume from their last checkpoint; "
    "re-run the same command to resume"
)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (a scheduler's or `kill`'s stop) unwinds like Ctrl-C, so locks and files are left in order."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. a test runner's worker thread): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def friendly_errors(fn):
    """Turn the library's expected errors into one line on stderr and an exit code (2 usage, 1 run failure)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from sslbench.benchmark.training.errors import RunFailed
        from sslbench.methods.base import PreparationError

        try:
            with _sigterm_as_interrupt():
                return fn(*args, **kwargs)
        except KeyboardInterrupt:
            # Finished runs are final and interrupted ones keep their checkpoints; locks are released on the way.
            click.echo(f"interrupted: {INTERRUPTED}", err=True)
            sys.exit(130)
        except USAGE_ERRORS as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except (RunFailed, PreparationError) as exc:
            click.echo(f"run failed: {exc}", err=True)
            sys.exit(1)

    return wrapper


def default_out() -> Path:
    return Path("runs")


def writable_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"--out {path}: cannot write there ({exc.strerror or exc})") from None
    return path


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
recipe_option = click.option(
    "--recipe",
    type=click.Choice(list(RECIPES)),
    default="benchmark",
    show_default=True,
    help="benchmark = every method under one protocol (equal budget); published = each method's own authors' "
    "iterations, lr and batch (recorded in config.json, shown in table captions).",
)
tensorboard_option = click.option(
    "--tensorboard",
    is_flag=True,
    help="Also write TensorBoard scalars to RUN/tensorboard (= --set train.tensorboard=true).",
)
config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    default=None,
    help="A YAML or JSON file of the same keys as --set (nested sections or section.key); --set wins.",
)
set_option = click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config field, e.g. train.iterations=500 or mt.w=0.2 (repeatable).",
)


def execution_options(fn):
    """--jobs, --backend, --scheduler and --runs-per-gpu: where the runs of a sweep go (bench run, bench table)."""
    options = [
        click.option(
            "--jobs",
            type=int,
            default=None,
            help="Parallel runs [default: one per GPU (x --runs-per-gpu), else one per CPU core up to 8]. "
            "CPU cores are shared out.",
        ),
        click.option("--backend", type=click.Choice(["local", "dask"]), default="local", show_default=True),
        click.option(
            "--scheduler",
            default=None,
            metavar="ADDRESS",
            help="Dask scheduler, e.g. tcp://10.0.0.5:8786 (without it: a local Dask cluster of --jobs).",
        ),
        click.option(
            "--runs-per-gpu", type=int, default=1, show_default=True, help="Pack several small runs per GPU."
        ),
    ]
    for option in reversed(options):  # click lists options in decorator order, top first
        fn = option(fn)
    return fn


def merged_sets(
    config_file: Path | None, sets: tuple[str, ...], allow_identity: bool = False, tensorboard: bool = False
) -> tuple[dict, dict]:
    """(identity keys of the config file, its overrides updated with --set): --set wins over the file."""
    from sslbench.benchmark.config import load_config_file, parse_sets, split_identity

    identity, overrides = split_identity(load_config_file(config_file) if config_file else {})
    if identity and not allow_identity:
        raise ConfigError(
            f"--config {config_file}: {', '.join(identity)} are `bench train` keys; this command takes them as "
            "its own options (--methods, --split, --seed-list, --preset, --recipe)"
        )
    tb = {"train.tensorboard": "true"} if tensorboard else {}
    return identity, {**overrides, **tb, **parse_sets(sets)}
