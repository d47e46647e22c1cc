"""The paper's Tables 1-4 as specifications: rows in the paper's order, each naming its methods, split and pinned
settings, and the paper's own numbers (paper.csv, package data)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sslbench.benchmark.config import build_config, sets_for
from sslbench.methods.registry import UnknownMethodError, canonical_name

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
        f"{n_labeled} labeled and {n_unlabeled} unlabeled training cases",
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
        "Uncertainty estimation strategies, 8/72",
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
    return TableSpec(4, "Sensitivity to β (λ = 0.1) and λ (β = 1), 8/72", specs, ("β", "λ"))


TABLES: dict[int, TableSpec] = {
    1: _main_table(1, 8, 72),
    2: _main_table(2, 16, 64),
    3: _table3(),
    4: _table4(),
}
PAPER_TABLES = tuple(TABLES)  # the seed paper's; `bench table all` renders these
TABLE_NUMBERS = (*PAPER_TABLES, 5)


def _table5() -> TableSpec:
    """Beyond the paper: every registered semi-supervised method at 8/72 and 16/64 under one protocol, with
    the bounds, and beside each the numbers its own paper reports (paper.csv rows of table 5, with sources).

    Built from the registry when asked for, so an installed plugin method gets its rows too.
    """
    from sslbench.methods.registry import baseline_method, list_methods

    base = baseline_method().name
    rows = [RowSpec("Upper bound", (base,), "80/0", paper={"method": "upper_bound"})]
    for n in (8, 16):
        split = f"{n}/{80 - n}"
        rows.append(RowSpec("Lower bound", (base,), f"{n}/0", paper={"method": "lower_bound", "labeled": n}))
        for info in list_methods():
            if not info.cls.uses_unlabeled:
                continue
            pinned = OURS if info.name == "lrep" else {}
            rows.append(
                RowSpec(
                    info.label,
                    (info.name,),
                    split,
                    pinned,
                    paper={"method": info.name, "labeled": n},
                    reference=info.name == "lrep",
                )
            )
    return TableSpec(
        5, "Every method at 8/72 and 16/64, one protocol, beside each method's own reported numbers", tuple(rows),
        ("Method", "Split", "#K"),
    )  # fmt: skip


def table_spec(number: int) -> TableSpec:
    """Table `number`: the seed paper's 1-4, or 5 (every registered method, built from the registry)."""
    if number == 5:
        return _table5()
    return TABLES[number]


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


def expected_method_config(row: RowSpec, method: str, preset: str = "smoke") -> dict[str, Any]:
    """`method.key` -> value of the row's method section under `preset` (the method's defaults, the preset's keys
    for it, e.g. la-half's `lrep.dae_pose`, and the row's pinned keys)."""
    cfg = build_config(method, row.split, preset=preset, sets=_row_sets(row, method, {}))
    return {f"{method}.{k}": v for k, v in cfg.to_dict()[method].items()}


def row_configs(
    row: RowSpec,
    seeds: list[int],
    preset: str,
    sets: dict[str, str],
    data_root: str | None,
    recipe: str = "benchmark",
) -> list:
    """The row's RunConfigs, one per seed, built by the sweep runner's `expand_grid`."""
    from sslbench.benchmark.sweep.grid import expand_grid

    method = resolve_method(row)
    return expand_grid(
        [method], [row.split], seeds, preset, _row_sets(row, method, sets), data_root, recipe=recipe
    )
