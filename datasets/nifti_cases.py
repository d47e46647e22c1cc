"""One case of a NIfTI dataset: read the image and label pair, validate it, normalise the image.

`load_case` returns every problem of the pair, one line each (the check lists them all; opening a dataset stops
at the first). The headers are compared before any voxel is decoded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sslbench.datasets import nifti_io
from sslbench.datasets.base import Spacing
from sslbench.datasets.errors import DatasetError
from sslbench.datasets.nifti_layout import Case
from sslbench.datasets.normalization import normalize

SPACING_RTOL = 1e-4  # image and label spacings agree within this relative difference


@dataclass(frozen=True)
class CaseArrays:
    image: np.ndarray  # (x, y, z) float32, normalised
    label: np.ndarray  # (x, y, z) uint8
    spacing: Spacing  # (x, y, z) mm, from the image header


def header_problems(case: Case) -> list[str]:
    """A header that cannot be read, a 4D or multi-component image, and shape or spacing differences."""
    headers, problems = [], []
    for path in (case.image, case.label):
        try:
            header = nifti_io.read_header(path)
        except DatasetError as exc:
            problems.append(str(exc))
            continue
        if (problem := header.problem(path)) is not None:
            problems.append(problem)
        else:
            headers.append(header)
    if problems:
        return problems
    image, label = headers
    if image.size != label.size:
        problems.append(
            f"{case.image}: size {'x'.join(map(str, image.size))} differs from its label {case.label} "
            f"({'x'.join(map(str, label.size))}; expected the same shape)"
        )
    elif not np.allclose(image.spacing, label.spacing, rtol=SPACING_RTOL, atol=0):
        problems.append(
            f"{case.image}: spacing {_mm(image.spacing)} mm differs from its label {case.label} "
            f"({_mm(label.spacing)} mm; expected the same within {SPACING_RTOL:g} relative)"
        )
    return problems


def _mm(spacing) -> str:
    return "x".join(f"{s:g}" for s in spacing)


def label_problems(
    label: np.ndarray, n_classes: int | None, where, classes: str = "the dataset.json labels"
) -> list[str]:
    """Non-integer values, and values outside 0..n_classes-1 (unchecked when the classes are unknown)."""
    if label.dtype.kind == "f":
        if (label != np.round(label)).any():
            return [f"{where}: label has non-integer values (expected class indices)"]
    elif label.dtype.kind not in "iub":
        return [f"{where}: label dtype {label.dtype} (expected integer class indices)"]
    if n_classes is None:
        return []
    values = np.unique(label)
    outside = values[(values < 0) | (values >= n_classes)]
    if outside.size:
        shown = [int(v) for v in outside[:5]]
        return [f"{where}: label has values {shown} (expected only 0..{n_classes - 1}, {classes})"]
    return []


def load_case(case: Case, n_classes: int | None, normalization) -> tuple[list[str], CaseArrays | None]:
    """(problems, arrays): the arrays only when there is no problem."""
    problems = header_problems(case)
    if problems:
        return problems, None
    problems = [p for p in map(nifti_io.stored_voxel_problem, (case.image, case.label)) if p is not None]
    if problems:
        return problems, None
    try:
        image, spacing = nifti_io.read_volume(case.image)
        label, _ = nifti_io.read_volume(case.label)
    except DatasetError as exc:
        return [str(exc)], None
    problems += label_problems(label, n_classes, case.label)
    if problems:
        return problems, None
    try:
        normalised = normalize(image, normalization)
    except ValueError as exc:
        return [f"{case.image}: {exc}"], None
    return [], CaseArrays(normalised, label.astype(np.uint8), spacing)
