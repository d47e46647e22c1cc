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

import contextlib
import datetime as dt
import itertools
import platform
import shutil
import sys
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sslbench.benchmark.config import DEFAULT_SEEDS, ConfigError, RunConfig, build_config, config_from_dict
from sslbench.benchmark.io import read_json, write_json
from sslbench.benchmark.trainer import RunFailed, asset_key, prepare_assets, train_run
from sslbench.datasets.splits import parse_split
from sslbench.methods.registry import MethodInfo, UnknownMethodError, canonical_name, get_method, list_methods

SUPERVISED_BASELINE = "sup"  # the lower bound at N/0 (and the upper bound at 80/0 when asked for)
MAX_SEEDS = 100  # more seeds than this per configuration is almost certainly a typo
BASE_SECTIONS = ("data", "train", "eval")
STATUSES = ("done", "skipped", "failed")
WORKER_DEATH_RETRIES = 1  # resubmissions of a task whose worker process died
WORKER_DIED = "worker process died (killed, out of memory, or crashed)"


@dataclass
class RunOutcome:
    """What happened to one planned run.

    `seconds` is the wall time of the task for done/failed runs, and the recorded wall time of the original run
    for skipped ones.
    """

    cfg: RunConfig
    run_dir: Path
    status: str  # "done" | "skipped" (already finished) | "failed"
    error: str | None
    metrics: dict | None
    seconds: float


# ------------------------------------------------------------------------------------------------------------
# The grid
# ------------------------------------------------------------------------------------------------------------
def default_seeds(k: int) -> list[int]:
    """The first `k` fixed seeds: DEFAULT_SEEDS, then the integers after its last one."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_SEEDS:
        raise ConfigError(f"--seeds {k!r}: expected a number of seeds between 1 and {MAX_SEEDS}")
    extra = [DEFAULT_SEEDS[-1] + 1 + i for i in range(max(0, k - len(DEFAULT_SEEDS)))]
    return (list(DEFAULT_SEEDS) + extra)[:k]


def _requested_methods(methods: list[str] | str) -> list[tuple[MethodInfo, str | None, bool]]:
    """(method, variant or None for the config default, explicitly named) in the order asked for."""
    items = [methods] if isinstance(methods, str) else list(methods)
    names = [n.strip() for item in items for n in str(item).split(",") if n.strip()]
    if not names:
        raise ConfigError("--methods: expected 'all' or comma-separated method names, e.g. uamt,mt")
    out: list[tuple[MethodInfo, str | None, bool]] = []
    for name in names:
        if name == "all":
            for info in list_methods():
                if info.cls.uses_unlabeled:
                    out += [(info, v, False) for v in (info.variants or (None,))]
            out.append((get_method(SUPERVISED_BASELINE), None, False))
            continue
        base, _, variant = name.partition(":")
        info = get_method(base)
        if variant and variant not in info.variants:
            known = ", ".join(info.variants) or "none"
            raise ConfigError(
                f"--methods {name}: method '{info.name}' has no variant '{variant}' (variants: {known})"
            )
        out.append((info, variant or None, True))
    return out


def _method_section(key: str) -> str | None:
    """The canonical method a `section.key` override targets, or None for data/train/eval."""
    section = key.partition(".")[0]
    if section in BASE_SECTIONS:
        return None
    try:
        return canonical_name(section)
    except UnknownMethodError:
        raise ConfigError(
            f"--set {key}: unknown section '{section}' (expected data, train, eval or a method name)"
        ) from None


def _sets_for(method: str, sets: dict[str, Any]) -> dict[str, Any]:
    """The overrides that apply to `method`: the shared sections and its own section; other methods' dropped."""
    return {k: v for k, v in sets.items() if _method_section(k) in (None, method)}


def _splits_for(info: MethodInfo, splits: list[str]) -> list[str]:
    """A supervised method runs at N/0 for each split N/M; a semi-supervised one only where M > 0."""
    out = []
    for text in splits:
        try:
            split = parse_split(text)
        except ValueError as exc:
            raise ConfigError(f"--split: {exc}") from None
        if not info.cls.uses_unlabeled:
            out.append(f"{split.n_labeled}/0")
        elif split.n_unlabeled:
            out.append(str(split))
    return list(dict.fromkeys(out))


def expand_grid(
    methods: list[str] | str,
    splits: list[str],
    seeds: list[int],
    preset: str,
    sets: dict[str, str],
    data_root: str | None,
    grid_sets: list[dict[str, str]] | None = None,
) -> list[RunConfig]:
    """Resolve every run of a sweep; duplicates (same run id) removed, first occurrence kept.

    Args:
        methods: "all" (every registered semi-supervised method with all its registry variants, plus `sup` at
            N/0 for each split N/M), or names ("lrep,uamt", or a list); "NAME:VARIANT" picks one variant, a
            bare name runs its config's default variant. `sup` with split 8/72 runs at 8/0; the upper bound is
            `sup` at 80/0, run when that split is asked for.
        splits: "N/M" strings. Semi-supervised methods skip splits without unlabeled cases.
        seeds: training seeds.
        preset: a config preset name.
        sets: `section.key=value` overrides; a method's section applies to that method only.
        data_root: the data folder (None = the built-in synthetic dataset).
        grid_sets: extra override dicts, each multiplied into the grid (e.g. one per Table 4 beta value).

    Raises:
        ConfigError: an empty grid, a bad split/seed/override, or a method no requested split suits.
    """
    if not splits:
        raise ConfigError("--split: at least one split is needed, e.g. 8/72")
    if not seeds:
        raise ConfigError("--seeds: at least one seed is needed")
    requested = _requested_methods(methods)
    in_grid = {info.name for info, _, _ in requested}
    extra = list(grid_sets) if grid_sets else [{}]
    for key in itertools.chain(sets, *extra):
        target = _method_section(key)
        if target is not None and target not in in_grid:
            raise ConfigError(
                f"--set {key}: method '{target}' is not in this sweep ({', '.join(sorted(in_grid))})"
            )
    configs: dict[str, RunConfig] = {}
    for info, variant, explicit in requested:
        method_splits = _splits_for(info, splits)
        if not method_splits and explicit:
            raise ConfigError(
                f"method '{info.name}' is semi-supervised: none of the splits ({', '.join(splits)}) has "
                "unlabeled cases"
            )
        for split, overrides, seed in itertools.product(method_splits, extra, seeds):
            run_sets = {f"{info.name}.variant": variant} if variant is not None else {}
            run_sets.update(_sets_for(info.name, sets))
            run_sets.update(_sets_for(info.name, overrides))
            cfg = build_config(info.name, split, seed, preset, run_sets, data_root)
            configs.setdefault(cfg.run_name(), cfg)
    return list(configs.values())


# ------------------------------------------------------------------------------------------------------------
# Run folders
# ------------------------------------------------------------------------------------------------------------
def is_finished(cfg: RunConfig, run_dir: Path) -> bool:
    """True when `run_dir` holds a finished run of exactly `cfg` (metrics.json, and config.json's run id)."""
    try:
        read_json(Path(run_dir) / "metrics.json")
        return read_json(Path(run_dir) / "config.json").get("run_id") == cfg.run_id()
    except (OSError, ValueError):
        return False


def load_outcome(run_dir: Path) -> RunOutcome | None:
    """The outcome recorded in a run folder: done (metrics.json) or failed (failed.json).

    Returns None for a folder with neither (not a run, still running, or interrupted), or whose config this
    installation cannot rebuild (e.g. a plugin method that is no longer installed).
    """
    run_dir = Path(run_dir)
    try:
        if (run_dir / "metrics.json").is_file():
            metrics = read_json(run_dir / "metrics.json")
            cfg = config_from_dict(read_json(run_dir / "config.json"))
            seconds = float((metrics.get("cost") or {}).get("total_wall_s") or 0.0)
            return RunOutcome(cfg, run_dir, "done", None, metrics, seconds)
        if (run_dir / "failed.json").is_file():
            record = read_json(run_dir / "failed.json")
            cfg = config_from_dict(record["config"])
            return RunOutcome(
                cfg, run_dir, "failed", record.get("error"), None, float(record.get("seconds", 0.0))
            )
    except (OSError, ValueError, KeyError, ConfigError, UnknownMethodError):
        return None
    return None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    line = text if isinstance(exc, RunFailed) else f"{type(exc).__name__}: {text}".rstrip(": ")
    return line if len(line) <= 300 else line[:297] + "..."


def _record_failure(cfg: RunConfig, run_dir: Path, error: str, tb: str, seconds: float) -> RunOutcome:
    """Write failed.json atomically and return the failed outcome."""
    write_json(
        Path(run_dir) / "failed.json",
        {
            "error": error,
            "traceback": tb,
            "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "host": platform.node(),
            "seconds": seconds,
            "run_id": cfg.run_id(),
            "config": cfg.to_dict(),
        },
    )
    return RunOutcome(cfg, Path(run_dir), "failed", error, None, seconds)


# ------------------------------------------------------------------------------------------------------------
# Tasks: what a worker executes (module-level functions, so process pools and Dask can pickle them by name)
# ------------------------------------------------------------------------------------------------------------
def _release_device_memory() -> None:
    """Workers are reused for the next run: hand cached GPU memory back so packed runs fit."""
    import gc

    gc.collect()
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _in_process_loading(cfg: RunConfig) -> RunConfig:
    """Dask worker processes are daemonic by default and cannot start loader processes: build batches
    in-process there (`data.num_workers` is not part of the run id). Setting the Dask config
    `distributed.worker.daemon: false` on the workers keeps the loader processes."""
    import multiprocessing

    if multiprocessing.current_process().daemon and cfg.data.num_workers != 0:
        return replace(cfg, data=replace(cfg.data, num_workers=0))
    return cfg


def prepare_task(cfg: RunConfig, progress: bool = False) -> str | None:
    """Build (or load from the cache) the assets of `cfg`'s method; returns None, or the error line."""
    try:
        prepare_assets(_in_process_loading(cfg), progress=progress)
        return None
    except Exception as exc:  # reported through the dependent runs, never raised into the pool
        return _one_line(exc)
    finally:
        _release_device_memory()


def run_task(
    cfg: RunConfig, run_dir: Path, progress: bool = False, prep_error: str | None = None
) -> RunOutcome:
    """Train and evaluate one run; any exception becomes a failed outcome with failed.json written."""
    run_dir = Path(run_dir)
    t0 = time.perf_counter()
    if prep_error is not None:
        return _record_failure(cfg, run_dir, f"preparing assets failed: {prep_error}", "", 0.0)
    try:
        resume = (run_dir / "checkpoint.pt").is_file()
        metrics = train_run(_in_process_loading(cfg), run_dir, progress=progress, resume=resume)
    except Exception as exc:
        return _record_failure(cfg, run_dir, _one_line(exc), traceback.format_exc(), time.perf_counter() - t0)
    finally:
        _release_device_memory()
    (run_dir / "failed.json").unlink(missing_ok=True)
    return RunOutcome(cfg, run_dir, "done", None, metrics, time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------------------------
# Executors
# ------------------------------------------------------------------------------------------------------------
class _InlineExecutor:
    """Runs each task at submission, in this process: jobs == 1 keeps per-run progress bars in the foreground."""

    def submit(self, fn: Callable, *args: Any) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args))
        except Exception as exc:
            fut.set_exception(exc)
        return fut

    def shutdown(self, wait: bool = True, kill_workers: bool = False) -> None:
        pass


# Default parallel runs on a CPU-only machine: bounded, because each run holds its volumes and activations in
# memory (about 0.6 GB at the quick preset, far more at the paper's).
CPU_DEFAULT_JOBS = 8


def _cpu_cores() -> int:
    import joblib

    return max(1, joblib.cpu_count())


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        return 0


def local_slots(jobs: int | None, runs_per_gpu: int = 1) -> tuple[list[str | None], int]:
    """The device of each local worker slot and the torch threads per run (0 = leave torch's default).

    On a CUDA machine: `runs_per_gpu` slots per visible GPU by default; `jobs` slots spread round-robin over the
    GPUs when given. On CPU: one slot per core by default (at most CPU_DEFAULT_JOBS), the cores shared out so
    runs do not oversubscribe them. Why not one run with every thread: small runs scale badly over threads; on
    2 cores the quick-preset sweep (`--methods all`, 27 runs) took 687 s as 2 runs x 1 thread and 1015 s as
    1 run x 2 threads.
    """
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs {jobs}: expected at least 1")
    if runs_per_gpu < 1:
        raise ConfigError(f"--runs-per-gpu {runs_per_gpu}: expected at least 1")
    n_gpu = _gpu_count()
    # Not capped by the number of runs left: the thread count changes float reduction order, so it must depend
    # on the machine and --jobs only, or resuming a sweep would change the numbers of its last runs.
    n_jobs = jobs or (n_gpu * runs_per_gpu if n_gpu else min(_cpu_cores(), CPU_DEFAULT_JOBS))
    devices: list[str | None] = [f"cuda:{k % n_gpu}" for k in range(n_jobs)] if n_gpu else [None] * n_jobs
    threads = max(1, _cpu_cores() // n_jobs) if n_jobs > 1 else 0
    return devices, threads


def _pin(cfg: RunConfig, device: str | None, threads: int) -> RunConfig:
    """Put a run on its slot's GPU and thread budget; unless the user chose them (neither changes the run id)."""
    train = cfg.train
    if device is not None and train.device in ("auto", "cuda"):
        train = replace(train, device=device)
    if threads and not train.threads:
        train = replace(train, threads=threads)
    return replace(cfg, train=train)


@dataclass
class _Pending:
    cfg: RunConfig
    run_dir: Path
    asset_key: str | None


def _infra_failure(p: _Pending, what: str, exc: BaseException) -> RunOutcome:
    """A failure outside the run itself (a killed worker, a lost Dask task): recorded by the parent."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return _record_failure(p.cfg, p.run_dir, what, tb, 0.0)


def _run_local(
    pending: list[_Pending],
    prepares: dict[str, RunConfig],
    jobs: int | None,
    runs_per_gpu: int,
    progress_runs: bool,
    on_done: Callable[[RunOutcome], None],
) -> None:
    devices, threads = local_slots(jobs, runs_per_gpu)
    progress_runs = progress_runs and len(devices) == 1  # per-run bars only in the foreground
    if len(devices) == 1:
        executor: Any = _InlineExecutor()
    else:
        from joblib.externals.loky import get_reusable_executor

        # numpy/scipy in the evaluation read these; torch gets `train.threads`.
        env = {v: str(threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
        executor = get_reusable_executor(max_workers=len(devices), env=env, reuse=True, timeout=60)

    free = list(range(len(devices)))
    todo = deque(prepares.items())
    waiting: dict[str, list[_Pending]] = {}
    ready: deque[_Pending] = deque()
    for p in pending:
        (waiting.setdefault(p.asset_key, []) if p.asset_key is not None else ready).append(p)
    in_flight: dict[Future, tuple[str, Any, int]] = {}
    retried: dict[str, int] = {}  # asset keys and run folders resubmitted after a worker died

    def submit(fn: Callable, *args: Any) -> Future:
        nonlocal executor
        if not isinstance(executor, _InlineExecutor):
            # A killed worker breaks the pool; the reusable executor hands out a fresh one.
            executor = get_reusable_executor(max_workers=len(devices), env=env, reuse=True, timeout=60)
        return executor.submit(fn, *args)

    try:
        while todo or ready or in_flight:
            while free and (todo or ready):
                slot = free.pop(0)
                if todo:
                    key, cfg = todo.popleft()
                    fut = submit(prepare_task, _pin(cfg, devices[slot], threads), progress_runs)
                    in_flight[fut] = ("prepare", key, slot)
                else:
                    p = ready.popleft()
                    fut = submit(
                        run_task, _pin(p.cfg, devices[slot], threads), p.run_dir, progress_runs, None
                    )
                    in_flight[fut] = ("run", p, slot)
            done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
            for fut in done:
                kind, payload, slot = in_flight.pop(fut)
                free.append(slot)
                if kind == "prepare":
                    try:
                        error = fut.result()
                    except Exception:
                        if retried.get(payload, 0) < WORKER_DEATH_RETRIES:
                            retried[payload] = retried.get(payload, 0) + 1
                            todo.appendleft((payload, prepares[payload]))
                            continue
                        error = WORKER_DIED
                    dependents = waiting.pop(payload, [])
                    if error is None:
                        ready.extend(dependents)
                    else:  # its runs fail at once, with the preparation's error
                        for p in dependents:
                            on_done(run_task(p.cfg, p.run_dir, False, error))
                else:
                    try:
                        outcome = fut.result()
                    except Exception as exc:
                        # A dead worker breaks the whole pool, so the runs beside the culprit die too and
                        # cannot be told apart from it: each gets another try (from its checkpoint).
                        key = str(payload.run_dir)
                        if retried.get(key, 0) < WORKER_DEATH_RETRIES:
                            retried[key] = retried.get(key, 0) + 1
                            ready.appendleft(payload)
                            continue
                        outcome = _infra_failure(payload, WORKER_DIED, exc)
                    on_done(outcome)
    except BaseException:
        executor.shutdown(wait=False, kill_workers=True)  # Ctrl-C: runs keep their checkpoints for resume
        raise
    executor.shutdown(wait=True)


def _run_dask(
    pending: list[_Pending],
    prepares: dict[str, RunConfig],
    scheduler: str | None,
    jobs: int | None,
    on_done: Callable[[RunOutcome], None],
) -> None:
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    try:
        if scheduler:
            client = Client(scheduler, timeout="20s")
        else:  # no address: a throw-away cluster of this machine's processes
            n = jobs or 1
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
            threads = max(1, _cpu_cores() // n) if n > 1 else 0
            pending = [replace(p, cfg=_pin(p.cfg, None, threads)) for p in pending]
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--scheduler {scheduler}: cannot connect to the Dask scheduler ({exc})") from None
    token = uuid.uuid4().hex[:8]  # keys unique per sweep, so a cluster never hands back an older result
    try:
        prep_futures = {
            key: client.submit(prepare_task, cfg, key=f"prepare-{i}-{token}", pure=False)
            for i, (key, cfg) in enumerate(prepares.items())
        }
        futures = {
            client.submit(
                run_task,
                p.cfg,
                str(p.run_dir),
                False,
                prep_futures.get(p.asset_key),
                key=f"run-{p.cfg.run_name()}-{token}",
                pure=False,
            ): p
            for p in pending
        }
        for fut in as_completed(futures):
            p = futures[fut]
            try:
                outcome = fut.result()
            except Exception as exc:  # a task lost with its workers (KilledWorker), a pickling error...
                outcome = _infra_failure(p, f"dask task failed: {_one_line(exc)}", exc)
            on_done(outcome)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


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
    dice = f"Dice {100 * o.metrics['dice']:.2f}%" if o.metrics and "dice" in o.metrics else ""
    return f"{o.status:<7} {name}  {dice}  {o.seconds:.0f} s  ({o.run_dir.name})"


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

    Finished runs are skipped (`force` deletes their folders and redoes them); interrupted ones resume from
    their checkpoint; a failing run is recorded in its failed.json and the others go on. Progress goes to
    stderr: an overall bar on a terminal when `progress`, and one line per finished run.

    Raises:
        ConfigError: a bad backend/jobs value, duplicate configs, or an unreachable Dask scheduler.
    """
    if backend not in ("local", "dask"):
        raise ConfigError(f"--backend {backend}: expected local or dask")
    if scheduler and backend != "dask":
        raise ConfigError("--scheduler is only used with --backend dask")
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs {jobs}: expected at least 1")
    out = Path(out).resolve()  # Dask workers may run in another working directory
    run_dirs = [out / cfg.run_name() for cfg in configs]
    if len(set(run_dirs)) != len(run_dirs):
        raise ConfigError(
            "run_sweep: the same run appears twice in the configs (deduplicate with expand_grid)"
        )

    outcomes: dict[Path, RunOutcome] = {}
    pending: list[_Pending] = []
    broken: list[RunOutcome] = []
    for cfg, run_dir in zip(configs, run_dirs, strict=True):
        if force and run_dir.exists():
            shutil.rmtree(run_dir)
        if is_finished(cfg, run_dir):
            metrics = read_json(run_dir / "metrics.json")
            seconds = float((metrics.get("cost") or {}).get("total_wall_s") or 0.0)
            outcomes[run_dir] = RunOutcome(cfg, run_dir, "skipped", None, metrics, seconds)
            continue
        try:
            pending.append(_Pending(cfg, run_dir, _asset_key(cfg)))
        except Exception as exc:  # a method's own asset_key bug fails its runs only
            tb = traceback.format_exc()
            broken.append(_record_failure(cfg, run_dir, f"asset_key: {_one_line(exc)}", tb, 0.0))
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
            _run_local(pending, prepares, jobs, runs_per_gpu, bars, on_done)
        elif pending:
            _run_dask(pending, prepares, scheduler, jobs, on_done)
    finally:
        bar.close()
    return [outcomes[d] for d in run_dirs]


def summarize_outcomes(outcomes: Iterable[RunOutcome]) -> dict[str, int]:
    """Counts per status (done, skipped, failed)."""
    counts = dict.fromkeys(STATUSES, 0)
    for o in outcomes:
        counts[o.status] += 1
    return counts
