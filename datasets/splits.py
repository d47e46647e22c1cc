"""Labeled/unlabeled splits written ``N/M``: the first N ids of train.list are labeled, the next M unlabeled.

Labeled subset k > 0 (`--subsets K`) labels N cases drawn instead from train.list with a generator seeded by
(SUBSET_SEED, k), the unlabeled M being the next M of the remaining cases in train.list order. Subset 0 is the
literature's first N. The draw depends on the train.list and k only, so every method and seed of a sweep labels
the same cases in subset k, and the ids are recorded in each run's config.json.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SUBSET_SEED = 20221  # fixed: subset k is the same draw in every sweep (MICCAI 2022, the seed paper)

_SPLIT_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Split:
    n_labeled: int
    n_unlabeled: int

    def __str__(self) -> str:
        return f"{self.n_labeled}/{self.n_unlabeled}"

    @property
    def is_supervised(self) -> bool:
        return self.n_unlabeled == 0

    def resolve(self, train_ids: list[str], subset: int = 0) -> tuple[list[str], list[str]]:
        """The labeled and unlabeled case ids: subset 0 is the literature's first N, then the next M."""
        total = self.n_labeled + self.n_unlabeled
        if total > len(train_ids):
            raise ValueError(
                f"split {self}: needs {total} training cases but train.list has {len(train_ids)}"
            )
        if subset < 0:
            raise ValueError(f"labeled subset {subset}: expected 0 (the first N) or a positive number")
        if subset == 0:
            return list(train_ids[: self.n_labeled]), list(train_ids[self.n_labeled : total])
        import numpy as np

        rng = np.random.default_rng([SUBSET_SEED, subset])
        picked = set(rng.choice(len(train_ids), size=self.n_labeled, replace=False).tolist())
        labeled = [c for i, c in enumerate(train_ids) if i in picked]
        rest = [c for i, c in enumerate(train_ids) if i not in picked]
        return labeled, rest[: self.n_unlabeled]


def parse_split(text: str | Split) -> Split:
    """Parse ``"8/72"``; anything else (negative, non-integer, zero labeled) is a ValueError."""
    if isinstance(text, Split):
        return text
    m = _SPLIT_RE.match(str(text))
    if not m:
        raise ValueError(f"split '{text}': expected N/M with non-negative integers, e.g. 8/72")
    split = Split(int(m.group(1)), int(m.group(2)))
    if split.n_labeled < 1:
        raise ValueError(f"split '{text}': at least one labeled case is needed")
    return split
