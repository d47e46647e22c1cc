"""`bench report`: one Markdown page with every table and figure of a results folder.

The page (report.md) embeds, with relative paths: a summary of every experiment (failed runs counted and
listed), the paper's Tables 1-4 wherever matching runs exist (ours beside the paper's, with the Wilcoxon
column), a significance table, and the figures of `figures.py`. Figures whose data is absent are skipped and the
page says why.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path

import pandas as pd

import sslbench.methods  # noqa: F401  (registers the built-in methods the tables resolve)
from sslbench.benchmark.reporting import figures
from sslbench.benchmark.reporting.aggregate import (
    collect,
    load_cases,
    load_logs,
    p_marker,
    paired_wilcoxon,
    summarize_runs,
)
from sslbench.benchmark.reporting.format import markdown_table, number
from sslbench.benchmark.reporting.subsets import rank_stability, subset_variance
from sslbench.benchmark.reporting.tables.build import build_table, describe_protocol, match_groups
from sslbench.benchmark.reporting.tables.render import to_markdown, write_table
from sslbench.benchmark.reporting.tables.specs import TABLES, paper_tables, resolve_method
from sslbench.benchmark.runs.folder import WEIGHTS_FILE
from sslbench.benchmark.runs.io import write_text
from sslbench.methods.registry import UnknownMethodError, display_name

SIGNIFICANCE_HELP = """\
How to read the p-values: for each pair (Ours, another experiment at the same number of labeled cases) we take
each test case's Dice averaged over the seeds of each experiment, pair the two by case, and run a two-sided
Wilcoxon signed-rank test (scipy.stats.wilcoxon) on the paired differences. `*` marks p < 0.05. Caveats: the
test set is small (20 cases on LA), and with n cases the smallest reachable p is 2/2^n (0.0625 for 5 cases), so
few cases can never reach significance; seeds are averaged, not treated as extra samples, so seed variance is not
part of the test; the p-values are NOT corrected for multiple comparisons (with 7 baselines, about one in three
tables would show a false `*` at 0.05 by chance if nothing differed: use Holm or Bonferroni for a family-wise
claim); and a significant difference on a synthetic or downsampled proxy says nothing about the real LA data.
"""


def summary_markdown(summary: pd.DataFrame, labels: dict[str, str]) -> str:
    headers = [
        "Experiment",
        "Preset",
        "Dataset",
        "#K",
        "Seeds done",
        "Failed",
        "Dice %",
        "Jaccard %",
        "HD95 vox",
        "ASD vox",
        "HD95 mm",
        "ASD mm",
        "s/iter",
        "Peak MB",
    ]
    rows = []
    for _, g in summary.iterrows():
        failed = str(g["n_failed"]) + (f" (+{g['n_incomplete']} incomplete)" if g["n_incomplete"] else "")
        rows.append(
            [
                labels.get(g["group_key"], g["method"]),
                g["preset"] or "?",
                g["dataset"] or "?",
                g["K"],
                g["n_done"],
                failed,
                g["dice"],
                g["jaccard"],
                g["hd95_vox"],
                g["asd_vox"],
                g["hd95_mm"],
                g["asd_mm"],
                number(g["sec_per_iter"]),
                number(g["peak_memory_mb"], 0),
            ]
        )
    return markdown_table(headers, rows)


def problems_markdown(runs: pd.DataFrame) -> str:
    bad = runs[runs["status"] != "done"]
    if bad.empty:
        return "None: every run folder holds a finished run.\n"
    rows = [
        [r["run_name"], r["status"], str(r["error"] or "").splitlines()[0][:200]] for _, r in bad.iterrows()
    ]
    return markdown_table(["Run folder", "Status", "Error (first line)"], rows)


def contexts(runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Runs split by (preset, dataset): a paper table never mixes protocols."""
    known = runs[runs["has_config"].astype(bool)]
    out = []
    for (preset, dataset), part in known.groupby(["preset", "dataset"], dropna=False, sort=True):
        out.append((f"{preset}, {dataset}", part))
    return out


def reference_groups(summary: pd.DataFrame) -> dict[int, str]:
    """n_labeled -> group_key of "Ours" (lrep at the paper's defaults) for each labeled count, where present."""
    ours = TABLES[1].rows[-1]
    try:
        method = resolve_method(ours)
    except UnknownMethodError:
        return {}
    refs: dict[int, str] = {}
    done = summary[(summary["method"] == method) & (summary["n_done"] > 0)]
    for split in sorted(done["split"].unique(), key=lambda s: [int(x) for x in s.split("/")]):
        group, _ = match_groups(replace(ours, split=split), method, summary)
        if group is not None and group["n_done"] > 0:
            refs.setdefault(int(group["n_labeled"]), group["group_key"])
    return refs


def significance_markdown(summary: pd.DataFrame, cases: pd.DataFrame, labels: dict[str, str]) -> str:
    refs = reference_groups(summary)
    if not refs:
        return "Skipped: no finished run of Ours (lrep at β = 1, λ = 0.1) to compare against.\n"
    rows = []
    for n, ref in refs.items():
        ref_row = summary[summary["group_key"] == ref].iloc[0]
        same_protocol = (summary["preset"] == ref_row["preset"]) & (summary["dataset"] == ref_row["dataset"])
        others = summary[
            (summary["group_key"] != ref)
            & (summary["n_done"] > 0)
            & same_protocol
            & ((summary["n_labeled"] == n) | summary.apply(figures.is_upper_bound, axis=1))
        ]
        for _, g in others.iterrows():
            test = paired_wilcoxon(cases, ref, g["group_key"], "dice")
            diff = "—" if pd.isna(test["mean_diff"]) else f"{100 * test['mean_diff']:+.2f}"
            rows.append([labels[ref], labels[g["group_key"]], test["n"], diff, p_marker(test["p"])])
    if not rows:
        return "Skipped: no other finished experiment at the labeled counts of Ours.\n"
    return markdown_table(
        [
            "Ours",
            "Compared with",
            "Paired cases",
            "Mean Dice diff (points, Ours − other)",
            "p (Wilcoxon, two-sided)",
        ],
        rows,
    )


def versus_lower_bound_markdown(summary: pd.DataFrame, cases: pd.DataFrame, labels: dict[str, str]) -> str:
    """Each semi-supervised experiment against the supervised lower bound at its labeled count (the same test as
    above: per-case Dice averaged over seeds, paired by case, two-sided Wilcoxon)."""
    done = summary[summary["n_done"] > 0]
    lower = {
        (int(g["n_labeled"]), g["preset"], g["dataset"]): g["group_key"]
        for _, g in done.iterrows()
        if figures.is_baseline(g["method"]) and not figures.is_upper_bound(g) and not g.get("setting")
    }
    rows = []
    for _, g in done.iterrows():
        if figures.is_baseline(g["method"]) or pd.isna(g["n_labeled"]):
            continue
        base = lower.get((int(g["n_labeled"]), g["preset"], g["dataset"]))
        if base is None:
            continue
        test = paired_wilcoxon(cases, g["group_key"], base, "dice")
        diff = test["mean_diff"]
        beats = "yes" if test["p"] < 0.05 and diff > 0 else ("below" if test["p"] < 0.05 else "no")
        shown = "—" if pd.isna(diff) else f"{100 * diff:+.2f}"
        rows.append([labels[g["group_key"]], labels[base], test["n"], shown, p_marker(test["p"]), beats])
    if not rows:
        return "Skipped: no semi-supervised experiment with a finished lower bound at its labeled count.\n"
    return markdown_table(
        [
            "Experiment",
            "Lower bound",
            "Paired cases",
            "Mean Dice diff (points, experiment − bound)",
            "p (Wilcoxon, two-sided)",
            "Beats the bound (p < 0.05)",
        ],
        rows,
    )


MAX_FIGURE_GROUPS = 12  # more experiments than this make the box and cost plots unreadable


def focus(summary: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The experiments the overview figures show, and a note on what was left out.

    Up to MAX_FIGURE_GROUPS experiments: all of them. Beyond: those with default settings plus those that are
    rows of the paper's Tables 1-3 (so a Table 4 sweep does not drown the comparison between methods).
    """
    if len(summary) <= MAX_FIGURE_GROUPS:
        return summary, ""
    keep = set(summary.loc[summary["setting"] == "", "group_key"])
    for _, part in summary.groupby(["preset", "dataset"], dropna=False):
        for table_no in (1, 2, 3):
            for row in TABLES[table_no].rows:
                try:
                    group, _ = match_groups(row, resolve_method(row), part)
                except UnknownMethodError:
                    continue
                if group is not None:
                    keep.add(group["group_key"])
    subset = summary[summary["group_key"].isin(keep)]
    left = len(summary) - len(subset)
    return subset, (
        f" {left} experiments with other settings (e.g. a Table 4 sweep) are left out of this figure to keep "
        "it readable; they are in the summary table (and, for β and λ, in the sensitivity figure)."
    )


def qualitative_inputs(
    runs: pd.DataFrame, summary: pd.DataFrame, cases: pd.DataFrame, labels: dict[str, str]
) -> tuple[list[tuple[str, Path]], str | None, str]:
    """The runs to show in the qualitative figure, the test case, and why nothing could be chosen."""
    with_model = runs[
        (runs["status"] == "done") & runs["run_dir"].map(lambda d: (Path(d) / WEIGHTS_FILE).is_file())
    ]
    if with_model.empty:
        return [], None, "no finished run has model.pt (weights are needed to re-run inference)"
    refs = reference_groups(summary)
    semi = summary[(summary["n_unlabeled"].fillna(0) > 0) & (summary["n_done"] > 0)]
    if refs:
        n = next(iter(refs))
    elif not semi.empty:
        n = int(semi["n_labeled"].mode().iloc[0])
    else:
        n = int(summary["n_labeled"].dropna().mode().iloc[0])
    groups: list[str] = []
    if n in (8, 16):
        for row in TABLES[1 if n == 8 else 2].rows:
            try:
                group, _ = match_groups(row, resolve_method(row), summary)
            except UnknownMethodError:
                continue
            if group is not None:
                groups.append(group["group_key"])
    if not groups:  # another labeled count: one experiment per method and variant, the one with most seeds
        part = summary[(summary["n_labeled"] == n) | summary.apply(figures.is_upper_bound, axis=1)]
        part = part.sort_values("n_done", ascending=False).drop_duplicates(["method", "variant", "split"])
        groups = list(part["group_key"])
    picks = []
    for key in groups:
        candidates = with_model[with_model["group_key"] == key].sort_values("seed")
        if len(candidates):
            picks.append((labels[key], Path(candidates.iloc[0]["run_dir"])))
    if not picks:
        return [], None, "none of the table's experiments has a finished run with model.pt"
    picked_dirs = {str(d) for _, d in picks}
    common = None
    for d in picked_dirs:
        ids = set(cases.loc[cases["run_dir"] == d, "case"])
        common = ids if common is None else common & ids
    if not common:
        return [], None, "the chosen runs have no test case in common (cases.csv)"
    ref_key = refs.get(n) or groups[0]
    per_case = (
        cases[(cases["group_key"] == ref_key) & cases["case"].isin(common)].groupby("case")["dice"].mean()
    )
    # A typical case of Ours (its median Dice), not a cherry-picked one.
    case_id = sorted(common)[0] if per_case.empty else per_case.sort_values().index[len(per_case) // 2]
    return picks, str(case_id), ""


def build_report(results_dir: Path, out_dir: Path | None = None, qualitative: bool = True) -> Path:
    """Write report.md (plus tables/ and figures/) for every run below `results_dir`; returns report.md's path.

    Raises:
        FileNotFoundError: `results_dir` holds no run folder.
    """
    results_dir = Path(results_dir)
    out_dir = Path(out_dir) if out_dir is not None else results_dir / "report"
    runs = collect(results_dir)
    if runs.empty:
        raise FileNotFoundError(
            f"{results_dir}: no run folders found (folders with config.json, metrics.json or failed.json)"
        )
    summary = summarize_runs(runs)
    cases = load_cases(runs)
    logs = load_logs(runs)
    labels = figures.group_labels(summary)
    fig_dir, table_dir = out_dir / "figures", out_dir / "tables"
    write_text(table_dir / "summary.csv", summary.drop(columns=["settings", "run_dirs"]).to_csv(index=False))
    write_text(table_dir / "runs.csv", runs.drop(columns=["settings"]).to_csv(index=False))

    counts = runs["status"].value_counts().to_dict()
    datasets = sorted({str(d) for d in runs["dataset"].dropna()})
    banner = []
    if any(d.lower().startswith("synthetic") for d in datasets):
        banner = [
            "> **Synthetic data.** These runs are on the built-in synthetic LA-like phantom, a CPU proxy for "
            "checking code and relative cost: its numbers are not evidence about the LA dataset.",
            "",
        ]
    parts = [
        f"# sslbench results report: {', '.join(datasets) or 'no dataset recorded'}",
        "",
        *banner,
        f"Results folder: `{results_dir}` — generated {dt.datetime.now().isoformat(timespec='seconds')}. "
        f"Run folders: {len(runs)} ({counts.get('done', 0)} finished, {counts.get('failed', 0)} failed, "
        f"{counts.get('incomplete', 0)} incomplete). Experiments (runs differing only by seed): {len(summary)}.",
        "",
        "Numbers are mean±std over seeds (sample std, ddof=1; a single seed shows `(n=1)`), each seed's value "
        "being the mean over the test cases. Dice and Jaccard in %, HD95 and ASD in voxels and mm. Cost columns "
        "(seconds per iteration, peak memory) are as recorded by each run's machine and only comparable within "
        "one device; on a shared CPU they are indicative." + _contention_note(runs),
        "",
        "## All experiments",
        "",
        summary_markdown(summary, labels),
        "Machine-readable: [tables/summary.csv](tables/summary.csv) (one row per experiment), "
        "[tables/runs.csv](tables/runs.csv) (one row per run).",
        "",
        "## Failed and incomplete runs",
        "",
        problems_markdown(runs),
        "## The paper's tables",
        "",
    ]
    paper = paper_tables()
    ctxs = contexts(runs)
    any_table = False
    for table_no, spec in TABLES.items():
        shown = False
        for name, ctx_runs in ctxs:
            ctx_cases = cases[cases["run_dir"].isin(ctx_runs["run_dir"])]
            result = build_table(spec, ctx_runs, ctx_cases, None, None, describe_protocol(ctx_runs))
            if not any(r["group_key"] and not r["shared"] for r in result.rows):
                continue
            stem = f"table{table_no}" if len(ctxs) == 1 else f"table{table_no}_{_slug(name)}"
            write_table(result, table_dir, stem)
            heading = f"### Table {table_no}" + (f" ({name})" if len(ctxs) > 1 else "")
            parts += [
                heading,
                "",
                to_markdown(result),
                f"Also as [LaTeX](tables/{stem}.tex) and [CSV](tables/{stem}.csv).",
                "",
            ]
            shown = any_table = True
        if not shown:
            parts += [f"### Table {table_no}", "", f"No matching runs (run `bench table {table_no}`).", ""]
    if not any_table:
        parts += ["None of the paper's table rows has runs in this folder.", ""]
    parts += ["## Significance", "", significance_markdown(summary, cases, labels), "", SIGNIFICANCE_HELP, ""]
    parts += [
        "### Against the lower bound",
        "",
        "Does the unlabeled data help? Each semi-supervised experiment against the supervised lower bound at its "
        "number of labeled cases (same test and caveats as above).",
        "",
        versus_lower_bound_markdown(summary, cases, labels),
    ]
    variance = subset_variance(runs)
    if not variance.empty:
        parts += ["## Labeled-subset variance", "", subsets_markdown(variance), ""]

    shown, left_out = focus(summary)
    made = [
        figures.distributions(cases, shown, fig_dir),
        figures.dice_vs_cost(shown, fig_dir, perf_costs(results_dir / "perf.json")),
        figures.training_curves(logs, shown, fig_dir),
        figures.learning_curves(logs, shown, fig_dir),
    ]
    for fig in made:
        fig.description += left_out
    made.append(figures.sensitivity(summary, paper, fig_dir))
    if not variance.empty:
        made.append(figures.subset_ranks(variance, fig_dir))
    if qualitative:
        picks, case_id, why = qualitative_inputs(runs, summary, cases, labels)
        fig = (
            figures.qualitative(picks, case_id, fig_dir)
            if picks
            else figures.Plot(
                "qualitative", "Qualitative comparison (as the paper's Fig. 2)", "", skipped=why
            )
        )
    else:
        fig = figures.Plot(
            "qualitative",
            "Qualitative comparison (as the paper's Fig. 2)",
            "",
            skipped="turned off (--no-qualitative)",
        )
    made.append(fig)
    parts += ["## Figures", ""]
    for fig in made:
        parts += [f"### {fig.title}", ""]
        if fig.skipped:
            parts += [f"Skipped: {fig.skipped}.", ""]
            continue
        png = next(p for p in fig.paths if p.suffix == ".png")
        pdf = next(p for p in fig.paths if p.suffix == ".pdf")
        rel_png, rel_pdf = png.relative_to(out_dir).as_posix(), pdf.relative_to(out_dir).as_posix()
        parts += [f"![{fig.title}]({rel_png})", "", f"{fig.description} ([PDF]({rel_pdf}))", ""]
    report = out_dir / "report.md"
    write_text(report, "\n".join(parts).rstrip() + "\n")
    return report


def perf_costs(path: Path) -> dict[str, float] | None:
    """method -> seconds per iteration from a `bench perf --json` output saved beside the runs, if any."""
    if not path.is_file():
        return None
    try:
        report = json.loads(path.read_text())
        return {r["method"]: r["ms_per_iter"] / 1000.0 for r in report["rows"] if r.get("ms_per_iter")}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"warning: {path}: not a `bench perf --json` report ({exc}); using the runs' own timings")
        return None


def _contention_note(runs: pd.DataFrame) -> str:
    """How many finished runs were timed under contention (the machine's load above its cores)."""
    if "contended" not in runs:
        return ""
    done = runs[runs["status"] == "done"]
    flagged = int((done["contended"] == True).sum())  # noqa: E712 (None: not recorded)
    if not flagged:
        return ""
    return (
        f" {flagged} of {len(done)} finished runs were timed under contention (load above the machine's cores, "
        "recorded in their metrics.json `cost.machine_load`): their seconds per iteration overstate the cost."
    )


def subsets_markdown(variance: pd.DataFrame) -> str:
    """The subset-variance table and, per split, Kendall's tau between the subsets' method rankings."""
    headers = ["Method", "Split", "Subsets", "Seeds / subset", "Dice %", "Seed std", "Subset std"]
    rows = [
        [
            display_name(str(r["method"])) + (f"-{r['variant']}" if r["variant"] else ""),
            r["split"],
            r["subsets"],
            r["seeds_per_subset"],
            number(r["dice_mean"]),
            number(r["seed_std"]),
            number(r["subset_std"]),
        ]
        for _, r in variance.iterrows()
    ]
    text = (
        "Subset 0 labels the first N cases of train.list (the literature); the others label N cases drawn with "
        "a fixed seed (the same for every method). Seed std: the sample std over seeds within a subset, "
        "averaged over subsets; subset std: the sample std of the subset means.\n\n"
        + markdown_table(headers, rows)
    )
    taus = rank_stability(variance)
    if not taus.empty:
        tau_rows = [
            [r["labeled"], f"{r['subset_a']} vs {r['subset_b']}", r["n_methods"], number(r["tau"])]
            for _, r in taus.iterrows()
        ]
        text += (
            "\nDoes the ranking survive a change of labeled subset? Kendall's tau between the methods' mean "
            "Dice on two subsets (1: the same order, -1: reversed):\n\n"
            + markdown_table(["Labeled N", "Subsets", "Methods", "Kendall's tau"], tau_rows)
        )
    return text


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in text).strip("_")
