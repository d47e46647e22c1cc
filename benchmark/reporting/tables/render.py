"""Rendering a built table: Markdown, LaTeX (a plain tabular) and CSV, with the paper's numbers beside ours."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from sslbench.benchmark.reporting.format import latex_escape, markdown_cell, number
from sslbench.benchmark.reporting.tables.build import TableResult
from sslbench.benchmark.reporting.tables.specs import TableSpec

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


def _reported(mean: float, std: float) -> str:
    """A published number: "86.58±1.03", or the mean alone where the paper gives no std."""
    if pd.isna(mean):
        return "—"
    return number(mean) if pd.isna(std) else f"{mean:.2f}±{std:.2f}"


PAPER_HEADERS = ("Dice % (paper)", "Δ Dice", "HD95 (paper)", "Δ HD95")


def display_rows(result: TableResult) -> tuple[list[str], list[list[str]], list[str]]:
    """Headers, cell strings per row, and the notes (one per row that has one, numbered like the rows).

    Without `result.paper_columns` the paper's numbers and the differences are left out.
    """
    keep = [result.paper_columns or h not in PAPER_HEADERS for h in METRIC_HEADERS]
    headers = [*result.spec.lead_columns, *(h for h, k in zip(METRIC_HEADERS, keep, strict=True) if k)]
    body, notes = [], []
    for r in result.rows:
        lead = _lead_cells(result.spec, r)
        if r["note"]:
            notes.append(f"[{len(notes) + 1}] {r['label']}: {r['note']}")
            lead[0] += f" [{len(notes)}]"
        paper_dice = _reported(r["paper_dice"], r["paper_dice_std"])
        paper_hd = _reported(r["paper_hd95"], r["paper_hd95_std"])
        metrics = [
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
        body.append([*lead, *(c for c, k in zip(metrics, keep, strict=True) if k)])
    return headers, body, notes


def to_markdown(result: TableResult) -> str:
    headers, body, notes = display_rows(result)

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(markdown_cell(c) for c in cells) + " |"

    align = ["---" if i < len(result.spec.lead_columns) else "--:" for i in range(len(headers))]
    title = f"**Table {result.spec.number} ({result.title}).** {result.caption}"
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
        rf"\caption{{{latex_escape(result.title + '. ' + result.caption)}}}",
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
