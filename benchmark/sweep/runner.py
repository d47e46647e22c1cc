"""Sweeps: methods x splits x seeds (x extra settings), on every local GPU, on shared CPU cores, or on a Dask cluster.

A sweep is a list of RunConfig. Each run lives in ``out / cfg.run_name()``; the name carries the run id (a hash of
the resolved config), so a folder whose metrics.json exists and whose config.json has the same run id is a
finished run of exactly this config and is skipped next time. The trainer writes metrics.json last and atomically,
so an interrupted run never looks finished; its checkpoint.pt (if any) is resumed. A run that raises is recorded in
``failed.json`` and the sweep goes on.

Assets that several runs share (e.g. lrep's DAE, one per split and seed) are prepared once per distinct
``Method.asset_key`` before the runs that need it; a failing preparation fails only its dependent runs.

Backends:
- local: joblib's loky process pool (the pool behind ``Parallel(backend="loky")``), used through its futures
  interface so the parent can pin each run to a free GPU slot and start a run as soon as its asset is ready
  (``Parallel`` cannot tell a task which worker, hence which GPU, it landed on). With one job, runs execute in
  the foreground process, with per-run progress bars.
- dask: the same tasks submitted to an existing ``dask.distributed`` cluster; the runs take the prepare task's
  future as an argument, so Dask itself makes them wait for their asset.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path

from sslbench.benchmark.config import ConfigError, RunConfig
from sslbench.benchmark.runs.folder import (
    CONFIG_FILE,
    RunOutcome,
    execution_mismatch,
    find_run_dir,
    finished_state,
    read_json_object,
    read_metrics,
    record_failure,
    recorded_execution,
    set_aside,
)
from sslbench.benchmark.runs.lock import describe_owner, live_owner
from sslbench.benchmark.sweep.cluster import run_dask
from sslbench.benchmark.sweep.local import PendingRun, local_slots, pin_slot, run_local
from sslbench.benchmark.sweep.tasks import one_line
from sslbench.benchmark.training.errors import RunFailed
from sslbench.benchmark.training.trainer import asset_key, expected_execution

# done: trained now; skipped: already finished; failed; elsewhere: another live process holds the run's lock
STATUSES = ("done", "skipped", "failed", "elsewhere")


# ------------------------------------------------------------------------------------------------------------
# The grid
# ------------------------------------------------------------------------------------------------------------


# ------------------------------------------------------------------------------------------------------------
# Run folders
# ------------------------------------------------------------------------------------------------------------


# ------------------------------------------------------------------------------------------------------------
# Tasks: what a worker executes (module-level functions, so process pools and Dask can pickle them by name)
# ------------------------------------------------------------------------------------------------------------


# ------------------------------------------------------------------------------------------------------------
# Executors
# ------------------------------------------------------------------------------------------------------------


# ------------------------------------------------------------------------------------------------------------
# The sweep
# ------------------------------------------------------------------------------------------------------------
def _asset_key(cfg: RunConfig) -> str | None:
    key = asset_key(cfg)
    return None if key is None else f"{cfg.method}:{key}"


def _describe(o: RunOutcome) -> str:
    c = o.cfg
    name = f"{c.method}{'-' + c.variant if c.variant else ''} {c.split} s{c.seed}"
    try:
        changed = [f"{k.removeprefix(c.method + '.')}={v}" for k, v in c.changed_settings().items()]
    except Exception:  # a progress line must never stop a sweep
        changed = []
    if changed:
        name += f" [{', '.join(changed)}]"
    if o.status == "failed":
        return f"failed  {name}: {o.error}"
    if o.status == "elsewhere":
        return f"running elsewhere  {name}: {o.error}"
    dice = f"Dice {100 * o.metrics['dice']:.2f}%" if o.metrics and "dice" in o.metrics else ""
    return f"{o.status:<7} {name}  {dice}  {o.seconds:.0f} s  ({o.run_dir.name})"


def _execution_of_slots(
    backend: str, jobs: int | None, runs_per_gpu: int
) -> Callable[[RunConfig], dict | None]:
    """cfg -> how the sweep would run it (device kind, threads, precision), or None where only the worker knows
    (a Dask worker picks its own device and threads)."""
    if backend != "local":
        return lambda cfg: None
    devices, threads = local_slots(jobs, runs_per_gpu)

    def expected(cfg: RunConfig) -> dict | None:
        try:
            return expected_execution(pin_slot(cfg, devices[0], threads), threads=0)
        except RunFailed:  # e.g. train.device=cuda without CUDA: the run itself will say so
            return None

    return expected


def _check_reuse(finished: list[tuple[RunConfig, Path]], expected: Callable, out: Path) -> None:
    """Refuse to mix: finished runs made with another thread count, device kind or precision are not reused."""
    mismatches = []
    for cfg, run_dir in finished:
        now = expected(cfg)
        if now is None:
            continue
        why = execution_mismatch(recorded_execution(read_json_object(run_dir / CONFIG_FILE) or {}), now)
        if why:
            mismatches.append(f"{run_dir.name} was {why}")
    if mismatches:
        more = f" (and {len(mismatches) - 1} more)" if len(mismatches) > 1 else ""
        raise ConfigError(
            f"{out}: finished run {mismatches[0]}{more}; these settings change the numbers, so it is not "
            "reused: run with the same ones (--jobs, --set train.threads=N, --set train.device=...), another "
            "--out, or --force to redo it (the old folder is kept as RUN.replaced-*)"
        )


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_sweep(
    configs: list[RunConfig],
    out: Path,
    jobs: int | None = None,
    backend: str = "local",
    scheduler: str | None = None,
    runs_per_gpu: int = 1,
    force: bool = False,
    progress: bool = True,
) -> list[RunOutcome]:
    """Run every config into `out / cfg.run_name()`; returns one outcome per config, in the order given.

    Finished runs are skipped (`force` renames their folders to RUN.replaced-<UTC time> and redoes them);
    interrupted ones resume from their checkpoint; a damaged one (unreadable metrics.json or config.json, missing
    weights) is set aside the same way and redone; a run whose lock another live process holds is reported as
    "elsewhere"; a failing run is recorded in its failed.json and the others go on. Progress goes to stderr: an
    overall bar on a terminal when `progress`, and one line per finished run.

    Raises:
        ConfigError: a bad backend/jobs value, duplicate configs, an unreachable Dask scheduler, or finished
            runs made with another thread count, device kind or precision (nothing is run then).
    """
    if backend not in ("local", "dask"):
        raise ConfigError(f"--backend {backend}: expected local or dask")
    if scheduler and backend != "dask":
        raise ConfigError("--scheduler is only used with --backend dask")
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs {jobs}: expected at least 1")
    out = Path(out).resolve()  # Dask workers may run in another working directory
    run_dirs = [find_run_dir(out, cfg) for cfg in configs]
    if len(set(run_dirs)) != len(run_dirs):
        raise ConfigError(
            "run_sweep: the same run appears twice in the configs (deduplicate with expand_grid)"
        )

    outcomes: dict[Path, RunOutcome] = {}
    pending: list[PendingRun] = []
    broken: list[RunOutcome] = []
    states = {d: finished_state(c, d) for c, d in zip(configs, run_dirs, strict=True)}
    finished = [(c, d) for c, d in zip(configs, run_dirs, strict=True) if states[d][0] == "finished"]
    if not force:
        _check_reuse(finished, _execution_of_slots(backend, jobs, runs_per_gpu), out)
    for cfg, run_dir in zip(configs, run_dirs, strict=True):
        state, why = states[run_dir]
        if state == "finished" and not force:
            metrics, _ = read_metrics(run_dir)
            seconds = float((metrics.get("cost") or {}).get("total_wall_s") or 0.0)
            outcomes[run_dir] = RunOutcome(cfg, run_dir, "skipped", None, metrics, seconds)
            continue
        owner = live_owner(run_dir) if run_dir.is_dir() else None
        if owner is not None:
            broken.append(RunOutcome(cfg, run_dir, "elsewhere", describe_owner(owner), None, 0.0))
            continue
        if state == "damaged" or (force and run_dir.exists()):
            aside = set_aside(run_dir)
            reason = f"damaged ({why})" if state == "damaged" else "--force"
            _say(f"{run_dir.name}: {reason}; redoing it, the old folder is kept as {aside.name}")
        try:
            pending.append(PendingRun(cfg, run_dir, _asset_key(cfg)))
        except Exception as exc:  # a method's own asset_key bug fails its runs only
            tb = traceback.format_exc()
            broken.append(record_failure(cfg, run_dir, f"asset_key: {one_line(exc)}", tb, 0.0))
    prepares: dict[str, RunConfig] = {}
    for p in pending:
        if p.asset_key is not None:
            prepares.setdefault(p.asset_key, p.cfg)

    from tqdm.auto import tqdm

    bars = progress and sys.stderr.isatty()
    bar = tqdm(
        total=len(configs),
        initial=len(outcomes),
        desc="sweep",
        unit="run",
        file=sys.stderr,
        disable=not bars,
        dynamic_ncols=True,
    )

    def on_done(outcome: RunOutcome) -> None:
        outcomes[outcome.run_dir] = outcome
        line = f"[{len(outcomes)}/{len(configs)}] {_describe(outcome)}"
        if bars:
            bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)
        bar.update(1)

    for outcome in broken:
        on_done(outcome)
    if backend == "local" and any(p.cfg.data.root is None for p in pending):
        # Generate the built-in dataset once here, not in every worker at the same moment (each would write its
        # own copy and all but one would be thrown away).
        from sslbench.datasets.default import default_data_root

        try:
            default_data_root()
        except (OSError, RuntimeError) as exc:
            raise ConfigError(f"built-in dataset: {exc}") from None
    try:
        if pending and backend == "local":
            run_local(pending, prepares, jobs, runs_per_gpu, bars, on_done)
        elif pending:
            run_dask(pending, prepares, scheduler, jobs, on_done)
    finally:
        bar.close()
    return [outcomes[d] for d in run_dirs]


def summarize_outcomes(outcomes: Iterable[RunOutcome]) -> dict[str, int]:
    """Counts per status (done, skipped, failed)."""
    counts = dict.fromkeys(STATUSES, 0)
    for o in outcomes:
        counts[o.status] += 1
    return counts
