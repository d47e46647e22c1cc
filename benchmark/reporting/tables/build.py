"""The paper's Tables 1-4 as named grids of runs, rendered with the paper's numbers beside ours.

Each table is a list of rows in the paper's order; a row names the method (registry names to try), the split and
the method settings it pins (e.g. {"lrep.beta": "2"}). `bench table N` builds the row's configs (one per seed),
runs the missing ones through the sweep runner, and renders Markdown, LaTeX and CSV. Rows share runs when their
configs are equal (the run id is a hash of the resolved config), so lrep with beta 1, lambda 0.1 is trained
once for Tables 1, 3 and 4.

A row is matched to finished runs by method, split and the method's own config section: an exact match of
the whole section first (what `bench table` produced), else the runs whose pinned keys and variant agree (e.g.
runs made with `--set uamt.repeats=8`, which changes the run id but not the maths); the table notes it.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sslbench.benchmark.config import ConfigError, build_config, method_section, sets_for
from sslbench.benchmark.reporting.aggregate import mean_std, p_marker, paired_wilcoxon, summarize
from sslbench.benchmark.reporting.format import latex_escape, markdown_cell, number
from sslbench.methods.registry import UnknownMethodError, baseline_method, canonical_name, get_method

OURS = {"lrep.beta": "1", "lrep.lam": "0.1"}  # the paper's "Ours": L2-exp, beta (gamma) = 1, lambda = 0.1


@dataclass(frozen=True)
class RowSpec:
    """One row of a paper table.

    Attributes:
        label: the paper's row name.
        methods: registry names to try in order (the first registered one is used).
        split: N/M labeled/unlabeled.
        sets: method-section overrides this row pins, e.g. {"lrep.beta": "2"}.
        paper: criteria selecting the row of reporting/tables/paper.csv (columns method, variant, beta, lambda).
        reference: the row the Wilcoxon tests compare every other row against ("Ours").
        cells: extra leading cells of this table (e.g. {"β": "2", "λ": "0.1"}).
        shared: the row repeats another table's row (the report shows a table only for its own rows).
    """

    label: str
    methods: tuple[str, ...]
    split: str
    sets: dict[str, str] = field(default_factory=dict)
    paper: dict[str, Any] = field(default_factory=dict)
    reference: bool = False
    cells: dict[str, str] = field(default_factory=dict)
    shared: bool = False


@dataclass(frozen=True)
class TableSpec:
    number: int
    title: str
    rows: tuple[RowSpec, ...]
    lead_columns: tuple[str, ...]  # the headers of the cells before the metrics


def _main_table(number: int, n_labeled: int, n_unlabeled: int) -> TableSpec:
    split = f"{n_labeled}/{n_unlabeled}"

    def row(label, methods, paper, **kw) -> RowSpec:
        return RowSpec(label, methods, kw.pop("split", split), paper={"method": paper}, **kw)

    return TableSpec(
        number,
        f"LA with {n_labeled} labeled and {n_unlabeled} unlabeled training cases",
        (
            row("Upper bound", ("sup",), "upper_bound", split="80/0", shared=number != 1),
            row("Lower bound", ("sup",), "lower_bound", split=f"{n_labeled}/0"),
            row("MT", ("mt",), "mt"),
            row("SASSnet", ("sassnet",), "sassnet"),
            row("DCT (DTC)", ("dtc", "dct"), "dct"),
            row("UAMT", ("uamt",), "uamt"),
            row("URPC", ("urpc",), "urpc"),
            row("Ours (L2-exp)", ("lrep",), "lrep", sets=OURS, reference=True),
        ),
        ("Method", "Split", "#K"),
    )


def _table3() -> TableSpec:
    def row(label, sets, paper, unc, **kw) -> RowSpec:
        return RowSpec(
            label,
            ("lrep",) if sets is not None else ("uamt",),
            "8/72",
            sets or {},
            paper,
            cells={"Uncertainty": unc},
            **kw,
        )

    return TableSpec(
        3,
        "Uncertainty estimation strategies, LA 8/72",
        (
            row("UAMT", None, {"method": "uamt"}, "entropy of K MC passes, threshold", shared=True),
            row(
                "Ours-threshold",
                {"lrep.variant": "threshold", "lrep.lam": "0.1"},
                {"method": "lrep", "variant": "threshold"},
                "L2 to DAE, threshold",
            ),
            row(
                "Ours-entropy",
                {"lrep.variant": "entropy", **OURS},
                {"method": "lrep", "variant": "entropy"},
                "entropy of DAE output, exp",
            ),
            row(
                "Ours",
                OURS,
                {"method": "lrep", "variant": "l2exp"},
                "L2 to DAE, exp",
                reference=True,
                shared=True,
            ),
        ),
        ("Method", "Uncertainty", "#K"),
    )


def _table4() -> TableSpec:
    rows = []
    for beta in ("0.1", "0.5", "1", "2", "5"):
        rows.append((beta, "0.1"))
    for lam in ("0.01", "0.05", "0.1", "0.5", "1"):
        rows.append(("1", lam))
    specs = tuple(
        RowSpec(
            f"β={b}, λ={lam}",
            ("lrep",),
            "8/72",
            {"lrep.beta": b, "lrep.lam": lam},
            {"method": "lrep", "beta": float(b), "lambda": float(lam)},
            reference=(b, lam) == ("1", "0.1"),
            shared=(b, lam) == ("1", "0.1"),
            cells={"β": b, "λ": lam},
        )
        for b, lam in rows
    )
    return TableSpec(4, "Sensitivity to β (λ = 0.1) and λ (β = 1), LA 8/72", specs, ("β", "λ"))


TABLES: dict[int, TableSpec] = {
    1: _main_table(1, 8, 72),
    2: _main_table(2, 16, 64),
    3: _table3(),
    4: _table4(),
}


# --- the paper's numbers ------------------------------------------------------------------------------------
def paper_tables() -> pd.DataFrame:
    """The seed paper's Tables 1-4 (reporting/tables/paper.csv, package data)."""
    try:
        text = resources.files("sslbench.benchmark.reporting.tables").joinpath("paper.csv").read_text()
    except (NotADirectoryError, FileNotFoundError, ModuleNotFoundError, TypeError):
        # An editable install made before benchmark/__init__.py existed exposes the package as a namespace,
        # which importlib.resources cannot read; the file sits next to this module either way.
        text = (Path(__file__).parent / "paper.csv").read_text()
    return pd.read_csv(io.StringIO(text), dtype={"variant": str}, keep_default_na=True)


def paper_row(paper: pd.DataFrame, table: int, criteria: dict[str, Any]) -> dict | None:
    """The first paper row of `table` matching `criteria` (numbers compared as floats), or None."""
    rows = paper[paper["table"] == table]
    for key, value in criteria.items():
        if isinstance(value, float):
            rows = rows[np.isclose(rows[key].astype(float), value)]
        else:
            rows = rows[rows[key].fillna("").astype(str) == str(value)]
    return rows.iloc[0].to_dict() if len(rows) else None


# --- resolving rows to configs ------------------------------------------------------------------------------
def resolve_method(row: RowSpec) -> str:
    """The first of the row's method names that is registered; UnknownMethodError naming them all otherwise."""
    for name in row.methods:
        try:
            return canonical_name(name)
        except UnknownMethodError:
            continue
    raise UnknownMethodError(f"method {' / '.join(row.methods)} is not registered (its row is left empty)")


def _row_sets(row: RowSpec, method: str, sets: dict[str, str]) -> dict[str, str]:
    """Global --set values for this row: data/train/eval keys always, a method's keys only for its rows."""
    out = sets_for(method, sets)
    pinned = {f"{method}.{k.partition('.')[2]}": v for k, v in row.sets.items()}
    return {**out, **pinned}


def expected_method_config(row: RowSpec, method: str) -> dict[str, Any]:
    """`method.key` -> value of the row's method section (its defaults plus the row's pinned keys)."""
    cfg = build_config(method, row.split, preset="smoke", sets=_row_sets(row, method, {}))
    return {f"{method}.{k}": v for k, v in cfg.to_dict()[method].items()}


def row_configs(
    row: RowSpec, seeds: list[int], preset: str, sets: dict[str, str], data_root: str | None
) -> list:
    """The row's RunConfigs, one per seed, built by the sweep runner's `expand_grid`."""
    from sslbench.benchmark.sweep.grid import expand_grid

    method = resolve_method(row)
    return expand_grid([method], [row.split], seeds, preset, _row_sets(row, method, sets), data_root)


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
    expected = expected_method_config(row, method)
    candidates = summary[(summary["method"] == method) & (summary["split"] == row.split)]
    if candidates.empty:
        return None, ""

    def section(settings: dict) -> dict:
        return {k: v for k, v in settings.items() if k.startswith(f"{method}.")}

    exact = [
        i
        for i, s in candidates["settings"].items()
        if section(s).keys() == expected.keys() and all(_same(s[k], expected[k]) for k in expected)
    ]
    pinned = [f"{method}.{k.partition('.')[2]}" for k in row.sets] + [f"{method}.variant"]
    pinned = [k for k in pinned if k in expected]
    loose = [
        i for i, s in candidates["settings"].items() if all(_same(s.get(k), expected[k]) for k in pinned)
    ]
    chosen = exact or loose
    if not chosen:
        return None, ""
    best = candidates.loc[chosen].sort_values(["n_done", "n_failed"], ascending=False).iloc[0]
    note = ""
    if not exact:
        differ = [
            f"{k.partition('.')[2]}={best['settings'].get(k)}"
            for k in expected
            if not _same(best["settings"].get(k), expected[k])
        ]
        note = "settings differ from the row's defaults: " + ", ".join(differ)
    if len(chosen) > 1:
        note = (
            note + "; " if note else ""
        ) + f"{len(chosen)} matching experiments, showing the one with most seeds"
    return best, note


# --- building a table ---------------------------------------------------------------------------------------
@dataclass
class TableResult:
    spec: TableSpec
    rows: list[dict]  # one per RowSpec, in the paper's order
    caption: str


def build_table(
    spec: TableSpec,
    runs: pd.DataFrame,
    cases: pd.DataFrame | None = None,
    planned: int | None = None,
    row_errors: dict[int, str] | None = None,
    protocol: str = "",
) -> TableResult:
    """Assemble one paper table from collected runs (`aggregate.collect`, already limited to one protocol).

    Args:
        spec: the table.
        runs: collected runs; rows with no match are left empty and say why.
        cases: per-case metrics (`aggregate.load_cases`) for the Wilcoxon column; None skips the test.
        planned: seeds planned per row (shown as done/planned); None shows done seeds only.
        row_errors: row index -> why its configs could not be built (e.g. the method is not registered).
        protocol: the caption's protocol sentence (`describe_protocol`).
    """
    paper = paper_tables()
    summary = summarize(runs) if not runs.empty else pd.DataFrame(columns=["method", "split", "settings"])
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
            for metric in ("dice", "jaccard", "hd95_vox", "asd_vox", "hd95_mm", "asd_mm"):
                out[metric] = group[metric]
                out[f"{metric}_mean"] = group[f"{metric}_mean"]
                out[f"{metric}_std"] = group[f"{metric}_std"]
            out["n_done"], out["n_failed"] = int(group["n_done"]), int(group["n_failed"])
            out["n_incomplete"] = int(group["n_incomplete"])
            if group["errors"]:
                out["note"] = (out["note"] + "; " if out["note"] else "") + f"failed: {group['errors']}"
        else:
            out["n_done"] = out["n_failed"] = out["n_incomplete"] = 0
            if not out["note"]:
                out["note"] = "no runs found"
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
    return TableResult(spec, results, caption(spec, protocol))


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
    return (
        f"Ours = this benchmark, mean±std over seeds; paper = Adiga V. et al., MICCAI 2022, Table {spec.number}; "
        "Δ = ours − paper. The paper labels HD in mm, but its code calls medpy "
        "without spacing, so its HD is most likely in voxels of the 0.625 mm data: it is compared with our HD95 "
        "in voxels. p = two-sided paired Wilcoxon signed-rank test on per-case Dice (mean over seeds) against "
        "the ref. row, not corrected for multiple comparisons; * p < 0.05. " + protocol
    ).strip()


def describe_protocol(runs: pd.DataFrame, configs: list | None = None) -> str:
    """The protocol sentence of a caption, from the runs' recorded configs (or the planned configs)."""
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
                f"{r['dataset']} ({float(r['spacing_mm']):g} mm voxels, {int(r['n_train'])} train / "
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
    return (
        f"Protocol: preset {', '.join(presets)}; dataset {'; '.join(datasets)}; seeds {', '.join(map(str, seeds))} "
        f"(std = sample std, ddof=1; one seed shown as n=1); checkpoint: last iteration; HD95 and ASD in voxels "
        f"(mm = voxels × spacing in the CSV); empty prediction: {policy}; post-processing: {post}; sliding window "
        f"stride {values('eval.stride_xy')} (x, y) / {values('eval.stride_z')} (z); "
        f"{values('train.iterations')} iterations."
    )


# --- rendering ----------------------------------------------------------------------------------------------
METRIC_HEADERS = (
    "Dice %",
    "Dice % (paper)",
    "Δ Dice",
    "HD95 vox",
    "HD95 (paper)",
    "Δ HD95",
    "Jaccard %",
    "ASD vox",
    "p (Dice vs ref.)",
    "Seeds",
)


def _lead_cells(spec: TableSpec, r: dict) -> list[str]:
    cells = {"Method": r["label"], "Split": r["split"], "#K": r.get("K", "-")}
    return [str(cells.get(h, r.get(h, ""))) for h in spec.lead_columns]


def display_rows(result: TableResult) -> tuple[list[str], list[list[str]], list[str]]:
    """Headers, cell strings per row, and the notes (one per row that has one, numbered like the rows)."""
    headers = [*result.spec.lead_columns, *METRIC_HEADERS]
    body, notes = [], []
    for r in result.rows:
        lead = _lead_cells(result.spec, r)
        if r["note"]:
            notes.append(f"[{len(notes) + 1}] {r['label']}: {r['note']}")
            lead[0] += f" [{len(notes)}]"
        paper_dice = (
            mean_std([r["paper_dice"]])
            if pd.isna(r["paper_dice_std"])
            else f"{r['paper_dice']:.2f}±{r['paper_dice_std']:.2f}"
        )
        paper_hd = "—" if pd.isna(r["paper_hd95"]) else f"{r['paper_hd95']:.2f}±{r['paper_hd95_std']:.2f}"
        body.append(
            [
                *lead,
                r.get("dice", "—"),
                paper_dice if not pd.isna(r["paper_dice"]) else "—",
                number(r["dice_diff"], signed=True),
                r.get("hd95_vox", "—"),
                paper_hd,
                number(r["hd95_diff"], signed=True),
                r.get("jaccard", "—"),
                r.get("asd_vox", "—"),
                r["p_cell"],
                r["seeds"],
            ]
        )
    return headers, body, notes


def to_markdown(result: TableResult) -> str:
    headers, body, notes = display_rows(result)

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(markdown_cell(c) for c in cells) + " |"

    align = ["---" if i < len(result.spec.lead_columns) else "--:" for i in range(len(headers))]
    title = f"**Table {result.spec.number}: {result.spec.title}.** {result.caption}"
    parts = [title, "", line(headers), "| " + " | ".join(align) + " |", *map(line, body)]
    if notes:
        parts += ["", "Notes: " + " ".join(notes)]
    return "\n".join(parts) + "\n"


def to_latex(result: TableResult, label: str | None = None) -> str:
    """A plain `tabular` in a `table` float (no extra packages), caption above, notes below."""
    headers, body, notes = display_rows(result)
    n_lead = len(result.spec.lead_columns)
    colspec = "l" * n_lead + "r" * (len(headers) - n_lead)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{latex_escape(result.spec.title + '. ' + result.caption)}}}",
        rf"\label{{{label or f'tab:sslbench-table{result.spec.number}'}}}",
        r"\scriptsize",
        rf"\begin{{tabular}}{{{colspec}}}",
        r"\hline",
        " & ".join(latex_escape(h) for h in headers) + r" \\",
        r"\hline",
        *(" & ".join(latex_escape(c) for c in cells) + r" \\" for cells in body),
        r"\hline",
        r"\end{tabular}",
    ]
    if notes:
        lines.append(r"\par\smallskip " + latex_escape(" ".join(notes)))
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


CSV_COLUMNS = (
    "label",
    "method",
    "split",
    "K",
    "dice_mean",
    "dice_std",
    "paper_dice",
    "paper_dice_std",
    "dice_diff",
    "hd95_vox_mean",
    "hd95_vox_std",
    "paper_hd95",
    "paper_hd95_std",
    "hd95_diff",
    "jaccard_mean",
    "jaccard_std",
    "asd_vox_mean",
    "asd_vox_std",
    "hd95_mm_mean",
    "hd95_mm_std",
    "asd_mm_mean",
    "asd_mm_std",
    "p_wilcoxon",
    "n_cases_paired",
    "n_done",
    "n_failed",
    "n_incomplete",
    "group_key",
    "note",
)


def to_csv(result: TableResult) -> str:
    """Numbers, not strings: means and sample stds in the units shown (Dice %, HD95 voxels), plus the paper's."""
    buf = io.StringIO()
    ascii_names = {"β": "beta", "λ": "lambda", "Uncertainty": "uncertainty"}  # plain column names for tools
    extra = [c for c in result.spec.lead_columns if c not in ("Method", "Split", "#K")]
    writer = csv.DictWriter(
        buf,
        fieldnames=[ascii_names.get(c, c) for c in [*extra, *CSV_COLUMNS]],
        extrasaction="ignore",
        lineterminator="\n",
    )
    writer.writeheader()
    for r in result.rows:
        row = {ascii_names.get(k, k): v for k, v in r.items()}
        writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    return buf.getvalue()


def write_table(result: TableResult, out_dir: Path, stem: str | None = None) -> list[Path]:
    """Write `<stem>.md`, `.tex` and `.csv` into `out_dir`; returns the paths."""
    from sslbench.benchmark.runs.io import write_text

    stem = stem or f"table{result.spec.number}"
    renders: dict[str, Callable[[TableResult], str]] = {"md": to_markdown, "tex": to_latex, "csv": to_csv}
    paths = []
    for ext, render in renders.items():
        path = Path(out_dir) / f"{stem}.{ext}"
        write_text(path, render(result))
        paths.append(path)
    return paths


# --- the `bench table` pipeline -----------------------------------------------------------------------------
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
    numbers: list[int], seeds: list[int], preset: str, sets: dict[str, str], data_root: str | None
) -> list[TablePlan]:
    """Build every row's configs; a row whose method is missing or whose settings are invalid gets an error.

    Raises:
        ConfigError: a --set key whose section is neither data/train/eval nor a registered method.
    """
    _check_sets(sets, preset, data_root)
    plans = []
    for table_no in numbers:
        spec = TABLES[table_no]
        configs, errors = {}, {}
        for i, row in enumerate(spec.rows):
            try:
                configs[i] = row_configs(row, seeds, preset, sets, data_root)
            except (UnknownMethodError, ConfigError) as exc:
                errors[i] = str(exc)
        plans.append(TablePlan(spec, configs, errors))
    return plans


def render_plans(plans: list[TablePlan], out: Path, render_dir: Path, n_seeds: int) -> list[TableResult]:
    """Render each planned table from the runs in `out` that belong to it (matched by run id)."""
    from sslbench.benchmark.reporting.aggregate import collect, load_cases

    runs = collect(out) if Path(out).is_dir() else pd.DataFrame()
    results = []
    for plan in plans:
        all_configs = [c for cs in plan.configs.values() for c in cs]
        ids = {c.run_id() for c in all_configs}
        mine = runs[runs["run_id"].isin(ids)] if not runs.empty else runs
        cases = load_cases(mine) if not mine.empty else None
        protocol = describe_protocol(mine, all_configs)
        result = build_table(plan.spec, mine, cases, n_seeds, plan.errors, protocol)
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
    run: bool = True,
    **sweep_kwargs: Any,
) -> tuple[list[TableResult], list]:
    """Plan the tables, run the missing runs once each (shared rows dedupe by run id), then render them.

    Returns:
        The rendered tables and the sweep's outcomes (empty when `run` is False).
    """
    plans = plan_tables(numbers, seeds, preset, sets or {}, data_root)
    unique: dict[str, Any] = {}
    for plan in plans:
        for configs in plan.configs.values():
            for cfg in configs:
                unique.setdefault(cfg.run_id(), cfg)
    outcomes = []
    if run and unique:
        from sslbench.benchmark.sweep.runner import run_sweep

        outcomes = run_sweep(list(unique.values()), Path(out), **sweep_kwargs)
    return render_plans(plans, out, render_dir, len(seeds)), outcomes
