"""Reader `nifti`: a Medical Segmentation Decathlon / nnU-Net raw folder (layout and split: nifti_layout.py).

Per case, the image and label must be 3D single-channel NIfTI files of the same shape and spacing (within 1e-4
relative), the label integer class indices within dataset.json's "labels" (the MSD form {"0": "background", ...}
or the nnU-Net v2 form {"background": 0, ...}). Arrays are (x, y, z); the dataset's spacing is the per-axis
median of the image headers over the listed cases (`data.spacing` overrides it), and describe() records the
range. The image is normalised as dataset.json's "normalization" says (normalization.py; default: z-score per
case).

Decoding NIfTI every run is slow, so the first open converts each listed case once into a cache,
`<cache_dir>/nifti/v<CACHE_VERSION>-<content fingerprint>/<case>.npz` (normalised float32 image, uint8 label,
spacing), each file written under a temporary name and renamed, so that parallel workers never read half a
file. Any change to dataset.json, a list or an image or label file changes the fingerprint, hence the folder.
Volumes are read from the cache when first asked for and then kept in memory, as la.py does.
"""

from __future__ import annotations

import os
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sslbench.datasets.base import Spacing, Volume, as_spacing, spacing_text
from sslbench.datasets.errors import DatasetError
from sslbench.datasets.nifti_cases import CaseArrays, load_case
from sslbench.datasets.nifti_layout import IMAGES_DIR, LABELS_DIR, META, Case, Layout, content_files, scan

FORMAT = "nifti"
CACHE_VERSION = 1  # bump when the conversion changes what a cached file holds


def _first_problem(problems: list[str], root: Path) -> DatasetError:
    more = f" (and {len(problems) - 1} more: bench data check {root})" if len(problems) > 1 else ""
    return DatasetError(problems[0] + more)


def cache_folder(root: Path) -> Path:
    from sslbench.datasets.default import cache_dir
    from sslbench.datasets.fingerprint import data_fingerprint

    return cache_dir() / "nifti" / f"v{CACHE_VERSION}-{data_fingerprint(root)}"


def _write_atomic(path: Path, arrays: CaseArrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, image=arrays.image, label=arrays.label, spacing=np.asarray(arrays.spacing))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_cached(path: Path, members: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The members of a cached case; None when absent or damaged (it is then converted again)."""
    try:
        with np.load(path) as npz:
            return {name: npz[name] for name in members}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def _convert(case: Case, layout: Layout, path: Path) -> CaseArrays:
    n_classes = len(layout.class_names) if layout.class_names else None
    problems, arrays = load_case(case, n_classes, layout.normalization)
    if arrays is None:
        raise _first_problem(problems, layout.root)
    _write_atomic(path, arrays)
    return arrays


@dataclass
class NiftiDataset:
    """A Decathlon-layout dataset whose volumes come from the array cache."""

    root: Path
    name: str
    train_ids: list[str]
    test_ids: list[str]
    spacing: Spacing
    class_names: tuple[str, ...]
    layout: Layout = field(repr=False)
    cache: Path = field(repr=False)
    case_spacings: dict[str, Spacing] = field(repr=False, default_factory=dict)  # from the image headers
    spacing_source: str = "image headers"
    format: str = FORMAT
    _volumes: dict[str, Volume] = field(default_factory=dict, repr=False)

    def volume(self, case_id: str) -> Volume:
        if case_id not in self._volumes:
            if case_id not in self.layout.cases:
                raise DatasetError(f"{self.root}: no case '{case_id}' in {IMAGES_DIR} / {LABELS_DIR}")
            path = self.cache / f"{case_id}.npz"
            cached = _read_cached(path, ("image", "label"))
            if cached is None:
                arrays = _convert(self.layout.cases[case_id], self.layout, path)
                cached = {"image": arrays.image, "label": arrays.label}
            self._volumes[case_id] = Volume(case_id, cached["image"], cached["label"])
        return self._volumes[case_id]

    def volumes(self, ids: list[str]) -> list[Volume]:
        return [self.volume(i) for i in ids]

    def describe(self) -> dict[str, Any]:
        spacings = np.asarray(list(self.case_spacings.values()))
        return {
            "root": str(self.root),
            "name": self.name,
            "format": self.format,
            "spacing_mm": list(self.spacing),
            "spacing_source": self.spacing_source,
            "header_spacing_range_mm": [spacings.min(axis=0).tolist(), spacings.max(axis=0).tolist()],
            "classes": list(self.class_names),
            "normalization": self.layout.normalization,
            "split": self.layout.split,
            "n_train": len(self.train_ids),
            "n_test": len(self.test_ids),
        }


def _cached_spacings(layout: Layout, cache: Path, ids: list[str]) -> dict[str, Spacing]:
    """Each listed case's header spacing, converting into the cache the cases not there yet."""
    spacings: dict[str, Spacing] = {}
    todo = []
    for case_id in ids:
        cached = _read_cached(cache / f"{case_id}.npz", ("spacing",))
        if cached is None:
            todo.append(case_id)
        else:
            spacings[case_id] = tuple(float(s) for s in cached["spacing"])  # type: ignore[assignment]
    if todo:
        print(
            f"sslbench: converting {len(todo)} NIfTI case(s) of {layout.root} into {cache} (once)",
            file=sys.stderr,
        )
    for case_id in todo:
        spacings[case_id] = _convert(layout.cases[case_id], layout, cache / f"{case_id}.npz").spacing
    return spacings


def open_nifti(root: Path, spacing: Any = None) -> NiftiDataset:
    """Open a Decathlon-layout folder (use `readers.open_dataset`, which picks the reader and memoises)."""
    root = Path(root)
    layout = scan(root)
    if layout.problems:
        raise _first_problem(layout.problems, root)
    assert layout.class_names is not None  # missing labels are a problem of scan
    cache = cache_folder(root)
    ids = list(dict.fromkeys(layout.train_ids + layout.test_ids))
    case_spacings = _cached_spacings(layout, cache, ids)
    if spacing is not None:
        resolved, source = as_spacing(spacing, "data.spacing"), "data.spacing"
    else:
        median = np.median(np.asarray([case_spacings[i] for i in ids]), axis=0)
        resolved = tuple(round(float(s), 6) for s in median)  # type: ignore[assignment]
        source = f"image headers (median of {len(ids)} cases: {spacing_text(list(resolved))} mm)"
    return NiftiDataset(
        root,
        layout.name,
        layout.train_ids,
        layout.test_ids,
        resolved,
        layout.class_names,
        layout,
        cache,
        case_spacings,
        source,
    )


def _check(root: Path):
    from sslbench.datasets.nifti_check import check_nifti

    return check_nifti(root)


def _register() -> None:
    from sslbench.datasets.readers import Reader, register_reader

    register_reader(
        Reader(
            FORMAT,
            f"a Decathlon / nnU-Net raw folder ({IMAGES_DIR}/<id>[_0000].nii.gz, {LABELS_DIR}/<id>.nii.gz, {META})",
            # imagesTr alone is enough to be recognised, so that a missing dataset.json is reported as such
            lambda root: (root / IMAGES_DIR).is_dir(),
            open_nifti,
            _check,
            content_files,
        )
    )


_register()
