"""`bench run`: a sweep of methods x splits x seeds, local (every GPU, or shared CPU cores) or on a Dask cluster.

The command parses options, prints the plan, calls `sweep.run_sweep`, and prints what happened and the
mean ± sample std of each configuration. Re-running the same command skips finished runs.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
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
    tensorboard_option,
    writable_dir,
)
from sslbench.benchmark.config import NON_RESULT_KEYS, ConfigError, RunConfig, config_warnings
from sslbench.benchmark.reporting.format import mean_std, text_table
from sslbench.benchmark.runs.folder import RunOutcome, find_run_dir, is_finished
from sslbench.benchmark.sweep.grid import MAX_SEEDS, default_seeds, expand_grid


def parse_seed_list(text: str) -> list[int]:
    """'1,2,3' -> [1, 2, 3]; a non-integer, negative or repeated seed is a ConfigError."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or any(s < 0 for s in seeds):
        raise ConfigError(f"--seed-list {text}: expected comma-separated non-negative integers, e.g. 1,2,3")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seed-list {text}: a seed is repeated")
    if len(seeds) > MAX_SEEDS:
        raise ConfigError(f"--seed-list: {len(seeds)} seeds; at most {MAX_SEEDS}")
    return seeds


def _flat_settings(cfg: RunConfig) -> dict[str, str]:
    d = cfg.to_dict()
    out = {}
    for section in ("data", "train", "eval", cfg.method):
        for key, value in (d.get(section) or {}).items():
            out[f"{section}.{key}"] = json.dumps(value, default=str)
    return {k: v for k, v in out.items() if k not in NON_RESULT_KEYS}


def group_keys(configs: list[RunConfig]) -> dict[str, tuple[str, str, str, str]]:
    """run name -> (method, variant, split, settings): the settings that vary among runs of one method and split
    (e.g. `lrep.beta=2` in a beta sweep), so such runs form separate rows instead of one average."""
    groups: dict[tuple[str, str, str], list[RunConfig]] = defaultdict(list)
    for cfg in configs:
        groups[(cfg.method, cfg.variant, cfg.split)].append(cfg)
    keys = {}
    for (method, variant, split), cfgs in groups.items():
        flats = [_flat_settings(c) for c in cfgs]
        varying = sorted({k for f in flats for k in f if len({g.get(k) for g in flats}) > 1})
        for cfg, flat in zip(cfgs, flats, strict=True):
            label = ", ".join(f"{k}={flat.get(k, '-')}" for k in varying)
            keys[cfg.run_name()] = (method, variant or "-", split, label or "-")
    return keys


def _key_header(show_settings: bool) -> tuple[str, ...]:
    return ("method", "variant", "split", "settings") if show_settings else ("method", "variant", "split")


def _key_cells(key: tuple[str, str, str, str], show_settings: bool) -> tuple[str, ...]:
    return key if show_settings else key[:3]


def plan_table(configs: list[RunConfig], out: Path) -> str:
    keys = group_keys(configs)
    rows: dict[tuple, dict] = {}
    for cfg in configs:
        row = rows.setdefault(keys[cfg.run_name()], {"seeds": [], "done": 0})
        row["seeds"].append(cfg.seed)
        row["done"] += is_finished(cfg, find_run_dir(out, cfg))
    show = any(k[3] != "-" for k in rows)
    header = (*_key_header(show), "seeds", "#runs", "done")
    body = [
        (*_key_cells(k, show), ",".join(map(str, r["seeds"])), len(r["seeds"]), r["done"])
        for k, r in rows.items()
    ]
    return text_table(header, body)


def results_table(outcomes: list[RunOutcome]) -> str:
    """Mean ± sample std over seeds of each configuration (finished runs), with the failed count."""
    keys = group_keys([o.cfg for o in outcomes])
    groups: dict[tuple, list[RunOutcome]] = defaultdict(list)
    for o in outcomes:
        groups[keys[o.cfg.run_name()]].append(o)
    show = any(k[3] != "-" for k in groups)
    header = (
        *_key_header(show),
        "Dice %",
        "Jaccard %",
        "HD95 vox",
        "ASD vox",
        "sec/iter",
        "n seeds",
        "failed",
    )
    body = []
    for key, group in groups.items():
        ms = [o.metrics for o in group if o.metrics]
        body.append(
            (
                *_key_cells(key, show),
                mean_std([m["dice"] for m in ms], 100),
                mean_std([m["jaccard"] for m in ms], 100),
                mean_std([m["hd95_vox"] for m in ms]),
                mean_std([m["asd_vox"] for m in ms]),
                mean_std([(m.get("cost") or {}).get("sec_per_iter_median") for m in ms], digits=3),
                len(ms),
                sum(o.status == "failed" for o in group),
            )
        )
    return text_table(header, body)


def expanded_methods(configs: list[RunConfig]) -> str:
    """The methods (and variants) a grid holds, in order; those from installed plugins marked."""
    from sslbench.methods.registry import get_method

    names = []
    for cfg in configs:
        name = cfg.method + (f":{cfg.variant}" if cfg.variant else "")
        if get_method(cfg.method).source != "builtin":
            name += f" (plugin {get_method(cfg.method).source})"
        names.append(name)
    return ", ".join(dict.fromkeys(names))


def data_name(root: str | None) -> str:
    """What a progress or summary line calls the data: the built-in dataset's name, or the folder's."""
    if root is None:
        from sslbench.datasets.default import default_dataset_name

        return f"{default_dataset_name()} (built-in synthetic)"
    return Path(root).name


def _backend_line(backend: str, scheduler: str | None, jobs: int | None, runs_per_gpu: int) -> str:
    if backend == "dask":
        return (
            f"backend: dask, scheduler {scheduler}"
            if scheduler
            else f"backend: dask, local cluster of {jobs or 1}"
        )
    from sslbench.benchmark.sweep.local import local_slots

    devices, threads = local_slots(jobs, runs_per_gpu)
    where = ", ".join(sorted(set(d for d in devices if d))) or "cpu"
    per_run = f", {threads} threads per run" if threads else ""
    return f"backend: local, {len(devices)} worker(s) on {where}{per_run}"


@click.command("run")
@click.option(
    "--methods",
    default="all",
    show_default=True,
    help="'all' (every semi-supervised method and its variants, plus sup at N/0) or NAME,NAME; "
    "NAME:VARIANT picks one variant.",
)
@click.option(
    "--split",
    "splits",
    multiple=True,
    default=("8/72",),
    show_default=True,
    help="N/M, repeatable. sup runs at N/0; add --split 80/0 for the upper bound.",
)
@click.option(
    "--seeds",
    "n_seeds",
    type=int,
    default=3,
    show_default=True,
    help="Number of fixed seeds (1337, 1338, 1339, then 1340...).",
)
@click.option("--seed-list", default=None, metavar="S,S,...", help="Explicit seeds instead of --seeds.")
@click.option(
    "--subsets",
    type=int,
    default=1,
    show_default=True,
    help="Labeled subsets per split: subset 0 is the first N of train.list (the literature), the others are "
    "drawn with a fixed seed; tables and the report then show subset variance beside seed variance.",
)
@data_option
@preset_option
@recipe_option
@config_option
@tensorboard_option
@set_option
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Parent folder of the run folders [default: runs/].",
)
@execution_options
@click.option(
    "--force",
    is_flag=True,
    help="Redo finished runs (their folders are renamed RUN.replaced-<UTC time>, not deleted).",
)
@click.option("--quiet", is_flag=True, help="No progress bars: one line per finished run.")
@click.pass_context
@friendly_errors
def run(
    ctx,
    methods,
    splits,
    n_seeds,
    seed_list,
    subsets,
    data_root,
    preset,
    recipe,
    config_file,
    tensorboard,
    sets,
    out,
    jobs,
    backend,
    scheduler,
    runs_per_gpu,
    force,
    quiet,
):
    """Run a sweep: every method x split x seed; finished runs are skipped, failures recorded and reported."""
    import sslbench.methods  # noqa: F401  (registers the built-in methods when called without `main`)

    if seed_list is not None:
        if ctx.get_parameter_source("n_seeds") == click.core.ParameterSource.COMMANDLINE:
            raise ConfigError("use either --seeds or --seed-list, not both")
        seeds = parse_seed_list(seed_list)
    else:
        seeds = default_seeds(n_seeds)
    if scheduler and backend != "dask":
        raise ConfigError("--scheduler needs --backend dask")
    configs = expand_grid(
        methods,
        list(splits),
        seeds,
        preset,
        merged_sets(config_file, sets)[1],
        data_root,
        recipe=recipe,
        subsets=subsets,
    )
    for note in dict.fromkeys(n for c in configs for n in config_warnings(c)):
        click.echo(f"warning: {note}", err=True)
    out = writable_dir(out or default_out())
    where = _backend_line(backend, scheduler, jobs, runs_per_gpu)
    data = data_name(configs[0].data.root) if configs else "-"
    click.echo(f"sweep: {len(configs)} runs on {data} into {out}  ({where})")
    if "all" in [m.strip() for m in methods.split(",")]:
        click.echo(f"--methods all = {expanded_methods(configs)}")
    click.echo(plan_table(configs, out))
    from sslbench.benchmark.sweep.runner import run_sweep, summarize_outcomes

    outcomes = run_sweep(configs, out, jobs, backend, scheduler, runs_per_gpu, force, progress=not quiet)
    counts = summarize_outcomes(outcomes)
    elsewhere = (
        f", {counts['elsewhere']} running elsewhere (re-run later to collect them)"
        if counts["elsewhere"]
        else ""
    )
    click.echo(
        f"\n{counts['done']} done, {counts['skipped']} skipped (already finished), {counts['failed']} failed"
        + elsewhere
    )
    for o in outcomes:
        if o.status == "failed":
            click.echo(
                f"  FAILED {o.cfg.method} {o.cfg.split} s{o.cfg.seed}: {o.error}  ({o.run_dir}/failed.json)"
            )
    click.echo(f"\nresults on {data} (mean ± sample std over seeds):\n" + results_table(outcomes))
    if counts["failed"]:
        sys.exit(1)
