"""`bench train`, `bench eval` and `bench methods`: one run, its re-evaluation, and the registry's listing."""

from __future__ import annotations

from pathlib import Path

import click

from sslbench.benchmark.cli.common import (
    config_option,
    data_option,
    default_out,
    friendly_errors,
    merged_sets,
    preset_option,
    recipe_option,
    set_option,
    tensorboard_option,
    writable_dir,
)
from sslbench.benchmark.config import (
    DEFAULT_SEEDS,
    ConfigError,
    build_config,
    config_from_dict,
    config_warnings,
    parse_sets,
    printable_config,
)
from sslbench.benchmark.runs.folder import CONFIG_FILE, read_json_object


def _prepare_folder(cfg, run_dir: Path, force: bool) -> bool:
    """Make `run_dir` ready for training; False when it holds this finished run (nothing to do).

    A finished run is final: it is reused (made with the same threads, device and precision) or refused (made
    with others), and only `force` sets it aside (RUN.replaced-<UTC time>). A damaged one is set aside too.
    """
    from sslbench.benchmark.runs.folder import (
        execution_mismatch,
        finished_state,
        read_json_object,
        recorded_execution,
        set_aside,
    )
    from sslbench.benchmark.runs.lock import live_owner
    from sslbench.benchmark.training.trainer import expected_execution

    state, why = finished_state(cfg, run_dir)
    if state == "finished" and not force:
        recorded = recorded_execution(read_json_object(run_dir / CONFIG_FILE) or {})
        mismatch = execution_mismatch(recorded, expected_execution(cfg))
        if mismatch:
            raise ConfigError(
                f"{run_dir}: finished run {mismatch}; these settings change the numbers, so it is not reused: "
                "train with the same ones (--set train.threads=N, --set train.device=...), another --out, or "
                "--force to redo it (the old folder is kept)"
            )
        return False
    if run_dir.exists() and (state == "damaged" or force) and live_owner(run_dir) is None:
        aside = set_aside(run_dir)
        reason = f"damaged ({why})" if state == "damaged" else "--force"
        click.echo(f"{run_dir.name}: {reason}; the old folder is kept as {aside.name}", err=True)
    return True


def resolve_train_config(ctx, method, split, seed, data_root, preset, recipe, config_file, sets, from_config):
    """The run config of `bench train`: from --from's config.json, or the options, a --config file and --set.

    A key given both as an option and in the config file must agree; an option left at its default takes the
    file's value.
    """
    if from_config is not None:
        if config_file is not None or method is not None:
            raise ConfigError(
                "--from re-runs a recorded config: give it alone (plus --out, --set train.threads...)"
            )
        record = read_json_object(from_config) if Path(from_config).is_file() else None
        if record is None:
            raise ConfigError(f"--from {from_config}: not a readable run config.json")
        for section, values in _nested(
            parse_sets(sets)
        ).items():  # e.g. --set train.threads=1 for this machine
            record = {**record, section: {**(record.get(section) or {}), **values}}
        return config_from_dict(record)
    identity, overrides = merged_sets(config_file, sets, allow_identity=True)
    given = {"method": method, "split": split, "seed": seed, "preset": preset, "recipe": recipe}
    for key, value in identity.items():
        if key == "variant":
            continue
        explicit = (
            key == "method"
            and method is not None
            or (key != "method" and ctx.get_parameter_source(key) != click.core.ParameterSource.DEFAULT)
        )
        if explicit and str(given[key]) != str(value):
            raise ConfigError(f"--{key} {given[key]} but --config {config_file} says {key}: {value}")
        given[key] = value
    if given["method"] is None:
        raise ConfigError("--method: which method to train (see `bench methods`), or --config / --from")
    return build_config(
        str(given["method"]), str(given["split"]), int(given["seed"]), str(given["preset"]), overrides, data_root,
        str(given["recipe"]),
    )  # fmt: skip


def _nested(sets: dict[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for key, value in sets.items():
        section, _, name = key.partition(".")
        out.setdefault(section, {})[name] = value
    return out


@click.command()
@click.option("--method", default=None, help="A registered method (see `bench methods`).")
@click.option(
    "--split", default="8/72", show_default=True, help="N/M: first N train cases labeled, next M not."
)
@click.option("--seed", type=int, default=DEFAULT_SEEDS[0], show_default=True)
@data_option
@preset_option
@recipe_option
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Parent folder of the run folder.")
@config_option
@tensorboard_option
@set_option
@click.option(
    "--from",
    "from_config",
    type=click.Path(path_type=Path),
    default=None,
    help="Re-run a run exactly: its RUN_DIR/config.json (method, split, seed, preset and every setting).",
)
@click.option("--print-config", is_flag=True, help="Print the fully resolved config as YAML and exit.")
@click.option("--resume", is_flag=True, help="Continue from the run folder's last checkpoint.")
@click.option(
    "--force",
    is_flag=True,
    help="Redo a finished run (its folder is renamed RUN.replaced-<UTC time>, not deleted).",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@friendly_errors
@click.pass_context
def train(
    ctx, method, split, seed, data_root, preset, recipe, out, config_file, tensorboard, sets, from_config,
    print_config, resume, force, quiet,
):  # fmt: skip
    """Train and evaluate one run; writes config.json, log.jsonl, cases.csv, metrics.json and weights.

    A finished run is never retrained or rewritten: the command says where it is and exits 0 (--force redoes it).
    """
    from sslbench.benchmark.cli.run import data_name
    from sslbench.benchmark.training.trainer import check_method_fits_data, train_run

    if tensorboard:
        sets = (*sets, "train.tensorboard=true")
    cfg = resolve_train_config(
        ctx, method, split, seed, data_root, preset, recipe, config_file, sets, from_config
    )
    if print_config:
        click.echo(printable_config(cfg), nl=False)
        return
    for note in config_warnings(cfg):
        click.echo(f"warning: {note}", err=True)
    check_method_fits_data(cfg)  # a binary-only method on C > 2 classes: refused before any run folder exists
    run_dir = writable_dir(out or default_out()) / cfg.run_name()
    if not _prepare_folder(cfg, run_dir, force):
        click.echo(
            f"already finished: {run_dir} (nothing trained; --force redoes it, keeping the old folder)"
        )
        return
    click.echo(f"run folder: {run_dir}", err=True)
    metrics = train_run(cfg, run_dir, progress=not quiet, resume=resume)
    cost = metrics["cost"]
    click.echo(
        f"{cfg.method} {cfg.split} seed {cfg.seed} on {data_name(cfg.data.root)}: Dice {100 * metrics['dice']:.2f}%  "
        f"Jaccard {100 * metrics['jaccard']:.2f}%  HD95 {metrics['hd95_vox']:.2f} vox ({metrics['hd95_mm']:.2f} mm)  "
        f"ASD {metrics['asd_vox']:.2f} vox  | {cost['sec_per_iter_median']:.3f} s/iter, "
        f"{cost['total_wall_s']:.0f} s total"
    )


@click.command("eval")
@click.argument("run_dir", type=click.Path(path_type=Path))
@data_option
@click.option("--force", is_flag=True, help="Redo an existing evaluation (the old one is kept, renamed).")
@click.option("--quiet", is_flag=True)
@friendly_errors
def eval_cmd(run_dir, data_root, force, quiet):
    """Evaluate a finished run's final weights (on its own or another --data folder).

    The run folder is left as it is: the results go to a sibling RUN.eval-<dataset>-<hash>/ (eval.json records
    what was evaluated, then cases.csv and metrics.json).
    """
    from sslbench.benchmark.training.errors import RunFailed
    from sslbench.benchmark.training.trainer import evaluate_run

    if not (run_dir / CONFIG_FILE).is_file():
        raise RunFailed(f"{run_dir}: not a run folder (no config.json)")
    m, eval_dir, now = evaluate_run(run_dir, data_root, progress=not quiet, force=force)
    click.echo(
        f"Dice {100 * m['dice']:.2f}%  Jaccard {100 * m['jaccard']:.2f}%  HD95 {m['hd95_vox']:.2f} vox  "
        f"ASD {m['asd_vox']:.2f} vox  ({m['n_cases']} cases, {m['n_empty_pred']} empty predictions)  "
        f"{'written to' if now else 'already evaluated, in'} {eval_dir}"
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
