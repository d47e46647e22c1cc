"""`bench data check` for a `nifti` folder: every problem of the layout and of every image/label pair, one line
each, so that a user fixes everything in one go (opening the dataset stops at the first)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sslbench.datasets.check import CheckReport
from sslbench.datasets.nifti_cases import load_case
from sslbench.datasets.nifti_layout import scan


def check_nifti(root: Path) -> CheckReport:
    """Check the folder; the report lists the problems and, for the readable cases, shapes, spacings, fg."""
    root = Path(root)
    report = CheckReport(root)
    layout = scan(root)
    report.problems += layout.problems
    report.n_train, report.n_test = len(set(layout.train_ids)), len(set(layout.test_ids))
    report.class_names = layout.class_names
    n_classes = len(layout.class_names) if layout.class_names else None
    # every complete pair, listed or not: the folder is checked as a whole
    for case in layout.cases.values():
        problems, arrays = load_case(case, n_classes, layout.normalization)
        report.problems += problems
        if arrays is not None:
            report.shapes.append(tuple(arrays.label.shape))
            report.spacings.append(tuple(arrays.spacing))
            report.fg_fractions.append(float(np.count_nonzero(arrays.label)) / max(1, arrays.label.size))
    return report
