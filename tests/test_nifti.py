"""The `nifti` reader: Decathlon / nnU-Net folders, their arrays, spacing, classes, normalisation, split, the
array cache, the content fingerprint, and every bad input as one line (`bench data check` exits 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sslbench.benchmark.cli import main
from sslbench.datasets import nifti_io, readers
from sslbench.datasets.errors import DatasetError
from sslbench.datasets.fingerprint import data_fingerprint
from sslbench.datasets.nifti import cache_folder
from sslbench.datasets.normalization import normalize, parse_normalization
from sslbench.datasets.readers import check_report, open_dataset

sitk = pytest.importorskip("SimpleITK")
SHAPE = (20, 18, 12)  # (x, y, z), all different: a transposition shows
SPACING = (0.8, 0.8, 2.5)
CLASSES = ("background", "liver", "tumour")
N_CASES = 6


def _case_arrays(k: int) -> tuple[np.ndarray, np.ndarray]:
    """An HU-like image (int16) and a 3-class label whose blobs move with k."""
    rng = np.random.default_rng(k)
    label = np.zeros(SHAPE, np.uint8)
    label[4 + k % 3 : 12, 3:10, 2:8] = 1
    label[12:16, 10 + k % 2 : 15, 5:10] = 2
    image = rng.normal(-100, 30, SHAPE) + 150 * (label == 1) + 60 * (label == 2)
    return image.astype(np.int16), label


def make_folder(root: Path, naming: str = "nnunet", meta: dict | None = None) -> dict[str, tuple]:
    """A tiny Decathlon folder of N_CASES cases; returns case id -> (image, label) as written."""
    written = {}
    for k in range(N_CASES):
        case_id = f"liver_{k:03d}" if naming == "nnunet" else f"LIVER_{k:04d}"
        image, label = _case_arrays(k)
        image_name = f"{case_id}_0000.nii.gz" if naming == "nnunet" else f"{case_id}.nii.gz"
        nifti_io.write_volume(root / "imagesTr" / image_name, image, SPACING)
        nifti_io.write_volume(root / "labelsTr" / f"{case_id}.nii.gz", label, SPACING)
        written[case_id] = (image, label)
    labels = {name: i for i, name in enumerate(CLASSES)} if naming == "nnunet" else dict(enumerate(CLASSES))
    data = {"name": "tiny-liver", "labels": {str(k): v for k, v in labels.items()}, **(meta or {})}
    (root / "dataset.json").write_text(json.dumps(data))
    return written


@pytest.fixture(autouse=True)
def fresh_memo(monkeypatch):
    """open_dataset memoises per process; each test opens its folders afresh."""
    monkeypatch.setattr(readers, "_OPEN", {})


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("good") / "liver"
    return root, make_folder(root)


def _copy(good, tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    shutil.copytree(good[0], root)
    return root


def test_open_gives_xyz_arrays_header_spacing_and_classes(good):
    root, written = good
    ds = open_dataset(root)
    assert ds.format == "nifti" and ds.name == "tiny-liver"
    assert ds.spacing == SPACING
    assert ds.class_names == CLASSES
    ids = sorted(written)
    assert ds.train_ids == ids[:5] and ds.test_ids == ids[5:]  # round(6 / 5) = 1 test case, the last id
    vol = ds.volume(ids[2])
    assert vol.image.shape == SHAPE and vol.image.dtype == np.float32 and vol.label.dtype == np.uint8
    np.testing.assert_array_equal(vol.label, written[ids[2]][1])
    raw = written[ids[2]][0].astype(np.float64)
    np.testing.assert_allclose(vol.image, (raw - raw.mean()) / raw.std(), rtol=1e-5, atol=1e-5)
    described = ds.describe()
    assert described["normalization"] == "zscore" and described["classes"] == list(CLASSES)
    assert described["spacing_mm"] == list(SPACING) and "last 1 of 6" in described["split"]


def test_msd_naming_with_four_digit_ids_and_msd_labels(tmp_path):
    """PANCREAS_0001-like ids end in four digits: with labelsTr/<same name>, that is the id, not a channel."""
    root = tmp_path / "msd"
    written = make_folder(root, naming="msd", meta={"test": ["./imagesTs/LIVER_0100.nii.gz"]})
    ds = open_dataset(root)
    assert sorted(ds.train_ids + ds.test_ids) == sorted(written)  # MSD's imagesTs "test" list is no split
    assert ds.class_names == CLASSES
    np.testing.assert_array_equal(ds.volume("LIVER_0003").label, written["LIVER_0003"][1])


def test_split_from_list_files_or_dataset_json(good, tmp_path):
    root = _copy(good, tmp_path)
    (root / "train.list").write_text("liver_004\nliver_000\n")
    (root / "test.list").write_text("liver_002\n")
    ds = open_dataset(root)
    assert (ds.train_ids, ds.test_ids) == (["liver_004", "liver_000"], ["liver_002"])
    for name in ("train.list", "test.list"):
        (root / name).unlink()
    meta = json.loads((root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps({**meta, "train": ["liver_001"], "test": ["liver_005"]}))
    readers._OPEN.clear()
    ds = open_dataset(root)
    assert (ds.train_ids, ds.test_ids) == (["liver_001"], ["liver_005"])
    assert ds.describe()["split"] == "dataset.json train / test"


def test_spacing_override_wins_over_the_headers(good):
    ds = open_dataset(good[0], (0.7, 0.7, 2.0))
    assert ds.spacing == (0.7, 0.7, 2.0) and ds.describe()["spacing_source"] == "data.spacing"


def test_normalize_zscore_ct_window_and_none():
    image = np.array([[[-1000.0, 0.0], [100.0, 2000.0]]])
    z = normalize(image, "zscore")
    assert z.dtype == np.float32 and abs(z.mean()) < 1e-6 and abs(z.std() - 1) < 1e-6
    w = normalize(image, parse_normalization({"ct_window": [-125, 275]}, "x"))
    clipped = np.array([-125.0, 0.0, 100.0, 275.0])
    np.testing.assert_allclose(w.ravel(), (clipped - clipped.mean()) / clipped.std(), rtol=1e-6)
    np.testing.assert_array_equal(normalize(image, "none"), image.astype(np.float32))
    with pytest.raises(ValueError, match="constant inside the CT window"):
        normalize(np.full((2, 2, 2), 900.0), {"ct_window": [-125.0, 275.0]})
    for bad in ("minmax", {"ct_window": [300, 100]}, {"ct_window": [0]}, {"ct_window": [0, 1], "x": 1}):
        with pytest.raises(DatasetError, match='expected "zscore", "none"'):
            parse_normalization(bad, "dataset.json")


def test_ct_window_from_dataset_json_is_applied_and_described(tmp_path):
    root = tmp_path / "ct"
    written = make_folder(root, meta={"normalization": {"ct_window": [-50, 100]}})
    ds = open_dataset(root)
    assert ds.describe()["normalization"] == {"ct_window": [-50.0, 100.0]}
    raw = np.clip(written["liver_001"][0].astype(np.float64), -50, 100)
    np.testing.assert_allclose(ds.volume("liver_001").image, (raw - raw.mean()) / raw.std(), atol=1e-5)


def test_second_open_reads_the_cache_not_the_nifti_files(good, monkeypatch):
    root, written = good
    open_dataset(root).volume("liver_001")
    cached = sorted(p.name for p in cache_folder(root).iterdir())
    assert cached == [f"{i}.npz" for i in sorted(written)]  # every case converted, no temporary file left

    def no_decoding(path):
        raise AssertionError(f"decoded {path} although it is cached")

    monkeypatch.setattr(nifti_io, "read_volume", no_decoding)
    readers._OPEN.clear()
    ds = open_dataset(root)
    np.testing.assert_array_equal(ds.volume("liver_001").label, written["liver_001"][1])


def test_a_changed_label_file_changes_the_fingerprint_and_the_arrays(good, tmp_path):
    root = _copy(good, tmp_path)
    before = data_fingerprint(root)
    assert open_dataset(root).volume("liver_002").label[0, 0, 0] == 0
    label = _case_arrays(2)[1]
    label[0, 0, 0] = 2
    nifti_io.write_volume(root / "labelsTr" / "liver_002.nii.gz", label, SPACING)
    assert data_fingerprint(root) != before
    readers._OPEN.clear()
    assert open_dataset(root).volume("liver_002").label[0, 0, 0] == 2  # a new cache folder, not stale arrays


def test_bench_data_check_ok_line_for_nifti_and_la_h5(good, tiny_data):
    result = CliRunner().invoke(main, ["data", "check", str(good[0])])
    assert result.exit_code == 0, result.output
    line = result.output.strip()
    assert line.startswith(f"OK: {good[0]}: 5 train + 1 test cases, shapes 20x18x12 to 20x18x12")
    assert line.endswith("spacing 0.8 x 0.8 x 2.5 mm, classes background, liver, tumour")
    result = CliRunner().invoke(main, ["data", "check", str(tiny_data)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"OK: {tiny_data}: 10 train + 2 test cases, shapes 32x32x24")


# Each breaker spoils one thing and returns (the file the line must name, what it must say).
def missing_dataset_json(root):
    (root / "dataset.json").unlink()
    return root / "dataset.json", 'missing (expected a JSON object with "labels"'


def no_labels(root):
    (root / "dataset.json").write_text('{"name": "x"}')
    return root / "dataset.json", 'no "labels"'


def bad_normalization(root):
    meta = json.loads((root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps({**meta, "normalization": "minmax"}))
    return root / "dataset.json", "normalization 'minmax', expected"


def image_without_label(root):
    (root / "labelsTr" / "liver_001.nii.gz").unlink()
    return root / "imagesTr" / "liver_001_0000.nii.gz", "image without a label"


def label_without_image(root):
    (root / "imagesTr" / "liver_002_0000.nii.gz").unlink()
    return root / "labelsTr" / "liver_002.nii.gz", "label without an image"


def label_value_outside(root):
    label = _case_arrays(3)[1]
    label[1, 2, 3] = 3
    nifti_io.write_volume(root / "labelsTr" / "liver_003.nii.gz", label, SPACING)
    return root / "labelsTr" / "liver_003.nii.gz", "label has values [3] (expected only 0..2"


def non_integer_label(root):
    label = _case_arrays(3)[1].astype(np.float32)
    label[1, 2, 3] = 0.5
    nifti_io.write_volume(root / "labelsTr" / "liver_003.nii.gz", label, SPACING)
    return root / "labelsTr" / "liver_003.nii.gz", "non-integer values"


def shape_mismatch(root):
    nifti_io.write_volume(root / "labelsTr" / "liver_004.nii.gz", _case_arrays(4)[1][:-1], SPACING)
    return root / "imagesTr" / "liver_004_0000.nii.gz", "size 20x18x12 differs from its label"


def spacing_mismatch(root):
    nifti_io.write_volume(root / "labelsTr" / "liver_004.nii.gz", _case_arrays(4)[1], (0.8, 0.8, 3.0))
    return root / "imagesTr" / "liver_004_0000.nii.gz", "spacing 0.8x0.8x2.5 mm differs from its label"


def image_4d(root):
    path = root / "imagesTr" / "liver_000_0000.nii.gz"
    img = sitk.GetImageFromArray(np.zeros((2, *SHAPE[::-1]), np.int16), isVector=False)  # (t, z, y, x)
    sitk.WriteImage(img, str(path))
    return path, "a 4D image of size 20x18x12x2"


def second_channel(root):
    shutil.copy(root / "imagesTr" / "liver_005_0000.nii.gz", root / "imagesTr" / "liver_005_0001.nii.gz")
    return root / "imagesTr" / "liver_005_0001.nii.gz", "channel 1 of case 'liver_005'"


def nan_voxel(root):
    image = _case_arrays(4)[0].astype(np.float32)
    image[2, 3, 4] = np.nan
    nifti_io.write_volume(root / "imagesTr" / "liver_004_0000.nii.gz", image, SPACING)
    return root / "imagesTr" / "liver_004_0000.nii.gz", "1 NaN or inf voxels"


def constant_image(root):
    nifti_io.write_volume(root / "imagesTr" / "liver_001_0000.nii.gz", np.full(SHAPE, 7, np.int16), SPACING)
    return root / "imagesTr" / "liver_001_0000.nii.gz", "cannot be z-scored"


def unreadable_file(root):
    path = root / "labelsTr" / "liver_000.nii.gz"
    path.write_bytes(b"not a nifti file" * 8)
    return path, "cannot read the NIfTI header"


def truncated_file(root):
    path = root / "imagesTr" / "liver_002_0000.nii.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path, "cannot read the NIfTI file"


def listed_id_not_in_images(root):
    (root / "train.list").write_text("liver_000\nliver_999\n")
    (root / "test.list").write_text("liver_005\n")
    return root / "train.list", "id 'liver_999' of train.list has no image and label"


def train_test_overlap(root):
    (root / "train.list").write_text("liver_000\nliver_001\n")
    (root / "test.list").write_text("liver_001\n")
    return root, "id 'liver_001' is in both train.list and test.list (a train/test leak)"


def two_split_sources(root):
    (root / "train.list").write_text("liver_000\n")
    (root / "test.list").write_text("liver_001\n")
    meta = json.loads((root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps({**meta, "train": ["liver_002"], "test": ["liver_003"]}))
    return root, "give a split (expected one)"


def only_test_list(root):
    (root / "test.list").write_text("liver_001\n")
    return root / "train.list", "list file not found"


BREAKERS = [
    missing_dataset_json,
    no_labels,
    bad_normalization,
    image_without_label,
    label_without_image,
    label_value_outside,
    non_integer_label,
    shape_mismatch,
    spacing_mismatch,
    image_4d,
    second_channel,
    nan_voxel,
    constant_image,
    unreadable_file,
    truncated_file,
    listed_id_not_in_images,
    train_test_overlap,
    two_split_sources,
    only_test_list,
]


@pytest.mark.parametrize("breaker", BREAKERS, ids=[b.__name__ for b in BREAKERS])
def test_each_bad_input_is_one_line_and_exit_2(good, tmp_path, breaker):
    root = _copy(good, tmp_path)
    path, expected = breaker(root)
    problems = check_report(root).problems
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}:") and expected in problems[0], problems[0]
    assert "\n" not in problems[0]
    result = CliRunner().invoke(main, ["data", "check", str(root)])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[0] == problems[0]
    assert "1 problem(s)" in result.output and "Traceback" not in result.output
    with pytest.raises(DatasetError) as caught:
        open_dataset(root).volumes(["liver_000", "liver_001", "liver_002", "liver_003", "liver_004"])
    assert str(caught.value).startswith(f"{path}:")


def test_several_problems_are_all_listed(good, tmp_path):
    root = _copy(good, tmp_path)
    expected = [breaker(root)[1] for breaker in (label_value_outside, image_without_label, nan_voxel)]
    result = CliRunner().invoke(main, ["data", "check", str(root)])
    assert result.exit_code == 2 and "3 problem(s)" in result.output
    lines = result.output.splitlines()[:3]
    assert all(any(text in line for line in lines) for text in expected), lines
