"""The local executor of a sweep: loky worker processes, each pinned to a GPU slot or a share of the CPU cores."""

from __future__ import annotations

import sys
import time
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sslbench.benchmark.config import ConfigError, RunConfig
from sslbench.benchmark.runs.folder import RunOutcome, record_failure
from sslbench.benchmark.sweep.tasks import prepare_task, run_task

WORKER_DEATH_RETRIES = 1  # resubmissions of a task whose worker process died
# How long an idle worker waits for work before loky stops it. Longer than a run: with 60 s, a worker idle while
# the other finished a long run (CAML at the quick preset) was stopped, and loky warned about it mid-sweep.
IDLE_WORKER_S = 900


WORKER_DIED = "worker process died (killed, out of memory, or crashed)"


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


def cpu_cores() -> int:
    import joblib

    return max(1, joblib.cpu_count())


def gpu_count() -> int:
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
    n_gpu = gpu_count()
    # Not capped by the number of runs left: the thread count changes float reduction order, so it must depend
    # on the machine and --jobs only, or resuming a sweep would change the numbers of its last runs.
    n_jobs = jobs or (n_gpu * runs_per_gpu if n_gpu else min(cpu_cores(), CPU_DEFAULT_JOBS))
    devices: list[str | None] = [f"cuda:{k % n_gpu}" for k in range(n_jobs)] if n_gpu else [None] * n_jobs
    threads = max(1, cpu_cores() // n_jobs) if n_jobs > 1 else 0
    return devices, threads


def pin_slot(cfg: RunConfig, device: str | None, threads: int) -> RunConfig:
    """Put a run on its slot's GPU and thread budget; unless the user chose them (neither changes the run id)."""
    train = cfg.train
    if device is not None and train.device in ("auto", "cuda"):
        train = replace(train, device=device)
    if threads and not train.threads:
        train = replace(train, threads=threads)
    return replace(cfg, train=train)


@dataclass
class PendingRun:
    cfg: RunConfig
    run_dir: Path
    asset_key: str | None


def infra_failure(p: PendingRun, what: str, exc: BaseException) -> RunOutcome:
    """A failure outside the run itself (a killed worker, a lost Dask task): recorded by the parent."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return record_failure(p.cfg, p.run_dir, what, tb, 0.0)


def _asset_name(cfg: RunConfig) -> str:
    return f"{cfg.method} {cfg.split} s{cfg.seed}"


def _say(line: str) -> None:
    """A progress line on stderr: the asset preparations of a sweep are otherwise silent phases."""
    print(line, file=sys.stderr, flush=True)


def run_local(
    pending: list[PendingRun],
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
        executor = get_reusable_executor(max_workers=len(devices), env=env, reuse=True, timeout=IDLE_WORKER_S)

    free = list(range(len(devices)))
    todo = deque(prepares.items())
    waiting: dict[str, list[PendingRun]] = {}
    ready: deque[PendingRun] = deque()
    for p in pending:
        (waiting.setdefault(p.asset_key, []) if p.asset_key is not None else ready).append(p)
    in_flight: dict[Future, tuple[str, Any, int]] = {}
    retried: dict[str, int] = {}  # asset keys and run folders resubmitted after a worker died
    started: dict[str, float] = {}  # asset key -> when its preparation was submitted

    def submit(fn: Callable, *args: Any) -> Future:
        nonlocal executor
        if not isinstance(executor, _InlineExecutor):
            # A killed worker breaks the pool; the reusable executor hands out a fresh one.
            executor = get_reusable_executor(
                max_workers=len(devices), env=env, reuse=True, timeout=IDLE_WORKER_S
            )
        return executor.submit(fn, *args)

    try:
        while todo or ready or in_flight:
            while free and (todo or ready):
                slot = free.pop(0)
                if todo:
                    key, cfg = todo.popleft()
                    fut = submit(prepare_task, pin_slot(cfg, devices[slot], threads), progress_runs)
                    in_flight[fut] = ("prepare", key, slot)
                    started[key] = time.perf_counter()
                    _say(f"[prepare] {_asset_name(cfg)}: building or loading its assets for "
                         f"{len(waiting.get(key, []))} run(s)")  # fmt: skip
                else:
                    p = ready.popleft()
                    fut = submit(
                        run_task, pin_slot(p.cfg, devices[slot], threads), p.run_dir, progress_runs, None
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
                    took = time.perf_counter() - started.pop(payload, time.perf_counter())
                    what = _asset_name(prepares[payload])
                    _say(
                        f"[prepare] {what}: {'ready' if error is None else 'failed: ' + error} ({took:.0f} s)"
                    )
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
                        outcome = infra_failure(payload, WORKER_DIED, exc)
                    on_done(outcome)
    except BaseException:
        executor.shutdown(wait=False, kill_workers=True)  # Ctrl-C: runs keep their checkpoints for resume
        raise
    executor.shutdown(wait=True)
