"""Validate an LA-layout dataset folder (the la-h5 reader's check; `readers.check_report` picks the reader)
 and list every problem, one readable line each.

`la.read_case` stops at the first problem of the case it is reading, in the middle of a run; this walks the whole
folder up front so that a user fixes everything in one go. Each h5 file is opened once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from sslbench.datasets.errors import DatasetError
from sslbench.datasets.la import (
    CASES_DIR,
    H5_NAME,
    case_path,
    class_names_of,
    expected_values,
    list_problems,
    read_metadata,
    safe_case_id,
)


@dataclass
class CheckReport:
    root: Path
    problems: list[str] = field(default_factory=list)
    n_train: int = 0
    n_test: int = 0
    shapes: list[tuple[int, ...]] = field(default_factory=list)
    fg_fractions: list[float] = field(default_factory=list)
    spacings: list[tuple[float, ...]] = field(default_factory=list)  # (x, y, z) mm per case, when known
    class_names: tuple[str, ...] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line describing a valid dataset."""
        text = f"{self.root}: {self.n_train} train + {self.n_test} test cases"
        if self.shapes:
            lo, hi = np.min(self.shapes, axis=0), np.max(self.shapes, axis=0)
            text += f", shapes {'x'.join(map(str, lo))} to {'x'.join(map(str, hi))}"
        if self.fg_fractions:
            fg = np.asarray(self.fg_fractions)
            text += f", foreground fraction {fg.min():.3f} / {np.median(fg):.3f} / {fg.max():.3f} (min/median/max)"
        if self.spacings:
            lo, hi = np.min(self.spacings, axis=0), np.max(self.spacings, axis=0)
            axes = [f"{a:g}" if a == b else f"{a:g}-{b:g}" for a, b in zip(lo, hi, strict=True)]
            text += f", spacing {' x '.join(axes)} mm"
        if self.class_names:
            text += f", classes {', '.join(self.class_names)}"
        return text


def _read_list(path: Path, problems: list[str]) -> list[str]:
    if not path.is_file():
        problems.append(f"{path}: missing (expected one case id per line)")
        return []
    try:
        ids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot read ({exc}); expected a UTF-8 text file with one case id per line")
        return []
    if not ids:
        problems.append(f"{path}: empty (expected one case id per line)")
    return ids


def _check_case(path: Path, problems: list[str], report: CheckReport, n_classes: int = 2) -> None:
    """Check one h5 file: keys, dtypes, shapes, label values and finiteness."""
    try:
        with h5py.File(path, "r") as f:
            missing = [key for key in ("image", "label") if key not in f]
            if missing:
                found = sorted(f.keys())
                problems.append(
                    f"{path}: missing dataset {missing} (expected 'image' and 'label', found {found})"
                )
                return
            groups = [key for key in ("image", "label") if not isinstance(f[key], h5py.Dataset)]
            if groups:
                problems.append(f"{path}: {groups} not h5 datasets (expected arrays 'image' and 'label')")
                return
            image_ds, label_ds = f["image"], f["label"]
            bad = len(problems)
            if image_ds.dtype.kind != "f":
                problems.append(
                    f"{path}: image dtype {image_ds.dtype} (expected float16, float32 or float64)"
                )
            if label_ds.dtype.kind not in "iub":
                problems.append(f"{path}: label dtype {label_ds.dtype} (expected an integer or bool type)")
            if image_ds.ndim != 3:
                problems.append(f"{path}: image has shape {image_ds.shape} (expected 3 dimensions W x H x D)")
            if image_ds.shape != label_ds.shape:
                problems.append(
                    f"{path}: image shape {image_ds.shape} differs from label shape {label_ds.shape}"
                )
            if 0 in image_ds.shape:
                problems.append(
                    f"{path}: image has shape {image_ds.shape} (expected at least one voxel per axis)"
                )
            if len(problems) > bad:
                return
            image, label = image_ds[()], label_ds[()]
    except OSError as exc:  # h5py reports corrupt, truncated and non-HDF5 files as OSError
        problems.append(f"{path}: cannot read the h5 file, corrupt or truncated? ({exc})")
        return
    values = np.unique(label)
    allowed = np.arange(n_classes)
    if not np.isin(values, allowed).all():
        shown = values[~np.isin(values, allowed)][:5].tolist()
        problems.append(f"{path}: label has values {shown} (expected only {expected_values(n_classes)})")
    n_bad = int(np.size(image) - np.count_nonzero(np.isfinite(image)))
    if n_bad:
        problems.append(f"{path}: image has {n_bad} NaN or inf voxels (expected finite values)")
    report.shapes.append(tuple(image.shape))
    report.fg_fractions.append(float(np.count_nonzero(label > 0)) / max(1, label.size))


def check_report(root: Path) -> CheckReport:
    """Check the whole folder; the report lists the problems and, for the readable cases, shapes and fg."""
    root = Path(root)
    report = CheckReport(root)
    problems = report.problems
    if not root.is_dir():
        problems.append(f"{root}: folder does not exist (expected an LA-layout dataset folder)")
        return report
    cases = root / CASES_DIR
    if not cases.is_dir():
        problems.append(f"{cases}: missing (expected one folder per case holding {H5_NAME})")
    train = _read_list(root / "train.list", problems)
    test = _read_list(root / "test.list", problems)
    report.n_train, report.n_test = len(set(train)), len(set(test))
    problems += list_problems(root, train, test)
    meta = root / "dataset.json"
    n_classes = 2
    try:
        data = read_metadata(root)
        if meta.is_file() and "spacing_mm" not in data:
            problems.append(f"{meta}: no 'spacing_mm' (expected a JSON object with a numeric 'spacing_mm')")
        n_classes = len(class_names_of(data, str(meta)))
    except DatasetError as exc:
        problems.append(str(exc))
    if not cases.is_dir():
        return report
    # each id once, in list order; unsafe ids are reported above and never opened
    listed = [i for i in dict.fromkeys(train + test) if safe_case_id(i)]
    for case_id in listed:
        path = case_path(root, case_id)
        which = "train.list" if case_id in train else "test.list"
        if not path.parent.is_dir():
            problems.append(f"{path.parent}: missing folder for id '{case_id}' listed in {which}")
        elif not path.is_file():
            problems.append(f"{path}: missing (expected the h5 file of '{case_id}' listed in {which})")
        else:
            _check_case(path, problems, report, n_classes)
    return report


def check_dataset(root: Path) -> list[str]:
    """One human-readable line per problem in the dataset folder `root`; an empty list means it is valid."""
    return check_report(root).problems
