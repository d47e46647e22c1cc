"""The DAE's label corruptions: each changes a small mask in the intended way, reproducibly."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage import morphology as skmorph

from sslbench.methods.algorithms.lrep import corruptions as C


def disk_slice(size: int = 96, radius: int = 20, center: tuple[int, int] | None = None) -> np.ndarray:
    cx, cy = center or (size // 2, size // 2)
    xs, ys = np.ogrid[:size, :size]
    return (((xs - cx) ** 2 + (ys - cy) ** 2) <= radius**2).astype(np.uint8)


def blob_volume(seed: int = 0) -> np.ndarray:
    """A 48x48x12 mask: an ellipse per slice plus a bar touching the border."""
    vol = np.zeros((48, 48, 12), np.uint8)
    xs, ys = np.ogrid[:48, :48]
    for k in range(12):
        vol[:, :, k] = (((xs - 24) / 14) ** 2 + ((ys - 22) / (9 + k % 3)) ** 2) <= 1
    vol[0:6, 20:30, :] = 1
    return vol


def distance_to_boundary(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance of each pixel to the nearest pixel of the other class."""
    return np.where(mask > 0, ndimage.distance_transform_edt(mask), ndimage.distance_transform_edt(mask == 0))


@pytest.mark.parametrize("r", [1, 3, 8])
def test_fast_morphology_equals_skimage(r):
    sl = blob_volume()[:, :, 4]
    for op in C.MORPH_OPS:
        expected = getattr(skmorph, op)(sl, skmorph.disk(r))
        assert np.array_equal(C.morphology(sl, np.random.default_rng(0), op, r), expected), op


def test_erosion_shrinks_and_dilation_grows():
    sl = disk_slice()
    rng = np.random.default_rng(0)
    eroded = C.morphology(sl, rng, "erosion", 3)
    dilated = C.morphology(sl, rng, "dilation", 3)
    assert eroded.sum() < sl.sum() < dilated.sum()
    assert not (eroded & (sl == 0)).any()  # erosion only removes
    assert not (sl & (dilated == 0)).any()  # dilation only adds
    # A disk of radius 20 eroded / dilated by 3 is about a disk of radius 17 / 23.
    assert eroded.sum() == pytest.approx(np.pi * 17**2, rel=0.05)
    assert dilated.sum() == pytest.approx(np.pi * 23**2, rel=0.05)


def test_opening_removes_thin_parts_and_closing_fills_holes():
    sl = disk_slice()
    sl[0:40, 47:49] = 1  # a 2-pixel wide spur
    sl[47:49, 47:49] = 0  # a small hole
    opened = C.morphology(sl, np.random.default_rng(0), "opening", 2)
    closed = C.morphology(sl, np.random.default_rng(0), "closing", 2)
    assert opened[5:20, 47:49].sum() == 0 and opened[48, 30] == 1
    assert closed[47:49, 47:49].all()


def test_boundary_swap_only_touches_pixels_near_boundaries():
    sl = disk_slice(size=128, radius=40)
    dist = distance_to_boundary(sl)
    for seed in range(5):
        out = C.boundary_swap(sl, np.random.default_rng(seed))
        changed = out != sl
        assert changed.any()
        # The band is r <= 8 wide inside the label and the partner is r away: within 2 r = 16 of the boundary.
        assert dist[changed].max() <= 16
        # Swaps move labels around rather than add or delete them (vectorised swaps of repeated draws aside).
        assert abs(int(out.sum()) - int(sl.sum())) < 0.01 * sl.sum()


def test_boundary_swap_clips_instead_of_wrapping():
    sl = np.zeros((40, 40), np.uint8)
    sl[0:12, 0:12] = 1  # touches the top-left corner: partners at negative offsets must clip, not wrap
    for seed in range(5):
        out = C.boundary_swap(sl, np.random.default_rng(seed), radius=8)
        assert out[25:, :].sum() == 0 and out[:, 25:].sum() == 0


@pytest.mark.parametrize("f", [0.8, 0.9, 1.1])
def test_resize_scales_area_by_f_squared(f):
    sl = disk_slice(radius=20, center=(40, 52))
    out = C.resize(sl, np.random.default_rng(0), factor=f)
    assert out.sum() / sl.sum() == pytest.approx(f**2, rel=0.06)
    # About the foreground centroid: the centre of mass stays put.
    assert np.allclose(ndimage.center_of_mass(out), ndimage.center_of_mass(sl), atol=1.0)


def test_resize_draws_f_from_the_range():
    sl = disk_slice(radius=20)
    ratios = [C.resize(sl, np.random.default_rng(s)).sum() / sl.sum() for s in range(20)]
    assert min(ratios) >= 0.8**2 * 0.94 and max(ratios) <= 1.1**2 * 1.06
    assert max(ratios) - min(ratios) > 0.1


def test_shapes_add_and_remove_pixels():
    sl = disk_slice(radius=20)
    for seed in range(5):
        added = C.add_shapes(sl, np.random.default_rng(seed))
        removed = C.remove_shapes(sl, np.random.default_rng(seed))
        assert (added >= sl).all() and added.sum() > sl.sum()
        assert (removed <= sl).all() and removed.sum() < sl.sum()
    empty = np.zeros_like(sl)
    assert C.remove_shapes(empty, np.random.default_rng(0)).sum() == 0
    assert C.add_shapes(empty, np.random.default_rng(0)).sum() > 0


def test_corrupt_is_reproducible_by_seed_and_differs_across_seeds():
    vol = blob_volume()
    cfg = C.CorruptionConfig(p=0.5)
    a = C.corrupt(vol, np.random.default_rng(7), cfg)
    b = C.corrupt(vol, np.random.default_rng(7), cfg)
    c = C.corrupt(vol, np.random.default_rng(8), cfg)
    assert a.dtype == vol.dtype and a.shape == vol.shape
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, vol)
    assert np.array_equal(vol, blob_volume())  # the input is not modified


def test_corrupt_respects_switches_and_probability():
    vol = blob_volume()
    nothing = C.CorruptionConfig(p=1.0, swap=False, morphology=False, resize=False, shapes=False)
    assert np.array_equal(C.corrupt(vol, np.random.default_rng(0), nothing), vol)
    assert np.array_equal(C.corrupt(vol, np.random.default_rng(0), C.CorruptionConfig(p=0.0)), vol)
    # Shapes only, on an empty volume: only additions can change it.
    shapes_only = C.CorruptionConfig(p=1.0, swap=False, morphology=False, resize=False)
    empty = np.zeros_like(vol)
    assert C.corrupt(empty, np.random.default_rng(0), shapes_only).sum() > 0
    # Slices are corrupted independently: with p = 0.2 some slices change and some do not.
    out = C.corrupt(vol, np.random.default_rng(3), C.CorruptionConfig(p=0.2, shapes=False))
    changed = [(out[:, :, k] != vol[:, :, k]).any() for k in range(vol.shape[2])]
    assert any(changed) and not all(changed)


class QueuedRng:
    """Stands in for `np.random.Generator` in `boundary_swap`: returns the queued draws of the candidates."""

    def __init__(self, band_size: int, picks: list[list[int]]):
        self.band_size, self.picks = band_size, list(picks)

    def integers(self, low, high=None, size=None):
        assert (low, high, size) == (0, self.band_size, len(self.picks[0]))
        return np.asarray(self.picks.pop(0))


def test_boundary_swap_writes_partners_then_candidates_as_the_authors():
    # A 2-pixel wide strip: with r = 1 every strip pixel is a candidate (20 of them, so n = 2 draws a direction).
    sl = np.zeros((20, 20), np.uint8)
    y0 = 8
    sl[5:15, y0 : y0 + 2] = 1
    band = [tuple(p) for p in np.argwhere(sl != C._erode(sl, 1))]
    assert len(band) == 20
    index = {p: i for i, p in enumerate(band)}
    # Direction (0, -1): c1 = (9, y0 + 1) and L = (9, y0); L is c1's partner and a candidate itself.
    # The other three directions swap pixels of equal value (no-ops).
    same = index[(12, y0)]
    picks = [[index[(9, y0 + 1)], index[(9, y0)]], [same, same], [same, same], [same, same]]
    out = C.boundary_swap(sl, QueuedRng(len(band), picks), radius=1)
    # The authors' RandomCorrupt reads both values, writes the partners (L <- 1, (9, y0 - 1) <- 1), then the
    # candidates (c1 <- 1, L <- the value of its partner (9, y0 - 1), 0): L ends as background.
    expected = sl.copy()
    expected[9, y0] = 0
    expected[9, y0 - 1] = 1
    assert np.array_equal(out, expected)


@pytest.mark.parametrize("r", [1, 4, 8])
def test_all_foreground_slice_does_not_erode(r):
    sl = np.ones((24, 24), np.uint8)
    rng = np.random.default_rng(0)
    # skimage (the authors' erosion) pads by reflection: a slice without background stays as it is.
    assert np.array_equal(skmorph.erosion(sl, skmorph.disk(r)), sl)
    for op in C.MORPH_OPS:
        out = C.morphology(sl, rng, op, r)
        assert np.array_equal(out, sl) and out is not sl, op
    assert np.array_equal(C.boundary_swap(sl, rng, radius=r), sl)  # no boundary band: nothing to swap
    morph_only = C.CorruptionConfig(p=1.0, swap=False, resize=False, shapes=False)
    assert np.array_equal(C.corrupt_slice(sl, np.random.default_rng(1), morph_only), sl)
