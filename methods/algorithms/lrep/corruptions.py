"""Label corruptions the DAE learns to undo (methods.md 3.7.A; the paper's section 3 lists all four kinds).

The paper: "random swapping of pixels around class boundaries, morphological operations (erosion and dilation),
resizing and adding/removing shapes". As in the authors' code every corruption works on 2-D slices along the last
axis (D), with independent random draws per slice, and each kind is applied to a slice with probability p.
Label maps are integer class indices (0 = background); for LA they are 0/1 masks. Every function takes an
explicit `np.random.Generator`, so a corruption is reproducible from its seed.

C classes (the authors' FLARE code, `RandomCorrupt` on 5-class abdominal label maps): the same operations on the
index map. Morphology is grey (erosion = the smallest index within the disk, dilation the largest), so it moves the
boundaries between classes as well as those with the background, in index order; swapping exchanges the indices
of the pixels r apart, across any boundary the grey erosion finds. Added shapes take a foreground class drawn per
shape (see `add_shapes`); removed shapes, resizing and the rest are class-agnostic. A 0/1 map (every LA slice, and
a multi-class slice showing one class as 1 only) takes the binary fast paths, which equal the grey operations.

Matched to the authors' `RandomCorrupt` (code_DAE/dataloaders/medical_dataloader.py of
adigasu/Anatomically-aware_Uncertainty_for_Semi-supervised_Segmentation, f3b21bb): the swap's write order
(partners, then candidates) and skimage's erosion of a slice without background (it stays unchanged).

Deviations from the reference code (and why):
- Boundary swapping clips the swap partner's index to the slice instead of wrapping a negative index around to
  the opposite border (a numpy indexing accident in the reference), and it does not drop candidates near the
  far border (the clipping makes that guard unnecessary).
- Resizing is a label corruption here: a 2-D isotropic zoom of the slice about its foreground centroid (nearest
  neighbour, same output size). In the authors' code "resizing" is `RandomRescale`, a joint image+label 3-D
  augmentation applied before cropping, so it changes the clean target too; our DAE only ever sees labels, and
  the paper lists resizing among the corruptions of the DAE input.
- Adding/removing shapes is on by default (the paper lists it; the authors' release has it commented out).
  Instead of skimage's `random_shapes` we draw 1-5 filled ellipses or rectangles of at most `shape_max_size`
  pixels. Added shapes are placed anywhere in the slice (spurious blobs); removed shapes are centred on a random
  foreground pixel, so that they actually punch holes (a uniformly placed eraser mostly hits background).
- With C > 2 classes each added shape takes a class drawn uniformly from 1..C-1; the commented-out code paints
  class 1 whatever the class count, which would show the DAE spurious blobs of one organ only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage
from skimage import morphology as skmorph

MORPH_OPS = ("erosion", "dilation", "opening", "closing")
_DIRECTIONS = ((0, -1), (0, 1), (1, 0), (-1, 0))  # (dx, dy): -y, +y, +x, -x as in the reference


@dataclass(frozen=True)
class CorruptionConfig:
    p: float = 0.2  # probability of each corruption per slice (train_DAE.py RandomCorrupt(p=0.2))
    swap: bool = True  # boundary pixel swapping (paper; RandomCorrupt)
    swap_radius: tuple[int, int] = (3, 8)  # inclusive range of the swap band width / offset (randint(3, 9))
    morphology: bool = True  # erosion / dilation / opening / closing (paper; RandomCorrupt)
    morph_radius: tuple[int, int] = (1, 4)  # inclusive disk radius range (randint(1, 5))
    resize: bool = True  # isotropic zoom of the slice (paper: "resizing")
    zoom_range: tuple[float, float] = (0.8, 1.1)  # zoom factor f ~ U(0.8, 1.1) (RandomRescale)
    shapes: bool = True  # add and remove random shapes (paper; commented out in the authors' release)
    max_shapes: int = 5  # 1..5 shapes per draw (the disabled random_shapes call)
    shape_max_size: int = 15  # largest shape side in pixels (the disabled random_shapes call)

    def scaled(self, factor: float) -> CorruptionConfig:
        """The same corruptions with every size in pixels multiplied by `factor` (at least 1 px, shapes >= 3 px).

        The authors' sizes are in LA voxels (0.625 mm); data with coarser voxels (la-half, the synthetic set) keep
        the same physical corruption with factor = 0.625 mm / spacing.
        """

        def px(v: int, low: int = 1) -> int:
            return max(low, round(v * factor))

        return replace(
            self,
            swap_radius=(px(self.swap_radius[0]), px(self.swap_radius[1])),
            morph_radius=(px(self.morph_radius[0]), px(self.morph_radius[1])),
            shape_max_size=px(self.shape_max_size, 3),
        )


# --- grey erosion / dilation with a disk, with a fast path for 0/1 masks ---------------------------------
def _fg_window(sl: np.ndarray, margin: int) -> tuple[slice, slice]:
    """The foreground bounding box grown by `margin` pixels (clipped): nothing outside it can change."""
    xs, ys = np.nonzero(sl)
    w, h = sl.shape
    return (
        slice(max(xs.min() - margin, 0), min(xs.max() + margin + 1, w)),
        slice(max(ys.min() - margin, 0), min(ys.max() + margin + 1, h)),
    )


def _erode(sl: np.ndarray, r: int) -> np.ndarray:
    """Grey erosion with disk(r): skimage's semantics (the border does not erode)."""
    if sl.max(initial=0) > 1:  # multi-class index map
        return skmorph.erosion(sl, skmorph.disk(r))
    if sl.all():  # no background anywhere: nothing erodes (skimage pads by reflection, as the authors' code)
        return sl.copy()
    out = np.zeros_like(sl)
    if not sl.any():
        return out
    # A 0/1 mask: a pixel survives iff no background pixel lies within Euclidean distance r, which is exactly
    # disk(r) = {dx^2 + dy^2 <= r^2} (the transform needs a background pixel: without one it measures to a
    # phantom point outside the array and erodes the corners, hence the all-foreground case above). A distance
    # transform on the foreground's box (grown by r + 1, so every background pixel that matters is inside) is
    # ~10x faster than skimage with the r = 8 footprint.
    win = _fg_window(sl, r + 1)
    out[win] = ndimage.distance_transform_edt(sl[win]) > r
    return out


def _dilate(sl: np.ndarray, r: int) -> np.ndarray:
    """Grey dilation with disk(r)."""
    if sl.max(initial=0) > 1:
        return skmorph.dilation(sl, skmorph.disk(r))
    out = np.zeros_like(sl)
    if not sl.any():
        return out
    win = _fg_window(sl, r + 1)
    out[win] = ndimage.distance_transform_edt(sl[win] == 0) <= r
    return out


# --- single corruptions on one 2-D slice ---------------------------------------------------------------
def boundary_swap(
    sl: np.ndarray,
    rng: np.random.Generator,
    radius: int | None = None,
    radius_range: tuple[int, int] = (3, 8),
) -> np.ndarray:
    """Swap pixels of the inner boundary band (width r) with the pixel r away, in each of 4 directions.

    Candidates are the pixels that change under a grey erosion with a disk of radius r. For each direction,
    floor(n/10) candidates are drawn with replacement and swapped with their partner at offset r (clipped to the
    slice). Changed pixels therefore lie within 2r of a label boundary. The swaps of one direction are done at
    once (vectorised), as in the authors' `RandomCorrupt`: both values are read first, then the partners are
    written, then the candidates, so a pixel that is both a drawn candidate and another candidate's partner
    ends with its own partner's value; a pixel drawn twice is swapped once, and the label mass is kept only
    approximately.
    """
    r = int(rng.integers(radius_range[0], radius_range[1] + 1)) if radius is None else int(radius)
    out = sl.copy()
    band = np.argwhere(out != _erode(out, r))
    n = len(band) // 10
    if n == 0:
        return out
    w, h = out.shape
    for dx, dy in _DIRECTIONS:
        pick = band[rng.integers(0, len(band), size=n)]
        x, y = pick[:, 0], pick[:, 1]
        x2, y2 = np.clip(x + dx * r, 0, w - 1), np.clip(y + dy * r, 0, h - 1)
        a, b = out[x, y].copy(), out[x2, y2].copy()
        out[x2, y2] = a  # the authors' order: partners first, then candidates (the candidate's write wins)
        out[x, y] = b
    return out


def morphology(
    sl: np.ndarray,
    rng: np.random.Generator,
    op: str | None = None,
    radius: int | None = None,
    radius_range: tuple[int, int] = (1, 4),
) -> np.ndarray:
    """One of erosion, dilation, opening, closing (uniform) with a disk of radius 1..4 (grey ops: index maps)."""
    op = MORPH_OPS[int(rng.integers(0, len(MORPH_OPS)))] if op is None else op
    r = int(rng.integers(radius_range[0], radius_range[1] + 1)) if radius is None else int(radius)
    if op == "erosion":
        return _erode(sl, r)
    if op == "dilation":
        return _dilate(sl, r)
    if op == "opening":
        return _dilate(_erode(sl, r), r)
    if op == "closing":
        return _erode(_dilate(sl, r), r)
    raise ValueError(f"morphology op '{op}': expected one of {MORPH_OPS}")


def resize(
    sl: np.ndarray,
    rng: np.random.Generator,
    factor: float | None = None,
    zoom_range: tuple[float, float] = (0.8, 1.1),
) -> np.ndarray:
    """Zoom the slice by f ~ U(zoom_range) about its foreground centroid (nearest neighbour, same shape).

    Each foreground region's area changes by about f^2; the label's position stays put.
    """
    f = float(rng.uniform(*zoom_range)) if factor is None else float(factor)
    fg = np.argwhere(sl > 0)
    if len(fg) == 0:
        return sl.copy()
    center = fg.mean(axis=0)
    # affine_transform maps output coordinate o to input coordinate center + (o - center) / f.
    return ndimage.affine_transform(
        sl, np.full(2, 1.0 / f), offset=center - center / f, order=0, mode="constant", cval=0
    ).astype(sl.dtype)


def random_shape_mask(
    shape: tuple[int, int],
    rng: np.random.Generator,
    center: tuple[int, int] | None = None,
    max_size: int = 15,
) -> np.ndarray:
    """A filled ellipse or axis-aligned rectangle with sides in [3, max_size] pixels, inside `shape`."""
    w, h = shape
    sx, sy = (int(v) for v in rng.integers(3, max(3, max_size) + 1, size=2))
    if center is None:
        center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
    cx, cy = center
    xs, ys = np.ogrid[:w, :h]
    if rng.random() < 0.5:
        return ((xs - cx) / (sx / 2)) ** 2 + ((ys - cy) / (sy / 2)) ** 2 <= 1.0
    return (np.abs(xs - cx) <= sx // 2) & (np.abs(ys - cy) <= sy // 2)


def add_shapes(
    sl: np.ndarray,
    rng: np.random.Generator,
    max_shapes: int = 5,
    max_size: int = 15,
    value: int = 1,
    n_classes: int = 2,
) -> np.ndarray:
    """Paint 1..max_shapes random shapes anywhere in the slice (spurious blobs): with class `value` for two classes;
    for more, each shape with a class drawn from 1..n_classes-1 (no draw at all with two, so the binary stream is
    unchanged)."""
    out = sl.copy()
    for _ in range(int(rng.integers(1, max_shapes + 1))):
        label = value if n_classes <= 2 else int(rng.integers(1, n_classes))
        out[random_shape_mask(out.shape, rng, max_size=max_size)] = label
    return out


def remove_shapes(
    sl: np.ndarray, rng: np.random.Generator, max_shapes: int = 5, max_size: int = 15
) -> np.ndarray:
    """Erase 1..max_shapes random shapes centred on random foreground pixels (holes); no-op on empty slices."""
    out = sl.copy()
    for _ in range(int(rng.integers(1, max_shapes + 1))):
        fg = np.argwhere(out > 0)
        if len(fg) == 0:
            break
        cx, cy = fg[int(rng.integers(0, len(fg)))]
        out[random_shape_mask(out.shape, rng, (int(cx), int(cy)), max_size)] = 0
    return out


# --- the pipeline --------------------------------------------------------------------------------------
def corrupt_slice(
    sl: np.ndarray, rng: np.random.Generator, cfg: CorruptionConfig, n_classes: int = 2
) -> np.ndarray:
    """Apply each enabled corruption with probability p, in the order resize, swap, morphology, add, remove.

    `n_classes`: the label map's class count (background included), for the classes of added shapes."""
    out = sl
    empty = not out.any()
    # Draw every coin even when a corruption is off or the slice is empty, so enabling one kind does not shift
    # the random stream of the others.
    coins = rng.random(5) < cfg.p
    if cfg.resize and coins[0] and not empty:
        out = resize(out, rng, zoom_range=cfg.zoom_range)
    if cfg.swap and coins[1] and not empty:
        out = boundary_swap(out, rng, radius_range=cfg.swap_radius)
    if cfg.morphology and coins[2] and not empty:
        out = morphology(out, rng, radius_range=cfg.morph_radius)
    if cfg.shapes and coins[3]:
        out = add_shapes(out, rng, cfg.max_shapes, cfg.shape_max_size, n_classes=n_classes)
    if cfg.shapes and coins[4]:
        out = remove_shapes(out, rng, cfg.max_shapes, cfg.shape_max_size)
    return out


def corrupt(
    mask: np.ndarray, rng: np.random.Generator, cfg: CorruptionConfig | None = None, n_classes: int = 2
) -> np.ndarray:
    """Corrupt a (W, H, D) label map of `n_classes` classes slice by slice along D; returns a new array of the
    same dtype."""
    cfg = cfg or CorruptionConfig()
    out = np.empty_like(mask)
    for k in range(mask.shape[2]):
        out[:, :, k] = corrupt_slice(np.ascontiguousarray(mask[:, :, k]), rng, cfg, n_classes)
    return out
