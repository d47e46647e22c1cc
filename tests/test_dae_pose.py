"""lrep.dae_pose="canonical": every rot/flip/shift of a map has the same canonical map, and the DAE's output
comes back to the map's own frame."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from sslbench.datasets.transforms import random_rot_flip
from sslbench.methods.algorithms.lrep.corruptions import CorruptionConfig
from sslbench.methods.algorithms.lrep.dae_training import DAEBatches, DAEConfig
from sslbench.methods.algorithms.lrep.pose import (
    Pose,
    canonical_pose,
    dae_probabilities,
    from_canonical,
    to_canonical,
)


def l_shape(offset: tuple[int, int, int] = (0, 0, 0)) -> torch.Tensor:
    """An asymmetric (W, H, D) = (32, 32, 16) mask away from the centre."""
    m = torch.zeros(32, 32, 16)
    x, y, z = offset
    m[3 + x : 12 + x, 5 + y : 20 + y, 2 + z : 9 + z] = 1
    m[3 + x : 6 + x, 20 + y : 25 + y, 2 + z : 9 + z] = 1
    return m


def centroid(m: torch.Tensor) -> list[float]:
    return [
        float((m.sum(dim=tuple(a for a in range(3) if a != ax)) * torch.arange(m.shape[ax])).sum() / m.sum())
        for ax in range(3)
    ]


def test_canonical_map_is_the_same_for_every_rot_flip_and_shift():
    rng = np.random.default_rng(0)
    canon = set()
    for i in range(16):
        _, posed = random_rot_flip(l_shape().numpy(), l_shape((i % 3, i % 4, i % 2)).numpy(), rng)
        posed = torch.from_numpy(posed.copy())
        canon.add(to_canonical(posed, canonical_pose(posed)).numpy().tobytes())
    assert len(canon) == 1
    c = to_canonical(l_shape(), canonical_pose(l_shape()))
    assert c.sum() == l_shape().sum()  # nothing shifted out here
    assert np.allclose(centroid(c), [16, 16, 8], atol=0.5)


def test_from_canonical_inverts_to_canonical_and_fills_background():
    m = l_shape()
    pose = canonical_pose(m)
    c = to_canonical(m, pose)
    back = from_canonical(torch.stack([1 - c, c]), pose)
    assert torch.equal(back[1], m) and torch.equal(back[0], 1 - m)
    # Voxels shifted in from outside the canonical crop come back as background (class 0 = 1, the rest 0).
    shifted = from_canonical(torch.zeros(2, 32, 32, 16), Pose(shift=(4, 0, 0)))
    assert (
        torch.all(shifted[0, -4:] == 1)
        and torch.all(shifted[1, -4:] == 0)
        and torch.all(shifted[:, :-4] == 0)
    )
    assert canonical_pose(torch.zeros(32, 32, 16)) == Pose()  # an empty map is left as it is


def test_dae_probabilities_are_in_the_maps_own_frame():
    def copying_dae(x: torch.Tensor) -> torch.Tensor:  # logits of the one-hot of its input
        return 20.0 * torch.cat([1 - 2 * x, 2 * x - 1], dim=1)

    maps = torch.stack([l_shape(), l_shape((10, 2, 5)).flip(0)])[:, None]
    for pose in ("as-is", "canonical"):
        prob = dae_probabilities(copying_dae, maps, pose)
        assert torch.allclose(prob[:, 1:], maps, atol=1e-6) and torch.allclose(
            prob[:, :1], 1 - maps, atol=1e-6
        )


def test_dae_training_batches_are_in_the_pose_of_their_corrupted_input():
    masks = [l_shape().numpy().astype(np.uint8)]
    cfg = DAEConfig(
        iterations=2, batch_size=2, pose="canonical", corruption=CorruptionConfig(p=0.5, shapes=False)
    )
    as_is = DAEBatches(masks, (32, 32, 16), replace(cfg, pose="as-is"), seed=0)[1]
    item = DAEBatches(masks, (32, 32, 16), cfg, seed=0)[1]
    for b in range(2):
        corrupted = torch.from_numpy(item["corrupted"][b, 0])
        assert np.allclose(
            centroid(corrupted), [16, 16, 8], atol=1.0
        )  # to the voxel (and what left the crop)
        pose = canonical_pose(torch.from_numpy(as_is["corrupted"][b, 0]))
        expected = to_canonical(torch.from_numpy(as_is["clean"][b]), pose).numpy()
        assert np.array_equal(item["clean"][b], expected)  # the clean target in the input's pose
