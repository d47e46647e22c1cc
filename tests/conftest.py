"""Shared fixtures: a tiny synthetic dataset and an isolated cache folder for every test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# The real LA data beside the checkout (../shared/data); SSLBENCH_SHARED_DATA points elsewhere.
SHARED_DATA = Path(
    os.environ.get("SSLBENCH_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
)

# Two cores: keep torch from oversubscribing when tests spawn workers.
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Cached assets (DAEs, the default synthetic dataset) go to a per-session folder, not ~/.cache."""
    cache = tmp_path_factory.mktemp("sslbench-cache")
    old = os.environ.get("SSLBENCH_CACHE")
    os.environ["SSLBENCH_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("SSLBENCH_CACHE", None)
    else:
        os.environ["SSLBENCH_CACHE"] = old


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """12 synthetic cases of 32x32x24 (10 train, 2 test): enough for smoke runs of every method."""
    from sslbench.datasets.synthetic import generate

    root = tmp_path_factory.mktemp("tiny-la")
    generate(root, cases=12, seed=0, size=(32, 32, 24), n_train=10)
    return root


def shared_dataset(name: str) -> Path:
    """A folder of ../shared/data, or skip the test when it is absent."""
    path = SHARED_DATA / name
    if not (path / "train.list").is_file():
        pytest.skip(f"{path} not available")
    return path
