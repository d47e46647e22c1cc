"""How numbers and tables are written, once for every command: mean±std, numbers, text, Markdown and LaTeX.

Conventions (also stated in every table caption): std is the SAMPLE standard deviation over seeds (ddof=1), as
the papers report for their 3 runs; one finished seed has no std and is shown as "86.58 (n=1)"; a missing value
is "—". Importing this module imports nothing heavy (the CLI formats its plan before any training).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

MISSING = "—"


def is_missing(value: Any) -> bool:
    """None, NaN (or inf), and values that are not numbers at all."""
    if value is None:
        return True
    try:
        return not math.isfinite(float(value))
    except (TypeError, ValueError):
        return True


def mean_std(values: Iterable[Any], scale: float = 1.0, digits: int = 2) -> str:
    """Values over seeds as "mean±std" with the sample std (ddof=1).

    Args:
        values: one value per finished seed (missing values are ignored).
        scale: multiply before formatting (100 for fractions shown in %).
        digits: decimals of both mean and std.

    Returns:
        "86.58±1.03"; "86.58 (n=1)" for one value (a sample std needs two); "—" for none.
    """
    import numpy as np

    arr = np.asarray([float(v) for v in values if not is_missing(v)], dtype=float) * scale
    if arr.size == 0:
        return MISSING
    if arr.size == 1:
        return f"{arr[0]:.{digits}f} (n=1)"
    return f"{arr.mean():.{digits}f}±{arr.std(ddof=1):.{digits}f}"


def number(value: Any, digits: int = 2, *, spec: str | None = None, signed: bool = False) -> str:
    """One number: `digits` decimals (or a format `spec` such as ".0f" or "g"), "+" when `signed`, "—" if missing."""
    if is_missing(value):
        return MISSING
    if spec is None:
        spec = f"+.{digits}f" if signed else f".{digits}f"
    return format(value, spec)


def text_table(header: Sequence[Any], rows: Sequence[Sequence[Any]], right_from: int | None = None) -> str:
    """A plain text table: a header, a rule, the rows; columns from `right_from` on are right-aligned."""
    cells = [[str(c) for c in r] for r in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    cells.insert(1, ["-" * w for w in widths])

    def align(i: int, text: str, width: int) -> str:
        return text.rjust(width) if right_from is not None and i >= right_from else text.ljust(width)

    return "\n".join(
        "  ".join(align(i, c, w) for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
        for r in cells
    )


def markdown_cell(value: Any) -> str:
    """A table cell as text: a pipe or a significance star in it is text, not a column break or emphasis."""
    return str(value).replace("|", "\\|").replace("*", "\\*")


def markdown_table(
    headers: Sequence[Any], rows: Sequence[Sequence[Any]], align: Sequence[str] | None = None
) -> str:
    """A Markdown table; `align` holds one rule per column ("---" left, "--:" right), default all left."""

    def line(cells: Sequence[Any]) -> str:
        return "| " + " | ".join(markdown_cell(c) for c in cells) + " |"

    rule = "| " + " | ".join(align or ["---"] * len(headers)) + " |"
    return "\n".join([line(headers), rule, *map(line, rows)]) + "\n"


LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"$<$",
    ">": r"$>$",
    "±": r"$\pm$",
    "β": r"$\beta$",
    "λ": r"$\lambda$",
    "Δ": r"$\Delta$",
    "×": r"$\times$",
    "−": "-",
    "—": "--",
    "–": "--",
}


def latex_escape(text: Any) -> str:
    """Escape LaTeX's special characters and map the few non-ASCII symbols we print to math mode."""
    return "".join(LATEX_ESCAPES.get(ch, ch) for ch in str(text))
