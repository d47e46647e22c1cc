"""Per-case segmentation metrics (medpy), with the empty-prediction policy of the protocol made explicit.

HD95 and ASD are reported in voxels (what every reference reports, since they call medpy without spacing) and
in mm (voxels x isotropic spacing).
"""

from __future__ import annotations

import math

import numpy as np
from medpy.metric import binary


def _diagonal(shape: tuple[int, ...]) -> float:
    return float(math.sqrt(sum(s * s for s in shape)))


def case_metrics(pred: np.ndarray, label: np.ndarray, spacing: float, empty_policy: str = "worst") -> dict:
    """Dice, Jaccard (fractions), HD95 and ASD (voxels and mm) of a binary prediction against a binary label.

    Empty prediction or empty label: flagged. With the `worst` policy the distances are the volume diagonal
    (the worst possible) and Dice/Jaccard are 0, so an empty output can never look perfect; `legacy-zero`
    reproduces the references, which set all four metrics to 0 (a perfect HD) for an empty prediction.
    """
    pred = pred.astype(bool)
    label = label.astype(bool)
    empty_pred, empty_label = not pred.any(), not label.any()
    row = {"empty_pred": empty_pred, "empty_label": empty_label}
    if empty_pred or empty_label:
        both = empty_pred and empty_label
        if empty_policy == "legacy-zero" and empty_pred:
            dice = jac = hd95 = asd = 0.0
        else:
            dice = jac = 1.0 if both else 0.0
            hd95 = asd = 0.0 if both else _diagonal(pred.shape)
    else:
        dice = float(binary.dc(pred, label))
        jac = float(binary.jc(pred, label))
        hd95 = float(binary.hd95(pred, label))
        asd = float(binary.asd(pred, label))
    row.update(
        dice=dice,
        jaccard=jac,
        hd95_vox=hd95,
        asd_vox=asd,
        hd95_mm=hd95 * spacing,
        asd_mm=asd * spacing,
    )
    return row


METRIC_COLUMNS = ("dice", "jaccard", "hd95_vox", "asd_vox", "hd95_mm", "asd_mm")
