"""`bench data prepare-pancreas` on tiny synthetic CT cases (the NIH data is not redistributable): resampling to
1 mm, the CT window, the crop, the z-score, MC-Net's lists, a folder `bench data check` accepts, and every bad
input as one line with exit status 2 and nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sslbench.benchmark.cli import main
from sslbench.datasets import nifti_io, readers
from sslbench.datasets.prepare_pancreas import (
    CT_WINDOW_HU,
    case_number,
    crop_xy,
    prepare_arrays,
    protocol_lists,
    resample_isotropic,
)
from sslbench.datasets.readers import open_dataset

pytest.importorskip("SimpleITK")
pytest.importorskip("scipy")
SHAPE = (25, 24, 8)  # (x, y, z) at SPACING: 20 x 19 x 20 voxels at 1 mm
SPACING = (0.8, 0.8, 2.5)
NUMBERS = (1, 2, 3, 4)  # image0001 and image0004 are test cases of MC-Net's lists, 0002 and 0003 train cases


def ct_case(k: int) -> tuple[np.ndarray, np.ndarray]:
    """HU-like int16 CT (air, soft tissue, bone beyond the window) and a 0/1 pancreas mask."""
    rng = np.random.default_rng(k)
    image = np.full(SHAPE, -1000.0)
    image[3:22, 3:21, :] = rng.normal(40, 15, (19, 18, SHAPE[2]))  # soft tissue
    image[18:21, 4:8, :] = 900  # bone, clipped to 275 HU by the window
    label = np.zeros(SHAPE, np.uint8)
    label[8 + k % 2 : 15, 9:16, 2:6] = 1
    image[label == 1] = rng.normal(110, 10, int(label.sum()))
    return image.astype(np.int16), label


def write_raw(raw: Path, layout: str = "images") -> None:
    for n in NUMBERS:
        image, label = ct_case(n)
        if layout == "images":
            image_path = raw / "images" / f"PANCREAS_{n:04d}.nii.gz"
            label_path = raw / "labels" / f"label{n:04d}.nii.gz"
        else:
            image_path = raw / "imagesTr" / f"pancreas_{n:03d}_0000.nii.gz"
            label_path = raw / "labelsTr" / f"pancreas_{n:03d}.nii.gz"
        nifti_io.write_volume(image_path, image, SPACING)
        nifti_io.write_volume(label_path, label, SPACING)


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("raw") / "pancreas-ct"
    write_raw(root)
    return root


@pytest.fixture(autouse=True)
def fresh_memo(monkeypatch):
    monkeypatch.setattr(readers, "_OPEN", {})


def test_case_numbers_pair_the_common_names():
    names = ["image0001", "PANCREAS_0001", "PANCREAS_0001_0000", "label0001", "pancreas_001_0000"]
    assert {case_number(n, is_image=True) for n in names} == {1}
    assert case_number("PANCREAS_0012", is_image=False) == 12
    assert case_number("image_0000", is_image=True) == 0  # the suffix is a channel only after a number
    assert case_number("scan", is_image=True) is None


def test_resampling_reaches_1_mm_and_keeps_label_values():
    image, label = ct_case(1)
    resampled = resample_isotropic(label, SPACING, order=0)
    assert resampled.shape == (20, 19, 20) and set(np.unique(resampled)) == {0, 1}
    linear = resample_isotropic(image.astype(np.float32), SPACING, order=1)
    assert linear.shape == (20, 19, 20) and linear.min() >= image.min() and linear.max() <= image.max()


def test_prepare_arrays_windows_crops_and_zscores():
    image = np.full((40, 36, 6), 50.0)
    image[0, 0, 0], image[20, 12, 3] = -3000.0, 2000.0  # outside the window on both sides
    label = np.zeros(image.shape, np.uint8)
    label[15:21, 10:15, 1:4] = 1  # box x 15..20, y 10..14
    assert crop_xy(label, margin=3, min_crop=8) == (slice(11, 24), slice(5, 19))
    out_image, out_label = prepare_arrays(image, label, (1.0, 1.0, 1.0), margin=3, min_crop=8)
    # x: 8 - 5 = 3 short of the minimum, 1 each side, + 3; y: 2 + 3; z untouched; stops exclusive as MC-Net's
    assert out_image.shape == out_label.shape == (13, 14, 6) and out_label.sum() == label.sum()
    expected = np.clip(image[11:24, 5:19], *CT_WINDOW_HU)
    np.testing.assert_allclose(out_image, (expected - expected.mean()) / expected.std(), rtol=1e-5)
    assert out_image.dtype == np.float32 and out_label.dtype == np.uint8


@pytest.mark.parametrize("layout", ["images", "imagesTr"])
def test_prepared_folder_is_a_nifti_dataset_bench_accepts(raw, tmp_path, layout):
    if layout != "images":
        raw = tmp_path / "raw-decathlon"
        write_raw(raw, layout)
    out = tmp_path / "prepared"
    result = CliRunner().invoke(main, ["data", "prepare-pancreas", str(raw), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "converted 4 cases" in result.output and "--split 6/56 or 12/50" in result.output
    train, test = protocol_lists()
    assert (len(train), len(test), len(set(train) | set(test))) == (62, 20, 82)
    assert (out / "train.list").read_text().split() == [i for i in train if i in ("image0002", "image0003")]
    assert (out / "test.list").read_text().split() == ["image0004", "image0001"]  # MC-Net's order
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["normalization"] == "none" and meta["labels"] == {"0": "background", "1": "pancreas"}
    assert meta["format"] == "nifti" and set(meta["split_hints"]) == {"6/56", "12/50"}
    check = CliRunner().invoke(main, ["data", "check", str(out)])
    assert check.exit_code == 0, check.output
    assert "spacing 1 x 1 x 1 mm, classes background, pancreas" in check.output
    ds = open_dataset(out)
    vol = ds.volume("image0002")
    stored, spacing = nifti_io.read_volume(out / "imagesTr" / "image0002.nii.gz")
    assert spacing == (1.0, 1.0, 1.0) and ds.spacing == (1.0, 1.0, 1.0)
    np.testing.assert_array_equal(vol.image, stored)  # "none": the reader does not normalise a second time
    assert vol.image.shape == (20, 19, 20)  # the tiny volumes are smaller than the crop: all of x, y kept
    assert abs(float(vol.image.mean())) < 1e-4 and abs(float(vol.image.std()) - 1) < 1e-3


# Each breaker spoils RAW and returns (the file the line must name, what it must say).
def image_without_label(raw):
    (raw / "labels" / "label0002.nii.gz").unlink()
    return raw / "images" / "PANCREAS_0002.nii.gz", "image without a label"


def label_values_outside(raw):
    label = ct_case(3)[1]
    label[0, 0, 0] = 2
    nifti_io.write_volume(raw / "labels" / "label0003.nii.gz", label, SPACING)
    return (
        raw / "labels" / "label0003.nii.gz",
        "label has values [2] (expected only 0..1, background and pancreas)",
    )


def shape_mismatch(raw):
    nifti_io.write_volume(raw / "labels" / "label0001.nii.gz", ct_case(1)[1][:-2], SPACING)
    return raw / "images" / "PANCREAS_0001.nii.gz", "size 25x24x8 differs from its label"


def spacing_mismatch(raw):
    nifti_io.write_volume(raw / "labels" / "label0004.nii.gz", ct_case(4)[1], (0.8, 0.8, 2.0))
    return raw / "images" / "PANCREAS_0004.nii.gz", "spacing 0.8x0.8x2.5 mm differs from its label"


def image_4d(raw):
    import SimpleITK as sitk

    path = raw / "images" / "PANCREAS_0002.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, *SHAPE[::-1]), np.int16), isVector=False), str(path))
    return path, "a 4D image of size 25x24x8x2"


def two_images_one_case(raw):
    shutil.copy(raw / "images" / "PANCREAS_0003.nii.gz", raw / "images" / "image0003.nii.gz")
    return raw / "images" / "image0003.nii.gz", "case 3 again, beside PANCREAS_0003.nii.gz"


def empty_label(raw):
    nifti_io.write_volume(raw / "labels" / "label0002.nii.gz", np.zeros(SHAPE, np.uint8), SPACING)
    return raw / "labels" / "label0002.nii.gz", "no pancreas voxel"


def nan_voxel(raw):
    image = ct_case(1)[0].astype(np.float32)
    image[5, 5, 5] = np.nan
    nifti_io.write_volume(raw / "images" / "PANCREAS_0001.nii.gz", image, SPACING)
    return raw / "images" / "PANCREAS_0001.nii.gz", "1 NaN or inf voxels"


BREAKERS = [
    image_without_label,
    label_values_outside,
    shape_mismatch,
    spacing_mismatch,
    image_4d,
    two_images_one_case,
    empty_label,
    nan_voxel,
]


@pytest.mark.parametrize("breaker", BREAKERS, ids=[b.__name__ for b in BREAKERS])
def test_each_bad_input_is_one_line_exit_2_and_nothing_written(raw, tmp_path, breaker):
    broken = tmp_path / "raw"
    shutil.copytree(raw, broken)
    path, expected = breaker(broken)
    out = tmp_path / "prepared"
    result = CliRunner().invoke(main, ["data", "prepare-pancreas", str(broken), "--out", str(out)])
    assert result.exit_code == 2, result.output
    line = result.stdout.splitlines()[0]  # tqdm and the count line go to stderr
    assert line.startswith(f"{path}:") and expected in line, result.output
    assert "1 problem(s)" in result.output and "Traceback" not in result.output
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["raw"]  # no temporary folder left


def test_an_existing_output_folder_is_refused(raw, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = CliRunner().invoke(main, ["data", "prepare-pancreas", str(raw), "--out", str(out)])
    assert result.exit_code == 2 and "exists and is not an empty folder" in result.output
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
