"""The layout of a Medical Segmentation Decathlon / nnU-Net raw folder: dataset.json, the image/label pairs and
the train/test split. `scan` reads no voxel; it collects every problem, one line each.

    <root>/dataset.json          # "labels" (required), "name", "format": "nifti", "normalization", "train"/"test"
    <root>/imagesTr/<case>_0000.nii.gz   (nnU-Net v2 naming: channel suffix)  or  <case>.nii.gz  (MSD naming)
    <root>/labelsTr/<case>.nii.gz
    <root>/train.list, test.list # optional, one case id a line

An image is paired with labelsTr/<its name>.nii.gz when that exists (MSD naming: ids such as PANCREAS_0001 end
in four digits too), else with labelsTr/<its name less _NNNN>.nii.gz; a channel other than _0000 is an error
(single-channel images only). `.nii` is accepted beside `.nii.gz`; hidden files are ignored.

The split: train.list + test.list, or dataset.json's "train" and "test" id lists (one of the two, never both).
MSD's own dataset.json uses "test" for the unlabelled imagesTs paths ("./imagesTs/x.nii.gz"): such a list is
not a split and is ignored. Without lists, the case ids are sorted and the last fifth (round(n / 5), at least
one) is the test set.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sslbench.datasets.base import parse_class_names
from sslbench.datasets.errors import DatasetError
from sslbench.datasets.la import read_list, safe_case_id
from sslbench.datasets.nifti_io import SUFFIXES, nifti_stem
from sslbench.datasets.normalization import DEFAULT, parse_normalization

IMAGES_DIR = "imagesTr"
LABELS_DIR = "labelsTr"
META = "dataset.json"
LIST_FILES = ("train.list", "test.list")
CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
MAX_CLASSES = 256  # labels are stored as uint8


@dataclass(frozen=True)
class Case:
    case_id: str
    image: Path
    label: Path


@dataclass
class Layout:
    root: Path
    name: str
    class_names: tuple[str, ...] | None  # None when dataset.json's labels are missing or unusable
    normalization: str | dict = DEFAULT
    cases: dict[str, Case] = field(default_factory=dict)  # every complete image/label pair
    train_ids: list[str] = field(default_factory=list)
    test_ids: list[str] = field(default_factory=list)
    split: str = ""  # where the split came from, for describe()
    problems: list[str] = field(default_factory=list)


def _read_meta(root: Path, problems: list[str]) -> dict[str, Any]:
    path = root / META
    if not path.is_file():
        problems.append(
            f'{path}: missing (expected a JSON object with "labels", e.g. {{"0": "background", ...}})'
        )
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        problems.append(f"{path}: not valid JSON ({exc})")
        return {}
    if not isinstance(data, dict):
        problems.append(f"{path}: expected a JSON object, got {type(data).__name__}")
        return {}
    return data


def _class_names(meta: dict, where: Path, problems: list[str]) -> tuple[str, ...] | None:
    if "labels" not in meta:
        if meta:
            problems.append(f'{where}: no "labels" (expected e.g. {{"0": "background", "1": "tumour"}})')
        return None
    try:
        names = parse_class_names(meta["labels"], str(where))
    except DatasetError as exc:
        problems.append(str(exc))
        return None
    if len(names) > MAX_CLASSES:
        problems.append(f"{where}: {len(names)} labels (expected at most {MAX_CLASSES})")
        return None
    return names


def _format_problems(meta: dict, where: Path) -> list[str]:
    """dataset.json keys of nnU-Net v2 / MSD that describe data this reader cannot use."""
    problems = []
    for key in ("channel_names", "modality"):
        if isinstance(meta.get(key), dict) and len(meta[key]) > 1:
            problems.append(
                f"{where}: {key!r} lists {len(meta[key])} channels (expected single-channel images)"
            )
    ending = meta.get("file_ending")
    if ending is not None and ending not in SUFFIXES:
        problems.append(f"{where}: file_ending {ending!r} (expected one of {', '.join(SUFFIXES)})")
    return problems


def nifti_files(folder: Path, problems: list[str]) -> dict[str, Path]:
    """stem -> path of the NIfTI files directly in `folder`."""
    files: dict[str, Path] = {}
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        problems.append(f"{folder}: cannot list the folder ({exc.strerror or exc})")
        return files
    for path in entries:
        stem = nifti_stem(path.name)
        if stem is None or not path.is_file():
            continue
        if stem in files:
            problems.append(f"{path}: a second file for '{stem}' beside {files[stem].name} (expected one)")
        else:
            files[stem] = path
    return files


def _pair(root: Path, problems: list[str]) -> tuple[dict[str, Case], set[str]]:
    """(the complete cases, the ids of incomplete or multi-channel ones)."""
    images_dir, labels_dir = root / IMAGES_DIR, root / LABELS_DIR
    for folder, what in ((images_dir, "<case>_0000.nii.gz or <case>.nii.gz"), (labels_dir, "<case>.nii.gz")):
        if not folder.is_dir():
            problems.append(f"{folder}: missing (expected a folder of {what} files)")
    if not images_dir.is_dir() or not labels_dir.is_dir():
        return {}, set()
    images, labels = nifti_files(images_dir, problems), nifti_files(labels_dir, problems)
    if not images:
        problems.append(f"{images_dir}: no NIfTI images (expected <case>_0000.nii.gz or <case>.nii.gz files)")
    by_case: dict[str, list[tuple[int | None, Path]]] = {}
    broken: set[str] = set()
    for stem, path in images.items():
        match = CHANNEL.match(stem)
        if stem in labels:
            by_case.setdefault(stem, []).append((None, path))
        elif match and match["case"] in labels:
            by_case.setdefault(match["case"], []).append((int(match["channel"]), path))
        else:
            case_id = match["case"] if match else stem
            broken.add(case_id)
            problems.append(f"{path}: image without a label (expected {labels_dir / case_id}.nii.gz)")
    cases: dict[str, Case] = {}
    for case_id, files in sorted(by_case.items()):
        others = [(channel, path) for channel, path in files if channel not in (None, 0)]
        if others:
            channel, path = others[0]
            problems.append(
                f"{path}: channel {channel} of case '{case_id}' (expected single-channel images: one "
                f"{case_id}_0000.nii.gz or {case_id}.nii.gz)"
            )
        elif len(files) > 1:
            problems.append(
                f"{images_dir}: case '{case_id}' has two images, {files[0][1].name} and {files[1][1].name} "
                "(expected one)"
            )
        else:
            cases[case_id] = Case(case_id, files[0][1], labels[case_id])
            continue
        broken.add(case_id)
    for stem, path in labels.items():
        if stem not in by_case:
            problems.append(
                f"{path}: label without an image (expected {images_dir / stem}_0000.nii.gz or {stem}.nii.gz)"
            )
    return cases, broken


def _is_msd_test_paths(value: Any) -> bool:
    """MSD's "test": the unlabelled imagesTs files, e.g. ["./imagesTs/la_001.nii.gz"], not a split."""
    return isinstance(value, list) and all(isinstance(v, str) and "imagesTs/" in v for v in value)


def _json_list(meta: dict, key: str, where: Path, problems: list[str]) -> list[str]:
    value = meta.get(key)
    if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
        return [v.strip() for v in value]
    problems.append(
        f"{where}: {key!r} is {value!r} (expected a non-empty list of case ids, and both train and test)"
    )
    return []


def _split(
    root: Path, meta: dict, cases: dict[str, Case], problems: list[str]
) -> tuple[list[str], list[str], str, tuple[str, str]]:
    """(train ids, test ids, where the split came from, the names of the two lists for messages)."""
    files = [root / name for name in LIST_FILES]
    in_json = [key for key in ("train", "test") if key in meta and not _is_msd_test_paths(meta[key])]
    present = [path for path in files if path.exists()]
    if present and in_json:
        problems.append(
            f"{root}: both {', '.join(p.name for p in present)} and {META}'s {in_json} give a split (expected one)"
        )
        return [], [], "", LIST_FILES
    if present:
        ids: list[list[str]] = []
        for path in files:
            try:
                ids.append(read_list(path))
            except DatasetError as exc:
                together = "" if path in present else " (train.list and test.list go together)"
                problems.append(f"{exc}{together}")
                ids.append([])
        return ids[0], ids[1], "train.list / test.list", LIST_FILES
    if in_json:
        where = root / META
        train, test = (_json_list(meta, key, where, problems) for key in ("train", "test"))
        return train, test, f"{META} train / test", (f"{META} 'train'", f"{META} 'test'")
    ids_sorted = sorted(cases)
    if len(ids_sorted) < 2:
        if cases:
            problems.append(f"{root}: {len(cases)} case (expected at least 2 for a train/test split)")
        return [], [], "", LIST_FILES
    n_test = max(1, round(len(ids_sorted) / 5))
    source = f"no lists: the case ids sorted, the last {n_test} of {len(ids_sorted)} (a fifth) test"
    return ids_sorted[:-n_test], ids_sorted[-n_test:], source, LIST_FILES


def _list_problems(
    root: Path, names: tuple[str, str], lists: tuple[list[str], list[str]], cases: dict, broken: set[str]
) -> list[str]:
    """Unsafe or repeated ids, ids without an image/label pair, and ids in both lists (a leak)."""
    problems = []
    for name, ids in zip(names, lists, strict=True):
        where = root / name if name in LIST_FILES else root / META
        for case_id, n in Counter(ids).items():
            if not safe_case_id(case_id):
                problems.append(
                    f"{where}: id '{case_id}' is not a case name (no '/', '..' or absolute paths)"
                )
            elif n > 1:
                problems.append(
                    f"{where}: id '{case_id}' appears {n} times in {name} (expected each id once)"
                )
            elif case_id not in cases and case_id not in broken:
                problems.append(
                    f"{where}: id '{case_id}' of {name} has no image and label in {IMAGES_DIR} / {LABELS_DIR}"
                )
    for case_id in sorted(set(lists[0]) & set(lists[1])):
        problems.append(f"{root}: id '{case_id}' is in both {names[0]} and {names[1]} (a train/test leak)")
    return problems


def scan(root: Path) -> Layout:
    """The folder's metadata, pairs and split, with every problem found without decoding voxels."""
    root = Path(root)
    layout = Layout(root, root.name, None)
    problems = layout.problems
    if not root.is_dir():
        problems.append(f"{root}: folder does not exist (expected a Decathlon / nnU-Net dataset folder)")
        return layout
    meta = _read_meta(root, problems)
    where = root / META
    layout.name = str(meta.get("name") or root.name)
    layout.class_names = _class_names(meta, where, problems)
    problems += _format_problems(meta, where)
    try:
        layout.normalization = parse_normalization(meta.get("normalization"), str(where))
    except DatasetError as exc:
        problems.append(str(exc))
    layout.cases, broken = _pair(root, problems)
    train, test, layout.split, names = _split(root, meta, layout.cases, problems)
    problems += _list_problems(root, names, (train, test), layout.cases, broken)
    layout.train_ids, layout.test_ids = train, test
    return layout


def content_files(root: Path) -> list[tuple[str, Path | None]]:
    """dataset.json, the list files if any, and every image and label file, by their relative names."""
    files: list[tuple[str, Path | None]] = [(META, root / META)]
    files += [(name, root / name) for name in LIST_FILES if (root / name).exists()]
    ignored: list[str] = []
    for folder in (IMAGES_DIR, LABELS_DIR):
        if (root / folder).is_dir():
            files += [(f"{folder}/{p.name}", p) for p in nifti_files(root / folder, ignored).values()]
    return files
