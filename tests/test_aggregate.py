"""Aggregation, paper tables, significance and the report, on hand-built results folders (no training).

The commands are invoked through `bench`'s `main` (imported in the CLI tests only, so a broken command module
elsewhere fails those and not the library tests); importing cli_results before cli would be a circular import.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from sslbench.benchmark.config import build_config
from sslbench.benchmark.reporting.aggregate import collect, load_cases, paired_wilcoxon, summarize_runs
from sslbench.benchmark.reporting.format import mean_std
from sslbench.benchmark.reporting.tables.build import build_table
from sslbench.benchmark.reporting.tables.pipeline import plan_tables
from sslbench.benchmark.reporting.tables.render import to_csv, to_latex, to_markdown
from sslbench.benchmark.reporting.tables.specs import TABLES, paper_tables
from sslbench.methods.base import Method
from sslbench.methods.registry import UnknownMethodError, get_method, register, unregister

SEEDS = (1337, 1338, 1339)
N_CASES = 10
CASE_OFFSETS = np.linspace(-0.045, 0.045, N_CASES)  # sums to 0: the per-case mean equals the run's Dice


@pytest.fixture(scope="module", autouse=True)
def lrep_method():
    """The tables need `lrep` in the registry; stand in for it while its module has not landed."""
    try:
        get_method("lrep")
        yield
        return
    except UnknownMethodError:
        pass

    @dataclass(frozen=True)
    class FakeLrepConfig:
        beta: float = 1.0
        lam: float = 0.1
        variant: str = "l2exp"

    class FakeLrep(Method):
        Config = FakeLrepConfig

    register(
        "lrep",
        k_inferences=1,
        family="uncertainty",
        paper="stand-in for tests",
        variants=("l2exp", "threshold", "entropy"),
    )(FakeLrep)
    yield
    unregister("lrep")


def write_run(
    root: Path,
    method: str,
    split: str,
    seed: int,
    dice: float = 0.8,
    hd95: float = 10.0,
    sets: dict | None = None,
    status: str = "done",
    case_shift: np.ndarray | None = None,
) -> Path:
    """A run folder as the trainer and the sweep write it, with made-up numbers."""
    cfg = build_config(method, split, seed, "smoke", sets or {})
    run_dir = root / cfg.run_name()
    run_dir.mkdir(parents=True)
    record = {
        **cfg.to_dict(),
        "run_id": cfg.run_id(),
        "method_info": {"k_inferences": get_method(method).k_label, "family": "x", "paper": "x"},
        "dataset": {"name": "synthetic-la", "spacing_mm": 0.625, "n_train": 80, "n_test": N_CASES},
    }
    if status == "failed":
        (run_dir / "failed.json").write_text(
            json.dumps(
                {
                    "error": "non-finite loss at step 3",
                    "traceback": "Traceback ...",
                    "run_id": cfg.run_id(),
                    "config": cfg.to_dict(),
                }
            )
        )
        return run_dir
    (run_dir / "config.json").write_text(json.dumps(record))
    if status == "incomplete":
        return run_dir
    per_case = dice + CASE_OFFSETS + (0 if case_shift is None else case_shift)
    cases = pd.DataFrame(
        {
            "case": [f"case{i:02d}" for i in range(N_CASES)],
            "dice": per_case,
            "jaccard": per_case / (2 - per_case),
            "hd95_vox": hd95,
            "asd_vox": hd95 / 4,
            "hd95_mm": hd95 * 0.625,
            "asd_mm": hd95 / 4 * 0.625,
            "empty_pred": False,
            "empty_label": False,
            "infer_s": 0.1,
        }
    )
    cases.to_csv(run_dir / "cases.csv", index=False)
    metrics = {
        "dice": dice,
        "jaccard": float(cases["jaccard"].mean()),
        "hd95_vox": hd95,
        "asd_vox": hd95 / 4,
        "hd95_mm": hd95 * 0.625,
        "asd_mm": hd95 / 4 * 0.625,
        "n_cases": N_CASES,
        "n_empty_pred": 0,
        "eval_s_per_volume": 0.1,
        "cost": {
            "sec_per_iter_median": 0.1 * (1 + seed % 3),
            "sec_per_iter_p90": 0.5,
            "peak_memory_mb": 500.0,
            "forward_passes_total": 3.0,
            "device": "cpu",
        },
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    log = [
        {
            "step": s,
            "lr": 0.01,
            "loss": 1.0 / (s + 1),
            "loss_sup": 0.8 / (s + 1),
            "loss_unsup": 0.1,
            "w_unsup": s / 100,
            **(
                {"test_dice_curve": dice * min(1.0, (s + 10) / 40)}
                if s % 20 == 0 and dice is not None
                else {}
            ),
        }
        for s in range(0, 60, 10)
    ]
    (run_dir / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    return run_dir


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """3 seeds of sup 8/0, MT and Ours; UAMT with one failed and one finished seed; an incomplete run; Ours at
    beta 2 (a Table 4 row). Ours beats MT by 4 Dice points on every case."""
    root = tmp_path_factory.mktemp("results")
    for seed, d in zip(SEEDS, (0.70, 0.72, 0.74), strict=True):
        write_run(root, "sup", "8/0", seed, d, 20.0)
    for seed, d, h in zip(SEEDS, (0.80, 0.81, 0.85), (14.0, 15.0, 16.0), strict=True):
        write_run(root, "mt", "8/72", seed, d, h)
    for seed, d, h in zip(SEEDS, (0.85, 0.86, 0.87), (10.0, 12.0, 17.0), strict=True):
        write_run(root, "lrep", "8/72", seed, d, h, sets={"lrep.beta": "1", "lrep.lam": "0.1"})
    for seed, d in zip(SEEDS[:2], (0.83, 0.84), strict=True):
        write_run(root, "lrep", "8/72", seed, d, 13.0, sets={"lrep.beta": "2"})
    write_run(root, "uamt", "8/72", SEEDS[0], status="failed")
    write_run(root, "uamt", "8/72", SEEDS[1], 0.84, 18.0)
    write_run(root, "uamt", "8/72", SEEDS[2], status="incomplete")
    return root


def _row(summary: pd.DataFrame, method: str, setting: str = "") -> pd.Series:
    rows = summary[(summary["method"] == method) & (summary["setting"] == setting)]
    assert len(rows) == 1, summary[["method", "setting"]]
    return rows.iloc[0]


@pytest.mark.parametrize(
    ("values", "scale", "expected"),
    [
        ([0.85, 0.86, 0.87], 100, "86.00±1.00"),  # std = sqrt((1 + 0 + 1) / 2) = 1 (ddof=1)
        ([10, 12, 17], 1, "13.00±3.61"),  # sqrt((9 + 1 + 16) / 2) = sqrt(13)
        ([0.84], 100, "84.00 (n=1)"),  # no sample std from one value
        ([], 1, "—"),
        ([1.0, float("nan"), 3.0], 1, "2.00±1.41"),  # NaN ignored
    ],
)
def test_mean_std_format(values, scale, expected):
    assert mean_std(values, scale) == expected


def test_collect_lists_every_run_with_its_status(results):
    runs = collect(results)
    assert len(runs) == 14
    assert runs["status"].value_counts().to_dict() == {"done": 12, "failed": 1, "incomplete": 1}
    failed = runs[runs["status"] == "failed"].iloc[0]
    assert failed["method"] == "uamt" and failed["seed"] == SEEDS[0]
    assert "non-finite loss" in failed["error"]
    assert failed["dataset"] == "synthetic-la"  # filled from its finished sibling


def test_summarize_gives_exact_mean_std_and_counts_failures(results):
    summary = summarize_runs(collect(results))
    ours = _row(summary, "lrep", "beta=1")
    assert (ours["dice"], ours["hd95_vox"], ours["n_done"]) == ("86.00±1.00", "13.00±3.61", 3)
    assert ours["hd95_mm"] == "8.12±2.25"  # x 0.625
    assert ours["K"] == "1"
    assert _row(summary, "lrep", "beta=2")["dice"] == "83.50±0.71"
    mt = _row(summary, "mt")
    assert mt["dice"] == "82.00±2.65"  # sqrt((4 + 1 + 9) / 2)
    uamt = _row(summary, "uamt")
    assert (uamt["dice"], uamt["n_done"], uamt["n_failed"], uamt["n_incomplete"]) == ("84.00 (n=1)", 1, 1, 1)
    assert "non-finite loss" in uamt["errors"]
    assert _row(summary, "sup")["K"] == "-"
    assert list(summary["method"]) == ["sup", "mt", "uamt", "lrep", "lrep"]  # the paper's order


def test_wilcoxon_detects_a_method_better_on_every_case():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.7, 0.9, 12)
    rows = []
    for seed in SEEDS:
        for i, b in enumerate(base):
            rows.append(
                {"group_key": "ours", "case": i, "seed": seed, "dice": b + 0.03 + rng.uniform(0, 0.01)}
            )
            rows.append({"group_key": "base", "case": i, "seed": seed, "dice": b + rng.uniform(0, 0.01)})
    cases = pd.DataFrame(rows)
    test = paired_wilcoxon(cases, "ours", "base")
    assert test["n"] == 12 and test["p"] < 0.05 and test["mean_diff"] > 0.02
    assert paired_wilcoxon(cases, "ours", "ours")["p"] == 1.0
    assert np.isnan(paired_wilcoxon(cases, "ours", "missing")["p"])


def _table1(results: Path):
    runs = collect(results)
    # The fixture's runs are smoke-preset runs of a made-up dataset: the paper's columns are forced here.
    return build_table(
        TABLES[1], runs, load_cases(runs), planned=3, protocol="Protocol: test.", paper_columns=True
    )


def test_table_rows_follow_the_paper_and_show_wilcoxon(results):
    result = _table1(results)
    assert [r["label"] for r in result.rows] == [r.label for r in TABLES[1].rows]
    by_label = {r["label"]: r for r in result.rows}
    ours, mt = by_label["Ours (L2-exp)"], by_label["MT"]
    assert ours["dice"] == "86.00±1.00" and ours["paper_dice"] == pytest.approx(86.58)
    assert ours["dice_diff"] == pytest.approx(86.00 - 86.58)
    assert mt["p_wilcoxon"] < 0.05 and mt["p_cell"].endswith("*")  # Ours is 4 points better on all 10 cases
    assert by_label["UAMT"]["seeds"] == "1/3 (1 failed, 1 incomplete)"
    assert by_label["Upper bound"]["note"] == "no runs found"
    assert by_label["Lower bound"]["dice"] == "72.00±2.00"


def test_markdown_has_paper_column_and_difference(results):
    md = to_markdown(_table1(results))
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert "Dice % (paper)" in header and "Δ Dice" in header and "HD95 (paper)" in header
    ours = next(ln for ln in lines if ln.startswith("| Ours"))
    assert "86.00±1.00" in ours and "86.58±1.03" in ours and "-0.58" in ours
    assert all(ln.count("|") == lines[0].count("|") for ln in lines)
    assert "Protocol: test." in md


def test_latex_is_balanced_and_escaped(results):
    tex = to_latex(_table1(results))
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 1
    assert tex.count(r"\begin{table}") == tex.count(r"\end{table}") == 1
    stripped = re.sub(r"\\[{}]", "", tex)  # escaped braces are text
    depth = 0
    for ch in stripped:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    colspec = re.search(r"\\begin\{tabular\}\{([lcr]+)\}", tex).group(1)
    body = tex.split(r"\begin{tabular}")[1].split(r"\end{tabular}")[0]
    rows = [ln for ln in body.splitlines() if ln.rstrip().endswith(r"\\")]
    assert len(rows) == 1 + len(TABLES[1].rows)
    for row in rows:
        assert len(re.findall(r"(?<!\\)&", row)) == len(colspec) - 1
    assert r"Dice \%" in tex and r"$\pm$" in tex and "±" not in tex and "Δ" not in tex
    assert not re.search(r"(?<!\\)[%_#]", tex.replace(r"\%", "").replace(r"\_", "").replace(r"\#", ""))
    assert not re.search(r"(?<!\\)%", tex)  # an unescaped % would comment out the rest of a line


def test_csv_has_numbers_and_the_paper(results):
    frame = pd.read_csv(pd.io.common.StringIO(to_csv(_table1(results))))
    ours = frame[frame["label"] == "Ours (L2-exp)"].iloc[0]
    assert ours["dice_mean"] == pytest.approx(86.0) and ours["dice_std"] == pytest.approx(1.0)
    assert ours["paper_dice"] == pytest.approx(86.58)


def test_paper_numbers_ship_with_the_package():
    paper = paper_tables()
    assert set(paper["table"]) == {1, 2, 3, 4, 5}
    assert paper[(paper["table"] == 2) & (paper["method"] == "lrep")]["dice_mean"].iloc[0] == pytest.approx(
        88.60
    )


def test_shared_rows_are_planned_once(monkeypatch, tmp_path):
    import sslbench.benchmark.sweep.runner as sweep
    from sslbench.benchmark.reporting.tables.pipeline import run_tables

    seen = []
    monkeypatch.setattr(sweep, "run_sweep", lambda configs, out, **kw: seen.extend(configs) or [])
    run_tables([1, 3, 4], tmp_path, tmp_path / "tables", [1337], "smoke")
    ids = [c.run_id() for c in seen]
    assert len(ids) == len(set(ids))
    ours = build_config("lrep", "8/72", 1337, "smoke", {"lrep.beta": "1", "lrep.lam": "0.1"}).run_id()
    assert ids.count(ours) == 1  # Table 1's Ours = Table 3's Ours = Table 4's beta 1, lambda 0.1
    plans = plan_tables([1], [1337], "smoke", {}, None)
    assert len(plans[0].configs) + len(plans[0].errors) == len(TABLES[1].rows)


def test_bench_table_renders_from_finished_runs(results, tmp_path):
    from sslbench.benchmark.cli import main

    out = tmp_path / "rendered"
    res = CliRunner().invoke(
        main, ["table", "1", "--no-run", "--preset", "smoke", "--out", str(results), "--render-dir", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "86.00±1.00" in res.output and "82.00±2.65" in res.output
    assert {p.name for p in out.iterdir()} == {"table1.md", "table1.tex", "table1.csv"}


@pytest.mark.slow
def test_bench_report_writes_page_and_plots(results, tmp_path):
    from sslbench.benchmark.cli import main

    out = tmp_path / "report"
    res = CliRunner().invoke(main, ["report", str(results), "--out", str(out)])
    assert res.exit_code == 0, res.output
    text = (out / "report.md").read_text()
    for name in ("distributions", "dice_vs_cost", "training_curves", "learning_curves", "sensitivity"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 10_000
        assert (out / "figures" / f"{name}.pdf").is_file()
        assert f"](figures/{name}.png)" in text
    assert "Skipped: no finished run has model.pt" in text  # the qualitative figure needs weights
    assert not (out / "figures" / "qualitative.png").exists()
    assert "uamt_8-72_s1337" in text and "non-finite loss" in text  # the failed run is listed
    assert (
        "### Table 1" in text
        and "Wilcoxon" in text
        and text.startswith("# sslbench results report: synthetic")
    )
    assert "**Synthetic data.**" in text  # the banner, on the first screen
    assert "86.58±1.03" not in text and "paper's columns are left out" in text  # no paper beside a phantom
    assert "No matching runs (run `bench table 2`)" in text
    # every SSL experiment against the lower bound: MT is 8-13 points above sup 8/0 on every case
    lower = text.split("### Against the lower bound", 1)[1]
    mt_row = next(line for line in lower.splitlines() if line.startswith("| MT 8/72"))
    assert "| Lower bound 8/0 |" in mt_row and mt_row.rstrip().endswith("| yes |"), mt_row
    assert (out / "tables" / "table1.tex").is_file() and (out / "tables" / "summary.csv").is_file()


def test_bench_report_on_an_empty_folder_is_one_clear_error(tmp_path):
    from sslbench.benchmark.cli import main

    res = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert res.exit_code != 0 and "no run folders found" in res.output


def test_caption_states_precision_and_recipe(results, tmp_path):
    from sslbench.benchmark.reporting.tables.build import describe_protocol

    runs = collect(results)
    caption = describe_protocol(runs)
    assert "precision fp32" in caption and "recipe benchmark" in caption
    # a bf16 run on CUDA is named as such, beside the fp32 ones
    gpu = tmp_path / "gpu"
    run_dir = write_run(gpu, "mt", "8/72", 1337, sets={"train.amp": "true"})
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["cost"]["device"] = "cuda:0"
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    both = describe_protocol(pd.concat([runs, collect(gpu)], ignore_index=True))
    assert "precision bf16 autocast / fp32" in both


def test_runs_with_other_settings_do_not_fill_a_row(tmp_path):
    """UA-MT with repeats=8 computes other numbers than the row's default (repeats 2): the row stays empty and
    says why, instead of showing those runs as the paper's UA-MT."""
    for seed in SEEDS:
        write_run(tmp_path, "uamt", "8/72", seed, dice=0.8, sets={"uamt.repeats": "8"})
    runs = collect(tmp_path)
    table = build_table(TABLES[1], runs, load_cases(runs), planned=3)
    (row,) = [r for r in table.rows if r["method"] == "uamt"]
    assert row["n_done"] == 0 and "dice_mean" not in row
    assert "not shown" in row["note"] and "repeats=8" in row["note"]


def test_table5_has_every_registered_method_at_two_splits_beside_its_reported_numbers(results):
    from sslbench.benchmark.reporting.tables.specs import table_spec
    from sslbench.methods.registry import list_methods

    spec = table_spec(5)
    ssl = [m.name for m in list_methods() if m.cls.uses_unlabeled]
    for split in ("8/72", "16/64"):
        assert [r.methods[0] for r in spec.rows if r.split == split] == ssl
    assert {r.split for r in spec.rows if r.label.endswith("bound")} == {"80/0", "8/0", "16/0"}
    runs = collect(results)
    table = build_table(spec, runs, load_cases(runs), planned=3)
    by = {(r["method"], r["split"]): r for r in table.rows}
    assert by[("mt", "8/72")]["n_done"] == 3  # the same runs as Table 1's MT row
    assert by[("mt", "8/72")]["paper_dice"] == pytest.approx(78.22)  # the seed paper's run of MT
    mcnet = by[("mcnet", "16/64")]  # a newer method: its own paper's number and source
    assert mcnet["paper_dice"] == pytest.approx(91.07) and "Wu et al., MedIA 2022" in mcnet["note"]
    md = to_markdown(table)
    assert "each method's own reported numbers" in md and "nan" not in md


def test_paper_columns_only_beside_the_la_data_at_full_resolution_under_the_paper_preset(tmp_path):
    synthetic = tmp_path / "synthetic"
    write_run(synthetic, "mt", "8/72", 1337)
    runs = collect(synthetic)
    runs["dataset"] = "synthetic-la-v1-48x48x32-d1.5-s0"
    table = build_table(TABLES[1], runs)
    md = to_markdown(table)
    assert not table.paper_columns and "Dice % (paper)" not in md and "Δ Dice" not in md
    assert "synthetic-la-v1-48x48x32-d1.5-s0" in md.splitlines()[0]  # the title names the data
    assert "the data is synthetic" in table.caption and "--paper-columns" in table.caption
    assert "Dice % (paper)" in to_markdown(build_table(TABLES[1], runs, paper_columns=True))
    la = runs.assign(dataset="LA", preset="paper", spacing_mm=0.625)
    assert build_table(TABLES[1], la).paper_columns
    assert not build_table(TABLES[1], la.assign(spacing_mm=1.25)).paper_columns  # la-half


def test_rows_whose_dae_does_not_denoise_carry_a_footnote(tmp_path):
    """lrep rows served by a DAE whose output is worse than its corrupted input say so in every table."""
    for seed in SEEDS:
        run_dir = write_run(tmp_path, "lrep", "8/72", seed, sets={"lrep.beta": "1", "lrep.lam": "0.1"})
        config = json.loads((run_dir / "config.json").read_text())
        config["assets"] = {"dae": {"denoises": seed != 1337, "report": {}}}
        (run_dir / "config.json").write_text(json.dumps(config))
    runs = collect(tmp_path)
    (row,) = [r for r in build_table(TABLES[1], runs).rows if r["method"] == "lrep"]
    assert row["n_done"] == 3 and "the DAE of 1 of its runs does not denoise" in row["note"]
    assert "does not denoise" in to_markdown(build_table(TABLES[1], runs))


def test_the_cost_plot_uses_bench_perf_measurements_when_present(results, tmp_path):
    from sslbench.benchmark.reporting import figures
    from sslbench.benchmark.reporting.report import perf_costs

    summary = summarize_runs(collect(results))
    own = figures.dice_vs_cost(summary, tmp_path / "own")
    assert "runs' own median" in own.description
    perf = tmp_path / "perf.json"
    perf.write_text(
        json.dumps({"rows": [{"method": "mt", "ms_per_iter": 90.0}, {"method": "uamt", "error": "x"}]})
    )
    costs = perf_costs(perf)
    assert costs == {"mt": 0.09}
    measured = figures.dice_vs_cost(summary, tmp_path / "perf", costs)
    assert "`bench perf` measurements (perf.json) for 1 of" in measured.description
    assert (tmp_path / "perf" / "dice_vs_cost.png").is_file()
    assert figures.data_label(summary) == "data: synthetic-la"  # every figure is stamped with its data
    busy = summary.assign(n_contended=[1] + [0] * (len(summary) - 1))
    assert "Hatched markers" in figures.dice_vs_cost(busy, tmp_path / "busy").description


def test_learning_curves_plot_mean_over_seeds_and_skip_without_curves(results, tmp_path):
    from sslbench.benchmark.reporting import figures
    from sslbench.benchmark.reporting.aggregate import load_logs

    runs = collect(results)
    summary = summarize_runs(runs)
    logs = load_logs(runs[runs["status"] == "done"])
    curve = logs.dropna(subset=["test_dice_curve"])
    mt = curve[curve["group_key"] == _row(summary, "mt")["group_key"]]
    assert sorted(mt["step"].unique()) == [0, 20, 40] and mt["seed"].nunique() == 3
    made = figures.learning_curves(logs, summary, tmp_path)
    assert not made.skipped and (tmp_path / "learning_curves.png").stat().st_size > 10_000
    bare = figures.learning_curves(logs.drop(columns=["test_dice_curve"]), summary, tmp_path / "none")
    assert bare.skipped and "train.curve_every" in bare.skipped and not (tmp_path / "none").exists()


def test_a_table_row_matches_runs_of_a_preset_that_sets_the_methods_keys_and_runs_older_than_a_setting():
    """la-half sets lrep.dae_pose=canonical: its lrep runs are the row's own configuration under that preset.
    A run made before lrep.dae_channels_last existed has no such key: it held the value every run had then."""
    import pandas as pd

    from sslbench.benchmark.config import build_config
    from sslbench.benchmark.reporting.tables.build import match_groups
    from sslbench.benchmark.reporting.tables.specs import RowSpec
    from sslbench.benchmark.runs.folder import flatten_config

    row = RowSpec("Ours", ("lrep",), "8/72")
    old = build_config("lrep", "8/72", 1337, "la-half").to_dict()
    del old["lrep"]["dae_channels_last"]  # as in a config.json written before the setting
    assert flatten_config(old)["lrep.dae_channels_last"] is False
    other = build_config("lrep", "8/72", 1337, "la-half", {"lrep.beta": "2"}).to_dict()
    summary = pd.DataFrame(
        [
            {"method": "lrep", "split": "8/72", "preset": "la-half", "settings": flatten_config(old), "n_done": 3,
             "n_failed": 0},
            {"method": "lrep", "split": "8/72", "preset": "la-half", "settings": flatten_config(other),
             "n_done": 3, "n_failed": 0},
        ]
    )  # fmt: skip
    group, note = match_groups(row, "lrep", summary)
    assert group is not None and group["settings"]["lrep.beta"] == 1.0 and note == ""
    # under another preset the same runs are not the row's configuration (quick keeps the paper's DAE pose)
    group, note = match_groups(row, "lrep", summary.assign(preset="quick"))
    assert group is None and "dae_pose=canonical" in note
