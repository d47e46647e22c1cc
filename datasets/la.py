"""Reader for the LA layout of the UA-MT preprocessing.

Layout (the same for the real data, ``la-half`` and the synthetic generator)::

    <root>/2018LA_Seg_Training Set/<CASE_ID>/mri_norm2.h5   # datasets 'image' (W,H,D) float, 'label' uint8 {0,1}
    <root>/train.list                                       # one id a line
    <root>/test.list
    <root>/dataset.json                                     # optional, see below

dataset.json (optional): {"name": ..., "spacing_mm": 0.625 or [x, y, z], "labels": {"0": "background", ...}}.
Without one, the voxels are the LA challenge's 0.625 mm, the labels {0, 1}; the half-resolution LA package
(../shared/data/la-half, which has no dataset.json) is recognised by its content fingerprint (KNOWN_DATASETS),
never by its folder name.

Volumes are read once and kept in memory, as float32 image and uint8 label.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from sslbench.datasets.base import Spacing, Volume, as_spacing, parse_class_names
from sslbench.datasets.errors import DatasetError  # noqa: F401  (re-exported: readers raise it)

CASES_DIR = "2018LA_Seg_Training Set"
H5_NAME = "mri_norm2.h5"
LA_SPACING_MM = 0.625  # the challenge volumes are 0.625 mm isotropic
FORMAT = "la-h5"
LA_CLASSES = ("background", "left atrium")
# LA-layout packages that ship no dataset.json, by content fingerprint (datasets/fingerprint.py): what their
# dataset.json would say. The half-resolution LA of the shared data package (2x2x2 mean pooling of the UA-MT
# h5 files, so 1.25 mm voxels; its README).
KNOWN_DATASETS: dict[str, dict] = {
    "37ec5ccd1c51": {
        "name": "la-half",
        "spacing_mm": 2 * LA_SPACING_MM,
        "labels": {"0": "background", "1": "left atrium"},
    },
}


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
        as_spacing(data["spacing_mm"], f"{meta}: spacing_mm")
    if "labels" in data:
        parse_class_names(data["labels"], str(meta))
    return data


def effective_metadata(root: Path) -> tuple[dict, str]:
    """(metadata, where it came from): dataset.json, else a known package by fingerprint, else {}."""
    meta = read_metadata(root)
    if meta:
        return meta, str(root / "dataset.json")
    from sslbench.datasets.fingerprint import data_fingerprint

    known = KNOWN_DATASETS.get(data_fingerprint(root))
    if known:
        return dict(known), f"the known {known['name']} package (content fingerprint)"
    return {}, f"the LA convention ({LA_SPACING_MM} mm, labels 0/1; no dataset.json)"


def class_names_of(meta: dict, where: str) -> tuple[str, ...]:
    return parse_class_names(meta["labels"], where) if "labels" in meta else LA_CLASSES


def case_path(root: Path, case_id: str) -> Path:
    return root / CASES_DIR / case_id / H5_NAME


def read_case(root: Path, case_id: str, n_classes: int = 2) -> Volume:
    """Read one case and validate what training depends on (keys, shapes, label values 0..n_classes-1,
    finiteness)."""
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
    if not np.isin(values, range(n_classes)).all():
        raise DatasetError(
            f"{path}: label has values {values.tolist()}, expected only {expected_values(n_classes)}"
        )
    return Volume(case_id, image, label_raw.astype(np.uint8))


def expected_values(n_classes: int) -> str:
    return "0 and 1" if n_classes == 2 else f"0..{n_classes - 1} (dataset.json labels)"


def infer_spacing(root: Path) -> Spacing:
    """Voxel spacing (x, y, z) in mm: dataset.json, a known package, else the LA challenge's 0.625 mm."""
    meta, where = effective_metadata(root)
    if meta:
        if "spacing_mm" not in meta:
            raise DatasetError(f"{root / 'dataset.json'}: expected a JSON object with a numeric 'spacing_mm'")
        return as_spacing(meta["spacing_mm"], where)
    return (LA_SPACING_MM,) * 3


@dataclass
class LADataset:
    """An LA-layout dataset with lazily loaded, then cached, volumes."""

    root: Path
    train_ids: list[str]
    test_ids: list[str]
    spacing: Spacing
    name: str
    class_names: tuple[str, ...] = LA_CLASSES
    format: str = FORMAT
    _cache: dict[str, Volume] = field(default_factory=dict, repr=False)

    def volume(self, case_id: str) -> Volume:
        if case_id not in self._cache:
            self._cache[case_id] = read_case(self.root, case_id, len(self.class_names))
        return self._cache[case_id]

    def volumes(self, ids: list[str]) -> list[Volume]:
        return [self.volume(i) for i in ids]

    def describe(self) -> dict:
        return {
            "root": str(self.root),
            "name": self.name,
            "format": self.format,
            "spacing_mm": list(self.spacing),
            "classes": list(self.class_names),
            "n_train": len(self.train_ids),
            "n_test": len(self.test_ids),
        }


def open_la(root: Path, spacing=None) -> LADataset:
    """Open an LA-layout folder (use `readers.open_dataset`, which picks the reader and memoises)."""
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
    meta, where = effective_metadata(root)
    name = str(meta.get("name") or root.name)
    resolved = as_spacing(spacing, "data.spacing") if spacing is not None else infer_spacing(root)
    return LADataset(root, train_ids, test_ids, resolved, name, class_names_of(meta, where))


def open_dataset(root: str | Path, spacing=None) -> LADataset:
    """Open (and memoise per process) an LA-layout dataset folder (kept for callers that know the format)."""
    from sslbench.datasets.readers import open_dataset as open_any

    return open_any(root, spacing)


def _content_files(root: Path) -> list[tuple[str, Path | None]]:
    from sslbench.datasets.fingerprint import _listed_ids

    files = [(name, root / name) for name in ("train.list", "test.list", "dataset.json")]
    return files + [(i, case_path(root, i) if safe_case_id(i) else None) for i in _listed_ids(root)]


def _check(root: Path):
    from sslbench.datasets.check import check_report

    return check_report(root)


def _register() -> None:
    from sslbench.datasets.readers import Reader, register_reader

    register_reader(
        Reader(
            FORMAT,
            f"the UA-MT LA layout ('{CASES_DIR}/<id>/{H5_NAME}', train.list, test.list)",
            lambda root: (root / CASES_DIR).is_dir(),
            open_la,
            _check,
            _content_files,
        )
    )


_register()
