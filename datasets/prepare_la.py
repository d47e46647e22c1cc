"""Convert the raw 2018 Atrial Segmentation Challenge download into the LA h5 layout (methods.md 1.2).

Raw layout: `<raw>/<ID>/lgemri.nrrd` (LGE-MRI) and `<raw>/<ID>/laendo.nrrd` (cavity mask, foreground 255).
Per case, as the UA-MT preprocessing does:

1. z-score the whole, uncropped image with its own mean and std (float64 maths, stored as float32);
2. crop x and y to the foreground bounding box widened on each side by a random 10-19 voxels plus half of any
   shortfall of the box with respect to 112, clipped to the volume; keep every z slice.

The crop end is exclusive, as in the reference, which is why the real data show trailing margins of 9-18.
Each case draws its margins from its own generator seeded by (seed, case id), so a crop does not depend on
which other cases are present. The train/test split is the literature's fixed 80/20 one (`la_lists/`).
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from sslbench.datasets.la import CASES_DIR, H5_NAME

IMAGE_NAME = "lgemri.nrrd"
MASK_NAME = "laendo.nrrd"
MIN_CROP = 112  # the reference's training patch side in x and y
MARGIN = (10, 20)  # half-open: 10..19 voxels
LISTS_DIR = Path(__file__).resolve().parent / "la_lists"


def protocol_lists() -> tuple[list[str], list[str]]:
    """The 80 train and 20 test ids of UA-MT / DTC / SASSnet, in their order (labeled = the first N)."""
    lists = [(LISTS_DIR / name).read_text().split() for name in ("train.list", "test.list")]
    return lists[0], lists[1]


def read_nrrd(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The volume as an (x, y, z) array, and the (x, y, z) spacing in mm."""
    import SimpleITK as sitk  # only this converter needs it

    img = sitk.ReadImage(str(path))
    # GetArrayFromImage is (z, y, x); the LA h5 arrays are (x, y, z) = (W, H, D). Like the reference's nrrd
    # reader, this keeps the stored voxel order and ignores the direction cosines.
    return sitk.GetArrayFromImage(img).transpose(2, 1, 0), tuple(float(s) for s in img.GetSpacing())


def crop_box(label: np.ndarray, rng: np.random.Generator) -> tuple[slice, slice]:
    """x and y slices around the foreground with the random margins and the 112 minimum."""
    box = []
    for axis in (0, 1):
        idx = np.flatnonzero(label.any(axis=tuple(a for a in range(3) if a != axis)))
        lo, hi = int(idx[0]), int(idx[-1])
        pad = max(MIN_CROP - (hi - lo), 0) // 2
        start = max(lo - int(rng.integers(*MARGIN)) - pad, 0)
        stop = min(hi + int(rng.integers(*MARGIN)) + pad, label.shape[axis])
        box.append(slice(start, stop))
    return box[0], box[1]


def convert_case(case_dir: Path, seed: int) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """(image float32, label uint8, spacing) of one raw case; ValueError with a reason when it cannot be used."""
    image, spacing = read_nrrd(case_dir / IMAGE_NAME)
    mask, _ = read_nrrd(case_dir / MASK_NAME)
    if image.shape != mask.shape or image.ndim != 3:
        raise ValueError(f"image shape {image.shape} and mask shape {mask.shape} differ or are not 3-D")
    label = (mask == 255).astype(np.uint8)
    if not label.any():
        raise ValueError(f"mask has no foreground voxel of value 255 (values {np.unique(mask)[:5].tolist()})")
    image = image.astype(np.float64)
    std = image.std()
    if not std > 0:
        raise ValueError("image is constant, cannot z-score it")
    image = ((image - image.mean()) / std).astype(np.float32)  # over the whole volume, before the crop
    sx, sy = crop_box(label, np.random.default_rng([seed, int.from_bytes(case_dir.name.encode(), "big")]))
    return image[sx, sy], label[sx, sy], spacing


def _case_dirs(raw_dir: Path) -> dict[str, Path]:
    found = {p.name: p for p in sorted(raw_dir.iterdir()) if p.is_dir() and (p / IMAGE_NAME).is_file()}
    nested = raw_dir / "Training Set"  # the challenge zip unpacks into this folder
    if not found and nested.is_dir():
        return _case_dirs(nested)
    return found


def prepare_la(raw_dir: Path, out: Path, seed: int = 0, progress: bool = False) -> dict:
    """Convert every protocol case found in `raw_dir` into `out` and return a summary.

    The summary lists the `converted` ids, the protocol ids `missing` from raw_dir, `extra` raw folders that are
    in neither list (not converted), and `failed` ids with their reasons. The written train.list and test.list
    keep the protocol order and hold only converted ids.
    """
    raw_dir, out = Path(raw_dir), Path(out)
    if not raw_dir.is_dir():
        raise FileNotFoundError(f"{raw_dir}: raw data folder does not exist")
    train_ids, test_ids = protocol_lists()
    raw = _case_dirs(raw_dir)
    if not raw:
        raise FileNotFoundError(f"{raw_dir}: no case folders with {IMAGE_NAME} found")
    wanted = [i for i in train_ids + test_ids if i in raw]
    summary: dict = {
        "out": str(out),
        "missing": [i for i in train_ids + test_ids if i not in raw],
        "extra": sorted(set(raw) - set(train_ids) - set(test_ids)),
        "failed": {},
        "converted": [],
        "shapes": {},
    }
    spacings = []
    todo = wanted
    if progress:
        from tqdm import tqdm

        todo = tqdm(wanted, desc="prepare LA", unit="case")
    for case_id in todo:
        try:
            image, label, spacing = convert_case(raw[case_id], seed)
        # SimpleITK raises RuntimeError on unreadable files; keep the first line of its long message.
        except (ValueError, RuntimeError, OSError) as exc:
            summary["failed"][case_id] = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            continue
        path = out / CASES_DIR / case_id / H5_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(path, "w") as f:  # gzip level 4, no shuffle: as the original files
            f.create_dataset("image", data=image, compression="gzip", compression_opts=4)
            f.create_dataset("label", data=label, compression="gzip", compression_opts=4)
        summary["converted"].append(case_id)
        summary["shapes"][case_id] = list(image.shape)
        spacings.append(spacing)
    done = set(summary["converted"])
    train = [i for i in train_ids if i in done]
    test = [i for i in test_ids if i in done]
    summary.update(n_train=len(train), n_test=len(test))
    if not done:
        return summary
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.list").write_text("".join(f"{i}\n" for i in train))
    (out / "test.list").write_text("".join(f"{i}\n" for i in test))
    spacing_xyz = np.median(np.asarray(spacings), axis=0)
    summary["spacing_mm"] = round(float(np.mean(spacing_xyz)), 6)
    meta = {
        "name": "la",
        "spacing_mm": summary["spacing_mm"],
        "spacing_xyz_mm": [round(float(s), 6) for s in spacing_xyz],
        "source": "2018 Atrial Segmentation Challenge training set, converted by sslbench prepare-la",
        "preprocessing": {"seed": seed, "min_crop_xy": MIN_CROP, "margin": [MARGIN[0], MARGIN[1] - 1]},
        "missing": summary["missing"],
    }
    (out / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    return summary
