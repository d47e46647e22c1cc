"""What `bench status OUT` shows: every run folder below OUT as finished, running, partial, failed or damaged."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sslbench.benchmark.runs.folder import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    FAILED_FILE,
    LOCK_FILE,
    find_run_dirs,
    read_json_object,
    read_metrics,
)
from sslbench.benchmark.runs.lock import describe_owner, live_owner

STATES = ("finished", "running", "partial", "failed", "damaged")


@dataclass
class RunState:
    run_dir: Path
    state: str  # one of STATES
    detail: str  # Dice, lock owner, checkpoint step, failure reason or what is damaged


def _checkpoint_step(path: Path) -> str:
    import torch  # only for partial runs: the listing of finished ones stays light

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        return f"checkpoint at step {int(ckpt['next_step'])}"
    except Exception as exc:  # a damaged checkpoint is reported, never a crash
        return f"{path.name} unreadable ({type(exc).__name__}): will train from step 0"


def _iterations(run_dir: Path) -> str:
    config = read_json_object(run_dir / CONFIG_FILE) or {}
    total = (config.get("train") or {}).get("iterations") if isinstance(config.get("train"), dict) else None
    return f" of {total}" if total else ""


def run_state(run_dir: Path) -> RunState:
    """The state of one run folder (a live lock wins: its files are being written)."""
    owner = live_owner(run_dir)
    if owner is not None:
        return RunState(run_dir, "running", describe_owner(owner))
    metrics, why = read_metrics(run_dir)
    if metrics is not None:
        if read_json_object(run_dir / CONFIG_FILE) is None:
            return RunState(run_dir, "damaged", f"{run_dir / CONFIG_FILE}: missing or not a JSON object")
        return RunState(run_dir, "finished", f"Dice {100 * metrics['dice']:.2f}%")
    if why != "absent":
        return RunState(run_dir, "damaged", why)
    if (run_dir / FAILED_FILE).exists():
        record = read_json_object(run_dir / FAILED_FILE) or {}
        reason = str(record.get("error") or f"{FAILED_FILE} unreadable").splitlines()[0]
        return RunState(run_dir, "failed", reason)
    ckpt = run_dir / CHECKPOINT_FILE
    if ckpt.is_file():
        return RunState(run_dir, "partial", _checkpoint_step(ckpt) + _iterations(run_dir))
    return RunState(run_dir, "partial", "no checkpoint yet (restarts from step 0)")


def survey(out: Path) -> list[RunState]:
    """Every run folder below `out` (those with a lock but no files yet included), in name order."""
    dirs = find_run_dirs(out, names=(CONFIG_FILE, "metrics.json", FAILED_FILE, LOCK_FILE))
    return [run_state(d) for d in dirs]
