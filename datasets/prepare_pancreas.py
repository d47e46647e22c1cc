"""Prepare Pancreas-CT (NIH, TCIA) for the `nifti` reader with the recipe of the semi-supervised papers' Pancreas
experiments: MC-Net (Wu et al.; github.com/ycwu1997/MC-Net, data/Pancreas/Pre-processing.ipynb and its
train.list / test.list), with 96^3 patches and 6 or 12 labeled cases.

Input, RAW holding the CT images and label masks as NIfTI (the TCIA DICOM series converted beforehand), in one
of two layouts:

    RAW/images/*.nii.gz  + RAW/labels/*.nii.gz       (e.g. image0001.nii.gz / PANCREAS_0001.nii.gz, label0001.nii.gz)
    RAW/imagesTr/*.nii.gz + RAW/labelsTr/*.nii.gz    (Decathlon-like; an image may carry the _0000 channel suffix)

`.nii` works too. An image and a label are paired by case number: the last run of digits of the file name,
after dropping a `_0000` channel suffix that follows a number. image0001, PANCREAS_0001, PANCREAS_0001_0000
and label0001 are all case 1, written as `image0001`, the ids of MC-Net's lists.

Per case:

1. resample to 1 mm isotropic, to floor(size x spacing) voxels per axis (as the reference); the label with
   nearest neighbour, the image linearly (scipy.ndimage.zoom; the reference uses SimpleITK's cubic B-spline);
2. clip the CT to the soft-tissue window [-125, 275] HU (level 75, width 400);
3. crop x and y around the label's bounding box: 25 voxels beyond it on each side plus half of the box's
   shortfall with respect to the 96-voxel patch, clipped to the volume, the stop index exclusive as in the
   reference (so 24 voxels beyond the box's last voxel); every z slice is kept, as in the reference;
4. z-score the cropped volume (float64 statistics, stored as float32).

Output: a `nifti` folder (imagesTr/, labelsTr/, 1 mm headers) whose dataset.json says "normalization": "none"
(the images are already normalised, the reader must not do it again), labels {"0": "background",
"1": "pancreas"}, and MC-Net's train.list (62 cases) and test.list (20), in their order, holding the converted
cases. The papers' labeled splits are the first 6 or 12 cases of train.list: `--split 6/56` (10 %) and
`--split 12/50` (20 %). As with LA, every case, test cases included, is cropped around its ground truth.

Every bad input (an image without a label, label values other than 0 and 1, a pair of different shapes or
spacings, a 4D image, ...) is one line of `PreparationFailed.problems`; nothing is written then. The output
is built in a temporary sibling folder and renamed into place when complete.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from sslbench.datasets import nifti_io
from sslbench.datasets.errors import DatasetError
from sslbench.datasets.nifti_cases import header_problems, label_problems
from sslbench.datasets.nifti_layout import IMAGES_DIR, LABELS_DIR, Case

TARGET_MM = 1.0
CT_WINDOW_HU = (-125.0, 275.0)
MARGIN_XY = 25
MIN_CROP_XY = 96  # the papers' training patch side
LAYOUTS = (("images", "labels"), (IMAGES_DIR, LABELS_DIR))
LISTS_DIR = Path(__file__).resolve().parent / "pancreas_lists"
CLASSES = {"0": "background", "1": "pancreas"}
SPLIT_HINTS = {
    "6/56": "10 % labeled (MC-Net's 6-label setting)",
    "12/50": "20 % labeled (MC-Net's 12-label setting)",
}


class PreparationFailed(DatasetError):
    """Bad inputs: `problems` holds one line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


def protocol_lists() -> tuple[list[str], list[str]]:
    """MC-Net's 62 train and 20 test ids, in their order (labeled = the first N of train)."""
    lists = [(LISTS_DIR / name).read_text().split() for name in ("train.list", "test.list")]
    return lists[0], lists[1]


def case_number(stem: str, is_image: bool) -> int | None:
    """The last run of digits of a file name (images: after dropping a `_0000` channel suffix after a digit)."""
    if is_image:
        stem = re.sub(r"(?<=\d)_0000$", "", stem)
    runs = re.findall(r"\d+", stem)
    return int(runs[-1]) if runs else None


def _numbered(folder: Path, is_image: bool, problems: list[str]) -> dict[int, Path]:
    found: dict[int, Path] = {}
    for path in sorted(folder.iterdir()):
        stem = nifti_io.nifti_stem(path.name)
        if stem is None or not path.is_file():
            continue
        number = case_number(stem, is_image)
        if number is None:
            problems.append(f"{path}: no case number in the file name (expected e.g. image0001.nii.gz)")
        elif number in found:
            problems.append(
                f"{path}: case {number} again, beside {found[number].name} (expected one file a case)"
            )
        else:
            found[number] = path
    return found


def find_pairs(raw: Path, problems: list[str]) -> dict[str, Case]:
    """image<NNNN> -> its image and label files; every unpaired or unnumbered file is a problem."""
    for images_name, labels_name in LAYOUTS:
        images_dir, labels_dir = raw / images_name, raw / labels_name
        if images_dir.is_dir() and labels_dir.is_dir():
            break
    else:
        layouts = " or ".join(f"{a}/ + {b}/" for a, b in LAYOUTS)
        problems.append(f"{raw}: expected folders of NIfTI images and labels ({layouts})")
        return {}
    images = _numbered(images_dir, True, problems)
    labels = _numbered(labels_dir, False, problems)
    for number in sorted(set(images) - set(labels)):
        problems.append(f"{images[number]}: image without a label (expected case {number} in {labels_dir})")
    for number in sorted(set(labels) - set(images)):
        problems.append(f"{labels[number]}: label without an image (expected case {number} in {images_dir})")
    if not images and not labels:
        problems.append(f"{images_dir}: no NIfTI files (expected .nii.gz or .nii images)")
    pairs = {}
    for number in sorted(set(images) & set(labels)):
        case_id = f"image{number:04d}"
        pairs[case_id] = Case(case_id, images[number], labels[number])
    return pairs


def resample_isotropic(array: np.ndarray, spacing, order: int) -> np.ndarray:
    """`array` at TARGET_MM per voxel: floor(size x spacing) voxels per axis (1e-6 absorbs float error)."""
    from scipy.ndimage import zoom

    shape = np.asarray(array.shape)
    new_shape = np.maximum(1, np.floor(shape * np.asarray(spacing) / TARGET_MM + 1e-6)).astype(int)
    if (new_shape == shape).all():
        return array
    return zoom(array, new_shape / shape, order=order, grid_mode=False)


def crop_xy(label: np.ndarray, margin: int = MARGIN_XY, min_crop: int = MIN_CROP_XY) -> tuple[slice, slice]:
    """x and y slices around the foreground: `margin` plus half the shortfall to `min_crop`, stop exclusive."""
    box = []
    for axis in (0, 1):
        idx = np.flatnonzero(label.any(axis=tuple(a for a in range(3) if a != axis)))
        lo, hi = int(idx[0]), int(idx[-1])
        pad = max(min_crop - (hi - lo), 0) // 2
        box.append(slice(max(lo - pad - margin, 0), min(hi + pad + margin, label.shape[axis])))
    return box[0], box[1]


def prepare_arrays(
    image_hu: np.ndarray, label: np.ndarray, spacing, margin: int = MARGIN_XY, min_crop: int = MIN_CROP_XY
) -> tuple[np.ndarray, np.ndarray]:
    """(z-scored float32 image, uint8 label) of one case, (x, y, z) arrays at 1 mm (steps 1-4 above)."""
    image = resample_isotropic(np.asarray(image_hu, dtype=np.float32), spacing, order=1)
    label = resample_isotropic(np.asarray(label, dtype=np.uint8), spacing, order=0)
    image = np.clip(image, *CT_WINDOW_HU)
    sx, sy = crop_xy(label, margin, min_crop)
    image, label = image[sx, sy].astype(np.float64), label[sx, sy]
    std = image.std()
    if not std > 0:
        raise ValueError("the cropped CT is constant inside the window, so it cannot be z-scored")
    return ((image - image.mean()) / std).astype(np.float32), label


def _label_problems(case: Case, label: np.ndarray) -> list[str]:
    problems = label_problems(label, 2, case.label, "background and pancreas")
    if not problems and not label.any():
        problems.append(f"{case.label}: no pancreas voxel (expected label 1 somewhere, to crop around)")
    return problems


def _convert_all(pairs: dict[str, Case], tmp: Path, problems: list[str], progress: bool) -> dict:
    """Convert every pair into `tmp`; once a problem is known, the others are only validated."""
    shapes = {}
    todo = list(pairs.values())
    if progress:
        from tqdm import tqdm

        todo = tqdm(todo, desc="prepare Pancreas-CT", unit="case")
    for case in todo:
        stored = [p for p in map(nifti_io.stored_voxel_problem, (case.image, case.label)) if p is not None]
        if stored:  # truncated data or NaN voxels, which SimpleITK would read without a word
            problems += stored
            continue
        try:
            image, spacing = nifti_io.read_volume(case.image)
            label, _ = nifti_io.read_volume(case.label)
        except DatasetError as exc:
            problems.append(str(exc))
            continue
        problems += _label_problems(case, label)
        if problems:
            continue
        try:
            image, label = prepare_arrays(image, label, spacing)
        except ValueError as exc:
            problems.append(f"{case.image}: {exc}")
            continue
        nifti_io.write_volume(tmp / IMAGES_DIR / f"{case.case_id}.nii.gz", image, (TARGET_MM,) * 3)
        nifti_io.write_volume(tmp / LABELS_DIR / f"{case.case_id}.nii.gz", label, (TARGET_MM,) * 3)
        shapes[case.case_id] = list(image.shape)
    return shapes


def _metadata(pairs: dict[str, Case], missing: list[str]) -> dict:
    return {
        "name": "pancreas-ct",
        "format": "nifti",
        "labels": CLASSES,
        "normalization": "none",  # z-scored by the preparation below
        "source": "Pancreas-CT (NIH, TCIA), prepared by `bench data prepare-pancreas`",
        "preprocessing": {
            "recipe": "MC-Net data/Pancreas/Pre-processing.ipynb (github.com/ycwu1997/MC-Net)",
            "spacing_mm": TARGET_MM,
            "image_interpolation": "linear",
            "label_interpolation": "nearest",
            "ct_window_hu": list(CT_WINDOW_HU),
            "crop": f"x, y: label box + {MARGIN_XY} voxels + half the shortfall to {MIN_CROP_XY}; z: every slice",
            "zscore": "per case, after the crop",
        },
        "split_hints": SPLIT_HINTS,
        "sources": {case_id: [case.image.name, case.label.name] for case_id, case in pairs.items()},
        "missing": missing,
    }


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PreparationFailed([f"{out}: exists and is not an empty folder (expected a new --out folder)"])


def prepare_pancreas(raw: Path, out: Path, progress: bool = False) -> dict:
    """Convert every case of `raw` that MC-Net's lists name into the nifti folder `out`; return a summary
    (converted, missing: listed ids absent from raw, extra: raw cases in neither list, n_train, n_test, shapes).
    Raises PreparationFailed with every problem, writing nothing."""
    raw, out = Path(raw), Path(out)
    if not raw.is_dir():
        raise PreparationFailed([f"{raw}: raw data folder does not exist"])
    _check_out(out)
    problems: list[str] = []
    pairs = find_pairs(raw, problems)
    train_ids, test_ids = protocol_lists()
    listed = set(train_ids) | set(test_ids)
    extra = sorted(set(pairs) - listed)
    pairs = {case_id: case for case_id, case in pairs.items() if case_id in listed}
    for case in pairs.values():
        problems += header_problems(case)
    if not pairs and not problems:
        problems.append(f"{raw}: no case of MC-Net's lists (image0001 .. image0082) found")
    if problems:  # cheap header problems first: no voxel is decoded
        raise PreparationFailed(problems)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        shapes = _convert_all(pairs, tmp, problems, progress)
        if problems:
            raise PreparationFailed(problems)
        train = [i for i in train_ids if i in shapes]
        test = [i for i in test_ids if i in shapes]
        missing = [i for i in train_ids + test_ids if i not in pairs]
        (tmp / "train.list").write_text("".join(f"{i}\n" for i in train))
        (tmp / "test.list").write_text("".join(f"{i}\n" for i in test))
        (tmp / "dataset.json").write_text(json.dumps(_metadata(pairs, missing), indent=2) + "\n")
        if out.exists():
            out.rmdir()  # empty (checked above): the rename below needs the name free
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {
        "out": str(out),
        "converted": list(shapes),
        "missing": missing,
        "extra": extra,
        "n_train": len(train),
        "n_test": len(test),
        "shapes": shapes,
    }
