"""Atomic file writes: a reader never sees a half-written result that looks finished."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

RESULT_FILE_MODE = 0o644


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file 0600; results are for a team to read, like everything else a run writes.
        os.chmod(tmp, RESULT_FILE_MODE & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    _atomic(path, lambda f: f.write((json.dumps(data, indent=2, default=str) + "\n").encode()))


def write_text(path: Path, text: str) -> None:
    _atomic(path, lambda f: f.write(text.encode()))


def save_torch(path: Path, obj: Any) -> None:
    import torch  # here, not at import time: the CLI reads run folders without torch

    _atomic(path, lambda f: torch.save(obj, f))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())
