"""The dataset seam: one reader per on-disk format, chosen from the folder (as nnU-Net v2 picks its reader from
dataset.json).

A reader is a name, a `detect(root)` test, `open(root, spacing)` returning a `base.Dataset`, `check(root)`
returning a `check.CheckReport` (every problem, one line each), and `content_files(root)` (the files whose bytes
identify the data: `data.fingerprint`, and so the run id). `dataset.json`'s "format" key, when present, names
the reader; otherwise the first reader whose `detect` accepts the folder, else la-h5 (whose errors then say what
the folder lacks).

Adding a format is one module that calls `register_reader` (or an entry point in the `sslbench.readers` group
whose object is a `Reader`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from sslbench.datasets.errors import DatasetError

BUILTIN_MODULES = ("sslbench.datasets.la", "sslbench.datasets.nifti")
ENTRY_POINT_GROUP = "sslbench.readers"
DEFAULT_FORMAT = "la-h5"


@dataclass(frozen=True)
class Reader:
    name: str
    description: str
    detect: Callable[[Path], bool]
    open: Callable[[Path, Any], Any]  # (root, spacing override or None) -> Dataset
    check: Callable[[Path], Any]  # root -> CheckReport
    content_files: Callable[[Path], list[tuple[str, Path | None]]]  # None: a path that may not be read


_READERS: dict[str, Reader] = {}
_LOADED = False


def register_reader(reader: Reader) -> Reader:
    _READERS[reader.name] = reader
    return reader


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for module in BUILTIN_MODULES:
        import_module(module)
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        obj = ep.load()
        if not isinstance(obj, Reader):
            raise DatasetError(f"entry point {ep.name} ({ep.value}): expected a sslbench Reader")
        register_reader(obj)


def readers() -> dict[str, Reader]:
    _load()
    return dict(_READERS)


def declared_format(root: Path) -> str | None:
    """dataset.json's "format", if the file exists and names one."""
    meta = root / "dataset.json"
    if not meta.is_file():
        return None
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise DatasetError(f"{meta}: not valid JSON ({exc})") from None
    fmt = data.get("format") if isinstance(data, dict) else None
    return str(fmt) if fmt is not None else None


def reader_for(root: str | Path) -> Reader:
    """The reader of a data folder; a DatasetError says which formats exist when none fits."""
    root = Path(root)
    available = readers()
    if not root.is_dir():
        raise DatasetError(f"{root}: data folder does not exist")
    fmt = declared_format(root)
    if fmt is not None:
        if fmt not in available:
            raise DatasetError(
                f"{root / 'dataset.json'}: format '{fmt}' is not a known reader ({', '.join(sorted(available))})"
            )
        return available[fmt]
    for reader in available.values():
        if reader.detect(root):
            return reader
    # Nothing recognisable: the historical layout's reader, whose errors say what an LA folder lacks (the
    # commonest case: an LA folder with a missing or misnamed case folder).
    return available[DEFAULT_FORMAT]


def describe_formats() -> str:
    return "; ".join(f"{r.name}: {r.description}" for r in readers().values())


_OPEN: dict[tuple[str, Any], Any] = {}


def open_dataset(root: str | Path, spacing: Any = None):
    """Open (and memoise per process) the dataset folder `root` with its format's reader.

    Args:
        root: the folder.
        spacing: mm, one number or (x, y, z), overriding what the data says (`data.spacing`); None = the data's.
    """
    root = Path(root).expanduser().resolve()
    key = (str(root), tuple(spacing) if isinstance(spacing, (list, tuple)) else spacing)
    if key not in _OPEN:
        _OPEN[key] = reader_for(root).open(root, spacing)
    return _OPEN[key]


def check_report(root: str | Path):
    """Every problem of a data folder (`check.CheckReport`), whatever its format."""
    from sslbench.datasets.check import CheckReport

    root = Path(root)
    try:
        reader = reader_for(root)
    except DatasetError as exc:
        report = CheckReport(root)
        report.problems.append(str(exc))
        return report
    return reader.check(root)
