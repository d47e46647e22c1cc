"""Sliding-window inference exactly as UA-MT's `test_single_case` (methods.md section 4), with batched windows."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from scipy import ndimage

from sslbench.benchmark.evaluation.metrics import METRIC_COLUMNS, case_metrics


def window_starts(size: int, patch: int, stride: int) -> list[int]:
    """ceil((S - P) / stride) + 1 windows; start i = min(i * stride, S - P), so the last is end-aligned."""
    if size <= patch:
        return [0]
    n = math.ceil((size - patch) / stride) + 1
    return [min(i * stride, size - patch) for i in range(n)]


def window_grid(shape: tuple[int, int, int], patch: tuple[int, int, int], stride_xy: int, stride_z: int):
    """Start corners of every window, x slowest and z fastest (the reference's loop order)."""
    strides = (stride_xy, stride_xy, stride_z)
    axes = [window_starts(s, p, st) for s, p, st in zip(shape, patch, strides, strict=True)]
    return [(x, y, z) for x in axes[0] for y in axes[1] for z in axes[2]]


def sliding_window_scores(
    predict: Callable[[torch.Tensor], torch.Tensor],
    image: np.ndarray,
    patch: tuple[int, int, int],
    stride_xy: int,
    stride_z: int,
    n_classes: int = 2,
    sw_batch: int = 4,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """`sliding_window_probs`, but the (C, W, H, D) float32 tensor stays on `device` (argmax there is cheaper
    than moving C float maps to the host)."""
    pads = [max(p - s, 0) for s, p in zip(image.shape, patch, strict=True)]
    pad_width = [(p // 2, p - p // 2) for p in pads]
    padded = np.pad(image, pad_width, mode="constant") if any(pads) else image
    vol = torch.from_numpy(np.ascontiguousarray(padded, dtype=np.float32)).to(device)
    shape = tuple(padded.shape)
    score = torch.zeros((n_classes, *shape), device=device)
    count = torch.zeros(shape, device=device)
    starts = window_grid(shape, patch, stride_xy, stride_z)
    pw, ph, pd_ = patch
    for i in range(0, len(starts), sw_batch):
        chunk = starts[i : i + sw_batch]
        x = torch.stack([vol[a : a + pw, b : b + ph, c : c + pd_] for a, b, c in chunk])[:, None]
        prob = predict(x).float()  # (n, C, pw, ph, pd)
        # Windows are added one by one in grid order, so the sums (and the result) do not depend on sw_batch.
        for (a, b, c), p in zip(chunk, prob, strict=True):
            score[:, a : a + pw, b : b + ph, c : c + pd_] += p
            count[a : a + pw, b : b + ph, c : c + pd_] += 1
    # A stride larger than the patch leaves voxels no window covers: scored 0 (background), never 0/0 = NaN.
    score /= count.clamp(min=1)
    (l0, _), (l1, _), (l2, _) = pad_width
    w, h, d = image.shape
    return score[:, l0 : l0 + w, l1 : l1 + h, l2 : l2 + d]


def sliding_window_probs(
    predict: Callable[[torch.Tensor], torch.Tensor],
    image: np.ndarray,
    patch: tuple[int, int, int],
    stride_xy: int,
    stride_z: int,
    n_classes: int = 2,
    sw_batch: int = 4,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Average per-window class probabilities over the volume: returns (C, W, H, D) float32.

    A side smaller than the patch is zero-padded symmetrically (left = pad // 2) and the padding removed at the
    end. Windows are stacked `sw_batch` at a time into one forward pass; accumulation stays on `device`.
    """
    scores = sliding_window_scores(predict, image, patch, stride_xy, stride_z, n_classes, sw_batch, device)
    return scores.cpu().numpy()


def largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = ndimage.sum(mask, labels, range(1, n + 1))
    return labels == (int(np.argmax(sizes)) + 1)


def predict_mask(
    predict: Callable[[torch.Tensor], torch.Tensor],
    image: np.ndarray,
    patch: tuple[int, int, int],
    eval_cfg,
    device: torch.device | str = "cpu",
    n_classes: int = 2,
) -> np.ndarray:
    """The predicted label map (W, H, D) uint8 of one volume: the argmax of the sliding-window scores, then the
    largest connected component when `eval.largest_cc` (what evaluation scores and `bench predict` writes)."""
    scores = sliding_window_scores(
        predict, image, patch, eval_cfg.stride_xy, eval_cfg.stride_z, n_classes, eval_cfg.sw_batch, device
    )
    # argmax on the device, then one byte per voxel to the host (.cpu() also waits for the GPU).
    pred = scores.argmax(0).to(torch.uint8).cpu().numpy()
    if eval_cfg.largest_cc:
        pred = largest_component(pred).astype(np.uint8)
    return pred


def _timed_metrics(pred, label, spacing, empty_policy: str, n_classes: int) -> tuple[dict, float]:
    t0 = time.perf_counter()
    row = case_metrics(pred, label, spacing, empty_policy, n_classes)
    return row, time.perf_counter() - t0


def metric_pool_size(requested: int, device: torch.device | str) -> int:
    """`eval.metric_workers`: -1 = auto (on CUDA up to 8 of the cores, the GPU waits for nothing else; on CPU
    none, since a sweep's other runs already use every core)."""
    if requested >= 0:
        return requested
    if torch.device(device).type != "cuda":
        return 0
    import os

    return min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def evaluate_cases(
    predict: Callable[[torch.Tensor], torch.Tensor],
    volumes: list,
    patch: tuple[int, int, int],
    eval_cfg,
    spacing,
    device: torch.device | str = "cpu",
    n_classes: int = 2,
    progress: bool = False,
) -> pd.DataFrame:
    """One row per case: metrics (per class too when `n_classes` > 2), flags, seconds of inference (`infer_s`)
    and of metric computation. `spacing`: mm, one number or (x, y, z).

    With `eval.metric_workers` > 0 (auto on CUDA) a volume's HD95/ASD are computed in a pool of processes
    while the next volume is predicted: the same functions on the same arrays, so the same numbers.
    """
    from tqdm.auto import tqdm

    workers = metric_pool_size(getattr(eval_cfg, "metric_workers", 0), device)
    executor = None
    if workers:
        from joblib.externals.loky import get_reusable_executor

        executor = get_reusable_executor(max_workers=workers)
    pending = []
    for vol in tqdm(volumes, desc="eval", leave=False, disable=not progress):
        t0 = time.perf_counter()
        pred = predict_mask(predict, vol.image, patch, eval_cfg, device, n_classes)
        infer_s = time.perf_counter() - t0
        args = (pred, vol.label, spacing, eval_cfg.empty_policy, n_classes)
        result = executor.submit(_timed_metrics, *args) if executor else _timed_metrics(*args)
        pending.append((vol.case_id, infer_s, result))
    rows = []
    for case_id, infer_s, result in pending:
        metrics, metric_s = result.result() if executor else result
        rows.append({"case": case_id, **metrics, "infer_s": infer_s, "metric_s": metric_s})
    return pd.DataFrame(rows)


def summarize_cases(cases: pd.DataFrame) -> dict:
    """Mean of each metric over cases, plus counts of flagged cases and the evaluation cost per volume."""
    out = {f"{m}": float(cases[m].mean()) for m in METRIC_COLUMNS}
    # the per-class means of a multi-class dataset (dice_1, hd95_mm_2, ...), after the plain means
    out.update({c: float(cases[c].mean()) for c in cases.columns if c.rsplit("_", 1)[0] in METRIC_COLUMNS})
    out["n_cases"] = int(len(cases))
    out["n_empty_pred"] = int(cases["empty_pred"].sum())
    out["n_empty_label"] = int(cases["empty_label"].sum())
    out["eval_s_per_volume"] = float(cases["infer_s"].mean())
    if "metric_s" in cases:
        out["metric_s_per_volume"] = float(cases["metric_s"].mean())
    return out
