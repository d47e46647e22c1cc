"""Signed-distance targets in the data loader: correctness and cost (run `python tools/bench_sdf.py`).

1. Correctness: batches built by the trainer's loader (`TwoStreamBatches` + `DataLoader` worker processes, with
   DTC's `batch_targets`) carry SDF maps that are `np.array_equal` to the literal definition
   (`compute_sdf_reference`) applied to the same label crops, over many random crops; and the fast path equals
   the definition on random small masks, empty and all-foreground ones included.
2. Cost: seconds per batch of SDF computation (the 2 labeled crops of a batch) at the quick preset's crop (32^3)
   and the paper's (112x112x80), for the literal definition and the fast path (`compute_sdf`).

Paper-size crops come from the real full-resolution sample (../shared/data/la-full-sample) when present, else
from synthetic volumes of the real median size. Timings on a shared machine are indicative only.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import click
import numpy as np
from scipy import ndimage
from torch.utils.data import DataLoader

from sslbench.datasets.batches import TwoStreamBatches, to_tensors
from sslbench.datasets.la import Volume, open_dataset
from sslbench.datasets.synthetic import DEFAULT_SIZE, synth_case
from sslbench.methods.algorithms.dtc import DCT
from sslbench.methods.sdf import compute_sdf, compute_sdf_reference

QUICK_PATCH = (32, 32, 32)
PAPER_PATCH = (112, 112, 80)
REAL_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "la-full-sample"


def synthetic_volumes(n: int, size: tuple[int, int, int], seed: int = 0) -> list[Volume]:
    return [Volume(f"s{i}", *synth_case(np.random.default_rng([seed, i]), size)) for i in range(n)]


def paper_size_volumes(n: int) -> tuple[list[Volume], str]:
    if (REAL_SAMPLE / "train.list").is_file():
        ds = open_dataset(REAL_SAMPLE)
        return ds.volumes(ds.train_ids[:n]), f"real LA ({REAL_SAMPLE.name})"
    return synthetic_volumes(n, (190, 142, 88)), "synthetic 190x142x88"


def batches(volumes: list[Volume], patch: tuple[int, int, int], n: int, seed: int, targets: bool):
    """The trainer's batch source: 2 labeled + 2 unlabeled crops per step, labeled crops from `volumes`."""
    return TwoStreamBatches(
        volumes, volumes, 2, 2, patch, seed, DCT.batch_targets if targets else None, length=n
    )


def check_loader(volumes: list[Volume], patch: tuple[int, int, int], n_batches: int, workers: int) -> dict:
    """Compare the loader's SDF with the definition on every labeled crop; count the kinds of crops seen."""
    loader = DataLoader(
        batches(volumes, patch, n_batches, 1, True),
        batch_size=None,
        sampler=range(n_batches),
        num_workers=workers,
        collate_fn=to_tensors,
    )
    stats = {"batches": 0, "crops": 0, "mismatches": 0, "empty": 0, "full": 0}
    for arrays in loader:
        y_l = arrays["y_l"].numpy()
        loaded = arrays["extra_sdf"].numpy()
        expected = compute_sdf_reference(y_l)
        for k in range(len(y_l)):
            stats["crops"] += 1
            stats["mismatches"] += int(not np.array_equal(loaded[k], expected[k]))
            stats["empty"] += int(not y_l[k].any())
            stats["full"] += int(y_l[k].all())
        stats["batches"] += 1
    return stats


def check_tiny_masks(n: int, seed: int = 0) -> int:
    """Mismatches of the fast path against the definition on random small masks (blobs, empty, full, edges)."""
    rng = np.random.default_rng(seed)
    mismatches = 0
    for i in range(n):
        shape = tuple(int(s) for s in rng.integers(3, 17, 3))
        smooth = ndimage.gaussian_filter(rng.random(shape), rng.uniform(0.5, 2.0))
        mask = smooth > np.quantile(
            smooth, rng.uniform(0.0, 1.0)
        )  # quantile 0..1: from all-foreground to empty
        if i % 10 == 0:
            mask = np.full(shape, i % 20 == 0)  # the two degenerate crops
        mismatches += int(not np.array_equal(compute_sdf(mask[None]), compute_sdf_reference(mask[None])))
    return mismatches


def seconds_per_batch(volumes: list[Volume], patch: tuple[int, int, int], n_batches: int, fn) -> float:
    """Median wall time of `fn` on the labeled crops (2, W, H, D) of `n_batches` training batches."""
    source = batches(volumes, patch, n_batches, 2, False)
    times = []
    for step in range(n_batches):
        y_l = source[step]["y_l"]
        t0 = time.perf_counter()
        fn(y_l)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@click.command()
@click.option(
    "--batches",
    "n_batches",
    type=click.IntRange(1),
    default=100,
    show_default=True,
    help="Loader batches compared at the quick crop size (2 labeled crops each).",
)
@click.option(
    "--paper-batches",
    type=click.IntRange(1),
    default=6,
    show_default=True,
    help="Loader batches compared, and timed, at the paper crop size.",
)
@click.option("--workers", type=click.IntRange(0), default=2, show_default=True, help="DataLoader workers.")
def main(n_batches: int, paper_batches: int, workers: int) -> None:
    quick_vols = synthetic_volumes(8, DEFAULT_SIZE)
    paper_vols, paper_source = paper_size_volumes(4)
    ok = True
    for label, vols, patch, n in (
        ("quick", quick_vols, QUICK_PATCH, n_batches),
        ("paper", paper_vols, PAPER_PATCH, paper_batches),
    ):
        s = check_loader(vols, patch, n, workers)
        ok &= s["mismatches"] == 0
        click.echo(
            f"loader vs definition, {label} crops {patch}: {s['crops']} crops in {s['batches']} batches "
            f"({s['empty']} empty, {s['full']} all-foreground), {s['mismatches']} mismatches"
        )
    bad = check_tiny_masks(n_batches * 5)
    ok &= bad == 0
    click.echo(
        f"fast path vs definition, {n_batches * 5} random small masks (incl. empty/full): {bad} mismatches"
    )
    click.echo(f"\nseconds per batch of SDF targets (2 labeled crops; paper crops from {paper_source}):")
    click.echo(f"{'crop':>14}  {'definition':>10}  {'fast path':>10}  speed-up")
    for vols, patch, n in ((quick_vols, QUICK_PATCH, n_batches), (paper_vols, PAPER_PATCH, paper_batches)):
        ref = seconds_per_batch(vols, patch, n, compute_sdf_reference)
        fast = seconds_per_batch(vols, patch, n, compute_sdf)
        click.echo(f"{'x'.join(map(str, patch)):>14}  {ref:10.4f}  {fast:10.4f}  {ref / fast:7.2f}x")
    if not ok:
        raise click.ClickException("the loader's SDF maps differ from the definition")


if __name__ == "__main__":
    main()
