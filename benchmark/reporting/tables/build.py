"""The paper's Tables 1-4 as named grids of runs, rendered with the paper's numbers beside ours.

Each table is a list of rows in the paper's order; a row names the method (registry names to try), the split and
the method settings it pins (e.g. {"lrep.beta": "2"}). `bench table N` builds the row's configs (one per seed),
runs the missing ones through the sweep runner, and renders Markdown, LaTeX and CSV. Rows share runs when their
configs are equal (the run id is a hash of the resolved config), so lrep with beta 1, lambda 0.1 is trained
once for Tables 1, 3 and 4.

A row is matched to finished runs by method, split and the method's own config section, exactly: every key of
the section must equal the row's (its defaults plus its pinned keys). Runs whose pinned keys agree but whose
other keys differ (e.g. `--set uamt.repeats=8`, which changes the BatchNorm batches of UA-MT's passes and so the
numbers) are not shown as the row; the row says they exist and how they differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sslbench.benchmark.config import ConfigError
from sslbench.benchmark.evaluation.metrics import METRIC_COLUMNS
from sslbench.benchmark.reporting.aggregate import p_marker, paired_wilcoxon, summarize_runs
from sslbench.benchmark.reporting.tables.specs import (
    PAPER_TABLES,
    RowSpec,
    TableSpec,
    expected_method_config,
    paper_row,
    paper_tables,
    resolve_method,
)
from sslbench.datasets.base import spacing_text
from sslbench.methods.registry import UnknownMethodError, get_method

# --- the paper's numbers ------------------------------------------------------------------------------------


# --- resolving rows to configs ------------------------------------------------------------------------------


# --- matching finished runs to rows -------------------------------------------------------------------------
def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return (
            isinstance(a, (list, tuple))
            and isinstance(b, (list, tuple))
            and len(a) == len(b)
            and all(_same(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return str(a) == str(b)


def match_groups(row: RowSpec, method: str, summary: pd.DataFrame) -> tuple[pd.Series | None, str]:
    """The experiment (a summary row) that a table row shows, and a note when the match is not exact."""
    candidates = summary[(summary["method"] == method) & (summary["split"] == row.split)]
    if candidates.empty:
        return None, ""
    # What the row means under each experiment's own preset (a preset may set the method's keys: la-half's
    # lrep.dae_pose, the paper preset's lrep.dae_iterations).
    by_preset: dict[str, dict[str, Any]] = {}

    def expected(i) -> dict[str, Any]:
        preset = str(candidates.at[i, "preset"]) if "preset" in candidates else "smoke"
        if preset not in by_preset:
            by_preset[preset] = expected_method_config(row, method, preset)
        return by_preset[preset]

    def section(settings: dict) -> dict:
        return {k: v for k, v in settings.items() if k.startswith(f"{method}.")}

    exact = [
        i
        for i, s in candidates["settings"].items()
        if section(s).keys() == expected(i).keys() and all(_same(s[k], v) for k, v in expected(i).items())
    ]
    pinned = [f"{method}.{k.partition('.')[2]}" for k in row.sets] + [f"{method}.variant"]
    loose = [
        i
        for i, s in candidates["settings"].items()
        if all(_same(s.get(k), expected(i)[k]) for k in pinned if k in expected(i))
    ]
    if not exact:
        if not loose:
            return None, ""
        first = loose[0]
        other = candidates.loc[first]
        differ = [
            f"{k.partition('.')[2]}={other['settings'].get(k)}"
            for k, v in expected(first).items()
            if not _same(other["settings"].get(k), v)
        ]
        return None, (
            f"not shown: {len(loose)} experiment(s) with other settings ({', '.join(differ)}), which change the "
            "numbers; run the row's own configuration with `bench table`"
        )
    best = candidates.loc[exact].sort_values(["n_done", "n_failed"], ascending=False).iloc[0]
    note = f"{len(exact)} matching experiments, showing the one with most seeds" if len(exact) > 1 else ""
    return best, note


# --- building a table ---------------------------------------------------------------------------------------
@dataclass
class TableResult:
    spec: TableSpec
    rows: list[dict]  # one per RowSpec, in the paper's order
    caption: str
    dataset: str = ""  # the data the rows were computed on (every title names it)
    paper_columns: bool = True  # the paper's numbers and the differences are shown

    @property
    def title(self) -> str:
        return f"{self.dataset}: {self.spec.title}" if self.dataset else self.spec.title


PAPER_SPACING_MM = 0.625  # the LA challenge data at full resolution


def paper_comparable(runs: pd.DataFrame) -> tuple[bool, str]:
    """Whether the runs can stand beside the paper's numbers: the LA data at full resolution, paper preset.

    Returns (comparable, why not: a caption sentence, empty when comparable).
    """
    done = runs[runs["has_config"].astype(bool)] if not runs.empty else runs
    if done.empty:
        return False, "no runs yet"
    names = sorted({str(d) for d in done["dataset"].dropna()})
    presets = sorted({str(p) for p in done["preset"].dropna()})
    spacings = {str(s) if isinstance(s, str) else float(s) for s in done["spacing_mm"].dropna()}
    problems = []
    if any(n.lower().startswith("synthetic") for n in names):
        problems.append(f"the data is synthetic ({', '.join(names)})")
    elif spacings != {PAPER_SPACING_MM}:
        problems.append(
            f"the data is not at the LA's 0.625 mm ({', '.join(sorted(map(spacing_text_of, spacings)))} mm)"
        )
    if presets != ["paper"]:
        problems.append(f"the preset is {', '.join(presets)}, not paper")
    return not problems, " and ".join(problems)


def dataset_label(runs: pd.DataFrame) -> str:
    """The dataset name(s) of the runs, as titles show them."""
    if runs.empty or "dataset" not in runs:
        return ""
    return " + ".join(sorted({str(d) for d in runs["dataset"].dropna()}))


def build_table(
    spec: TableSpec,
    runs: pd.DataFrame,
    cases: pd.DataFrame | None = None,
    planned: int | None = None,
    row_errors: dict[int, str] | None = None,
    protocol: str = "",
    paper_columns: bool | None = None,
) -> TableResult:
    """Assemble one paper table from collected runs (`aggregate.collect`, already limited to one protocol).

    Args:
        spec: the table.
        runs: collected runs; rows with no match are left empty and say why.
        cases: per-case metrics (`aggregate.load_cases`) for the Wilcoxon column; None skips the test.
        planned: seeds planned per row (shown as done/planned); None shows done seeds only.
        row_errors: row index -> why its configs could not be built (e.g. the method is not registered).
        protocol: the caption's protocol sentence (`describe_protocol`).
        paper_columns: show the paper's numbers and the differences; None: only when the runs are comparable
            (`paper_comparable`: the LA data at full resolution under the paper preset).
    """
    paper = paper_tables()
    summary = (
        summarize_runs(runs) if not runs.empty else pd.DataFrame(columns=["method", "split", "settings"])
    )
    row_errors = row_errors or {}
    results = []
    for i, row in enumerate(spec.rows):
        ref = paper_row(paper, spec.number, row.paper)
        out: dict[str, Any] = {
            "label": row.label,
            "split": row.split,
            **row.cells,
            "method": None,
            "group_key": None,
            "note": row_errors.get(i, ""),
        }
        try:
            method = resolve_method(row)
            out["method"] = method
            out["K"] = get_method(method).k_label
            group, note = (None, "") if i in row_errors else match_groups(row, method, summary)
        except (UnknownMethodError, ConfigError) as exc:
            group, note = None, str(exc)
            out["K"] = "-" if ref is None or pd.isna(ref.get("K")) else str(int(ref["K"]))
        out["note"] = out["note"] or note
        if group is not None:
            out["group_key"] = group["group_key"]
            out["K"] = group["K"]
            for metric in METRIC_COLUMNS:
                out[metric] = group[metric]
                out[f"{metric}_mean"] = group[f"{metric}_mean"]
                out[f"{metric}_std"] = group[f"{metric}_std"]
            out["n_done"], out["n_failed"] = int(group["n_done"]), int(group["n_failed"])
            out["n_incomplete"] = int(group["n_incomplete"])
            if group["errors"]:
                out["note"] = (out["note"] + "; " if out["note"] else "") + f"failed: {group['errors']}"
            weak = _weak_dae_runs(runs, group["group_key"])
            if weak:
                out["note"] = (out["note"] + "; " if out["note"] else "") + (
                    f"the DAE of {weak} of its runs does not denoise (its output is farther from the clean mask "
                    "than its corrupted input), so their uncertainty mostly measures its reconstruction error"
                )
        else:
            out["n_done"] = out["n_failed"] = out["n_incomplete"] = 0
            if not out["note"]:
                out["note"] = "no runs found"
        if ref and spec.number not in PAPER_TABLES and isinstance(ref.get("source"), str):
            out["note"] = (out["note"] + "; " if out["note"] else "") + f"reported: {ref['source']}"
        out["paper_dice"] = ref["dice_mean"] if ref else np.nan
        out["paper_dice_std"] = ref["dice_std"] if ref else np.nan
        out["paper_hd95"] = ref["hd95_mean"] if ref else np.nan
        out["paper_hd95_std"] = ref["hd95_std"] if ref else np.nan
        out["dice_diff"] = out.get("dice_mean", np.nan) - out["paper_dice"]
        out["hd95_diff"] = out.get("hd95_vox_mean", np.nan) - out["paper_hd95"]
        out["seeds"] = _seeds_cell(out, planned)
        out["reference"] = row.reference
        out["shared"] = row.shared
        results.append(out)
    _add_wilcoxon(results, cases)
    comparable, why_not = paper_comparable(runs)
    show = comparable if paper_columns is None else paper_columns
    text = caption(spec, protocol)
    if not show:
        text = (
            f"The paper's columns are left out: {why_not} (`bench table --paper-columns` shows them anyway). "
            + text
        )
    return TableResult(spec, results, text, dataset_label(runs), show)


def _weak_dae_runs(runs: pd.DataFrame, group_key: str) -> int:
    """How many finished runs of an experiment used a prepared DAE that does not denoise (config.json)."""
    if "dae_denoises" not in runs:
        return 0
    mine = runs[(runs["group_key"] == group_key) & (runs["status"] == "done")]
    return int((mine["dae_denoises"] == False).sum())  # noqa: E712 (None means no DAE, not False)


def _seeds_cell(row: dict, planned: int | None) -> str:
    text = f"{row['n_done']}/{planned}" if planned else str(row["n_done"])
    extra = [f"{row[k]} {k[2:]}" for k in ("n_failed", "n_incomplete") if row.get(k)]
    return text + (f" ({', '.join(extra)})" if extra else "")


def _add_wilcoxon(rows: list[dict], cases: pd.DataFrame | None) -> None:
    """p-value of the paired Wilcoxon test on per-case Dice of each row against the reference row ("Ours")."""
    refs = [r for r in rows if r["reference"] and r["group_key"]]
    for r in rows:
        r["p_wilcoxon"], r["n_cases_paired"], r["p_cell"] = np.nan, 0, "—"
        if r["reference"]:
            r["p_cell"] = "ref."
            continue
        if cases is None or not refs or not r["group_key"]:
            continue
        test = paired_wilcoxon(cases, refs[0]["group_key"], r["group_key"], "dice")
        r["p_wilcoxon"], r["n_cases_paired"] = test["p"], test["n"]
        r["p_cell"] = p_marker(test["p"])


def caption(spec: TableSpec, protocol: str) -> str:
    """The caption after the title: how to read the columns, then the protocol."""
    source = (
        "each method's own reported numbers (source in the row's note; none: not reported for LA at that split)"
        if spec.number not in PAPER_TABLES
        else f"Adiga V. et al., MICCAI 2022, Table {spec.number}"
    )
    return (
        f"Ours = this benchmark, mean±std over seeds; paper = {source}; "
        "Δ = ours − paper. The paper labels HD in mm, but its code calls medpy "
        "without spacing, so its HD is most likely in voxels of the 0.625 mm data: it is compared with our HD95 "
        "in voxels. p = two-sided paired Wilcoxon signed-rank test on per-case Dice (mean over seeds) against "
        "the ref. row, not corrected for multiple comparisons; * p < 0.05. " + protocol
    ).strip()


def _precisions(runs: pd.DataFrame, configs: list | None) -> set[str]:
    """How the rows computed: bf16 autocast where `train.amp` was on and the run was on CUDA, else fp32."""
    if not runs.empty:
        return {
            "bf16 autocast"
            if bool(r["settings"].get("train.amp")) and str(r["device"]).startswith("cuda")
            else "fp32"
            for _, r in runs.iterrows()
            if r.get("has_config") and pd.notna(r.get("device"))
        }
    return {"fp32 (bf16 autocast on CUDA)" if c.train.amp else "fp32" for c in configs or []}


def _provenance_text(runs: pd.DataFrame) -> str:
    """ "; code commit a1b2c3d / e4f5a6b; CPU threads per run 1": where the finished rows' numbers came from."""
    if runs.empty or "commit" not in runs:
        return ""
    done = runs[runs["status"] == "done"]
    commits = sorted({str(c) for c in done["commit"].dropna()})
    threads = sorted({int(t) for t in done["threads"].dropna()})
    text = f"; code commit {' / '.join(commits)}" if commits else ""
    if threads:
        text += f"; CPU threads per run {' / '.join(map(str, threads))}"
    return text


def _left_out_text(runs: pd.DataFrame) -> str:
    """ " Left out: 1 damaged (…/metrics.json: …), 2 incomplete.": runs of the table that no mean includes."""
    if runs.empty or "status" not in runs:
        return ""
    bad = runs[runs["status"] != "done"]
    if bad.empty:
        return ""
    parts = []
    for status, group in bad.groupby("status", sort=True):
        reasons = sorted({str(e).splitlines()[0][:120] for e in group["error"].dropna()})
        why = f" ({'; '.join(reasons[:2])}{'; ...' if len(reasons) > 2 else ''})" if reasons else ""
        parts.append(f"{len(group)} {status}{why}")
    return f" Left out: {len(bad)} run(s) with no result: {', '.join(parts)}."


def describe_protocol(runs: pd.DataFrame, configs: list | None = None) -> str:
    """The protocol sentence of a caption, from the runs' recorded configs (or the planned configs).

    It names the code commit(s) and CPU thread counts the finished rows came from, and the runs left out of
    every mean (failed, incomplete, damaged) with their reasons.
    """
    settings = [s for s in runs.get("settings", pd.Series(dtype=object)) if s] if not runs.empty else []
    if not settings and configs:
        from sslbench.benchmark.reporting.aggregate import flatten_config

        settings = [flatten_config(c.to_dict()) for c in configs]
    if not settings:
        return ""

    def values(key: str) -> str:
        seen = []
        for s in settings:
            v = s.get(key)
            if v is not None and str(v) not in seen:
                seen.append(str(v))
        return " / ".join(seen) or "?"

    presets = sorted({str(p) for p in runs["preset"].dropna()}) if not runs.empty else []
    presets = presets or sorted({c.preset for c in configs or []})
    datasets = []
    if not runs.empty:
        for _, r in runs.dropna(subset=["dataset"]).drop_duplicates("dataset").iterrows():
            known = all(pd.notna(r[k]) for k in ("spacing_mm", "n_train", "n_test"))
            datasets.append(
                f"{r['dataset']} ({spacing_text_of(r['spacing_mm'])} mm voxels, {int(r['n_train'])} train / "
                f"{int(r['n_test'])} test cases)"
                if known
                else str(r["dataset"])
            )
    if not datasets:
        datasets = [values("data.root").replace("None", "built-in synthetic")]
    seeds = sorted({int(s) for s in runs["seed"].dropna()}) if not runs.empty else []
    seeds = seeds or sorted({c.seed for c in configs or []})
    empty = {
        "worst": "worst case (Dice 0, HD95/ASD = volume diagonal), counted",
        "legacy-zero": "legacy zero (all metrics 0, as in the reference code)",
    }
    policy = " / ".join(empty.get(v, v) for v in values("eval.empty_policy").split(" / "))
    post = "largest connected component" if values("eval.largest_cc") == "True" else "none"
    precisions = sorted(_precisions(runs, configs))
    recipes = sorted({str(r) for r in runs["recipe"].dropna()}) if "recipe" in runs else []
    recipes = recipes or sorted({c.recipe for c in configs or []}) or ["benchmark"]
    recipe_text = {
        "benchmark": "benchmark (every method under one protocol)",
        "published": "published (each method's own authors' iterations, lr and batch)",
    }
    return (
        f"Protocol: preset {', '.join(presets)}; dataset {'; '.join(datasets)}; seeds {', '.join(map(str, seeds))} "
        f"(std = sample std, ddof=1; one seed shown as n=1); checkpoint: last iteration; HD95 and ASD in voxels "
        f"(mm = voxels × spacing in the CSV); empty prediction: {policy}; post-processing: {post}; sliding window "
        f"stride {values('eval.stride_xy')} (x, y) / {values('eval.stride_z')} (z); "
        f"{values('train.iterations')} iterations; precision {' / '.join(precisions) or '?'}; "
        f"recipe {' / '.join(recipe_text.get(r, r) for r in recipes)}{_provenance_text(runs)}."
        f"{_left_out_text(runs)}"
    )


# --- rendering ----------------------------------------------------------------------------------------------


# --- the `bench table` pipeline -----------------------------------------------------------------------------


def spacing_text_of(value) -> str:
    """A run's `spacing_mm` column (a number, or "0.7x0.7x2.5" when anisotropic) as text."""
    return value if isinstance(value, str) else spacing_text(value)
