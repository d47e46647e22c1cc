"""The embedded default dataset: the synthetic LA, generated once into a per-user cache.

Parallel sweep workers may all ask for it at the same moment. Each one that finds it missing generates into its
own temporary sibling folder and renames that into place; a rename is atomic, so nobody ever sees half a
dataset, and a worker that loses the race drops its copy and uses the winner's (same seed, same bytes).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from sslbench.datasets.synthetic import DEFAULT_DIFFICULTY, DEFAULT_SIZE, GENERATOR_VERSION, generate

DEFAULT_CASES = 100
DEFAULT_SEED = 0


def cache_dir() -> Path:
    """`$SSLBENCH_CACHE`, else ~/.cache/sslbench (read at call time, never at import)."""
    env = os.environ.get("SSLBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sslbench"


def default_dataset_name() -> str:
    w, h, d = DEFAULT_SIZE
    return f"synthetic-la-v{GENERATOR_VERSION}-{w}x{h}x{d}-d{DEFAULT_DIFFICULTY:g}-s{DEFAULT_SEED}"


def default_data_root() -> Path:
    """Path of the default synthetic dataset, generating it on first use."""
    cache = cache_dir()
    root = cache / default_dataset_name()
    if (root / "dataset.json").is_file():  # dataset.json is written last, and the folder appears whole
        return root
    if root.exists():  # renames are atomic, so this is not a dataset being written: it is left-over damage
        raise RuntimeError(f"{root}: exists but is not a complete dataset; delete it and retry")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=cache))
    try:
        print(f"sslbench: generating the default synthetic dataset into {root} (once)", file=sys.stderr)
        generate(
            tmp, cases=DEFAULT_CASES, seed=DEFAULT_SEED, size=DEFAULT_SIZE, difficulty=DEFAULT_DIFFICULTY
        )
        try:
            os.rename(tmp, root)  # atomic; fails if another process has put a non-empty folder there first
        except OSError as exc:
            if not (root / "dataset.json").is_file():
                raise RuntimeError(
                    f"{root}: could not move the generated dataset into place ({exc})"
                ) from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root
