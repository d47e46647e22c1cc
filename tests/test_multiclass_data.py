"""The 3-class synthetic LA (atrium body, pulmonary veins) and a binary-only method refused on it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sslbench.benchmark.cli import main
from sslbench.datasets.base import n_classes
from sslbench.datasets.check import check_dataset
from sslbench.datasets.la import open_dataset
from sslbench.datasets.synthetic import generate, synth_case
from sslbench.methods.algorithms.dtc import DCT

TINY = (32, 32, 24)


@pytest.fixture(scope="module")
def three_class_data(tmp_path_factory) -> Path:
    return generate(
        tmp_path_factory.mktemp("synth3") / "ds", cases=10, seed=0, size=TINY, n_train=8, classes=3
    )


def test_three_class_dataset_names_its_classes_and_reads_as_three(three_class_data):
    assert check_dataset(three_class_data) == []
    meta = json.loads((three_class_data / "dataset.json").read_text())
    assert meta["labels"] == {"0": "background", "1": "atrium body", "2": "pulmonary veins"}
    assert meta["generator"]["classes"] == 3
    ds = open_dataset(three_class_data)
    assert n_classes(ds) == 3 and ds.class_names == ("background", "atrium body", "pulmonary veins")
    labels = [ds.volume(i).label for i in ds.train_ids]
    assert all(set(np.unique(lab)) == {0, 1, 2} for lab in labels)  # every case has veins and a body
    vein_share = np.mean([(lab == 2).sum() / (lab > 0).sum() for lab in labels])
    assert 0.03 < vein_share < 0.5  # the veins are tubes beside the body, not most of the atrium


@pytest.mark.parametrize("seed,case", [(0, 0), (4, 3)])
def test_three_classes_split_the_binary_label_of_the_same_image(seed, case):
    image2, label2 = synth_case(np.random.default_rng([seed, case]), TINY)
    image3, label3 = synth_case(np.random.default_rng([seed, case]), TINY, classes=3)
    assert image3.tobytes() == image2.tobytes()  # no extra random draw: the same image
    assert np.array_equal(label3 > 0, label2 == 1)  # the same atrium, split in two
    assert set(np.unique(label3)) == {0, 1, 2}


def test_vein_voxels_lie_towards_the_outside_of_the_atrium():
    """The body holds the atrium's centre; veins are the tubes leaving it (farther from its centre of mass)."""
    _, label = synth_case(np.random.default_rng([0, 1]), (48, 48, 32), classes=3)
    centre = np.argwhere(label > 0).mean(axis=0)
    dist = {c: np.linalg.norm(np.argwhere(label == c) - centre, axis=1).mean() for c in (1, 2)}
    assert dist[2] > 1.3 * dist[1]


def test_default_two_class_dataset_json_names_no_labels(tmp_path):
    root = generate(tmp_path / "ds2", cases=3, seed=0, size=(16, 16, 16), n_train=2)
    meta = json.loads((root / "dataset.json").read_text())
    assert "labels" not in meta and "classes" not in meta["generator"]


def test_unknown_class_count_is_refused(tmp_path):
    with pytest.raises(ValueError, match="classes 4"):
        generate(tmp_path / "ds4", cases=3, size=(16, 16, 16), n_train=2, classes=4)


def test_cli_synth_classes(tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli3"
    result = runner.invoke(
        main,
        ["data", "synth", "--out", str(out), "--cases", "3", "--size", "16", "16", "16", "--classes", "3"],
    )
    assert result.exit_code == 0, result.output
    assert "3 classes" in result.output
    assert json.loads((out / "dataset.json").read_text())["labels"]["2"] == "pulmonary veins"
    bad = runner.invoke(main, ["data", "synth", "--out", str(tmp_path / "x"), "--classes", "4"])
    assert bad.exit_code == 2 and "--classes" in bad.output


def test_binary_only_method_refused_on_three_classes_before_any_run_folder(three_class_data, tmp_path):
    out = tmp_path / "runs"
    args = [
        "train",
        "--method",
        "dtc",
        "--split",
        "4/4",
        "--preset",
        "smoke",
        "--data",
        str(three_class_data),
    ]
    result = CliRunner().invoke(main, [*args, "--out", str(out), "--quiet"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    line = lines[0]
    assert line.startswith("error: method 'dct' handles two classes only")
    assert DCT.binary_only in line and "has 3 classes (background, atrium body, pulmonary veins)" in line
    assert not out.exists()  # nothing created: no run folder, no lock, no results
