"""`bench table`: plan the rows' runs, train what is missing through the sweep runner, then render."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sslbench.benchmark.config import ConfigError, build_config, method_section
from sslbench.benchmark.reporting.tables.build import TableResult, build_table, describe_protocol
from sslbench.benchmark.reporting.tables.render import write_table
from sslbench.benchmark.reporting.tables.specs import TableSpec, row_configs, table_spec
from sslbench.methods.registry import UnknownMethodError, baseline_method, get_method


@dataclass
class TablePlan:
    spec: TableSpec
    configs: dict[int, list]  # row index -> RunConfigs (one per seed)
    errors: dict[int, str]  # row index -> why the row has no configs


def _check_sets(sets: dict[str, str], preset: str, data_root: str | None) -> None:
    """A bad --set is the user's error for the whole command (one line), not a note on every row."""
    shared = {k: v for k, v in sets.items() if method_section(k) is None}
    build_config(baseline_method().name, "8/0", preset=preset, sets=shared, data_root=data_root)
    for key in sets.keys() - shared.keys():
        method = method_section(key)  # ConfigError for a section that names no method
        split = "8/72" if get_method(method).cls.uses_unlabeled else "8/0"
        build_config(method, split, preset=preset, sets={**shared, key: sets[key]}, data_root=data_root)


def plan_tables(
    numbers: list[int],
    seeds: list[int],
    preset: str,
    sets: dict[str, str],
    data_root: str | None,
    recipe: str = "benchmark",
) -> list[TablePlan]:
    """Build every row's configs; a row whose method is missing or whose settings are invalid gets an error.

    Raises:
        ConfigError: a --set key whose section is neither data/train/eval nor a registered method.
    """
    _check_sets(sets, preset, data_root)
    plans = []
    for table_no in numbers:
        spec = table_spec(table_no)
        configs, errors = {}, {}
        for i, row in enumerate(spec.rows):
            try:
                configs[i] = row_configs(row, seeds, preset, sets, data_root, recipe)
            except (UnknownMethodError, ConfigError) as exc:
                errors[i] = str(exc)
        plans.append(TablePlan(spec, configs, errors))
    return plans


def render_plans(
    plans: list[TablePlan], out: Path, render_dir: Path, n_seeds: int, paper_columns: bool | None = None
) -> list[TableResult]:
    """Render each planned table from the runs in `out` that belong to it (matched by run id).

    `paper_columns`: None shows the paper's numbers only beside comparable runs (LA full resolution, paper
    preset); True forces them.
    """
    from sslbench.benchmark.reporting.aggregate import collect, load_cases

    runs = collect(out) if Path(out).is_dir() else pd.DataFrame()
    results = []
    for plan in plans:
        all_configs = [c for cs in plan.configs.values() for c in cs]
        ids = {c.run_id() for c in all_configs}
        portable = {c.portable_id() for c in all_configs}
        mine = runs[runs["run_id"].isin(ids) | runs["portable_id"].isin(portable)] if not runs.empty else runs
        cases = load_cases(mine) if not mine.empty else None
        protocol = describe_protocol(mine, all_configs)
        result = build_table(plan.spec, mine, cases, n_seeds, plan.errors, protocol, paper_columns)
        write_table(result, render_dir)
        results.append(result)
    return results


def run_tables(
    numbers: list[int],
    out: Path,
    render_dir: Path,
    seeds: list[int],
    preset: str = "quick",
    sets: dict[str, str] | None = None,
    data_root: str | None = None,
    recipe: str = "benchmark",
    run: bool = True,
    paper_columns: bool | None = None,
    **sweep_kwargs: Any,
) -> tuple[list[TableResult], list]:
    """Plan the tables, run the missing runs once each (shared rows dedupe by run id), then render them.

    Returns:
        The rendered tables and the sweep's outcomes (empty when `run` is False).
    """
    plans = plan_tables(numbers, seeds, preset, sets or {}, data_root, recipe)
    unique: dict[str, Any] = {}
    for plan in plans:
        for configs in plan.configs.values():
            for cfg in configs:
                unique.setdefault(cfg.run_id(), cfg)
    outcomes = []
    if run and unique:
        from sslbench.benchmark.runs.folder import find_run_dir, is_finished
        from sslbench.benchmark.sweep.runner import run_sweep

        reused = sum(is_finished(c, find_run_dir(Path(out), c)) for c in unique.values())
        print(
            f"table plan: {len(unique)} runs for table(s) {', '.join(map(str, numbers))}: {reused} already "
            f"finished (reused), {len(unique) - reused} to train into {out}",
            file=sys.stderr,
            flush=True,
        )
        outcomes = run_sweep(list(unique.values()), Path(out), **sweep_kwargs)
    return render_plans(plans, out, render_dir, len(seeds), paper_columns), outcomes
