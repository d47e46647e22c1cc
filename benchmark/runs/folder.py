"""A run folder: its file names, its name <-> identity, finished or failed, and reading what it holds.

A run lives in `out / cfg.run_name()`, named `<method>[-<variant>]_<N>-<M>_s<seed>_<run_id>`. It holds
config.json (the resolved config, written first), log.jsonl, checkpoint.pt while training, model.pt, cases.csv
and metrics.json (written last and atomically: its presence means the run finished), or failed.json.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sslbench.benchmark.config import CONFIG_SECTIONS, ConfigError, RunConfig, config_from_dict
from sslbench.benchmark.runs.io import read_json, write_json
from sslbench.methods.registry import UnknownMethodError

CONFIG_FILE = "config.json"  # the resolved config, the split's case ids, code version and environment: first
LOG_FILE = "log.jsonl"  # losses every `train.log_every` steps
CHECKPOINT_FILE = "checkpoint.pt"  # while training, every `train.checkpoint_every` steps (atomic)
WEIGHTS_FILE = "model.pt"  # the final weights
CASES_FILE = "cases.csv"  # per-case metrics
METRICS_FILE = "metrics.json"  # means and cost, written last: its presence means the run finished
FAILED_FILE = "failed.json"  # the error of a failed run (sweeps)

# A run folder is named `<method>[-<variant>]_<N>-<M>_s<seed>_<run_id>` (RunConfig.run_name).
RUN_NAME = re.compile(r"^(?P<head>.+)_(?P<split>\d+-\d+)_s(?P<seed>\d+)_(?P<run_id>[0-9a-f]{10})$")


def find_run_dirs(results_dir: Path) -> list[Path]:
    """Folders below `results_dir` that hold a config.json, metrics.json or failed.json (sorted)."""
    results_dir = Path(results_dir)
    found = set()
    for name in (CONFIG_FILE, METRICS_FILE, FAILED_FILE):
        for path in results_dir.rglob(name):
            if not any(part.startswith(".") for part in path.relative_to(results_dir).parts):
                found.add(path.parent)
    return sorted(found)


def read_json_object(path: Path) -> dict | None:
    """The JSON object in `path`, or None when it is absent or unreadable (a half-written or broken file)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def flatten_config(config: dict) -> dict[str, Any]:
    """`section.key` -> value for the data/train/eval sections and the method's own section."""
    flat: dict[str, Any] = {}
    method = config.get("method")
    for section in (*CONFIG_SECTIONS, method):
        for key, value in (config.get(section) or {}).items():
            flat[f"{section}.{key}"] = tuple(value) if isinstance(value, list) else value
    return flat


def parse_run_name(run_dir: Path) -> dict:
    """What the folder name tells about a run with no config.json (e.g. one that failed before training)."""
    match = RUN_NAME.match(run_dir.name)
    if not match:
        return {"method": run_dir.name, "variant": "", "split": None, "seed": None, "run_id": None}
    method, _, variant = match["head"].partition("-")
    return {
        "method": method,
        "variant": variant,
        "split": match["split"].replace("-", "/"),
        "seed": int(match["seed"]),
        "run_id": match["run_id"],
    }


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


def is_finished(cfg: RunConfig, run_dir: Path) -> bool:
    """True when `run_dir` holds a finished run of exactly `cfg` (metrics.json, and config.json's run id)."""
    try:
        read_json(Path(run_dir) / METRICS_FILE)
        return read_json(Path(run_dir) / CONFIG_FILE).get("run_id") == cfg.run_id()
    except (OSError, ValueError):
        return False


def load_outcome(run_dir: Path) -> RunOutcome | None:
    """The outcome recorded in a run folder: done (metrics.json) or failed (failed.json).

    Returns None for a folder with neither (not a run, still running, or interrupted), or whose config this
    installation cannot rebuild (e.g. a plugin method that is no longer installed).
    """
    run_dir = Path(run_dir)
    try:
        if (run_dir / METRICS_FILE).is_file():
            metrics = read_json(run_dir / METRICS_FILE)
            cfg = config_from_dict(read_json(run_dir / CONFIG_FILE))
            seconds = float((metrics.get("cost") or {}).get("total_wall_s") or 0.0)
            return RunOutcome(cfg, run_dir, "done", None, metrics, seconds)
        if (run_dir / FAILED_FILE).is_file():
            record = read_json(run_dir / FAILED_FILE)
            cfg = config_from_dict(record["config"])
            return RunOutcome(
                cfg, run_dir, "failed", record.get("error"), None, float(record.get("seconds", 0.0))
            )
    except (OSError, ValueError, KeyError, ConfigError, UnknownMethodError):
        return None
    return None


def record_failure(cfg: RunConfig, run_dir: Path, error: str, tb: str, seconds: float) -> RunOutcome:
    """Write failed.json atomically and return the failed outcome."""
    write_json(
        Path(run_dir) / FAILED_FILE,
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


@dataclass
class LoadedRun:
    """A finished run rebuilt from its folder: the record, the config, its trainer and the method with the
    final weights loaded, in eval mode."""

    run_dir: Path
    record: dict
    cfg: RunConfig
    trainer: Any  # training.trainer.Trainer (imported lazily: this module stays light)
    method: Any  # the built Method


def load_run(
    run_dir: Path,
    data_root: str | None = None,
    device: str | None = None,
    eval_overrides: dict[str, Any] | None = None,
) -> LoadedRun:
    """Rebuild a finished run (config.json + model.pt), optionally on another data folder, device or eval setting.

    Raises:
        RunFailed: the folder is not a run, or has no final weights, or they are another method's.
    """
    import torch

    from sslbench.benchmark.training.errors import RunFailed
    from sslbench.benchmark.training.trainer import Trainer

    run_dir = Path(run_dir)
    record = read_json_object(run_dir / CONFIG_FILE)
    if record is None:
        raise RunFailed(f"{run_dir}: not a run folder (no readable {CONFIG_FILE})")
    weights = run_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise RunFailed(f"{weights}: no final weights (did the run finish?)")
    cfg = config_from_dict(record)
    if data_root is not None:
        cfg = replace(cfg, data=replace(cfg.data, root=str(data_root)))
    if device is not None:
        cfg = replace(cfg, train=replace(cfg.train, device=device))
    if eval_overrides:
        cfg = replace(cfg, eval=replace(cfg.eval, **eval_overrides))
    trainer = Trainer(cfg, run_dir, progress=False)
    method = trainer.build_method()
    state = torch.load(weights, map_location=trainer.device, weights_only=False)
    if state.get("method") != cfg.method:
        raise RunFailed(
            f"{weights}: weights are from method '{state.get('method')}', config says '{cfg.method}'"
        )
    method.load_state_dict(state["state"])
    method.eval()
    return LoadedRun(run_dir, record, cfg, trainer, method)
