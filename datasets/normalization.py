"""Intensity normalisation of a NIfTI dataset, as named by dataset.json's "normalization".

- "zscore" (the default): per case, over the whole volume, (x - mean) / std, as the UA-MT preprocessing of LA;
- {"ct_window": [lo, hi]}: clip to the HU window, then z-score with the clipped volume's mean and std (the
  Pancreas-CT recipe of MC-Net uses the soft-tissue window [-125, 275]);
- "none": the images are already normalised (what `bench data prepare-pancreas` writes), used as they are.

The statistics are computed in float64 and the result is float32.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sslbench.datasets.errors import DatasetError

DEFAULT = "zscore"
EXPECTED = '"zscore", "none" or {"ct_window": [lo, hi]} with lo < hi'


def parse_normalization(value: Any, where: str) -> str | dict[str, list[float]]:
    """The canonical form of a "normalization" value (None = the default); a DatasetError names `where`."""
    if value is None:
        return DEFAULT
    if value in ("zscore", "none"):
        return value
    window = value.get("ct_window") if isinstance(value, dict) and len(value) == 1 else None
    numbers = isinstance(window, list) and len(window) == 2
    numbers = numbers and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in window)
    if numbers and all(math.isfinite(v) for v in window) and window[0] < window[1]:
        return {"ct_window": [float(window[0]), float(window[1])]}
    raise DatasetError(f"{where}: normalization {value!r}, expected {EXPECTED}")


def normalize(image: np.ndarray, spec: str | dict[str, list[float]]) -> np.ndarray:
    """The image after `spec` (a parse_normalization result), as float32; ValueError for a constant image that
    cannot be z-scored."""
    x = np.asarray(image, dtype=np.float64)
    if spec == "none":
        return x.astype(np.float32)
    if isinstance(spec, dict):
        lo, hi = spec["ct_window"]
        x = np.clip(x, lo, hi)
    std = float(x.std())
    if not std > 0:
        where = " inside the CT window" if isinstance(spec, dict) else ""
        raise ValueError(
            f"the image is constant{where} (value {float(x.flat[0]):g}), so it cannot be z-scored"
        )
    return ((x - x.mean()) / std).astype(np.float32)
