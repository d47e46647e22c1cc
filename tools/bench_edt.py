"""Cost of the SDF target: SciPy/scikit-image `batch_sdf` against the torch `sdf_torch` (methods/edt.py).

Run `python tools/bench_edt.py` (or this file directly). Prints the median ms per batch of 4
label crops at the quick crop (32^3) and the paper crop (112x112x80), on one CPU thread, and on CUDA when
present; every timed torch result is also checked to equal `batch_sdf` bit for bit. Crops come from the
full-resolution LA sample (`$SSLBENCH_SHARED_DATA/la-full-sample`, else ../shared/data/la-full-sample) when
present, else from synthetic volumes. Timings on a shared machine are indicative only.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from sslbench.methods.edt import sdf_torch
from sslbench.methods.sdf import batch_sdf

BATCH = 4
CROPS = ((32, 32, 32), (112, 112, 80))


def _shared_data() -> Path:
    env = os.environ.get("SSLBENCH_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def label_volumes(n: int) -> tuple[list[np.ndarray], str]:
    root = _shared_data() / "la-full-sample"
    if (root / "train.list").is_file():
        import h5py

        ids = (root / "train.list").read_text().split()[:n]
        labels = []
        for case in ids:
            with h5py.File(root / "2018LA_Seg_Training Set" / case / "mri_norm2.h5", "r") as f:
                labels.append(f["label"][:])
        return labels, f"real LA labels ({root})"
    from sslbench.datasets.synthetic import synth_case

    return [synth_case(np.random.default_rng(i), (190, 142, 88))[1] for i in range(n)], "synthetic 190x142x88"


def random_batches(
    labels: list[np.ndarray], crop: tuple[int, ...], n: int, seed: int = 0
) -> list[np.ndarray]:
    """`n` batches of BATCH random crops; most overlap the atrium, as training crops do."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        batch = []
        for _ in range(BATCH):
            label = labels[int(rng.integers(len(labels)))]
            start = [int(rng.integers(0, s - c + 1)) for s, c in zip(label.shape, crop, strict=True)]
            batch.append(label[tuple(slice(a, a + c) for a, c in zip(start, crop, strict=True))])
        out.append(np.stack(batch).astype(np.int64))
    return out


def median_ms(fn: Callable[[], object], reps: int, sync: bool = False) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main(reps: int = 5) -> None:
    torch.set_num_threads(1)
    labels, source = label_volumes(4)
    cuda = torch.cuda.is_available()
    print(
        f"ms per batch of {BATCH} crops ({source}); torch threads: {torch.get_num_threads()}; median of {reps}"
    )
    header = f"{'crop':>12}  {'batch_sdf (SciPy)':>17}  {'sdf_torch CPU':>13}"
    print(header + (f"  {'sdf_torch CUDA':>14}" if cuda else ""))
    for crop in CROPS:
        batches = [torch.from_numpy(b) for b in random_batches(labels, crop, reps)]
        for y in batches:  # correctness of what is timed
            if not torch.equal(sdf_torch(y), batch_sdf({}, y)):
                raise SystemExit(f"sdf_torch differs from batch_sdf at crop {crop}")
        it = iter(batches * 2)
        ref = median_ms(lambda it=it: batch_sdf({}, next(it)), reps)
        it = iter(batches * 2)
        cpu = median_ms(lambda it=it: sdf_torch(next(it)), reps)
        row = f"{'x'.join(map(str, crop)):>12}  {ref:17.1f}  {cpu:13.1f}"
        if cuda:
            on_gpu = [y.cuda() for y in batches]
            sdf_torch(on_gpu[0])  # warm-up: CUDA context and kernels
            for y, y_gpu in zip(batches, on_gpu, strict=True):
                if not torch.equal(sdf_torch(y_gpu).cpu(), batch_sdf({}, y)):
                    raise SystemExit(f"sdf_torch on CUDA differs from batch_sdf at crop {crop}")
            it = iter(on_gpu * 2)
            row += f"  {median_ms(lambda it=it: sdf_torch(next(it)), reps, sync=True):14.1f}"
        print(row)


if __name__ == "__main__":
    main()
