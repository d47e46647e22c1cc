"""What a sweep worker executes: module-level functions, so process pools and Dask can pickle them by name."""

from __future__ import annotations

import contextlib
import time
import traceback
from dataclasses import replace
from pathlib import Path

from sslbench.benchmark.config import RunConfig
from sslbench.benchmark.runs.folder import (
    CHECKPOINT_FILE,
    FAILED_FILE,
    RunOutcome,
    read_metrics,
    record_failure,
)
from sslbench.benchmark.runs.lock import RunBusy, describe_owner
from sslbench.benchmark.training.errors import AlreadyFinished, RunFailed
from sslbench.benchmark.training.trainer import prepare_assets, train_run


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    line = text if isinstance(exc, RunFailed) else f"{type(exc).__name__}: {text}".rstrip(": ")
    return line if len(line) <= 300 else line[:297] + "..."


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
        return one_line(exc)
    finally:
        _release_device_memory()


def run_task(
    cfg: RunConfig, run_dir: Path, progress: bool = False, prep_error: str | None = None
) -> RunOutcome:
    """Train and evaluate one run; any exception becomes a failed outcome with failed.json written.

    A run another process holds (its lock) is "elsewhere", one that another process finished meanwhile is
    "skipped"; neither writes anything into the folder.
    """
    run_dir = Path(run_dir)
    t0 = time.perf_counter()
    if prep_error is not None:
        return record_failure(cfg, run_dir, f"preparing assets failed: {prep_error}", "", 0.0)
    try:
        resume = (run_dir / CHECKPOINT_FILE).is_file()
        metrics = train_run(_in_process_loading(cfg), run_dir, progress=progress, resume=resume)
    except RunBusy as exc:
        return RunOutcome(cfg, run_dir, "elsewhere", describe_owner(exc.owner), None, 0.0)
    except AlreadyFinished:
        metrics, _ = read_metrics(run_dir)
        seconds = float(((metrics or {}).get("cost") or {}).get("total_wall_s") or 0.0)
        return RunOutcome(cfg, run_dir, "skipped", None, metrics, seconds)
    except Exception as exc:
        return record_failure(cfg, run_dir, one_line(exc), traceback.format_exc(), time.perf_counter() - t0)
    finally:
        _release_device_memory()
    (run_dir / FAILED_FILE).unlink(missing_ok=True)
    return RunOutcome(cfg, run_dir, "done", None, metrics, time.perf_counter() - t0)
