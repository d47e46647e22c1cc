"""Reader for the LA layout of the UA-MT preprocessing.

Layout (the same for the real data, ``la-half`` and the synthetic generator)::

    <root>/2018LA_Seg_Training Set/<CASE_ID>/mri_norm2.h5   # datasets 'image' (W,H,D) float, 'label' uint8 {0,1}
    <root>/train.list                                       # one id a line
    <root>/test.list
    <root>/dataset.json                                     # optional: {"name": ..., "spacing_mm": 0.625}

Volumes are read once and kept in memory, as float32 image and uint8 label.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from sslbench.datasets.errors import DatasetError  # noqa: F401  (re-exported: readers raise it)

CASES_DIR = "2018LA_Seg_Training Set"
H5_NAME = "mri_norm2.h5"
LA_SPACING_MM = 0.625  # the challenge volumes are 0.625 mm isotropic


@dataclass(frozen=True)
class Volume:
    case_id: str
    image: np.ndarray  # (W, H, D) float32
    label: np.ndarray  # (W, H, D) uint8 in {0, 1}


def safe_case_id(case_id: str) -> bool:
    """A case id names one folder under CASES_DIR: no path separators, no `..`, not absolute."""
    return bool(case_id) and "/" not in case_id and "\\" not in case_id and case_id not in (".", "..")


def read_list(path: Path) -> list[str]:
    if not path.is_file():
        raise DatasetError(f"{path}: list file not found (expected one case id per line)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text (expected one case id per line)") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from None
    ids = [line.strip() for line in text.splitlines() if line.strip()]
    if not ids:
        raise DatasetError(f"{path}: list is empty")
    return ids


def list_problems(root: Path, train_ids: list[str], test_ids: list[str]) -> list[str]:
    """What makes the lists unusable: unsafe ids, duplicates, and test ids that are also training ids (a leak)."""
    problems = []
    for name, ids in (("train.list", train_ids), ("test.list", test_ids)):
        for case_id, n in Counter(ids).items():
            if not safe_case_id(case_id):
                problems.append(
                    f"{root / name}: id '{case_id}' is not a case folder name (no '/', '..' or absolute paths)"
                )
            elif n > 1:
                problems.append(f"{root / name}: id '{case_id}' appears {n} times (expected each id once)")
    for case_id in sorted(set(train_ids) & set(test_ids)):
        problems.append(
            f"{root}: id '{case_id}' is in both train.list and test.list (a train/test leak; expected disjoint lists)"
        )
    return problems


def read_metadata(root: Path) -> dict:
    """dataset.json as a dict ({} when absent); a non-object, invalid JSON or a bad spacing is a DatasetError."""
    meta = root / "dataset.json"
    if not meta.is_file():
        return {}
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise DatasetError(f"{meta}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{meta}: expected a JSON object, got {type(data).__name__}")
    if "spacing_mm" in data:
        spacing = data["spacing_mm"]
        ok = isinstance(spacing, (int, float)) and not isinstance(spacing, bool)
        if not ok or not math.isfinite(spacing) or spacing <= 0:
            raise DatasetError(f"{meta}: spacing_mm {spacing!r}, expected a positive number of mm")
    return data


def case_path(root: Path, case_id: str) -> Path:
    return root / CASES_DIR / case_id / H5_NAME


def read_case(root: Path, case_id: str) -> Volume:
    """Read one case and validate what training depends on (keys, shapes, label values, finiteness)."""
    path = case_path(root, case_id)
    if not path.is_file():
        raise DatasetError(f"{path}: case '{case_id}' is listed but its h5 file is missing")
    try:
        with h5py.File(path, "r") as f:
            for key in ("image", "label"):
                if key not in f:
                    raise DatasetError(f"{path}: missing dataset '{key}' (expected 'image' and 'label')")
                if not isinstance(f[key], h5py.Dataset):
                    raise DatasetError(
                        f"{path}: '{key}' is a {type(f[key]).__name__}, expected an h5 dataset"
                    )
            image = np.asarray(f["image"][()], dtype=np.float32)
            label_raw = np.asarray(f["label"][()])
    except DatasetError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise DatasetError(f"{path}: cannot read h5 file ({exc})") from exc
    if image.ndim != 3:
        raise DatasetError(f"{path}: image has shape {image.shape}, expected 3 dimensions (W, H, D)")
    if image.shape != label_raw.shape:
        raise DatasetError(f"{path}: image shape {image.shape} differs from label shape {label_raw.shape}")
    if 0 in image.shape:
        raise DatasetError(
            f"{path}: image has shape {image.shape}, expected at least one voxel on every axis"
        )
    if not np.isfinite(image).all():
        raise DatasetError(f"{path}: image contains NaN or inf values")
    values = np.unique(label_raw)
    if not np.isin(values, (0, 1)).all():
        raise DatasetError(f"{path}: label has values {values.tolist()}, expected only 0 and 1")
    return Volume(case_id, image, label_raw.astype(np.uint8))


def infer_spacing(root: Path) -> float:
    """Isotropic voxel spacing in mm: dataset.json if present, else the LA convention for the folder."""
    meta = read_metadata(root)
    if meta:
        if "spacing_mm" not in meta:
            raise DatasetError(f"{root / 'dataset.json'}: expected a JSON object with a numeric 'spacing_mm'")
        return float(meta["spacing_mm"])
    # la-half is the 2x downsampled LA (README of the shared data); there is no metadata file in that layout.
    return 2 * LA_SPACING_MM if "half" in root.name.lower() else LA_SPACING_MM


@dataclass
class LADataset:
    """An LA-layout dataset with lazily loaded, then cached, volumes."""

    root: Path
    train_ids: list[str]
    test_ids: list[str]
    spacing: float
    name: str
    _cache: dict[str, Volume] = field(default_factory=dict, repr=False)

    def volume(self, case_id: str) -> Volume:
        if case_id not in self._cache:
            self._cache[case_id] = read_case(self.root, case_id)
        return self._cache[case_id]

    def volumes(self, ids: list[str]) -> list[Volume]:
        return [self.volume(i) for i in ids]

    def describe(self) -> dict:
        return {
            "root": str(self.root),
            "name": self.name,
            "spacing_mm": self.spacing,
            "n_train": len(self.train_ids),
            "n_test": len(self.test_ids),
        }


_OPEN: dict[tuple[str, float | None], LADataset] = {}


def open_dataset(root: str | Path, spacing: float | None = None) -> LADataset:
    """Open (and memoise per process) an LA-layout dataset folder."""
    root = Path(root).expanduser().resolve()
    key = (str(root), spacing)
    if key in _OPEN:
        return _OPEN[key]
    if not root.is_dir():
        raise DatasetError(f"{root}: data folder does not exist")
    if not (root / CASES_DIR).is_dir():
        raise DatasetError(f"{root}: no '{CASES_DIR}' folder (expected the LA h5 layout)")
    train_ids = read_list(root / "train.list")
    test_ids = read_list(root / "test.list")
    problems = list_problems(root, train_ids, test_ids)
    if problems:
        more = f" (and {len(problems) - 1} more: bench data check {root})" if len(problems) > 1 else ""
        raise DatasetError(problems[0] + more)
    name = str(read_metadata(root).get("name") or root.name)
    ds = LADataset(root, train_ids, test_ids, spacing if spacing else infer_spacing(root), name)
    _OPEN[key] = ds
    return ds
