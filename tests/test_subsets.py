"""Labeled subsets: subset 0 is the literature's first N, the others are fixed draws; variance and ranks."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from sslbench.benchmark.cli import main
from sslbench.benchmark.config import ConfigError, build_config
from sslbench.benchmark.sweep.grid import expand_grid
from sslbench.datasets.splits import parse_split

TRAIN = [f"case{i:02d}" for i in range(80)]


def test_subset_zero_is_the_first_n_and_other_subsets_are_fixed_draws():
    split = parse_split("8/72")
    assert split.resolve(TRAIN, 0) == (TRAIN[:8], TRAIN[8:80])
    one, two = split.resolve(TRAIN, 1), split.resolve(TRAIN, 2)
    assert one == split.resolve(TRAIN, 1)  # the same draw every time
    assert one[0] != TRAIN[:8] and one[0] != two[0] and len(set(one[0])) == 8
    assert set(one[0]).isdisjoint(one[1]) and len(one[1]) == 72 and set(one[0]) | set(one[1]) == set(TRAIN)
    assert one[0] == sorted(one[0], key=TRAIN.index)  # kept in train.list order


def test_subsets_multiply_the_grid_and_keep_old_run_ids():
    configs = expand_grid("mt", ["8/72"], [1337], "quick", {}, None, subsets=3)
    assert [c.data.subset for c in configs] == [0, 1, 2]
    assert configs[0].run_id() == build_config("mt", "8/72", 1337, "quick").run_id() == "a3004aca66"
    assert len({c.run_id() for c in configs}) == 3
    with pytest.raises(ConfigError, match="--subsets"):
        expand_grid("mt", ["8/72"], [1337], "quick", {}, None, subsets=0)


@pytest.mark.slow
def test_bench_run_with_subsets_end_to_end_and_the_report_shows_subset_variance(tiny_data, tmp_path):
    out = tmp_path / "runs"
    args = [
        "run",
        "--methods",
        "sup,mt",
        "--split",
        "3/3",
        "--seeds",
        "2",
        "--subsets",
        "3",
        "--preset",
        "smoke",
    ]
    args += [
        "--data",
        str(tiny_data),
        "--out",
        str(out),
        "--jobs",
        "1",
        "--quiet",
        "--set",
        "train.threads=1",
    ]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    configs = [json.loads(p.read_text()) for p in out.glob("*/config.json")]
    assert len(configs) == 12  # 2 methods x 3 subsets x 2 seeds
    labeled = {(c["method"], c["data"]["subset"]): tuple(c["split_ids"]["labeled"]) for c in configs}
    assert labeled[("sup", 1)] == labeled[("mt", 1)] != labeled[("mt", 0)]  # one draw for every method
    report = tmp_path / "report"
    res = CliRunner().invoke(main, ["report", str(out), "--out", str(report), "--no-qualitative"])
    assert res.exit_code == 0, res.output
    text = (report / "report.md").read_text()
    assert "## Labeled-subset variance" in text and "Kendall's tau" in text and "Subset std" in text
    assert (report / "figures" / "subset_ranks.png").stat().st_size > 5_000
