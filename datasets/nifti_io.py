"""NIfTI files as (x, y, z) arrays and (x, y, z) spacings, through SimpleITK (a dependency since prepare-la).

SimpleITK's arrays are (z, y, x); every array here is transposed to (x, y, z), the order of the h5 layout and of
`base.Volume`. As the LA reader and nnU-Net's SimpleITK reader do, the stored voxel order is kept and the
direction cosines are ignored (no reorientation).

SimpleITK (2.5) hides two things, which `stored_voxel_problem` finds by reading the stored bytes: it decodes a
truncated .nii.gz without an error (the missing voxels are undefined), and it reads NaN and inf voxels as 0.

Every failure is a DatasetError naming the file.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sslbench.datasets.base import Spacing
from sslbench.datasets.errors import DatasetError

SUFFIXES = (".nii.gz", ".nii")
# NIfTI stores spacings as float32 (0.8 reads back as 0.800000011920929); 6 decimals keep every real spacing.
SPACING_DECIMALS = 6


def _spacing(values) -> tuple[float, ...]:
    return tuple(round(float(s), SPACING_DECIMALS) for s in values)


@dataclass(frozen=True)
class Header:
    """What a NIfTI header says, read without decoding the voxels."""

    size: tuple[int, ...]  # (x, y, z[, t]), SimpleITK's order
    spacing: tuple[float, ...]  # mm, same order
    components: int  # values per voxel (1 = scalar)

    def problem(self, path: Path) -> str | None:
        """Why this is not a 3D single-channel image, or None."""
        if len(self.size) != 3:
            shape = "x".join(map(str, self.size))
            return f"{path}: a {len(self.size)}D image of size {shape} (expected a 3D single-channel image)"
        if self.components != 1:
            return f"{path}: {self.components} values per voxel (expected a 3D single-channel image)"
        return None


def _reason(exc: Exception) -> str:
    """SimpleITK's messages start with the C++ source location; the last line says what went wrong."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1].removeprefix("sitk::ERROR:").strip() if lines else type(exc).__name__


def read_header(path: Path) -> Header:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise DatasetError(f"{path}: cannot read the NIfTI header ({_reason(exc)})") from None
    return Header(
        tuple(int(s) for s in reader.GetSize()),
        _spacing(reader.GetSpacing()),
        int(reader.GetNumberOfComponents()),
    )


def read_volume(path: Path) -> tuple[np.ndarray, Spacing]:
    """The voxels as an (x, y, z) array in the stored dtype, and the (x, y, z) spacing in mm; only 3D scalar
    images are accepted."""
    import SimpleITK as sitk

    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise DatasetError(f"{path}: cannot read the NIfTI file ({_reason(exc)})") from None
    header = Header(tuple(img.GetSize()), _spacing(img.GetSpacing()), img.GetNumberOfComponentsPerPixel())
    if (problem := header.problem(path)) is not None:
        raise DatasetError(problem)
    array = sitk.GetArrayFromImage(img).transpose(2, 1, 0)
    return np.ascontiguousarray(array), _spacing(img.GetSpacing())  # type: ignore[return-value]


def write_volume(path: Path, array_xyz: np.ndarray, spacing: Spacing) -> None:
    """Write an (x, y, z) array as a (compressed, for .nii.gz) NIfTI file with the given spacing."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array_xyz).transpose(2, 1, 0)))
    img.SetSpacing(tuple(float(s) for s in spacing))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path), useCompression=str(path).endswith(".gz"))


def nifti_stem(name: str) -> str | None:
    """The file name without .nii.gz / .nii; None for other files and hidden ones (the MSD archives hold
    macOS `._*` copies beside every case)."""
    if name.startswith("."):
        return None
    for suffix in SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


# NIfTI-1 and NIfTI-2 headers: size, (datatype, bitpix) offset and format, dim offset and format, vox_offset.
_HEADERS = {348: (70, "hh", 40, "8h", 108, "f"), 540: (12, "hh", 16, "8q", 168, "q")}
_FLOATS = {16: "f4", 64: "f8"}  # NIfTI datatype codes of float32 and float64


def _data_layout(data: bytes) -> tuple[str, int, int, int, int] | None:
    """(byte order, datatype, bits per voxel, voxel count, data offset) from a NIfTI-1/2 header, else None."""
    for order in "<>":
        size = struct.unpack(order + "i", data[:4])[0] if len(data) >= 4 else None
        if size not in _HEADERS:
            continue
        at_type, type_fmt, at_dim, dim_fmt, at_offset, offset_fmt = _HEADERS[size]
        datatype, bitpix = struct.unpack_from(order + type_fmt, data, at_type)
        dim = struct.unpack_from(order + dim_fmt, data, at_dim)
        n_dims = max(0, min(int(dim[0]), 7))
        n_voxels = int(np.prod([max(int(d), 1) for d in dim[1 : 1 + n_dims]]))
        offset = int(struct.unpack_from(order + offset_fmt, data, at_offset)[0])
        return order, int(datatype), int(bitpix), n_voxels, offset
    return None


def stored_voxel_problem(path: Path) -> str | None:
    """A truncated or corrupt data stream, or NaN / inf voxels, found in the stored bytes; None when fine (or
    when the header is neither NIfTI-1 nor NIfTI-2, left to SimpleITK)."""
    try:
        with gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as exc:  # gzip reports a cut stream as EOFError
        return f"{path}: cannot read the NIfTI file, truncated or corrupt? ({exc})"
    layout = _data_layout(data)
    if layout is None:
        return None
    order, datatype, bitpix, n_voxels, offset = layout
    needed = offset + n_voxels * bitpix // 8
    if len(data) < needed:
        return f"{path}: cannot read the NIfTI file, truncated ({len(data)} of {needed} bytes)"
    if datatype in _FLOATS:
        values = np.frombuffer(data, dtype=order + _FLOATS[datatype], count=n_voxels, offset=offset)
        n_bad = n_voxels - int(np.count_nonzero(np.isfinite(values)))
        if n_bad:
            return f"{path}: {n_bad} NaN or inf voxels (expected finite values)"
    return None
