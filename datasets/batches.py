"""Two-stream batches (labeled first, then unlabeled) as a pure function of (seed, step).

The batch at step t depends only on the run seed and t: the labeled stream walks one permutation per epoch of
the labeled set, the unlabeled stream an endless chain of permutations (UA-MT's TwoStreamBatchSampler), and each
crop uses an RNG derived from (seed, step, slot). Loader workers can therefore build batches in any order, and a
resumed run sees exactly the batches an uninterrupted run would have seen, without saving sampler state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from sslbench.datasets.la import Volume
from sslbench.datasets.transforms import random_crop, random_rot_flip

_LABELED, _UNLABELED, _AUGMENT = 0, 1, 2


def _stream_indices(seed: int, stream: int, n: int, start: int, count: int) -> list[int]:
    """Positions start..start+count of an endless chain of per-epoch permutations of range(n)."""
    out = []
    for pos in range(start, start + count):
        epoch, offset = divmod(pos, n)
        perm = np.random.default_rng([seed, stream, epoch]).permutation(n)
        out.append(int(perm[offset]))
    return out


@dataclass
class TwoStreamBatches:
    """Map-style dataset: item `step` is the numpy batch for that training step."""

    labeled: list[Volume]
    unlabeled: list[Volume]
    labeled_bs: int
    unlabeled_bs: int
    patch: tuple[int, int, int]
    seed: int
    targets_fn: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None
    length: int = 0

    def __post_init__(self):
        if self.labeled_bs < 1:
            raise ValueError("labeled_bs must be at least 1")
        if self.unlabeled_bs and not self.unlabeled:
            raise ValueError("unlabeled_bs > 0 but the split has no unlabeled cases")

    def __len__(self) -> int:
        return self.length

    def labeled_indices(self, step: int) -> list[int]:
        # UA-MT walks whole groups of a permutation and drops the remainder (epoch = floor(N / bs) batches).
        n = len(self.labeled)
        per_epoch = max(1, n // self.labeled_bs)
        epoch, group = divmod(step, per_epoch)
        perm = np.random.default_rng([self.seed, _LABELED, epoch]).permutation(n)
        idx = perm[group * self.labeled_bs : (group + 1) * self.labeled_bs]
        if len(idx) < self.labeled_bs:  # fewer labeled cases than the labeled batch: sample with repeats
            idx = np.resize(perm, self.labeled_bs)
        return [int(i) for i in idx]

    def unlabeled_indices(self, step: int) -> list[int]:
        if not self.unlabeled_bs:
            return []
        return _stream_indices(
            self.seed, _UNLABELED, len(self.unlabeled), step * self.unlabeled_bs, self.unlabeled_bs
        )

    def _augment(self, vol: Volume, step: int, slot: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, _AUGMENT, step, slot])
        image, label = random_rot_flip(vol.image, vol.label, rng)
        return random_crop(image, label, self.patch, rng)

    def __getitem__(self, step: int) -> dict[str, np.ndarray]:
        crops_l = [self._augment(self.labeled[i], step, s) for s, i in enumerate(self.labeled_indices(step))]
        offset = len(crops_l)
        crops_u = [
            self._augment(self.unlabeled[i], step, offset + s)
            for s, i in enumerate(self.unlabeled_indices(step))
        ]
        # One copy per crop, straight into the batch array (the crops are views of the cached volumes).
        x_l = np.stack([c[0] for c in crops_l], dtype=np.float32)[:, None]  # (B_l, 1, W, H, D)
        y_l = np.stack([c[1] for c in crops_l], dtype=np.int64)  # (B_l, W, H, D)
        if crops_u:
            x_u = np.stack([c[0] for c in crops_u], dtype=np.float32)[:, None]
        else:
            x_u = np.zeros((0, 1, *self.patch), np.float32)
        batch = {"x_l": x_l, "y_l": y_l, "x_u": x_u}
        if self.targets_fn is not None:
            batch.update({f"extra_{k}": v for k, v in self.targets_fn(y_l).items()})
        return batch


def to_tensors(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}
