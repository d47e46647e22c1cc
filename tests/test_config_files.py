"""Config files in and out: --config (YAML or JSON, --set wins), --print-config, and bench train --from."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from sslbench.benchmark.cli import main
from sslbench.benchmark.config import ConfigError, build_config, load_config_file, split_identity


def _bench(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_print_config_fed_back_as_config_gives_the_same_run(tmp_path, tiny_data):
    sets = ["--set", "train.iterations=7", "--set", "mt.w=0.3", "--set", "eval.largest_cc=true"]
    printed = _bench("train", "--method", "mt", "--split", "4/4", "--preset", "smoke", "--data", tiny_data, *sets,
                     "--print-config")  # fmt: skip
    assert printed.exit_code == 0, printed.output
    path = tmp_path / "run.yaml"
    path.write_text(printed.output)
    expected = build_config(
        "mt", "4/4", 1337, "smoke", {"train.iterations": "7", "mt.w": "0.3", "eval.largest_cc": "true"}, str(tiny_data)
    )  # fmt: skip
    again = _bench("train", "--config", path, "--print-config")  # method, split and preset from the file
    assert again.exit_code == 0, again.output
    assert again.output == printed.output
    identity, overrides = split_identity(load_config_file(path))
    rebuilt = build_config(
        identity["method"], identity["split"], identity["seed"], identity["preset"], overrides
    )
    assert rebuilt.run_id() == expected.run_id()


def test_config_file_json_and_set_wins(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"train": {"iterations": 11, "lr": 0.05}, "mt.w": 0.2}))
    out = _bench("train", "--method", "mt", "--config", path, "--set", "train.lr=0.02", "--print-config")
    assert out.exit_code == 0, out.output
    assert "iterations: 11" in out.output and "lr: 0.02" in out.output and "w: 0.2" in out.output


@pytest.mark.parametrize(
    "text,message",
    [
        ("train: [1, 2", "not valid YAML or JSON"),
        ("- 1\n- 2\n", "expected a mapping"),
        ("iterations: 5\n", "neither a section"),
        ("train:\n  iterationz: 5\n", "unknown key 'train.iterationz'"),
        ("split: 8/72\n", "--split 4/4 but --config"),
    ],
)
def test_bad_config_files_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    out = _bench("train", "--method", "mt", "--split", "4/4", "--config", path, "--print-config")
    assert out.exit_code == 2 and message in out.output and len(out.output.strip().splitlines()) == 1, (
        out.output
    )


def test_a_missing_config_file_names_it(tmp_path):
    with pytest.raises(ConfigError, match="nothere.yaml"):
        load_config_file(tmp_path / "nothere.yaml")


def test_train_from_a_config_json_reproduces_the_run_bit_for_bit(tmp_path, tiny_data):
    first = _bench("train", "--method", "mt", "--split", "4/4", "--seed", "5", "--preset", "smoke", "--data",
                   tiny_data, "--out", tmp_path / "a", "--set", "train.threads=1", "--quiet")  # fmt: skip
    assert first.exit_code == 0, first.output
    (run_a,) = (tmp_path / "a").iterdir()
    again = _bench("train", "--from", run_a / "config.json", "--out", tmp_path / "b", "--quiet")
    assert again.exit_code == 0, again.output
    (run_b,) = (tmp_path / "b").iterdir()
    assert run_b.name == run_a.name  # the same run id
    a, b = (json.loads((r / "metrics.json").read_text()) for r in (run_a, run_b))
    assert {k: a[k] for k in ("dice", "hd95_vox", "asd_vox")} == {
        k: b[k] for k in ("dice", "hd95_vox", "asd_vox")
    }
