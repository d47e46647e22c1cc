"""The one training loop every method plugs into, and the run folder it writes.

A run folder holds: config.json (resolved config, code version, environment, split case ids), log.jsonl
(losses every `log_every` steps), checkpoint.pt (every `checkpoint_every` steps, atomic), model.pt (final
weights), cases.csv (per-case metrics) and metrics.json (written last: its presence means the run finished).

metrics.json's `cost` block: median and p90 seconds per step after WARMUP_STEPS (synchronised on CUDA), the
data-loading wait, forward passes per network (benchmark/training/passes.py), peak memory of training and of evaluation
(CUDA max allocated, or the process's peak RSS on CPU), inference and metric seconds per test volume, setup /
loop / evaluation / total wall times, and the fast paths in effect (bf16 autocast and cuDNN autotuning on CUDA,
channels-last 3D, torch.compile, sliding-window batch, loader workers).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from sslbench.benchmark.config import ConfigError, RunConfig
from sslbench.benchmark.evaluation.sliding_window import evaluate_cases, predict_mask, summarize_cases
from sslbench.benchmark.runs.folder import (
    CASES_FILE,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    EVAL_FILE,
    EVAL_TAG,
    LOG_FILE,
    METRICS_FILE,
    WEIGHTS_FILE,
    execution_mismatch,
    precision_of,
    read_json_object,
    read_metrics,
    recorded_execution,
    set_aside,
    utc_stamp,
)
from sslbench.benchmark.runs.io import save_torch, write_json, write_text
from sslbench.benchmark.training.assets import AssetStore
from sslbench.benchmark.training.clock import StepClock
from sslbench.benchmark.training.compile import compile_networks, eager_forward
from sslbench.benchmark.training.device import (
    configure_backends,
    contention,
    machine_load,
    parameter_counts,
    peak_memory_mb,
    reset_peak_memory,
    resolve_device,
    resolve_workers,
    rng_state,
    seed_everything,
    set_rng_state,
)
from sslbench.benchmark.training.environment import code_version, environment
from sslbench.benchmark.training.errors import AlreadyFinished, ExecutionMismatch, RunFailed
from sslbench.benchmark.training.monitor import Monitor, write_progress_png
from sslbench.benchmark.training.schedules import lr_at
from sslbench.benchmark.training.step import WARMUP_STEPS, StepRunner, scalar_outputs
from sslbench.datasets.base import Dataset, n_classes
from sslbench.datasets.batches import TwoStreamBatches, to_tensors
from sslbench.datasets.default import cache_dir
from sslbench.datasets.readers import open_dataset
from sslbench.datasets.splits import parse_split
from sslbench.methods.base import Method, MethodContext
from sslbench.methods.registry import get_method


def expected_execution(cfg: RunConfig, threads: int | None = 0) -> dict:
    """How a run of `cfg` would compute here: device kind, CPU threads and precision (see execution_mismatch).

    `threads`: the thread count a sweep slot would pin (0: the run's own `train.threads`, else torch's current
    default in this process; None: unknown, e.g. on a Dask worker).
    """
    kind = resolve_device(cfg.train.device).type
    if threads is not None:
        threads = cfg.train.threads or threads or torch.get_num_threads()
    return {"device_kind": kind, "threads": threads, "precision": precision_of(kind, cfg.train.amp)}


def dataset_for(cfg: RunConfig) -> Dataset:
    if cfg.data.root is None:
        from sslbench.datasets.default import default_data_root

        return open_dataset(default_data_root(), cfg.data.spacing)
    return open_dataset(cfg.data.root, cfg.data.spacing)


def check_classes(info, dataset: Dataset) -> None:
    """A binary-only method on a dataset of more than two classes: a ConfigError naming both."""
    reason = info.cls.binary_only
    if reason and n_classes(dataset) > 2:
        raise ConfigError(
            f"method '{info.name}' handles two classes only ({reason}); {dataset.name} has {n_classes(dataset)} "
            f"classes ({', '.join(dataset.class_names)})"
        )


def check_method_fits_data(cfg: RunConfig) -> None:
    """`check_classes` for run `cfg`, for commands that refuse before they create a run folder."""
    check_classes(get_method(cfg.method), dataset_for(cfg))


def split_ids(cfg: RunConfig, dataset: Dataset) -> tuple[list[str], list[str]]:
    """The labeled and unlabeled case ids of the run's split (subset 0: the first N of train.list)."""
    try:
        return parse_split(cfg.split).resolve(dataset.train_ids, cfg.data.subset)
    except ValueError as exc:
        raise ConfigError(f"--split {cfg.split} on {dataset.root}: {exc}") from None


def method_context(
    cfg: RunConfig,
    dataset: Dataset,
    labeled_ids: list[str],
    unlabeled_ids: list[str],
    device: torch.device,
    progress: bool = False,
    cache: AssetStore | None = None,
) -> MethodContext:
    """The `MethodContext` of a run: what its method may know (never the run config itself)."""
    labeled = tuple(labeled_ids)
    return MethodContext(
        n_classes=n_classes(dataset),
        n_filters=cfg.train.n_filters,
        normalization=cfg.train.normalization,
        patch=tuple(cfg.data.patch),
        spacing=tuple(dataset.spacing),
        iterations=cfg.train.iterations,
        lr=cfg.train.lr,
        momentum=cfg.train.momentum,
        weight_decay=cfg.train.weight_decay,
        seed=cfg.seed,
        n_labeled=len(labeled_ids),
        n_unlabeled=len(unlabeled_ids),
        rampup=cfg.train.rampup,
        rampup_length=cfg.train.rampup_length,
        autocast=cfg.train.amp and device.type == "cuda",  # as `Trainer.autocast`
        dataset_id=str(dataset.root),
        labeled_ids=labeled,
        labeled_masks=lambda: [dataset.volume(i).label for i in labeled],
        labeled_images=lambda: [dataset.volume(i).image for i in labeled],
        device=str(device),
        num_workers=resolve_workers(cfg.data.num_workers, device, cfg.train.threads),
        progress=progress,
        cache=cache,
    )


class Trainer:
    """The one training loop every method plugs into, and the run folder it writes.

    Built from a resolved `RunConfig`: opens the dataset, resolves the split into case ids and reads (and so
    validates) every volume the run touches before the first step. It owns the optimiser (`StepRunner`), the lr
    schedule, autocast, checkpoints, the log and the evaluation; the method owns its networks and losses and
    sees only its `MethodContext`.

    Args:
        cfg: the run's resolved configuration (its run id names the folder).
        out_dir: the run folder (created by `run`).
        progress: progress bars on stderr.
    """

    def __init__(self, cfg: RunConfig, out_dir: Path, progress: bool = True):
        # What `run` measures for the cost block of metrics.json: the load at its start, the method's parameter
        # counts and the FLOPs of its first step.
        self._load_start: float | None = None
        self._parameters: dict[str, int] = {}
        self._flops_per_step: int | None = None
        self.compiled = False  # set by build_method: train.compile asked for and possible here
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.progress = progress
        self.device = resolve_device(cfg.train.device)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        configure_backends(cfg.train.deterministic)
        self.info = get_method(cfg.method)
        self.dataset = dataset_for(cfg)
        check_classes(self.info, self.dataset)
        self.labeled_ids, self.unlabeled_ids = split_ids(cfg, self.dataset)
        # Read (and validate) every volume the run will touch now, not after hours of training.
        self.dataset.volumes(self.labeled_ids + self.unlabeled_ids + self.dataset.test_ids)

    # --- fast paths ------------------------------------------------------------------------------------
    @property
    def fast_paths(self) -> dict[str, Any]:
        """The speed switches in effect on this device (recorded with the cost of every run)."""
        t, cuda = self.cfg.train, self.device.type == "cuda"
        return {
            "amp_bf16": t.amp and cuda,
            "channels_last": t.channels_last,
            "cudnn_benchmark": cuda and not t.deterministic,
            # the mode in effect: False where compile was asked for but could not run (training/compile.py)
            "compile": t.compile and self.compiled and t.compile_mode,
            "sw_batch": self.cfg.eval.sw_batch,
            "num_workers": resolve_workers(self.cfg.data.num_workers, self.device, self.cfg.train.threads),
        }

    def autocast(self) -> torch.autocast:
        """bf16 autocast on CUDA when `train.amp` (a new context each time: the object is not re-entrant)."""
        enabled = self.cfg.train.amp and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def predictor(self, method: Method):
        """`method.predict` for the sliding window, under inference mode and the training's autocast."""

        def predict(x: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode(), self.autocast(), eager_forward():
                return method.predict(x)

        return predict

    # ---------------------------------------------------------------------------------------------------
    def context(self, cache: AssetStore | None = None) -> MethodContext:
        """What the method may know about this run (`MethodContext`); `cache` for `prepare_assets`."""
        return method_context(
            self.cfg, self.dataset, self.labeled_ids, self.unlabeled_ids, self.device, self.progress, cache
        )

    def prepare(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Run the method's `prepare_assets`; returns (the assets, what config.json records about them)."""
        store = AssetStore(cache_dir())
        assets = self.info.cls.prepare_assets(self.cfg.method_cfg, self.context(store))
        return assets, store.info

    def build_method(self) -> Method:
        cfg = self.cfg
        assets, self.asset_info = self.prepare()
        method = self.info.cls(cfg.method_cfg, replace(self.context(), assets=assets)).to(self.device)
        if cfg.train.channels_last:
            # NDHWC weights: cuDNN's tensor-core kernels and oneDNN's blocked CPU kernels both prefer this layout
            # (measured on CPU: an MT step at the quick preset 0.76x the time); activations follow the weights.
            method = method.to(memory_format=torch.channels_last_3d)
        if cfg.train.compile:
            self.compiled = compile_networks(method, cfg.train.compile_mode, self.device)
        return method

    def batches(self) -> TwoStreamBatches:
        t = self.cfg.train
        semi = bool(self.unlabeled_ids)
        return TwoStreamBatches(
            labeled=self.dataset.volumes(self.labeled_ids),
            unlabeled=self.dataset.volumes(self.unlabeled_ids),
            labeled_bs=t.labeled_bs if semi else t.batch_size,
            unlabeled_bs=t.batch_size - t.labeled_bs if semi else 0,
            patch=tuple(self.cfg.data.patch),
            seed=self.cfg.seed,
            # the SDF methods build their targets on the GPU themselves (no loader round trip through the CPU)
            targets_fn=None
            if self.info.cls.device_targets and self.device.type == "cuda"
            else self.info.cls.batch_targets,
            length=t.iterations,
        )

    def loader(self, start: int, stop: int) -> DataLoader:
        """The batches of steps start..stop-1, built in `data.num_workers` processes (auto by default)."""
        return DataLoader(
            self.batches(),
            batch_size=None,
            sampler=range(start, stop),
            num_workers=resolve_workers(self.cfg.data.num_workers, self.device, self.cfg.train.threads),
            collate_fn=to_tensors,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            # Its own generator: a DataLoader otherwise draws its base seed from the global torch RNG when the
            # iterator starts, which would shift dropout/noise draws of a resumed run against an uninterrupted one.
            generator=torch.Generator().manual_seed(self.cfg.seed),
        )

    def write_config(self) -> None:
        record = self.cfg.to_dict()
        record.update(
            run_id=self.cfg.run_id(),
            method_info={
                "k_inferences": self.info.k_label,
                "family": self.info.family,
                "paper": self.info.paper,
            },
            dataset=self.dataset.describe(),
            split_ids={
                "labeled": self.labeled_ids,
                "unlabeled": self.unlabeled_ids,
                "test": self.dataset.test_ids,
            },
            code=code_version(),
            environment=environment(self.device),
            execution=self.execution(),
            assets=getattr(self, "asset_info", {}),
        )
        write_json(self.out_dir / CONFIG_FILE, record)

    def execution(self) -> dict:
        """What changes the numbers but not the run id: device kind, CPU threads, precision (config.json)."""
        kind = self.device.type
        return {
            "device_kind": kind,
            "threads": torch.get_num_threads(),
            "precision": precision_of(kind, self.cfg.train.amp),
        }

    def _check_resumable(self) -> None:
        """A resumed run must continue as it started: same thread count, device kind and precision."""
        record = read_json_object(self.out_dir / CONFIG_FILE) or {}
        why = execution_mismatch(recorded_execution(record), self.execution())
        if why:
            raise ExecutionMismatch(
                f"{self.out_dir}: cannot resume, the run was {why}; resume it with the same settings "
                "(e.g. --set train.threads=N or the same --jobs), or redo it with --force"
            )

    # ---------------------------------------------------------------------------------------------------
    def run(self, resume: bool = False) -> dict:
        """Prepare the method's assets, train `train.iterations` steps, evaluate the last weights on the test set.

        Writes config.json first, log.jsonl every `log_every` steps, checkpoint.pt every `checkpoint_every` steps,
        then model.pt, cases.csv and, last, metrics.json (its presence means the run finished).

        Args:
            resume: continue from the folder's checkpoint.pt (validated first: a refused resume changes nothing).

        Returns:
            The metrics dict written to metrics.json (means over test cases, and the `cost` block).

        Raises:
            RunFailed: a non-finite loss, or a checkpoint from another run.
            AlreadyFinished: the folder holds metrics.json (finished is final; callers set it aside first).
            ExecutionMismatch: resuming with another thread count, device kind or precision.
        """
        cfg, t = self.cfg, self.cfg.train
        if (self.out_dir / METRICS_FILE).exists():
            raise AlreadyFinished(
                f"{self.out_dir}: already finished; redo it with --force (the old folder is kept)"
            )
        wall0 = time.perf_counter()
        self._load_start = machine_load()
        seed_everything(cfg.seed, t.deterministic)
        reset_peak_memory(self.device)
        method = self.build_method()
        self._parameters = parameter_counts(method)
        runner = StepRunner(self, method)
        start, clock, wait_times = 0, StepClock(self.device), []
        ckpt_path = self.out_dir / CHECKPOINT_FILE
        # Validate a checkpoint before touching anything in the folder: a refused resume changes nothing.
        if resume and ckpt_path.is_file():
            self._check_resumable()
            start = self._load_checkpoint(ckpt_path, method, runner.optimizer, runner.extra_opts)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if start == 0:
            (self.out_dir / LOG_FILE).unlink(missing_ok=True)
        self.write_config()
        method.train()
        setup_s = time.perf_counter() - wall0
        loader = self.loader(start, t.iterations)
        from tqdm.auto import tqdm

        bar = tqdm(
            total=t.iterations,
            initial=start,
            desc=f"{cfg.method} {cfg.split} s{cfg.seed}",
            disable=not self.progress,
            leave=False,
            file=sys.stderr,
        )
        passes: dict[str, float] = {}
        monitor = Monitor(self.out_dir, t.tensorboard)
        val_volumes = self._validation_volumes()
        curve_volumes = self.dataset.volumes(self.dataset.test_ids) if t.curve_every else []
        log = open(self.out_dir / LOG_FILE, "a")  # noqa: SIM115 (kept open for the whole loop)
        try:
            t_wait = time.perf_counter()
            for step, arrays in zip(range(start, t.iterations), loader, strict=True):
                wait_times.append(time.perf_counter() - t_wait)
                clock.start()
                out, counted = runner(arrays, step, count=step == start)
                clock.stop()
                if step == start:
                    passes = counted
                bar.update(1)
                if step % t.log_every == 0 or step == t.iterations - 1:
                    runner.check_finite()
                    record = {"step": step, "lr": lr_at(cfg, step)}
                    record.update({k: float(v) for k, v in scalar_outputs(out).items()})
                    record["sec_per_iter"] = clock.times()[-1]
                    if val_volumes and t.val_every and (step % t.val_every == 0 or step == t.iterations - 1):
                        record["val_dice"] = self._validation_dice(method, val_volumes)
                    if curve_volumes and (step % t.curve_every == 0 or step == t.iterations - 1):
                        record["test_dice_curve"] = self._validation_dice(
                            method, curve_volumes, self._curve_eval()
                        )
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    monitor.log(record)
                    bar.set_postfix(loss=f"{record['loss']:.3f}")
                if (step + 1) % t.checkpoint_every == 0 and step + 1 < t.iterations:
                    runner.check_finite()
                    self._save_checkpoint(ckpt_path, step + 1, method, runner.optimizer, runner.extra_opts)
                t_wait = time.perf_counter()
            runner.check_finite()
            self._flops_per_step = runner.flops_per_step
        finally:
            log.close()
            monitor.close()
            bar.close()
        train_wall = time.perf_counter() - wall0
        write_progress_png(self.out_dir, self._log_records(), f"{cfg.run_name()} on {self.dataset.name}")
        train_peak = peak_memory_mb(self.device)
        save_torch(
            self.out_dir / WEIGHTS_FILE,
            {"method": cfg.method, "run_id": cfg.run_id(), "state": method.state_dict()},
        )
        reset_peak_memory(self.device)
        t_eval = time.perf_counter()
        metrics = self.evaluate(method)
        timings = {
            "setup_s": setup_s,
            "loop_s": train_wall - setup_s,
            "train_wall_s": train_wall,
            "eval_s": time.perf_counter() - t_eval,
            "total_wall_s": time.perf_counter() - wall0,
        }
        memory = {"train": train_peak, "eval": peak_memory_mb(self.device)}
        metrics["cost"] = self._cost(clock.times(), wait_times, passes, timings, memory, metrics)
        metrics["resumed_from_step"] = start
        write_json(self.out_dir / METRICS_FILE, metrics)
        ckpt_path.unlink(missing_ok=True)
        return metrics

    def _validation_volumes(self) -> list:
        """The held-out training cases of `train.val_every` (never a test case): the last `train.val_cases` of
        train.list that the split leaves out; none (and a note) when the split uses every training case."""
        t = self.cfg.train
        if not t.val_every:
            return []
        used = set(self.labeled_ids) | set(self.unlabeled_ids)
        spare = [c for c in self.dataset.train_ids if c not in used][-t.val_cases :]
        if not spare:
            print(
                f"note: train.val_every={t.val_every}: split {self.cfg.split} uses every training case of "
                f"{self.dataset.name}, so there is nothing to validate on (the test set is never used)",
                file=sys.stderr,
            )
        return self.dataset.volumes(spare)

    def _curve_eval(self):
        """The learning curve's cheap sliding window: non-overlapping windows (stride = the patch)."""
        patch = self.cfg.data.patch
        return replace(self.cfg.eval, stride_xy=min(patch[0], patch[1]), stride_z=patch[2])

    @torch.no_grad()
    def _validation_dice(self, method: Method, volumes: list, eval_cfg=None) -> float:
        """Mean Dice of the current weights on `volumes` (eval mode; no randomness is consumed, so the run's
        numbers are those of a run without it)."""
        from sslbench.benchmark.evaluation.metrics import foreground_dice

        method.eval()
        try:
            scores = [
                foreground_dice(
                    predict_mask(self.predictor(method), v.image, tuple(self.cfg.data.patch),
                                 eval_cfg or self.cfg.eval, self.device, n_classes(self.dataset)),
                    v.label,
                    n_classes(self.dataset),
                )
                for v in volumes
            ]  # fmt: skip
        finally:
            method.train()
        return float(np.mean(scores))

    def _log_records(self) -> list[dict[str, Any]]:
        """The run's log.jsonl records (all of them, also those written before a resume)."""
        path = self.out_dir / LOG_FILE
        if not path.is_file():
            return []
        records = []
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records

    def evaluate(
        self, method: Method, volumes: list | None = None, write: bool = True, into: Path | None = None
    ) -> dict:
        """Sliding-window evaluation on the test cases (or `volumes`); writes cases.csv into the run folder (or
        `into`) unless `write` is False."""
        method.eval()
        vols = self.dataset.volumes(self.dataset.test_ids) if volumes is None else volumes
        cases = evaluate_cases(
            self.predictor(method),
            vols,
            tuple(self.cfg.data.patch),
            self.cfg.eval,
            self.dataset.spacing,
            self.device,
            n_classes=n_classes(self.dataset),
            progress=self.progress,
        )
        if write:
            write_text(Path(into or self.out_dir) / CASES_FILE, cases.to_csv(index=False))
        return summarize_cases(cases)

    def unlabeled_per_batch(self) -> int:
        t = self.cfg.train
        return max(1, t.batch_size - t.labeled_bs) if self.unlabeled_ids else 0

    def _cost(self, step_times, wait_times, passes, timings: dict, memory: dict, metrics: dict) -> dict:
        """The cost block of metrics.json (the tables' cost columns read it)."""
        warm = step_times[min(WARMUP_STEPS, len(step_times) - 1) :] if step_times else []
        return {
            "sec_per_iter_median": float(np.median(warm)) if warm else None,
            "sec_per_iter_p90": float(np.percentile(warm, 90)) if warm else None,
            "warmup_steps": min(WARMUP_STEPS, max(len(step_times) - 1, 0)),
            "timed_steps": len(warm),
            "data_wait_per_iter": float(np.median(wait_times)) if wait_times else None,
            "data_wait_mean": float(np.mean(wait_times)) if wait_times else None,
            "forward_passes": passes,
            "forward_passes_total": float(sum(passes.values())) if passes else None,
            "unlabeled_per_batch": self.unlabeled_per_batch(),
            "peak_memory_mb": memory["train"],
            "eval_peak_memory_mb": memory["eval"],
            "memory_kind": "cuda_max_allocated" if self.device.type == "cuda" else "cpu_peak_rss",
            "eval_s_per_volume": metrics.get("eval_s_per_volume"),
            "metric_s_per_volume": metrics.get("metric_s_per_volume"),
            **timings,
            "device": str(self.device),
            "device_name": environment(self.device)["device_name"],
            "fast_paths": self.fast_paths,
            "parameters": self._parameters,
            "flops_per_step": self._flops_per_step,
            "machine_load": contention(self._load_start, machine_load(), self.cfg.train.threads),
        }

    # --- checkpoints -----------------------------------------------------------------------------------
    def _save_checkpoint(self, path: Path, next_step: int, method, optimizer, extra_opts) -> None:
        save_torch(
            path,
            {
                "run_id": self.cfg.run_id(),
                "method": self.cfg.method,
                "next_step": next_step,
                "method_state": method.state_dict(),
                "optimizer": optimizer.state_dict(),
                "extra_optimizers": [o.state_dict() for o in extra_opts],
                "rng": rng_state(),
            },
        )

    def _load_checkpoint(self, path: Path, method, optimizer, extra_opts) -> int:
        try:
            ckpt = torch.load(path, map_location=self.device, weights_only=False)
            if not isinstance(ckpt, dict):
                raise TypeError(f"a {type(ckpt).__name__}, not a checkpoint")
        except Exception as exc:  # torch raises many kinds for a truncated file
            # A damaged checkpoint holds nothing to continue from: train from step 0, keeping the file aside.
            aside = path.with_name(f"{path.name}.unreadable-{utc_stamp()}")
            path.rename(aside)
            print(
                f"{path}: unreadable checkpoint ({type(exc).__name__}); training from step 0 (kept as {aside.name})",
                file=sys.stderr,
            )
            return 0
        if ckpt.get("method") != self.cfg.method or ckpt.get("run_id") != self.cfg.run_id():
            raise RunFailed(
                f"{path}: checkpoint is from another run (method {ckpt.get('method')}, id {ckpt.get('run_id')}); "
                f"this run is {self.cfg.method} {self.cfg.run_id()}"
            )
        method.load_state_dict(ckpt["method_state"])
        optimizer.load_state_dict(ckpt["optimizer"])
        for opt, state in zip(extra_opts, ckpt["extra_optimizers"], strict=True):
            opt.load_state_dict(state)
        set_rng_state(ckpt["rng"])
        self._truncate_log(ckpt["next_step"])
        return int(ckpt["next_step"])

    def _truncate_log(self, next_step: int) -> None:
        """Drop log lines written after the checkpoint, so a resumed log has each step once."""
        path = self.out_dir / LOG_FILE
        if not path.is_file():
            return
        keep = []
        for line in path.read_text(errors="replace").splitlines():
            try:
                step = json.loads(line)["step"]
            except (ValueError, KeyError, TypeError):  # a line cut by a crash, or garbage: dropped
                continue
            if isinstance(step, int) and step < next_step:
                keep.append(line)
        write_text(path, "".join(k + "\n" for k in keep))


def prepare_assets(cfg: RunConfig, progress: bool = False) -> dict:
    """Build (or load from the cache) what a run's method needs before training, e.g. lrep's DAE.

    Sweeps call this once per distinct `Method.asset_key` before the runs that need it. Returns what config.json
    records about each asset.
    """
    return Trainer(cfg, Path("."), progress).prepare()[1]


def asset_key(cfg: RunConfig) -> str | None:
    """The method's key for the assets of run `cfg` (None: it prepares nothing). Opens the dataset's lists."""
    cls = get_method(cfg.method).cls
    if cls.asset_key.__func__ is Method.asset_key.__func__:
        return None  # the default: nothing to prepare (and no dataset to open)
    dataset = dataset_for(cfg)
    labeled, unlabeled = split_ids(cfg, dataset)
    ctx = method_context(cfg, dataset, labeled, unlabeled, resolve_device(cfg.train.device))
    return cls.asset_key(cfg.method_cfg, ctx)


def train_run(cfg: RunConfig, out_dir: Path, progress: bool = True, resume: bool = False) -> dict:
    """Train and evaluate one run into `out_dir` under its lock (runs/lock.py); returns the metrics dict.

    Raises:
        RunBusy: another live process holds the run's lock.
        AlreadyFinished: the folder holds a finished run.
    """
    from sslbench.benchmark.runs.lock import run_lock

    with run_lock(out_dir):
        return Trainer(cfg, out_dir, progress).run(resume=resume)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text).strip("-")[:40] or "data"


def evaluate_run(
    run_dir: Path, data_root: str | None = None, progress: bool = True, force: bool = False
) -> tuple[dict, Path, bool]:
    """Evaluate a finished run's final weights (optionally on another data folder) into a sibling folder.

    The run folder is never written: results go to `RUN.eval-<dataset>-<hash>/` (eval.json: what was evaluated;
    cases.csv; metrics.json last), the hash covering the run id, the data folder, its content fingerprint and the
    evaluation settings. An existing complete evaluation is returned as it is unless `force` (which sets it aside).

    Returns:
        (metrics, the evaluation folder, whether it was computed now).
    """
    from sslbench.benchmark.runs.folder import load_run
    from sslbench.datasets.fingerprint import data_fingerprint

    run_dir = Path(run_dir).resolve()
    run = load_run(run_dir, data_root)
    dataset = run.trainer.dataset
    what = {
        "run": str(run_dir),
        "run_id": run.record.get("run_id"),
        "data_root": str(dataset.root),
        "data_fingerprint": data_fingerprint(dataset.root),
        "dataset": dataset.describe(),
        "eval": run.cfg.to_dict()["eval"],
    }
    key = {k: what[k] for k in ("run_id", "data_root", "data_fingerprint", "eval")}
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]
    eval_dir = run_dir.with_name(f"{run_dir.name}{EVAL_TAG}{_slug(dataset.name)}-{digest}")
    if eval_dir.exists():
        metrics, why = read_metrics(eval_dir)
        if metrics is not None and not force:
            return metrics, eval_dir, False
        set_aside(eval_dir)
    run.trainer.progress = progress
    eval_dir.mkdir(parents=True)
    write_json(
        eval_dir / EVAL_FILE,
        {**what, "when": utc_stamp(), "code": code_version(), "execution": run.trainer.execution()},
    )
    metrics = run.trainer.evaluate(run.method, into=eval_dir)
    write_json(eval_dir / METRICS_FILE, metrics)
    return metrics, eval_dir, True
