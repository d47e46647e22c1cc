from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SHARED_DATA

from sslbench.benchmark.cli.data import data
from sslbench.datasets.check import check_dataset, check_report
from sslbench.datasets.la import CASES_DIR, case_path
from sslbench.datasets.synthetic import generate


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("good") / "ds", cases=3, seed=0, size=(16, 16, 16), n_train=2)


def _ids(root: Path, name: str) -> list[str]:
    return (root / name).read_text().split()


def _rewrite(path: Path, **arrays) -> None:
    """Replace the h5 file with the given datasets."""
    path.unlink()
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value)


def _load(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}


def missing_key(root):
    path = case_path(root, _ids(root, "train.list")[0])
    _rewrite(path, image=_load(path)["image"])
    return path, "missing dataset ['label']"


def label_value_3(root):
    path = case_path(root, _ids(root, "train.list")[0])
    arrays = _load(path)
    arrays["label"][0, 0, 0] = 3
    _rewrite(path, **arrays)
    return path, "label has values [3]"


def nan_voxel(root):
    path = case_path(root, _ids(root, "test.list")[0])
    arrays = _load(path)
    arrays["image"][1, 2, 3] = np.nan
    _rewrite(path, **arrays)
    return path, "1 NaN or inf"


def shape_mismatch(root):
    path = case_path(root, _ids(root, "train.list")[1])
    arrays = _load(path)
    _rewrite(path, image=arrays["image"][:-1], label=arrays["label"])
    return path, "differs from label shape"


def not_3d(root):
    path = case_path(root, _ids(root, "train.list")[1])
    arrays = _load(path)
    _rewrite(path, image=arrays["image"][0], label=arrays["label"][0])
    return path, "expected 3 dimensions"


def image_int_dtype(root):
    path = case_path(root, _ids(root, "train.list")[1])
    arrays = _load(path)
    _rewrite(path, image=arrays["image"].astype(np.int16), label=arrays["label"])
    return path, "image dtype int16"


def label_float_dtype(root):
    path = case_path(root, _ids(root, "train.list")[1])
    arrays = _load(path)
    _rewrite(path, image=arrays["image"], label=arrays["label"].astype(np.float32))
    return path, "label dtype float32"


def id_without_folder(root):
    with (root / "train.list").open("a") as f:
        f.write("NOSUCHCASE0000000000\n")
    return root / CASES_DIR / "NOSUCHCASE0000000000", "missing folder for id 'NOSUCHCASE0000000000'"


def folder_without_h5(root):
    path = case_path(root, _ids(root, "train.list")[0])
    path.unlink()
    return path, "missing (expected the h5 file"


def empty_list(root):
    (root / "test.list").write_text("\n")
    return root / "test.list", "empty"


def missing_list(root):
    (root / "train.list").unlink()
    return root / "train.list", "missing (expected one case id per line)"


def duplicate_id(root):
    ids = _ids(root, "train.list")
    (root / "train.list").write_text("\n".join([*ids, ids[0]]) + "\n")
    return root / "train.list", "appears 2 times"


def id_in_both_lists(root):
    ids = _ids(root, "test.list")
    with (root / "train.list").open("a") as f:
        f.write(ids[0] + "\n")
    return root, "in both train.list and test.list"


def corrupt_h5(root):
    path = case_path(root, _ids(root, "train.list")[0])
    path.write_bytes(b"this is not an hdf5 file" * 10)
    return path, "cannot read the h5 file"


def truncated_h5(root):
    path = case_path(root, _ids(root, "test.list")[0])
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return path, "cannot read the h5 file"


def no_cases_folder(root):
    shutil.rmtree(root / CASES_DIR)
    return root / CASES_DIR, "missing (expected one folder per case"


def bad_dataset_json(root):
    (root / "dataset.json").write_text('{"name": "x"}')
    return root / "dataset.json", "numeric 'spacing_mm'"


BREAKERS = [
    missing_key,
    label_value_3,
    nan_voxel,
    shape_mismatch,
    not_3d,
    image_int_dtype,
    label_float_dtype,
    id_without_folder,
    folder_without_h5,
    empty_list,
    missing_list,
    duplicate_id,
    id_in_both_lists,
    corrupt_h5,
    truncated_h5,
    no_cases_folder,
    bad_dataset_json,
]


@pytest.mark.parametrize("breaker", BREAKERS, ids=[b.__name__ for b in BREAKERS])
def test_each_problem_gives_one_line_and_exit_2(good, tmp_path, breaker):
    root = tmp_path / "ds"
    shutil.copytree(good, root)
    path, expected = breaker(root)
    problems = check_dataset(root)
    assert len(problems) == 1, problems
    assert str(path) in problems[0] and expected in problems[0], problems[0]
    assert "\n" not in problems[0]
    result = CliRunner().invoke(data, ["check", str(root)])
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output


def test_good_dataset_ok(good):
    assert check_dataset(good) == []
    result = CliRunner().invoke(data, ["check", str(good)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK: ") and "2 train + 1 test cases" in result.output


def test_missing_folder(tmp_path):
    assert check_dataset(tmp_path / "nope") == [
        f"{tmp_path / 'nope'}: folder does not exist (expected an LA-layout dataset folder)"
    ]
    assert CliRunner().invoke(data, ["check", str(tmp_path / "nope")]).exit_code == 2


def test_float16_and_float64_images_and_bool_labels_are_accepted(good, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(good, root)
    ids = _ids(root, "train.list")
    for case_id, dtype in zip(ids, (np.float16, np.float64), strict=True):
        path = case_path(root, case_id)
        arrays = _load(path)
        _rewrite(path, image=arrays["image"].astype(dtype), label=arrays["label"].astype(bool))
    assert check_dataset(root) == []


def test_several_problems_are_all_reported(good, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(good, root)
    nan_voxel(root)
    label_value_3(root)
    id_without_folder(root)
    assert len(check_dataset(root)) == 3


@pytest.mark.parametrize("name", ["la-full-sample", "la-half"])
def test_shared_real_data_is_valid(name):
    root = SHARED_DATA / name
    if not root.is_dir():
        pytest.skip(f"{root} is not present")
    report = check_report(root)
    assert report.problems == []
    assert report.n_train + report.n_test == len(report.shapes)
