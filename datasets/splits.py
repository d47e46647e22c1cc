"""Labeled/unlabeled splits written ``N/M``: the first N ids of train.list are labeled, the next M unlabeled."""

from __future__ import annotations

import re
from dataclasses import dataclass

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

    def resolve(self, train_ids: list[str]) -> tuple[list[str], list[str]]:
        """The labeled and unlabeled case ids (the literature's protocol: first N, then the next M)."""
        total = self.n_labeled + self.n_unlabeled
        if total > len(train_ids):
            raise ValueError(
                f"split {self}: needs {total} training cases but train.list has {len(train_ids)}"
            )
        return list(train_ids[: self.n_labeled]), list(train_ids[self.n_labeled : total])


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
