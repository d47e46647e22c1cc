"""`bench perf`: what one training step of each method, and one test volume, cost on this machine.

Protocol, per method: the run config of the chosen preset (split 8/72, or 8/0 for supervised methods; shrunk to
the dataset's size), the method built as in a real run (prepared assets included, fast paths as configured),
`warmup` training steps that are not timed (allocator, cuDNN autotuning), then `iters` timed steps through the
trainer's own `StepRunner` (synchronised on CUDA). Reported: the median and p90 step time, the data-loading wait,
the forward passes counted by `training/passes.py` (per network, so "passes per unlabeled volume" is their sum:
MT 2, UA-MT 2 + 8, lrep 2 + 1), the volumes pushed through the networks per step, the peak memory over the
training steps, and the sliding-window evaluation of a few test volumes after one warm-up batch of windows.

`compare_reference` runs our MT step and the straightforward reference loop (benchmark/perf/reference_loop.py)
side by side, interleaved A/B/B/A, and batched against one-window-at-a-time sliding windows, on the same
machine in the same process, and reports medians and ratios.

Measured on the 2-core CPU of the development machine (shared with other jobs, so indicative; quick preset, MT,
1 torch thread): building a batch takes about 0.5 ms of a 90-145 ms step, and 2 loader workers gave 147 ms
against 144 ms per step without: hence `data.num_workers` auto = 0 on CPU. Channels-last 3D gave 0.76x the
step time (oneDNN), so it is on by default on every device. With other processes on the machine, 2 torch
threads were several times slower than 1 (threads waiting for each other): on a shared CPU pass
`--set train.threads=1`.
"""

from __future__ import annotations

import gc
import platform
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sslbench.benchmark.config import ConfigError, RunConfig, build_config, sets_for
from sslbench.benchmark.evaluation.sliding_window import window_grid
from sslbench.benchmark.reporting.format import number, text_table
from sslbench.benchmark.runs.io import write_json
from sslbench.benchmark.training.device import (
    peak_memory_mb,
    reset_peak_memory,
    resolve_device,
    seed_everything,
    usable_cores,
)
from sslbench.benchmark.training.passes import record_samples
from sslbench.benchmark.training.step import WARMUP_STEPS, StepRunner
from sslbench.benchmark.training.trainer import Trainer, dataset_for
from sslbench.methods.registry import get_method, list_methods

DEFAULT_SPLIT = "8/72"  # the paper's 10 % setting


def method_names(methods: str | Iterable[str]) -> list[str]:
    """'all' (every registered method, sorted) or a comma-separated list / iterable of registered names."""
    if isinstance(methods, str):
        if methods.strip() == "all":
            return [m.name for m in list_methods()]
        methods = [m for m in methods.split(",") if m.strip()]
    return [get_method(m.strip()).name for m in methods]  # UnknownMethodError names the known ones


def _fit_split(split: str, n_train: int, supervised: bool) -> str:
    """The split for a method on a dataset with `n_train` training cases: N/M shrunk to fit, N/0 if supervised."""
    n_l, n_u = (int(v) for v in split.split("/"))
    n_l = max(1, min(n_l, n_train - (0 if supervised else 1)))
    return f"{n_l}/0" if supervised else f"{n_l}/{max(1, min(n_u, n_train - n_l))}"


def perf_config(
    method: str,
    preset: str = "quick",
    data_root: str | None = None,
    sets: dict[str, Any] | None = None,
    split: str = DEFAULT_SPLIT,
    n_train: int | None = None,
) -> RunConfig:
    """The run config `bench perf` times for `method` (the seed is the default one: it does not change the cost)."""
    info = get_method(method)
    supervised = not info.cls.uses_unlabeled
    if n_train is not None:
        split = _fit_split(split, n_train, supervised)
    elif supervised:
        split = f"{split.split('/')[0]}/0"
    return build_config(info.name, split, preset=preset, sets=sets, data_root=data_root)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def time_training(trainer: Trainer, method, iters: int, warmup: int = WARMUP_STEPS) -> dict[str, Any]:
    """Train `warmup + iters` steps from step 0; times of the last `iters` (ms), passes and peak memory."""
    device = trainer.device
    runner = StepRunner(trainer, method)
    method.train()
    step_ms, wait_ms, passes, samples = [], [], {}, 0
    reset_peak_memory(device)
    t_wait = time.perf_counter()
    for step, arrays in enumerate(trainer.loader(0, warmup + iters)):
        t0 = time.perf_counter()
        if step == 0:
            with record_samples(method) as calls:
                _, passes = runner(arrays, step, count=True)
            samples = sum(sum(sizes) for sizes in calls.values())  # volumes through every network
        else:
            runner(arrays, step)
        _sync(device)
        t1 = time.perf_counter()
        if step >= warmup:
            step_ms.append(1000 * (t1 - t0))
            wait_ms.append(1000 * (t0 - t_wait))
        t_wait = time.perf_counter()
    runner.check_finite()
    return {
        "ms_per_iter": float(np.median(step_ms)),
        "ms_p90": float(np.percentile(step_ms, 90)),
        "data_wait_ms": float(np.median(wait_ms)),
        "passes": passes,
        "passes_total": float(sum(passes.values())),
        "samples_per_step": samples,
        "peak_memory_mb": peak_memory_mb(device),
    }


def time_evaluation(trainer: Trainer, method, n_volumes: int) -> dict[str, Any]:
    """Sliding-window evaluation of the first `n_volumes` test cases, after one untimed batch of windows."""
    cfg = trainer.cfg
    vols = trainer.dataset.volumes(trainer.dataset.test_ids[:n_volumes])
    method.eval()
    predict = trainer.predictor(method)
    patch = tuple(cfg.data.patch)
    predict(torch.zeros((cfg.eval.sw_batch, 1, *patch), device=trainer.device))  # autotuning, allocator
    _sync(trainer.device)
    summary = trainer.evaluate(method, volumes=vols, write=False)
    shapes = [tuple(max(s, p) for s, p in zip(v.image.shape, patch, strict=True)) for v in vols]
    windows = [len(window_grid(s, patch, cfg.eval.stride_xy, cfg.eval.stride_z)) for s in shapes]
    return {
        "eval_ms_per_volume": 1000 * summary["eval_s_per_volume"],
        "metric_ms_per_volume": 1000 * summary.get("metric_s_per_volume", float("nan")),
        "windows_per_volume": float(np.mean(windows)),
        "eval_volumes": len(vols),
    }


def measure(
    cfg: RunConfig, iters: int, warmup: int = WARMUP_STEPS, eval_volumes: int = 2, reference_rounds: int = 2
) -> dict[str, Any]:
    """One row of `bench perf` for a resolved run config (`reference_rounds` A/B rounds of `vs_reference`; 0:
    none)."""
    seed_everything(cfg.seed, cfg.train.deterministic)
    trainer = Trainer(cfg, Path("."), progress=False)
    device = trainer.device
    t0 = time.perf_counter()
    method = trainer.build_method()
    setup_s = time.perf_counter() - t0
    row: dict[str, Any] = {"method": cfg.method, "split": cfg.split, "setup_s": setup_s}
    row.update(time_training(trainer, method, iters, warmup))
    n_u = trainer.unlabeled_per_batch()
    row["unlabeled_per_batch"] = n_u
    row["passes_per_unlabeled"] = row["passes_total"] if n_u else None
    if eval_volumes > 0:
        row.update(time_evaluation(trainer, method, eval_volumes))
    if reference_rounds > 0:
        from sslbench.benchmark.perf.method_reference import vs_reference

        ref = vs_reference(trainer, method, iters, reference_rounds)
        row["vs_reference"] = ref["ratio"]
        row["vs_reference_detail"] = ref
    row["fast_paths"] = trainer.fast_paths
    del method, trainer
    _release(device)
    return row


def run_perf(
    methods: str | Iterable[str] = "all",
    preset: str = "quick",
    data_root: str | None = None,
    iters: int = 10,
    sets: dict[str, Any] | None = None,
    split: str = DEFAULT_SPLIT,
    warmup: int = WARMUP_STEPS,
    eval_volumes: int = 2,
    on_row=None,
    save: Path | None = None,
    reference_rounds: int = 2,
) -> dict[str, Any]:
    """Time every requested method; a method that fails gets a row with `error` instead of stopping the rest.

    Returns {"machine": ..., "settings": ..., "rows": [...]}; `on_row(row)` is called as each row completes, and
    `save` (a JSON path) is rewritten after each row, so a run cut short by a timeout keeps what it measured.
    """
    names = method_names(methods)
    if not names:
        raise ConfigError("--methods: expected 'all' or comma-separated method names, e.g. mt,uamt")
    probe = perf_config(names[0], preset, data_root, sets_for(names[0], sets), split)
    n_train = len(dataset_for(probe).train_ids)
    device = resolve_device(probe.train.device)
    report: dict[str, Any] = {
        "machine": machine(device),
        "settings": {
            "preset": preset,
            "data": str(data_root) if data_root else "synthetic default",
            "iters": iters,
            "warmup": warmup,
            "eval_volumes": eval_volumes,
            "split": split,
            "sets": dict(sets or {}),
            "reference_rounds": reference_rounds,
        },
        "rows": [],
    }
    for name in names:
        try:
            cfg = perf_config(name, preset, data_root, sets_for(name, sets), split, n_train)
            row = measure(cfg, iters, warmup, eval_volumes, reference_rounds)
        except Exception as exc:  # one broken method must not hide the cost of the others
            row = {"method": name, "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
            _release(device)
        report["rows"].append(row)
        report["machine"] = machine(device)  # after the run config has set `train.threads`
        _relate_to_mt(report["rows"])
        if save is not None:
            write_json(Path(save), report)
        if on_row is not None:
            on_row(row)
    return report


def _relate_to_mt(rows: list[dict[str, Any]]) -> None:
    """Add each row's time ratio and extra forward passes per unlabeled volume relative to MT (None without MT)."""
    mt = next((r for r in rows if r["method"] == "mt" and "error" not in r), None)
    for r in rows:
        if "error" not in r:
            r["ratio_to_mt"] = r["ms_per_iter"] / mt["ms_per_iter"] if mt else None
            base = mt["passes_per_unlabeled"] if mt else None
            own = r.get("passes_per_unlabeled")
            r["extra_passes_vs_mt"] = own - base if own is not None and base is not None else None


def machine(device: torch.device) -> dict[str, Any]:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {
        "device": str(device),
        "device_name": name,
        "cores": usable_cores(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
    }


def format_table(report: dict[str, Any]) -> str:
    """The human table: one line per method, errors listed below it."""
    header = (
        "method",
        "split",
        "ms/iter",
        "p90",
        "x MT",
        "data ms",
        "passes/unl",
        "passes",
        "vol/step",
        "peak MB",
        "eval ms/vol",
        "windows",
        "vs ref",
    )
    lines, errors = [], []
    for r in report["rows"]:
        if "error" in r:
            errors.append(f"{r['method']}: {r['error']}")
            continue
        passes = " + ".join(f"{k} {v:g}" for k, v in r["passes"].items())
        lines.append((
            r["method"], r["split"], number(r["ms_per_iter"], spec=".1f"), number(r["ms_p90"], spec=".1f"),
            number(r.get("ratio_to_mt"), spec=".2f"), number(r["data_wait_ms"], spec=".1f"),
            number(r["passes_per_unlabeled"], spec="g"), passes, str(r["samples_per_step"]),
            number(r["peak_memory_mb"], spec=".0f"), number(r.get("eval_ms_per_volume"), spec=".0f"),
            number(r.get("windows_per_volume"), spec="g"), number(r.get("vs_reference"), spec=".2f"),
        ))  # fmt: skip
    m, s = report["machine"], report["settings"]
    memory = "CUDA max allocated" if m["device"].startswith("cuda") else "CPU peak RSS of the process"
    out = [
        f"{m['device_name']} ({m['device']}, torch {m['torch']}, {m['torch_threads']} threads) | preset "
        f"{s['preset']}, {s['data']} | median of {s['iters']} steps after {s['warmup']} warm-up | peak: {memory}",
    ]
    out.append(text_table(header, lines, right_from=2))
    if s.get("reference_rounds"):
        out.append(
            "vs ref: our step's time over the same step in a plain reference-style loop (MT: the re-implemented "
            "reference script), interleaved A/B in this process; below 1 = faster than the plain loop"
        )
    out += [f"failed: {e}" for e in errors]
    return "\n".join(out)
