"""Collect run folders into one table, and summarise them as mean±std over seeds.

`collect(results_dir)` reads every run folder below `results_dir` (finished, failed or still incomplete: a run is
never dropped silently) into one row per run. `summarize_runs(df)` groups the runs that differ only by their seed and
reports, per group, the mean±std over seeds of the per-run metrics (each a mean over test cases).

Formatting conventions (also stated in every table caption):
- Dice and Jaccard in %, HD95 and ASD in voxels and in mm (mm = voxels x the dataset's isotropic spacing).
- std is the SAMPLE standard deviation over seeds (ddof=1), as the papers report for their 3 runs.
- One finished seed has no std: it is shown as "86.58 (n=1)"; no finished seed is shown as "—".
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sslbench.benchmark.config import ADDED_FIELDS, NON_RESULT_KEYS
from sslbench.benchmark.evaluation.metrics import METRIC_COLUMNS, PERCENT_METRICS
from sslbench.benchmark.reporting.format import mean_std
from sslbench.benchmark.runs.folder import (
    CASES_FILE,
    CONFIG_FILE,
    FAILED_FILE,
    LOG_FILE,
    find_run_dirs,
    flatten_config,
    parse_run_name,
    read_json_object,
    read_metrics,
    recorded_execution,
    recorded_portable_id,
)
from sslbench.methods.registry import method_rank

COST_KEYS = (
    "sec_per_iter_median",
    "sec_per_iter_p90",
    "peak_memory_mb",
    "forward_passes_total",
    "train_wall_s",
)
# Keys that are not part of an experiment's identity: what the run id leaves out, plus the seed.
NOT_SETTINGS = NON_RESULT_KEYS | {"seed"}
CONFIG_SECTIONS = ("data", "train", "eval")


def _isnan(value: Any) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def k_label(value: Any) -> str:
    """#K as shown in tables: "8", or "-" for methods without uncertainty passes (config.json stores "-")."""
    if value is None or _isnan(value) or str(value).strip() in ("", "-"):
        return "-"
    try:
        return str(int(float(value)))
    except (TypeError, ValueError):
        return str(value)


# --- collecting run folders ---------------------------------------------------------------------------------


def _group_key(row: dict) -> str:
    """Everything that changes results except the seed: runs sharing it are seeds of one experiment."""
    if not row.get("has_config"):
        # Without config.json only the folder name is known; such runs stay apart and visible.
        return "noconfig:" + "|".join(str(row.get(k)) for k in ("method", "variant", "split", "run_id"))
    # The data folder is part of the key (as of the run id), not the dataset's name: a run that failed before
    # config.json was written only has failed.json's config, which does not describe the dataset.
    # Fields added later, at their legacy value, are left out as in the run id: old and new runs of one
    # configuration (with and without `train.optimizer` or `data.fingerprint` recorded) are seeds of one experiment.
    settings = {
        k: v
        for k, v in row["settings"].items()
        if k not in NOT_SETTINGS and not (k in ADDED_FIELDS and v == ADDED_FIELDS[k])
    }
    key = [row["method"], row["variant"], row["split"], row["preset"], settings]
    if row.get("recipe", "benchmark") != "benchmark":
        key.append(row["recipe"])  # appended only when set, so the keys of earlier results stay the same
    blob = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def read_run(run_dir: Path) -> dict:
    """One row describing a run folder: identity, status, settings, metrics and cost."""
    run_dir = Path(run_dir)
    config = read_json_object(run_dir / CONFIG_FILE)
    metrics, damage = read_metrics(run_dir)
    if damage == "absent":
        damage = None
    elif damage is None and config is None:
        damage = f"{run_dir / CONFIG_FILE}: missing or not a JSON object"
    failed = read_json_object(run_dir / FAILED_FILE) if (run_dir / FAILED_FILE).exists() else None
    if config is None and isinstance((failed or {}).get("config"), dict):
        # The sweep records the resolved config of a failed run, also when it failed before config.json.
        config = {**failed["config"], "run_id": failed.get("run_id")}
    if damage is not None:
        # Named, counted and left out of every mean: a damaged file never becomes a number or a crash.
        status, error, metrics = "damaged", damage, None
    elif metrics is not None:
        status, error = "done", None
    elif failed is not None or (run_dir / FAILED_FILE).exists():
        status = "failed"
        error = str((failed or {}).get("error") or "failed.json unreadable").strip()
    else:
        status, error = "incomplete", "no metrics.json (still running, interrupted, or killed)"
    row: dict[str, Any] = {
        "run_dir": str(run_dir),
        "run_name": run_dir.name,
        "status": status,
        "error": error,
    }
    if config is not None:
        info = config.get("method_info") or {}
        dataset = config.get("dataset") or {}
        row.update(
            has_config=True,
            method=config.get("method"),
            variant=config.get("variant") or "",
            split=config.get("split"),
            seed=config.get("seed"),
            preset=config.get("preset"),
            recipe=config.get("recipe", "benchmark"),
            run_id=config.get("run_id"),
            portable_id=recorded_portable_id(config),
            k_inferences=info.get("k_inferences"),
            family=info.get("family"),
            dataset=dataset.get("name"),
            # older runs recorded one number, newer ones (x, y, z): one number when isotropic, else "0.7x0.7x2.5"
            spacing_mm=_spacing_value(dataset.get("spacing_mm")),
            n_train=dataset.get("n_train"),
            n_test=dataset.get("n_test"),
            settings=flatten_config(config),
            # False when the run's prepared DAE (lrep) did not denoise; None when the run has no such asset
            dae_denoises=((config.get("assets") or {}).get("dae") or {}).get("denoises"),
            **_provenance(config),
        )
    else:
        row.update(
            has_config=False,
            dae_denoises=None,
            preset=None,
            k_inferences=None,
            family=None,
            dataset=None,
            spacing_mm=None,
            portable_id=None,
            n_train=None,
            n_test=None,
            settings={},
            commit=None,
            threads=None,
            **parse_run_name(run_dir),
        )
    split = str(row.get("split") or "")
    n_l, _, n_u = split.partition("/")
    row["n_labeled"] = int(n_l) if n_l.isdigit() else None
    row["n_unlabeled"] = int(n_u) if n_u.isdigit() else None
    for key in METRIC_COLUMNS:
        row[key] = float(metrics[key]) if metrics and metrics.get(key) is not None else np.nan
    row["n_cases"] = (metrics or {}).get("n_cases")
    row["n_empty_pred"] = (metrics or {}).get("n_empty_pred")
    cost = (metrics or {}).get("cost") or {}
    for key in COST_KEYS:
        row[key] = float(cost[key]) if cost.get(key) is not None else np.nan
    row["memory_kind"] = cost.get("memory_kind")
    load = cost.get("machine_load") or {}
    row["contended"] = load.get("contended")  # timings measured while other work shared the CPUs
    row["parameters"] = (cost.get("parameters") or {}).get("trainable")
    row["device"] = cost.get("device")
    row["group_key"] = _group_key(row)
    return row


def _provenance(config: dict) -> dict:
    """The code commit (short, `+dirty` for local changes) and the CPU threads of a CPU run, from config.json."""
    code = config.get("code") if isinstance(config.get("code"), dict) else {}
    commit = str(code.get("commit") or "")[:7] or None
    if commit and code.get("dirty"):
        commit += "+dirty"
    execution = recorded_execution(config) or {}
    threads = execution.get("threads") if execution.get("device_kind") == "cpu" else None
    return {"commit": commit, "threads": threads}


def collect(results_dir: Path) -> pd.DataFrame:
    """One row per run folder below `results_dir`, including failed and incomplete runs (column `status`).

    Columns: run_dir, run_name, status (done | failed | incomplete | damaged: a metrics.json or config.json that
    cannot be read, named in `error`), error, method, variant, split, seed, preset,
    run_id, k_inferences, dataset, spacing_mm, n_labeled, n_unlabeled, settings (flattened config dict), the
    metrics (fractions and voxels/mm as in metrics.json), the cost fields, and group_key (same for the seeds of
    one experiment).
    """
    rows = [read_run(d) for d in find_run_dirs(Path(results_dir))]
    _fill_from_siblings(rows)
    columns = [
        "run_dir",
        "run_name",
        "status",
        "error",
        "method",
        "variant",
        "split",
        "seed",
        "preset",
        "recipe",
        "run_id",
        "portable_id",
        "k_inferences",
        "family",
        "dataset",
        "spacing_mm",
        "n_train",
        "n_test",
        "n_labeled",
        "n_unlabeled",
        "has_config",
        "dae_denoises",
        "settings",
        *METRIC_COLUMNS,
        "n_cases",
        "n_empty_pred",
        *COST_KEYS,
        "memory_kind",
        "contended",
        "parameters",
        "device",
        "commit",
        "threads",
        "group_key",
    ]
    return pd.DataFrame(rows, columns=columns)


def _fill_from_siblings(rows: list[dict]) -> None:
    """Give runs recorded without dataset/method info (failed before config.json) the values of a run that
    used the same data folder (its seeds first), else the folder's name."""
    by_group: dict[str, dict] = {}
    by_root: dict[Any, dict] = {}
    for row in rows:
        if row.get("dataset") is not None:
            by_group.setdefault(row["group_key"], row)
            by_root.setdefault(row["settings"].get("data.root"), row)
    for row in rows:
        if row.get("k_inferences") is None:
            row["k_inferences"] = _registry_k(str(row["method"]))
        if row.get("dataset") is not None or not row.get("has_config"):
            continue
        root = row["settings"].get("data.root")
        source = by_group.get(row["group_key"]) or by_root.get(root)
        if source is not None:
            for key in ("dataset", "spacing_mm", "n_train", "n_test"):
                row[key] = source[key]
        else:
            row["dataset"] = Path(root).name if root else "built-in synthetic"


def _registry_k(method: str) -> int | None:
    """#K from the method registry, for runs whose config.json (which records it) was never written."""
    from sslbench.methods.registry import UnknownMethodError, get_method

    try:
        return get_method(method).k_inferences
    except UnknownMethodError:
        return None


# --- summarising over seeds ---------------------------------------------------------------------------------


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "x".join(str(v) for v in value)
    return str(value)


def varying_settings(df: pd.DataFrame) -> dict[str, str]:
    """group_key -> "beta=2, lam=0.1": the settings that differ between groups of the same method.

    Compared within (method, variant, preset, dataset), so a preset's own values (patch, iterations) do not
    show up; the method's own keys lose their section prefix (lrep.beta -> beta).
    """
    labels: dict[str, str] = {}
    firsts = df[df["has_config"].astype(bool)].drop_duplicates("group_key")
    for _, family in firsts.groupby(["method", "variant", "preset", "dataset"], dropna=False):
        settings = [{k: v for k, v in s.items() if k not in NOT_SETTINGS} for s in family["settings"]]
        keys = sorted({k for s in settings for k in s})
        differ = [k for k in keys if len({json.dumps(s.get(k), default=str) for s in settings}) > 1]
        method = family["method"].iloc[0]
        for key, s in zip(family["group_key"], settings, strict=True):
            parts = []
            for k in differ:
                short = k[len(method) + 1 :] if k.startswith(f"{method}.") else k
                parts.append(f"{short}={_fmt_value(s.get(k))}")
            labels[key] = ", ".join(parts)
    return labels


def summarize_runs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per experiment (runs that differ only by seed): mean±std over the finished seeds.

    Columns: method, variant, split, preset, dataset, setting (the hyper-parameters that differ between
    experiments of the same method), K, seeds (finished ones), n_done, n_failed, n_incomplete, errors, the
    formatted "mean±std" string of each metric (Dice/Jaccard in %), their numeric `<metric>_mean`/`<metric>_std`
    (same units as shown; std NaN below two seeds), cost means (sec_per_iter, peak_memory_mb), group_key,
    run_dirs. Failed runs are counted in the row of their experiment and never dropped.
    """
    if df.empty:
        return pd.DataFrame(columns=["method", "variant", "split", "setting", "n_done", "n_failed"])
    settings = varying_settings(df)
    rows = []
    for key, runs in df.groupby("group_key", sort=False):
        first = runs.iloc[0]
        done = runs[runs["status"] == "done"].sort_values("seed")
        failed_errors = runs.loc[runs["status"].isin(["failed", "damaged"]), "error"]
        row = {
            "method": first["method"],
            "variant": first["variant"],
            "split": first["split"],
            "preset": first["preset"],
            "dataset": first["dataset"],
            "setting": settings.get(key, ""),
            "K": k_label(first["k_inferences"]),
            "seeds": ",".join(str(int(s)) for s in done["seed"]),
            "n_done": int(len(done)),
            "n_failed": int((runs["status"] == "failed").sum()),
            "n_incomplete": int(runs["status"].isin(["incomplete", "damaged"]).sum()),
            "n_damaged": int((runs["status"] == "damaged").sum()),
            "errors": "; ".join(sorted({str(e).splitlines()[0] for e in failed_errors})),
            "n_labeled": first["n_labeled"],
            "n_unlabeled": first["n_unlabeled"],
            "n_train": first["n_train"],
            "spacing_mm": first["spacing_mm"],
        }
        for metric in METRIC_COLUMNS:
            scale = 100.0 if metric in PERCENT_METRICS else 1.0
            values = done[metric].dropna().to_numpy() * scale
            row[metric] = mean_std(values)
            row[f"{metric}_mean"] = float(values.mean()) if values.size else np.nan
            row[f"{metric}_std"] = float(values.std(ddof=1)) if values.size > 1 else np.nan
        row["sec_per_iter"] = float(done["sec_per_iter_median"].mean()) if len(done) else np.nan
        row["peak_memory_mb"] = float(done["peak_memory_mb"].mean()) if len(done) else np.nan
        row["forward_passes"] = float(done["forward_passes_total"].mean()) if len(done) else np.nan
        row["memory_kind"] = next((m for m in done["memory_kind"] if m), None)
        # runs whose timings were taken while other work shared the CPUs (cost.machine_load.contended)
        row["n_contended"] = int((done["contended"] == True).sum()) if "contended" in done else 0  # noqa: E712
        row["group_key"] = key
        row["settings"] = first["settings"]
        row["run_dirs"] = list(runs["run_dir"])
        rows.append(row)
    out = pd.DataFrame(rows)
    out["_rank"] = out["method"].map(lambda m: method_rank(str(m))[0])  # the registry's row order
    out["_nl"] = out["n_labeled"].fillna(-1)
    out = out.sort_values(["_rank", "method", "_nl", "split", "variant", "setting"], kind="stable")
    return out.drop(columns=["_rank", "_nl"]).reset_index(drop=True)


def load_cases(df: pd.DataFrame) -> pd.DataFrame:
    """Per-case metrics of every finished run (cases.csv), with the run's group_key, method, split and seed."""
    frames = []
    for _, run in df[df["status"] == "done"].iterrows():
        path = Path(run["run_dir"]) / CASES_FILE
        if not path.is_file():
            continue
        try:
            cases = pd.read_csv(path)
            missing = [c for c in ("case", *METRIC_COLUMNS) if c not in cases.columns]
            if missing:
                raise ValueError(f"no column {missing[0]!r}")
            for column in METRIC_COLUMNS:
                cases[column] = pd.to_numeric(cases[column], errors="raise")
        except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            # One line per damaged file; the run's means (metrics.json) still count, its cases do not.
            print(f"warning: {path}: unreadable ({exc}); left out of per-case results", file=sys.stderr)
            continue
        for key in ("group_key", "method", "variant", "split", "seed", "run_dir"):
            cases[key] = run[key]
        frames.append(cases)
    if not frames:
        columns = ["case", "group_key", "method", "variant", "split", "seed", "run_dir", *METRIC_COLUMNS]
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)


def load_logs(df: pd.DataFrame) -> pd.DataFrame:
    """Training log lines (log.jsonl) of every run that has one, with the run's group_key and seed."""
    frames = []
    for _, run in df.iterrows():
        path = Path(run["run_dir"]) / LOG_FILE
        if not path.is_file():
            continue
        records = []
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:  # a line cut by a crash: skip it, keep the rest
                continue
        if records:
            log = pd.DataFrame(records)
            log["group_key"] = run["group_key"]
            log["seed"] = run["seed"]
            frames.append(log)
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["step", "group_key", "seed"])
    )


def paired_wilcoxon(
    cases: pd.DataFrame, group_a: str, group_b: str, metric: str = "dice"
) -> dict[str, float]:
    """Two-sided paired Wilcoxon signed-rank test between two experiments, over test cases.

    Each case's value is first averaged over the experiment's seeds, then the two experiments are paired by case
    id. With n cases and no ties the smallest reachable p is 2 / 2**n (0.0625 for 5 cases), so a handful of test
    cases can never show significance; the p-values are not corrected for multiple comparisons.

    Returns:
        {"p": p-value (NaN below 2 paired cases), "n": paired cases, "mean_diff": mean of a - b (metric units)}.
    """
    from scipy.stats import wilcoxon

    per_case = (
        cases[cases["group_key"].isin([group_a, group_b])].groupby(["group_key", "case"])[metric].mean()
    )
    if group_a not in per_case.index.get_level_values(0) or group_b not in per_case.index.get_level_values(0):
        return {"p": np.nan, "n": 0, "mean_diff": np.nan}
    paired = pd.concat([per_case[group_a], per_case[group_b]], axis=1, join="inner", keys=["a", "b"]).dropna()
    diff = (paired["a"] - paired["b"]).to_numpy()
    out = {"p": np.nan, "n": int(diff.size), "mean_diff": float(diff.mean()) if diff.size else np.nan}
    if diff.size < 2:
        return out
    if np.allclose(diff, 0.0):
        out["p"] = 1.0  # identical per-case results: no evidence of any difference
        return out
    out["p"] = float(wilcoxon(paired["a"], paired["b"], alternative="two-sided").pvalue)
    return out


def p_marker(p: float) -> str:
    """ "0.012*" (p < 0.05), "0.300", "<0.001*", or "—" when the test could not run."""
    if p is None or _isnan(p):
        return "—"
    return "<0.001*" if p < 0.001 else f"{p:.3f}{'*' if p < 0.05 else ''}"


def _spacing_value(spacing):
    from sslbench.datasets.base import spacing_text

    if spacing is None:
        return None
    text = spacing_text(spacing)
    return float(text) if "x" not in text else text
