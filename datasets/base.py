"""What every dataset reader returns: `Volume`s and a `Dataset` (lists, spacing per axis, class names).

A reader (datasets/readers.py) turns one on-disk format into this; training, evaluation and reporting see only
this protocol, never a file layout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from sslbench.datasets.errors import DatasetError

Spacing = tuple[float, float, float]
# The LA challenge's class names, for readers whose format stores none.
BINARY_CLASSES = ("background", "foreground")


@dataclass(frozen=True)
class Volume:
    case_id: str
    image: np.ndarray  # (W, H, D) float32, already normalised by the reader
    label: np.ndarray  # (W, H, D) uint8 class indices 0..C-1 (0 = background)


@runtime_checkable
class Dataset(Protocol):
    """A train/test dataset of 3D volumes with one channel and C classes."""

    root: Path
    name: str
    format: str  # the reader's name, e.g. "la-h5" or "nifti"
    train_ids: list[str]
    test_ids: list[str]
    spacing: Spacing  # mm per axis (x, y, z), in the arrays' axis order
    class_names: tuple[str, ...]  # index = label value; [0] is the background

    def volume(self, case_id: str) -> Volume: ...

    def volumes(self, ids: list[str]) -> list[Volume]: ...

    def describe(self) -> dict[str, Any]: ...


def n_classes(dataset: Dataset) -> int:
    """Classes including the background."""
    return len(dataset.class_names)


def as_spacing(value: Any, where: str) -> Spacing:
    """One positive number (isotropic) or three (x, y, z), in mm, as a 3-tuple; a DatasetError names `where`
    (e.g. "DIR/dataset.json: spacing_mm")."""
    values = [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    ok = isinstance(values, Sequence) and not isinstance(values, str) and len(values) in (1, 3)
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if not ok or not all(math.isfinite(v) and v > 0 for v in values):
        raise DatasetError(f"{where} {value!r}: expected one positive number of mm or three (x, y, z)")
    return tuple(float(v) for v in values) * (3 if len(values) == 1 else 1)  # type: ignore[return-value]


def spacing_text(spacing: float | Sequence[float]) -> str:
    """'1.25' when isotropic (one number or three equal ones), else '0.7x0.7x2.5' (mm)."""
    s = [float(v) for v in spacing] if isinstance(spacing, (list, tuple)) else [float(spacing)]
    return f"{s[0]:g}" if len(set(s)) == 1 else "x".join(f"{v:g}" for v in s)


def parse_class_names(labels: Any, where: str) -> tuple[str, ...]:
    """`labels` of a dataset.json as class names by index: the MSD form {"0": "background", "1": "x"} or the
    nnU-Net v2 form {"background": 0, "x": 1}; values must be 0..C-1 with C >= 2, each once."""
    if not isinstance(labels, dict) or not labels:
        raise DatasetError(f"{where}: 'labels' must be an object mapping label values and names")
    pairs: list[tuple[int, str]] = []
    for key, value in labels.items():
        index, name = (key, value) if str(key).strip().lstrip("-").isdigit() else (value, key)
        if isinstance(index, bool) or not (isinstance(index, int) or str(index).strip().isdigit()):
            raise DatasetError(f"{where}: label {key!r}: {value!r}, expected an integer value and a name")
        pairs.append((int(index), str(name)))
    indices = sorted(i for i, _ in pairs)
    if indices != list(range(len(pairs))) or len(pairs) < 2:
        raise DatasetError(
            f"{where}: label values {indices}, expected 0..C-1 with C >= 2 (0 = background), each once"
        )
    return tuple(name for _, name in sorted(pairs))
