"""Prepared assets (e.g. lrep's DAE): built once per key, stored under the cache folder, shared by runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from sslbench.benchmark.runs.io import save_torch


class AssetStore:
    """The `AssetCache` of a run: prepared assets stored once per key under the cache folder.

    Keys must name everything an asset depends on (dataset, split ids, seed, config); the methods package stays
    free of file IO by handing its builder to `cached`. Writes are atomic, so parallel sweep workers at worst
    build the same asset twice and never read half of one. `info` is what config.json records of each asset.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.info: dict[str, dict[str, Any]] = {}

    def cached(self, kind: str, key: dict[str, Any], build) -> Any:
        import hashlib

        digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
        path = self.root / kind / f"{digest}.pt"
        self.info[kind] = {"cache": str(path), "key": key}
        if path.is_file():
            try:
                return torch.load(path, map_location="cpu", weights_only=False)["asset"]
            except Exception:  # a corrupt cache entry is rebuilt, never trusted
                path.unlink(missing_ok=True)
        asset = build()
        save_torch(path, {"key": key, "asset": asset})
        (path.parent / f"{digest}.json").write_text(json.dumps(key, indent=2, default=str))
        return asset

    def record(self, kind: str, info: dict[str, Any]) -> None:
        self.info.setdefault(kind, {}).update(info)
