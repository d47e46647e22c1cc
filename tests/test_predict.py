"""`bench predict`: NIfTI masks with the dataset's spacing whose voxels are the argmax of the sliding window."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from click.testing import CliRunner

from sslbench.benchmark.cli import main
from sslbench.benchmark.config import build_config
from sslbench.benchmark.evaluation.sliding_window import sliding_window_scores
from sslbench.benchmark.runs.folder import load_run
from sslbench.benchmark.training.trainer import train_run


@pytest.fixture(scope="module")
def finished_run(tiny_data, tmp_path_factory):
    cfg = build_config("sup", "4/0", 3, "smoke", {"train.threads": "1"}, str(tiny_data))
    run_dir = tmp_path_factory.mktemp("runs") / cfg.run_name()
    train_run(cfg, run_dir, progress=False)
    return run_dir


def _hashes(folder):
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()
    }


def test_predict_writes_the_argmax_as_nifti_with_the_dataset_spacing(finished_run, tmp_path):
    import SimpleITK as sitk

    before = _hashes(finished_run)
    out = tmp_path / "masks"
    res = CliRunner().invoke(main, ["predict", str(finished_run), "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    run = load_run(finished_run)
    ds, cfg = run.trainer.dataset, run.cfg
    assert sorted(p.name for p in out.glob("*.nii.gz")) == sorted(f"{i}.nii.gz" for i in ds.test_ids)
    for case_id in ds.test_ids:
        img = sitk.ReadImage(str(out / f"{case_id}.nii.gz"))
        assert img.GetSpacing() == pytest.approx(ds.spacing)
        mask = sitk.GetArrayFromImage(img).transpose(2, 1, 0)  # back to (x, y, z)
        vol = ds.volume(case_id)
        scores = sliding_window_scores(
            run.trainer.predictor(run.method), vol.image, tuple(cfg.data.patch), cfg.eval.stride_xy,
            cfg.eval.stride_z, 2, cfg.eval.sw_batch,
        )  # fmt: skip
        assert np.array_equal(mask, scores.argmax(0).numpy().astype(np.uint8))
    assert json.loads((out / "predictions.json").read_text())["cases"] == ds.test_ids
    assert _hashes(finished_run) == before  # the finished run is never written


def test_predict_refuses_to_write_into_the_run_folder(finished_run):
    res = CliRunner().invoke(main, ["predict", str(finished_run), "--out", str(finished_run / "masks")])
    assert res.exit_code == 1 and "inside the run folder" in res.output
    assert not (finished_run / "masks").exists()
