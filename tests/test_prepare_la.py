from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SHARED_DATA

from sslbench.benchmark.cli.data import data
from sslbench.datasets.check import check_dataset
from sslbench.datasets.la import open_dataset
from sslbench.datasets.prepare_la import LISTS_DIR, prepare_la, protocol_lists

sitk = pytest.importorskip("SimpleITK")
SHAPE = (180, 170, 20)  # (x, y, z): x != y so that a transposition error shows
BOX = {"x": (60, 89), "y": (70, 94), "z": (4, 15)}  # inclusive foreground bounding box


def _write_nrrd(path: Path, array_xyz: np.ndarray, spacing=(0.625, 0.625, 0.625)) -> None:
    # SimpleITK arrays are (z, y, x).
    img = sitk.GetImageFromArray(np.ascontiguousarray(array_xyz.transpose(2, 1, 0)))
    img.SetSpacing(spacing)
    sitk.WriteImage(img, str(path))


def _fake_case(case_dir: Path, seed: int, mask_value: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """An integer 'MRI' with a bright ellipsoid blob and its 0/255 mask, filling BOX exactly."""
    rng = np.random.default_rng(seed)
    x, y, z = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    (x0, x1), (y0, y1), (z0, z1) = BOX["x"], BOX["y"], BOX["z"]
    q = (
        ((x - (x0 + x1) / 2) / ((x1 - x0) / 2 + 0.5)) ** 2
        + ((y - (y0 + y1) / 2) / ((y1 - y0) / 2 + 0.5)) ** 2
        + ((z - (z0 + z1) / 2) / ((z1 - z0) / 2 + 0.5)) ** 2
    )
    mask = np.where(q <= 1, mask_value, 0).astype(np.uint8)
    image = (rng.integers(0, 40, SHAPE) + 80 * (q <= 1)).astype(np.int16)
    image[150:] = 0  # dark air beyond the crop (which ends before x = 150): the crop's mean is then > 0
    case_dir.mkdir(parents=True)
    _write_nrrd(case_dir / "lgemri.nrrd", image)
    _write_nrrd(case_dir / "laendo.nrrd", mask)
    return image, mask


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path_factory.mktemp("raw") / "Training Set"
    train, test = protocol_lists()
    images = {}
    for k, case_id in enumerate([train[0], train[1], test[0]]):
        images[case_id] = _fake_case(root / case_id, k)[0]
    _fake_case(root / "EXTRACASE00000000000", 9)
    (root / "notes").mkdir()  # a folder without lgemri.nrrd is not a case
    return root, images


@pytest.fixture(scope="module")
def converted(raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "la"
    return out, prepare_la(raw[0], out, seed=0)


def test_lists_are_the_protocol_ones():
    train, test = protocol_lists()
    assert (len(train), len(test)) == (80, 20) and not set(train) & set(test)
    assert train[0] == "06SR5RBREL16DQ6M8LWS" and test[0] == "UPT6DX9IQY9JAZ7HJKA7"
    for name in ("train.list", "test.list"):
        shipped = SHARED_DATA / "la-half" / name
        if shipped.is_file():
            assert (LISTS_DIR / name).read_bytes() == shipped.read_bytes()


def test_output_passes_check_and_reader(converted, raw):
    out, summary = converted
    train, test = protocol_lists()
    assert check_dataset(out) == []
    assert summary["converted"] == [train[0], train[1], test[0]]
    assert (out / "train.list").read_text() == f"{train[0]}\n{train[1]}\n"
    assert (out / "test.list").read_text() == f"{test[0]}\n"
    ds = open_dataset(out)
    assert ds.spacing == pytest.approx((0.625,) * 3)
    assert json.loads((out / "dataset.json").read_text())["spacing_xyz_mm"] == [0.625, 0.625, 0.625]


def test_missing_and_extra_cases_are_reported(converted):
    _, summary = converted
    train, test = protocol_lists()
    assert len(summary["missing"]) == 97
    assert summary["missing"][0] == train[2] and set(summary["missing"]) <= set(train + test)
    assert summary["extra"] == ["EXTRACASE00000000000"]
    assert summary["failed"] == {}


def test_crop_keeps_z_crops_xy_and_z_scores_the_whole_volume(converted, raw):
    out, summary = converted
    for case_id, raw_image in raw[1].items():
        vol = open_dataset(out).volume(case_id)
        w, h, d = vol.image.shape
        assert d == SHAPE[2]  # every slice kept
        assert w < SHAPE[0] and h < SHAPE[1]
        assert summary["shapes"][case_id] == [w, h, d]
        fg = np.argwhere(vol.label)
        assert vol.label.sum() == int(np.count_nonzero(raw_image >= 80))  # the whole label is in the crop
        for axis, key, side in ((0, "x", w), (1, "y", h)):
            lo, hi = BOX[key]
            extent = hi - lo
            pad = max(112 - extent, 0) // 2
            assert extent + 2 * pad + 20 <= side <= extent + 2 * pad + 38
            before = fg[:, axis].min()
            assert 10 + pad <= before <= 19 + pad
        # z-scored over the whole volume, then cropped: the stored values are a window of the full z-score.
        full = (raw_image - raw_image.mean()) / raw_image.std()
        x0 = BOX["x"][0] - fg[:, 0].min()
        y0 = BOX["y"][0] - fg[:, 1].min()
        np.testing.assert_allclose(vol.image, full[x0 : x0 + w, y0 : y0 + h], rtol=0, atol=1e-5)
        assert vol.image.dtype == np.float32 and vol.label.dtype == np.uint8
        assert vol.image.mean() > 0.2  # not re-normalised after the crop


def test_crops_are_seeded(raw, converted, tmp_path):
    out, _ = converted
    again = tmp_path / "again"
    prepare_la(raw[0], again, seed=0)
    other = tmp_path / "other"
    prepare_la(raw[0], other, seed=1)
    shapes = []
    for root in (out, again, other):
        shapes.append([open_dataset(root).volume(i).image.shape for i in raw[1]])
    assert shapes[0] == shapes[1] != shapes[2]
    case_id = next(iter(raw[1]))
    np.testing.assert_array_equal(
        open_dataset(out).volume(case_id).image, open_dataset(again).volume(case_id).image
    )


def test_bad_mask_is_reported_as_failed(tmp_path):
    train, _ = protocol_lists()
    _fake_case(tmp_path / "raw" / train[0], 0)
    _fake_case(tmp_path / "raw" / train[1], 1, mask_value=1)  # a 0/1 mask: no 255 foreground
    summary = prepare_la(tmp_path / "raw", tmp_path / "out")
    assert summary["converted"] == [train[0]]
    assert "no foreground voxel of value 255" in summary["failed"][train[1]]


def test_cli(raw, tmp_path):
    runner = CliRunner()
    result = runner.invoke(data, ["prepare-la", str(raw[0]), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "converted 3 cases" in result.output and "97 listed case(s)" in result.output
    assert runner.invoke(data, ["check", str(tmp_path / "o")]).exit_code == 0
    result = runner.invoke(data, ["prepare-la", str(tmp_path / "absent"), "--out", str(tmp_path / "o2")])
    assert result.exit_code == 2 and "does not exist" in result.output and "Traceback" not in result.output
    (tmp_path / "empty").mkdir()
    result = runner.invoke(data, ["prepare-la", str(tmp_path / "empty"), "--out", str(tmp_path / "o3")])
    assert result.exit_code == 2 and "no case folders" in result.output
