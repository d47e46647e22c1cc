"""A run folder: its file names, its name <-> identity, finished or failed, and reading what it holds.

A run lives in `out / cfg.run_name()`, named `<method>[-<variant>]_<N>-<M>_s<seed>_<run_id>`. It holds
config.json (the resolved config, written first), log.jsonl, checkpoint.pt while training, model.pt, cases.csv
and metrics.json (written last and atomically: a readable one means the run finished), or failed.json, and
`.lock` while a process trains it (runs/lock.py).

Finished is final: no command writes into a finished run folder. Redoing one (`--force`) renames it to
`RUN.replaced-<UTC time>`; re-evaluating one (`bench eval`) writes a sibling `RUN.eval-<dataset>-<hash>`.
Neither kind of sibling is a run: `find_run_dirs` skips them.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
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
LOCK_FILE = ".lock"  # host, pid and start time of the process training the run (runs/lock.py)
EVAL_FILE = "eval.json"  # in a RUN.eval-* folder: what was evaluated (run, data folder and its fingerprint)
REPLACED_TAG = ".replaced-"  # RUN.replaced-<UTC time>: a finished run set aside by --force (or a damaged one)
EVAL_TAG = ".eval-"  # RUN.eval-<dataset>-<hash>: a re-evaluation of RUN's weights
REQUIRED_METRICS = ("dice", "jaccard", "hd95_vox", "asd_vox")  # a metrics.json without them is damaged

# A run folder is named `<method>[-<variant>]_<N>-<M>_s<seed>_<run_id>` (RunConfig.run_name).
RUN_NAME = re.compile(r"^(?P<head>.+)_(?P<split>\d+-\d+)_s(?P<seed>\d+)_(?P<run_id>[0-9a-f]{10})$")


def is_sibling_record(path: Path) -> bool:
    """A set-aside (`RUN.replaced-*`) or re-evaluation (`RUN.eval-*`) folder: not a run of its own."""
    return REPLACED_TAG in path.name or EVAL_TAG in path.name


def find_run_dirs(
    results_dir: Path, names: tuple[str, ...] = (CONFIG_FILE, METRICS_FILE, FAILED_FILE)
) -> list[Path]:
    """Folders below `results_dir` that hold a config.json, metrics.json or failed.json (sorted), without the
    set-aside and re-evaluation siblings."""
    results_dir = Path(results_dir)
    found = set()
    for name in names:
        for path in results_dir.rglob(name):
            parts = path.relative_to(results_dir).parts[:-1]
            if not any(part.startswith(".") or is_sibling_record(Path(part)) for part in parts):
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
    from sslbench.benchmark.config import ADDED_FIELDS

    flat: dict[str, Any] = {}
    method = config.get("method")
    for section in (*CONFIG_SECTIONS, method):
        for key, value in (config.get(section) or {}).items():
            flat[f"{section}.{key}"] = tuple(value) if isinstance(value, list) else value
    # A setting added after a run was made had, in that run, the value every earlier run had.
    for dotted, legacy in ADDED_FIELDS.items():
        section = dotted.partition(".")[0]
        if section in (*CONFIG_SECTIONS, method) and section in config:
            flat.setdefault(dotted, legacy)
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


def metrics_problem(metrics: Any) -> str | None:
    """Why a metrics.json's content is not a finished run's (None: it is): `{}`, `[]`, or a metric missing."""
    if not isinstance(metrics, dict):
        return f"expected a JSON object, got {type(metrics).__name__}"
    for key in REQUIRED_METRICS:
        value = metrics.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"no numeric '{key}'"
    return None


def read_metrics(run_dir: Path) -> tuple[dict | None, str | None]:
    """(metrics, None) for a valid metrics.json; (None, why) when it is absent ("absent") or damaged."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return None, "absent"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return None, f"{path}: unreadable ({type(exc).__name__}: {str(exc)[:80]})"
    problem = metrics_problem(data)
    return (data, None) if problem is None else (None, f"{path}: {problem}")


def finished_state(cfg: RunConfig, run_dir: Path) -> tuple[str, str | None]:
    """("finished", None), ("absent", None) when nothing says finished, or ("damaged", why).

    A folder is a finished run of `cfg` when metrics.json holds the metrics, config.json is a JSON object with
    `cfg`'s run id, and the weights and per-case metrics are there. A folder with a metrics.json that fails any
    of this is damaged: it must be set aside and redone, never counted and never overwritten in place.
    """
    run_dir = Path(run_dir)
    metrics, why = read_metrics(run_dir)
    if why == "absent":
        return "absent", None
    if why:
        return "damaged", why
    config = read_json_object(run_dir / CONFIG_FILE)
    if config is None:
        return "damaged", f"{run_dir / CONFIG_FILE}: missing or not a JSON object"
    if config.get("run_id") != cfg.run_id() and recorded_portable_id(config) != cfg.portable_id():
        return "damaged", f"{run_dir / CONFIG_FILE}: run id {config.get('run_id')}, expected {cfg.run_id()}"
    path = run_dir / CASES_FILE
    if not path.is_file() or path.stat().st_size == 0:
        return "damaged", f"{path}: missing or empty"
    # No model.pt: a run kept as its small files (results/ commits no weights) is still final; an empty one
    # is a cut write.
    weights = run_dir / WEIGHTS_FILE
    if weights.exists() and (not weights.is_file() or weights.stat().st_size == 0):
        return "damaged", f"{weights}: missing or empty"
    return "finished", None


def recorded_portable_id(config: dict) -> str | None:
    """`RunConfig.portable_id` of a run's config.json (None when it cannot be rebuilt, e.g. an unknown method)."""
    try:
        return config_from_dict(config).portable_id()
    except (ConfigError, UnknownMethodError, KeyError, TypeError, ValueError):
        return None


def find_run_dir(out: Path, cfg: RunConfig) -> Path:
    """Where `cfg`'s run lives under `out`: `out / cfg.run_name()`, else a finished run of the same experiment on
    the same data bytes recorded from another data path (same `portable_id`), else `out / cfg.run_name()`."""
    own = Path(out) / cfg.run_name()
    if own.exists() or cfg.data.fingerprint is None or not Path(out).is_dir():
        return own
    prefix = cfg.run_name().rsplit("_", 1)[0] + "_"
    wanted = cfg.portable_id()
    for candidate in sorted(Path(out).glob(prefix + "*")):
        config = read_json_object(candidate / CONFIG_FILE)
        if config and recorded_portable_id(config) == wanted and is_finished(cfg, candidate):
            return candidate
    return own


def is_finished(cfg: RunConfig, run_dir: Path) -> bool:
    """True when `run_dir` holds a finished run of exactly `cfg` (see `finished_state`)."""
    return finished_state(cfg, run_dir)[0] == "finished"


def utc_stamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def set_aside(run_dir: Path) -> Path:
    """Rename a run folder to `RUN.replaced-<UTC time>` (never deleted: the old numbers stay inspectable)."""
    run_dir = Path(run_dir)
    target = run_dir.with_name(f"{run_dir.name}{REPLACED_TAG}{utc_stamp()}")
    n = 1
    while target.exists():
        target = run_dir.with_name(f"{run_dir.name}{REPLACED_TAG}{utc_stamp()}-{n}")
        n += 1
    os.rename(run_dir, target)
    return target


# --- how a run computed: what changes the numbers but is not in the run id --------------------------------


def precision_of(device_kind: str, amp: bool) -> str:
    return "bf16-autocast" if amp and device_kind == "cuda" else "fp32"


def recorded_execution(record: dict) -> dict | None:
    """The execution a config.json records: device kind, CPU threads and precision (derived for old runs)."""
    if isinstance(record.get("execution"), dict):
        return record["execution"]
    env = record.get("environment")
    if not isinstance(env, dict):
        return None
    kind = str(env.get("device") or "cpu").split(":")[0]
    amp = bool((record.get("train") or {}).get("amp"))
    return {"device_kind": kind, "threads": env.get("torch_threads"), "precision": precision_of(kind, amp)}


def describe_execution(e: dict) -> str:
    if e.get("device_kind") == "cuda":
        return f"cuda, {e.get('precision')}"
    threads = e.get("threads")
    return f"cpu, {threads} thread{'s' if threads != 1 else ''}, {e.get('precision')}"


def execution_mismatch(recorded: dict | None, expected: dict) -> str | None:
    """How two executions differ in a way that changes the numbers (None: they do not, or it is unknown).

    On CPU the thread count changes float reduction order and so the numbers (1 vs 2 threads: 73.31 % vs
    62.95 % Dice on one MT run); on CUDA it does not matter, but the device kind and precision always do.
    An unknown expected thread count (a Dask worker decides it) is not compared.
    """
    if not recorded:
        return None
    same = (
        recorded.get("device_kind") == expected["device_kind"]
        and recorded.get("precision") == expected["precision"]
    )
    if same and expected["device_kind"] == "cpu" and expected.get("threads") is not None:
        same = recorded.get("threads") == expected["threads"]
    return None if same else f"made with {describe_execution(recorded)}, now {describe_execution(expected)}"


def load_outcome(run_dir: Path) -> RunOutcome | None:
    """The outcome recorded in a run folder: done (metrics.json) or failed (failed.json).

    Returns None for a folder with neither (not a run, still running, or interrupted), or whose config this
    installation cannot rebuild (e.g. a plugin method that is no longer installed).
    """
    run_dir = Path(run_dir)
    try:
        if (run_dir / METRICS_FILE).is_file():
            metrics, why = read_metrics(run_dir)
            if why:
                return None
            cfg = config_from_dict(read_json(run_dir / CONFIG_FILE))
            seconds = float((metrics.get("cost") or {}).get("total_wall_s") or 0.0)
            return RunOutcome(cfg, run_dir, "done", None, metrics, seconds)
        if (run_dir / FAILED_FILE).is_file():
            record = read_json(run_dir / FAILED_FILE)
            cfg = config_from_dict(record["config"])
            return RunOutcome(
                cfg, run_dir, "failed", record.get("error"), None, float(record.get("seconds", 0.0))
            )
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ConfigError, UnknownMethodError):
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
    try:
        cfg = config_from_dict(record)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise RunFailed(
            f"{run_dir / CONFIG_FILE}: not a run's config ({type(exc).__name__}: {exc})"
        ) from None
    if data_root is not None:
        cfg = replace(cfg, data=replace(cfg.data, root=str(data_root)))
    if device is not None:
        cfg = replace(cfg, train=replace(cfg.train, device=device))
    if eval_overrides:
        cfg = replace(cfg, eval=replace(cfg.eval, **eval_overrides))
    trainer = Trainer(cfg, run_dir, progress=False)
    method = trainer.build_method()
    try:
        state = torch.load(weights, map_location=trainer.device, weights_only=False)
    except Exception as exc:  # torch raises many kinds for a truncated or foreign file
        raise RunFailed(
            f"{weights}: cannot read the weights ({type(exc).__name__}); the file is damaged"
        ) from None
    if not isinstance(state, dict) or "state" not in state:
        raise RunFailed(f"{weights}: not sslbench weights (expected a dict with 'method' and 'state')")
    if state.get("method") != cfg.method:
        raise RunFailed(
            f"{weights}: weights are from method '{state.get('method')}', config says '{cfg.method}'"
        )
    try:
        method.load_state_dict(state["state"])
    except (RuntimeError, KeyError, TypeError) as exc:
        raise RunFailed(
            f"{weights}: weights do not fit the run's networks ({str(exc).splitlines()[0]})"
        ) from None
    method.eval()
    return LoadedRun(run_dir, record, cfg, trainer, method)
