from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from sslbench.benchmark.cli.data import data
from sslbench.datasets import default as default_mod
from sslbench.datasets.check import check_dataset
from sslbench.datasets.la import CASES_DIR, case_path, open_dataset
from sslbench.datasets.synthetic import (
    DEFAULT_DIFFICULTY,
    DEFAULT_SIZE,
    GENERATOR_VERSION,
    case_ids,
    generate,
    synth_case,
)

TINY = (32, 32, 24)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("synth") / "ds", cases=10, seed=3, size=TINY, n_train=8)


def _arrays(root: Path, case_id: str) -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(case_path(root, case_id), "r") as f:
        return f["image"][()], f["label"][()]


def test_layout_passes_check_and_reader(tiny):
    assert check_dataset(tiny) == []
    ds = open_dataset(tiny)
    assert (len(ds.train_ids), len(ds.test_ids)) == (8, 2)
    assert ds.name == "synthetic-la"
    meta = json.loads((tiny / "dataset.json").read_text())
    assert ds.spacing == (meta["spacing_mm"],) * 3 and meta["spacing_mm"] > 0
    assert meta["generator"] == {
        "version": GENERATOR_VERSION,
        "cases": 10,
        "seed": 3,
        "size": list(TINY),
        "n_train": 8,
        "difficulty": DEFAULT_DIFFICULTY,
        "quantise": True,
    }
    vol = ds.volume(ds.test_ids[0])
    assert vol.image.shape == vol.label.shape == TINY
    image, label = _arrays(tiny, ds.train_ids[0])
    assert image.dtype == np.float32 and label.dtype == np.uint8
    assert set(np.unique(label)) == {0, 1}


def test_ids_look_like_la_ids(tiny):
    ids = (tiny / "train.list").read_text().split() + (tiny / "test.list").read_text().split()
    assert ids == case_ids(3, 10)
    assert len(set(ids)) == 10
    assert all(re.fullmatch(r"[A-Z0-9]{20}", i) for i in ids)
    assert sorted(p.name for p in (tiny / CASES_DIR).iterdir()) == sorted(ids)


def test_same_seed_identical_and_each_case_reproducible_alone(tiny, tmp_path):
    again = generate(tmp_path / "again", cases=3, seed=3, size=TINY, n_train=2)
    ids = case_ids(3, 3)
    for i, case_id in enumerate(ids):
        a, b = _arrays(tiny, case_id), _arrays(again, case_id)
        assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()
        image, label = synth_case(np.random.default_rng([3, i]), TINY)
        assert image.tobytes() == a[0].tobytes() and label.tobytes() == a[1].tobytes()


def test_different_seed_differs():
    a = synth_case(np.random.default_rng([0, 0]), TINY)
    b = synth_case(np.random.default_rng([1, 0]), TINY)
    assert not np.array_equal(a[0], b[0]) and not np.array_equal(a[1], b[1])
    assert case_ids(0, 5) != case_ids(1, 5)


def test_realism_at_default_size():
    """At difficulty 1: foreground fraction and intensities in the real LA's range; a threshold is not enough."""
    fg, cnr, best_threshold_dice = [], [], []
    for i in range(8):
        image, label = synth_case(np.random.default_rng([0, i]), DEFAULT_SIZE, difficulty=1.0)
        inside, outside = image[label == 1], image[label == 0]
        fg.append(label.mean())
        cnr.append((inside.mean() - outside.mean()) / outside.std())
        assert np.isfinite(image).all()
        assert inside.std() < outside.std()
        dices = []
        for t in np.quantile(image, np.linspace(0.5, 0.99, 30)):
            pred = image > t
            dices.append(2 * (pred & (label == 1)).sum() / (pred.sum() + label.sum()))
        best_threshold_dice.append(max(dices))
    assert min(fg) > 0.03 and max(fg) < 0.22 and 0.05 < np.median(fg) < 0.13
    assert 0.5 < np.median(cnr) < 2.0
    assert np.median(best_threshold_dice) < 0.75


def test_difficulty_is_validated_and_changes_contrast():
    with pytest.raises(ValueError, match="difficulty"):
        synth_case(np.random.default_rng(0), TINY, difficulty=-1)
    image_easy, label = synth_case(np.random.default_rng([0, 1]), DEFAULT_SIZE, difficulty=0.0)
    image_hard, label_hard = synth_case(np.random.default_rng([0, 1]), DEFAULT_SIZE, difficulty=2.0)

    def cnr(image, label):
        return (image[label == 1].mean() - image[label == 0].mean()) / image[label == 0].std()

    assert cnr(image_easy, label) > cnr(image_hard, label_hard)


def test_generate_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="n_train"):
        generate(tmp_path / "x", cases=4, n_train=4, size=TINY)
    with pytest.raises(ValueError, match="size"):
        generate(tmp_path / "x", cases=4, n_train=2, size=(8, 32, 32))


def _tiny_generate(out, cases, seed, size, **_):
    return generate(out, cases=3, seed=seed, size=(16, 16, 16), n_train=2)


def test_default_root_generates_once_into_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SSLBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(default_mod, "generate", _tiny_generate)
    root = default_mod.default_data_root()
    assert root == tmp_path / f"synthetic-la-v{GENERATOR_VERSION}-48x48x32-d1.5-s0"
    assert check_dataset(root) == []
    assert "generating" in capsys.readouterr().err
    assert default_mod.default_data_root() == root
    assert capsys.readouterr().err == ""  # second call: found, nothing generated
    assert [p.name for p in tmp_path.iterdir()] == [root.name]  # no temporary folder left behind


def test_default_root_uses_the_winner_when_losing_the_race(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLBENCH_CACHE", str(tmp_path))
    root = tmp_path / default_mod.default_dataset_name()

    def racing_generate(out, cases, seed, size, **_):
        _tiny_generate(root, cases, seed, size)  # another worker finishes first
        (root / "winner").write_text("")
        return _tiny_generate(out, cases, seed, size)

    monkeypatch.setattr(default_mod, "generate", racing_generate)
    assert default_mod.default_data_root() == root
    assert (root / "winner").is_file()
    assert [p.name for p in tmp_path.iterdir()] == [root.name]


def test_default_root_refuses_a_damaged_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLBENCH_CACHE", str(tmp_path))
    (tmp_path / default_mod.default_dataset_name()).mkdir()
    with pytest.raises(RuntimeError, match="not a complete dataset"):
        default_mod.default_data_root()


def test_cli_synth(tmp_path):
    out = tmp_path / "cli"
    args = ["synth", "--out", str(out), "--cases", "4", "--size", "16", "16", "16", "--difficulty", "0.5"]
    result = CliRunner().invoke(data, args)
    assert result.exit_code == 0, result.output
    assert check_dataset(out) == []
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["generator"]["difficulty"] == 0.5 and meta["generator"]["n_train"] == 3
    again = CliRunner().invoke(data, args)
    assert again.exit_code != 0 and "already holds a dataset" in again.output
