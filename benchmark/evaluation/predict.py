"""`bench predict`: a finished run's predicted masks as NIfTI files, for ITK-SNAP or 3D Slicer.

Each mask is what evaluation scored: the argmax of the sliding-window scores (then the largest component when
`eval.largest_cc`), written with the dataset's voxel spacing. The LA h5 layout stores no origin or direction, so
the files have origin (0, 0, 0) and the identity direction, as the image array itself has; arrays are (x, y, z),
which SimpleITK writes as its (z, y, x) NumPy view transposed. The run's folder is never written: the masks go
to `--out`, with a small `predictions.json` saying which run, data and cases they are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sslbench.benchmark.evaluation.sliding_window import predict_mask
from sslbench.benchmark.runs.folder import load_run
from sslbench.benchmark.runs.io import write_json
from sslbench.benchmark.training.errors import RunFailed


def write_nifti(path: Path, mask: np.ndarray, spacing: tuple[float, float, float]) -> None:
    """A (x, y, z) uint8 label map as a NIfTI file with `spacing` in mm."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(mask.transpose(2, 1, 0)))
    img.SetSpacing(tuple(float(s) for s in spacing))
    sitk.WriteImage(img, str(path), useCompression=True)


def predict_run(
    run_dir: Path,
    out_dir: Path,
    data_root: str | None = None,
    case_ids: list[str] | None = None,
    progress: bool = False,
) -> list[Path]:
    """Write `<case>.nii.gz` for each test case (or `case_ids`) of a finished run into `out_dir`.

    Raises:
        RunFailed: `out_dir` lies inside the run folder (a finished run is never modified), the run is not
            finished, or a case id is not in the dataset.
    """
    run_dir, out_dir = Path(run_dir).resolve(), Path(out_dir).resolve()
    if out_dir == run_dir or run_dir in out_dir.parents:
        raise RunFailed(f"--out {out_dir}: inside the run folder {run_dir}; choose a folder outside it")
    run = load_run(run_dir, data_root)
    dataset, cfg = run.trainer.dataset, run.cfg
    ids = list(case_ids) if case_ids else list(dataset.test_ids)
    unknown = [i for i in ids if i not in set(dataset.train_ids) | set(dataset.test_ids)]
    if unknown:
        raise RunFailed(f"--case {unknown[0]}: not a case of {dataset.root}")
    out_dir.mkdir(parents=True, exist_ok=True)
    from tqdm.auto import tqdm

    written = []
    predictor = run.trainer.predictor(run.method)
    for case_id in tqdm(ids, desc="predict", leave=False, disable=not progress):
        vol = dataset.volume(case_id)
        mask = predict_mask(
            predictor,
            vol.image,
            tuple(cfg.data.patch),
            cfg.eval,
            run.trainer.device,
            len(dataset.class_names),
        )
        path = out_dir / f"{case_id}.nii.gz"
        write_nifti(path, mask, tuple(dataset.spacing))
        written.append(path)
    write_json(
        out_dir / "predictions.json",
        {"run": str(run_dir), "run_id": cfg.run_id(), "dataset": dataset.describe(), "cases": ids},
    )
    return written
