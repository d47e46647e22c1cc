"""End to end on a dataset that is not LA: a Decathlon-style NIfTI folder (anisotropic voxels, 3 labels) made here,
checked by `bench data check`, trained and evaluated by sup, mt, uamt and lrep at the smoke preset; its HD95 in
mm uses the three spacings (against medpy's `voxelspacing`), and binary-only methods refuse it in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from sslbench.benchmark.cli import main

sitk = pytest.importorskip("SimpleITK")
SHAPE = (24, 20, 16)  # (x, y, z)
SPACING = (0.8, 0.75, 2.5)
CLASSES = {"0": "background", "1": "body", "2": "vein"}


def _write(path: Path, array: np.ndarray) -> None:
    img = sitk.GetImageFromArray(
        np.ascontiguousarray(array.transpose(2, 1, 0))
    )  # (x, y, z) -> SimpleITK's (z, y, x)
    img.SetSpacing(SPACING)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))


@pytest.fixture(scope="module")
def decathlon(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("any") / "Dataset001_Tiny"
    ids = [f"tiny_{k:03d}" for k in range(8)]
    for k, case in enumerate(ids):
        rng = np.random.default_rng(k)
        label = np.zeros(SHAPE, np.uint8)
        label[4 + k % 3 : 14, 4:12, 3:11] = 1
        label[14:20, 8 + k % 2 : 16, 6:13] = 2
        image = rng.normal(0.0, 0.3, SHAPE) + 1.5 * (label == 1) + 0.8 * (label == 2)
        _write(root / "imagesTr" / f"{case}_0000.nii.gz", image.astype(np.float32))
        _write(root / "labelsTr" / f"{case}.nii.gz", label)
    (root / "dataset.json").write_text(json.dumps({"name": "tiny", "labels": CLASSES, "format": "nifti"}))
    (root / "train.list").write_text("\n".join(ids[:6]) + "\n")
    (root / "test.list").write_text("\n".join(ids[6:]) + "\n")
    return root


def _bench(*args) -> str:
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res.output


def test_decathlon_folder_passes_check(decathlon):
    out = _bench("data", "check", decathlon)
    assert out.startswith("OK:") and "6 train + 2 test" in out


@pytest.mark.parametrize(
    ("method", "split"), [("sup", "2/0"), ("mt", "2/4"), ("uamt", "2/4"), ("lrep", "2/4")]
)
def test_trains_and_evaluates_three_classes_with_mm_distances(decathlon, tmp_path, method, split):
    from medpy.metric import binary

    sets = ["--set", "train.threads=1", "--set", "lrep.dae_iterations=4"] if method == "lrep" else []
    sets = sets or ["--set", "train.threads=1"]
    _bench("train", "--method", method, "--split", split, "--preset", "smoke", "--data", decathlon,
           "--out", tmp_path, "--quiet", *sets)  # fmt: skip
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    metrics = json.loads((run / "metrics.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert config["dataset"]["classes"] == list(CLASSES.values())
    assert config["dataset"]["spacing_mm"] == list(SPACING)
    assert {"dice_1", "dice_2", "hd95_mm_1", "hd95_mm_2"} <= set(metrics)
    assert metrics["dice"] == pytest.approx((metrics["dice_1"] + metrics["dice_2"]) / 2)
    cases = pd.read_csv(run / "cases.csv")
    assert len(cases) == 2
    # the run's predictions, re-made by `bench predict`, give its HD95 in mm with the three spacings
    _bench("predict", run, "--out", tmp_path / "pred")
    compared = 0
    for _, row in cases.iterrows():
        pred = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "pred" / f"{row['case']}.nii.gz")))
        label = sitk.GetArrayFromImage(sitk.ReadImage(str(decathlon / "labelsTr" / f"{row['case']}.nii.gz")))
        pred, label = pred.transpose(2, 1, 0), label.transpose(2, 1, 0)
        for c in (1, 2):
            if (pred == c).any() and (label == c).any():
                expected = binary.hd95(pred == c, label == c, voxelspacing=SPACING)
                assert row[f"hd95_mm_{c}"] == pytest.approx(expected, rel=1e-9)
                compared += 1
    assert compared, "no class was predicted on any case: nothing to compare"


def test_a_binary_only_method_refuses_three_classes_in_one_line(decathlon, tmp_path):
    res = CliRunner().invoke(
        main, ["train", "--method", "dct", "--split", "2/4", "--preset", "smoke", "--data", str(decathlon),
               "--out", str(tmp_path), "--quiet"],
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "dct" in lines[0] and "3 classes" in lines[0], res.output
    assert not any(tmp_path.rglob("metrics.json"))
