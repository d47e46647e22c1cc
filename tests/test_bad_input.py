"""Every bad input answered with one clear line and exit code 2 (usage) or 1 (run failure), nothing earlier lost.

Table-driven: each row breaks one thing, runs the CLI, and checks the exit code, the message, that the output is
one line with no traceback, and that a previously finished run folder is byte-for-byte unchanged.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from sslbench.benchmark.cli import main
from sslbench.datasets.la import CASES_DIR, H5_NAME

SMOKE = ["--preset", "smoke", "--quiet"]


def _h5(root: Path, case: str) -> Path:
    return root / CASES_DIR / case / H5_NAME


def _first_case(root: Path) -> str:
    return (root / "train.list").read_text().split()[0]


def _rewrite(root: Path, image=None, label=None, drop: str | None = None) -> None:
    path = _h5(root, _first_case(root))
    with h5py.File(path, "r") as f:
        arrays = {"image": f["image"][()], "label": f["label"][()]}
    if image is not None:
        arrays["image"] = image(arrays["image"])
    if label is not None:
        arrays["label"] = label(arrays["label"])
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            if key != drop:
                f.create_dataset(key, data=value)


def _truncate(root: Path) -> None:
    path = _h5(root, _first_case(root))
    path.write_bytes(path.read_bytes()[:300])


def _nan(a):
    a = a.copy()
    a[1, 1, 1] = np.nan
    return a


def _label3(a):
    a = a.copy()
    a[0, 0, 0] = 3
    return a


def _no_lists(root: Path) -> None:
    (root / "train.list").unlink()


def _id_without_folder(root: Path) -> None:
    path = root / "train.list"
    path.write_text("NOSUCHCASE\n" + path.read_text())


def _empty_list(root: Path) -> None:
    (root / "test.list").write_text("")


# (id, how to break the data folder, extra CLI args, expected exit code, expected message fragment)
DATA_CASES = [
    ("missing-folder", "missing", [], 2, "data folder does not exist"),
    ("no-lists", _no_lists, [], 2, "train.list: list file not found"),
    ("empty-list", _empty_list, [], 2, "test.list: list is empty"),
    ("id-without-folder", _id_without_folder, [], 2, "NOSUCHCASE' is listed but its h5 file is missing"),
    ("truncated-h5", _truncate, [], 2, "cannot read h5 file"),
    ("wrong-keys", lambda r: _rewrite(r, drop="label"), [], 2, "missing dataset 'label'"),
    ("label-3", lambda r: _rewrite(r, label=_label3), [], 2, "label has values [0, 1, 3]"),
    ("shape-mismatch", lambda r: _rewrite(r, label=lambda a: a[:-1]), [], 2, "differs from label shape"),
    ("nan-image", lambda r: _rewrite(r, image=_nan), [], 2, "image contains NaN or inf"),
    ("split-too-large", None, ["--split", "9/9"], 2, "needs 18 training cases but train.list has 10"),
]

CLI_CASES = [
    ("unknown-method", ["--method", "nosuch"], 2, "unknown method 'nosuch'"),
    ("malformed-split", ["--split", "8-72"], 2, "split '8-72': expected N/M"),
    ("malformed-set", ["--set", "train.iterations"], 2, "expected section.key=value"),
    ("unknown-set-key", ["--set", "train.nope=1"], 2, "unknown key 'train.nope'"),
    ("wrong-type-set", ["--set", "train.iterations=ten"], 2, "train.iterations: expected int"),
    ("bad-patch", ["--set", "data.patch=30,30,30"], 2, "multiple of 16"),
    ("negative-seed", ["--seed", "-1"], 2, "seed -1"),
]


@pytest.fixture
def workspace(tmp_path, tiny_data):
    """A private copy of the tiny dataset and a results folder holding one finished run."""
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    results = tmp_path / "results"
    earlier = results / "earlier-run"
    earlier.mkdir(parents=True)
    (earlier / "metrics.json").write_text('{"dice": 0.9}\n')
    (earlier / "config.json").write_text('{"method": "sup"}\n')
    return data, results


def _digest(folder: Path) -> str:
    h = hashlib.sha1()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return h.hexdigest()


def _check(result, code: int, message: str) -> None:
    assert result.exit_code == code, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip() and not ln.startswith("run folder:")]
    assert len(lines) == 1, result.output  # one line, no traceback
    assert "Traceback" not in result.output
    assert message in lines[0], lines[0]


def _train(data, results, *args):
    base = ["train", "--method", "mt", "--split", "4/4", "--data", str(data), "--out", str(results)]
    return CliRunner().invoke(main, [*base, *SMOKE, *args])


@pytest.mark.parametrize("name,breaker,args,code,message", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_bad_data(name, breaker, args, code, message, workspace):
    data, results = workspace
    before = _digest(results)
    if breaker == "missing":
        data = data.parent / "does-not-exist"
    elif breaker is not None:
        breaker(data)
    extra = list(args)
    if "--split" in extra:  # replace the default split
        result = CliRunner().invoke(
            main, ["train", "--method", "mt", "--data", str(data), "--out", str(results), *SMOKE, *extra]
        )
    else:
        result = _train(data, results)
    _check(result, code, message)
    assert _digest(results) == before


@pytest.mark.parametrize("name,args,code,message", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_bad_options(name, args, code, message, workspace):
    data, results = workspace
    before = _digest(results)
    base = ["train", "--data", str(data), "--out", str(results), *SMOKE]
    if "--method" not in args:
        base += ["--method", "mt"]
    if "--split" not in args:
        base += ["--split", "4/4"]
    _check(CliRunner().invoke(main, [*base, *args]), code, message)
    assert _digest(results) == before


def test_unwritable_output_folder(workspace, tmp_path):
    data, _ = workspace
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = _train(data, blocker / "runs")
    _check(result, 2, f"--out {blocker / 'runs'}: cannot write there")


def test_checkpoint_from_another_method(workspace):
    data, results = workspace
    from sslbench.benchmark.config import build_config

    cfg = build_config("mt", "4/4", 1337, "smoke", {}, str(data))
    run_dir = results / cfg.run_name()
    run_dir.mkdir(parents=True)
    torch.save({"method": "uamt", "run_id": "0123456789"}, run_dir / "checkpoint.pt")
    before = _digest(results)
    result = _train(data, results, "--resume")
    _check(result, 1, "checkpoint is from another run (method uamt")
    assert _digest(results) == before


def test_eval_of_a_folder_that_is_not_a_run(workspace):
    _, results = workspace
    result = CliRunner().invoke(main, ["eval", str(results / "nothing-here"), "--quiet"])
    _check(result, 1, "not a run folder")


def test_out_of_range_seed_count(workspace):
    pytest.importorskip("sslbench.benchmark.cli.run")
    data, results = workspace
    before = _digest(results)
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--methods",
            "mt",
            "--split",
            "4/4",
            "--seeds",
            "0",
            "--data",
            str(data),
            "--out",
            str(results),
            "--preset",
            "smoke",
            "--quiet",
        ],
    )
    assert result.exit_code == 2, result.output
    assert "--seeds" in result.output and "Traceback" not in result.output
    assert _digest(results) == before
