"""The one training loop every method plugs into, and the run folder it writes.

A run folder holds: config.json (resolved config, code version, environment, split case ids), log.jsonl
(losses every `log_every` steps), checkpoint.pt (every `checkpoint_every` steps, atomic), model.pt (final
weights), cases.csv (per-case metrics) and metrics.json (written last: its presence means the run finished).
"""

from __future__ import annotations

import json
import math
import random
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from sslbench.benchmark.config import ConfigError, RunConfig
from sslbench.benchmark.environment import code_version, environment
from sslbench.benchmark.evaluate import evaluate_cases, summarize
from sslbench.benchmark.io import read_json, save_torch, write_json, write_text
from sslbench.benchmark.passes import count_passes
from sslbench.datasets.batches import TwoStreamBatches, to_tensors
from sslbench.datasets.la import LADataset, open_dataset
from sslbench.datasets.splits import parse_split
from sslbench.methods.base import Batch, Method, MethodContext
from sslbench.methods.registry import get_method


class RunFailed(RuntimeError):
    """A run stopped on purpose (non-finite loss, incompatible checkpoint...); the message says why."""


@dataclass
class RunResources:
    """What `Method.prepare_assets` may use: the data of this run only (never test labels)."""

    cfg: RunConfig
    dataset: LADataset
    labeled_ids: list[str]
    unlabeled_ids: list[str]
    device: torch.device
    cache_dir: Path
    progress: bool = False
    info: dict[str, Any] = field(default_factory=dict)  # what the assets want recorded in config.json

    def cached(self, kind: str, key: dict[str, Any], build) -> Any:
        """Return `build()`'s result, stored once per `key` under the cache folder and reused afterwards.

        `key` must name everything the asset depends on (dataset, split ids, seed, config); the methods package
        stays free of file IO by handing its builder to this function. Writes are atomic, so parallel sweep
        workers at worst build the same asset twice and never read half of one.
        """
        import hashlib

        digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
        path = self.cache_dir / kind / f"{digest}.pt"
        self.info[kind] = {"cache": str(path), "key": key}
        if path.is_file():
            try:
                return torch.load(path, map_location="cpu", weights_only=False)["asset"]
            except Exception:  # a corrupt cache entry is rebuilt, never trusted
                path.unlink(missing_ok=True)
        asset = build()
        save_torch(path, {"key": key, "asset": asset})
        (path.parent / f"{digest}.json").write_text(json.dumps(key, indent=2, default=str))
        return asset


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RunFailed(f"train.device={name}: CUDA is not available on this machine")
    return device


def dataset_for(cfg: RunConfig) -> LADataset:
    if cfg.data.root is None:
        from sslbench.datasets.default import default_data_root

        return open_dataset(default_data_root(), cfg.data.spacing)
    return open_dataset(cfg.data.root, cfg.data.spacing)


def cache_dir() -> Path:
    import os

    return Path(os.environ.get("SSLBENCH_CACHE", Path.home() / ".cache" / "sslbench"))


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


def lr_at(cfg: RunConfig, step: int) -> float:
    t = cfg.train
    if t.lr_policy == "step":
        every = t.lr_step or max(1, round(t.iterations * 2500 / 6000))
        return t.lr * t.lr_gamma ** (step // every)
    if t.lr_policy == "cosine":
        t_max = t.iterations + t.cosine_extra
        return t.lr * 0.5 * (1.0 + math.cos(math.pi * min(step, t_max) / t_max))
    return t.lr * (1.0 - step / t.iterations) ** 0.9  # poly (SSL4MIS)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # ru_maxrss is in KiB on Linux: the peak resident set of this process.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    def __init__(self, cfg: RunConfig, out_dir: Path, progress: bool = True):
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.progress = progress
        self.device = resolve_device(cfg.train.device)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        self.info = get_method(cfg.method)
        self.dataset = dataset_for(cfg)
        split = parse_split(cfg.split)
        try:
            self.labeled_ids, self.unlabeled_ids = split.resolve(self.dataset.train_ids)
        except ValueError as exc:
            raise ConfigError(f"--split {cfg.split} on {self.dataset.root}: {exc}") from None
        # Read (and validate) every volume the run will touch now, not after hours of training.
        self.dataset.volumes(self.labeled_ids + self.unlabeled_ids + self.dataset.test_ids)

    # ---------------------------------------------------------------------------------------------------
    def build_method(self) -> Method:
        cfg = self.cfg
        resources = RunResources(
            cfg, self.dataset, self.labeled_ids, self.unlabeled_ids, self.device, cache_dir(), self.progress
        )
        assets = self.info.cls.prepare_assets(cfg.method_cfg, resources)
        self.asset_info = resources.info
        ctx = MethodContext(
            n_classes=2,
            n_filters=cfg.train.n_filters,
            normalization=cfg.train.normalization,
            patch=tuple(cfg.data.patch),
            n_labeled=len(self.labeled_ids),
            n_unlabeled=len(self.unlabeled_ids),
            rampup=cfg.train.rampup,
            rampup_length=cfg.train.rampup_length,
            assets=assets,
        )
        return self.info.cls(cfg.method_cfg, ctx).to(self.device)

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
            targets_fn=self.info.cls.batch_targets,
            length=t.iterations,
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
            assets=getattr(self, "asset_info", {}),
        )
        write_json(self.out_dir / "config.json", record)

    # ---------------------------------------------------------------------------------------------------
    def run(self, resume: bool = False) -> dict:
        cfg, t = self.cfg, self.cfg.train
        wall0 = time.perf_counter()
        seed_everything(cfg.seed, t.deterministic)
        method = self.build_method()
        optimizer = torch.optim.SGD(
            method.trainable_parameters(), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay
        )
        extra_opts = method.extra_optimizers()
        start, step_times, wait_times = 0, [], []
        ckpt_path = self.out_dir / "checkpoint.pt"
        # Validate a checkpoint before touching anything in the folder: a refused resume changes nothing.
        if resume and ckpt_path.is_file():
            start = self._load_checkpoint(ckpt_path, method, optimizer, extra_opts)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "metrics.json").unlink(missing_ok=True)
        if start == 0:
            (self.out_dir / "log.jsonl").unlink(missing_ok=True)
        self.write_config()
        method.train()
        loader = DataLoader(
            self.batches(),
            batch_size=None,
            sampler=range(start, t.iterations),
            num_workers=cfg.data.num_workers,
            collate_fn=to_tensors,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            # Its own generator: a DataLoader otherwise draws its base seed from the global torch RNG when the
            # iterator starts, which would shift dropout/noise draws of a resumed run against an uninterrupted one.
            generator=torch.Generator().manual_seed(cfg.seed),
        )
        autocast = torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=t.amp and self.device.type == "cuda"
        )
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
        log = open(self.out_dir / "log.jsonl", "a")  # noqa: SIM115 (kept open for the whole loop)
        try:
            t_wait = time.perf_counter()
            for step, arrays in zip(range(start, t.iterations), loader, strict=True):
                t_step = time.perf_counter()
                wait_times.append(t_step - t_wait)
                batch = Batch(
                    arrays["x_l"],
                    arrays["y_l"],
                    arrays["x_u"],
                    {k[6:]: v for k, v in arrays.items() if k.startswith("extra_")},
                )
                batch = batch.to(self.device, non_blocking=True)
                lr = lr_at(cfg, step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                if step == start:
                    with count_passes(method) as passes, autocast:
                        out = method.train_step(batch, step, t.iterations)
                else:
                    with autocast:
                        out = method.train_step(batch, step, t.iterations)
                loss = out["loss"]
                if not torch.isfinite(loss):
                    terms = {
                        k: float(v.detach()) for k, v in out.items() if torch.is_tensor(v) and v.numel() == 1
                    }
                    raise RunFailed(f"non-finite loss at step {step}: {terms}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                method.on_after_optimizer_step(step)
                if extra_opts:
                    out.update(method.extra_step(batch, step, t.iterations, extra_opts))
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                step_times.append(time.perf_counter() - t_step)
                bar.update(1)
                if step % t.log_every == 0 or step == t.iterations - 1:
                    record = {"step": step, "lr": lr}
                    record.update(
                        {
                            k: float(v.detach())
                            for k, v in out.items()
                            if torch.is_tensor(v) and v.numel() == 1
                        }
                    )
                    record["sec_per_iter"] = step_times[-1]
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    bar.set_postfix(loss=f"{record['loss']:.3f}")
                if (step + 1) % t.checkpoint_every == 0 and step + 1 < t.iterations:
                    self._save_checkpoint(ckpt_path, step + 1, method, optimizer, extra_opts)
                t_wait = time.perf_counter()
        finally:
            log.close()
            bar.close()
        train_wall = time.perf_counter() - wall0
        save_torch(
            self.out_dir / "model.pt",
            {"method": cfg.method, "run_id": cfg.run_id(), "state": method.state_dict()},
        )
        metrics = self.evaluate(method)
        metrics["cost"] = self._cost(
            step_times, wait_times, passes, train_wall, metrics, time.perf_counter() - wall0
        )
        metrics["resumed_from_step"] = start
        write_json(self.out_dir / "metrics.json", metrics)
        ckpt_path.unlink(missing_ok=True)
        return metrics

    def evaluate(self, method: Method) -> dict:
        method.eval()
        vols = self.dataset.volumes(self.dataset.test_ids)
        cases = evaluate_cases(
            method.predict,
            vols,
            tuple(self.cfg.data.patch),
            self.cfg.eval,
            self.dataset.spacing,
            self.device,
            progress=self.progress,
        )
        write_text(self.out_dir / "cases.csv", cases.to_csv(index=False))
        return summarize(cases)

    def _cost(self, step_times, wait_times, passes, train_wall, metrics, total_wall) -> dict:
        warm = step_times[min(5, len(step_times) - 1) :] if step_times else []
        n_u = max(1, self.cfg.train.batch_size - self.cfg.train.labeled_bs) if self.unlabeled_ids else 0
        return {
            "sec_per_iter_median": float(np.median(warm)) if warm else None,
            "sec_per_iter_p90": float(np.percentile(warm, 90)) if warm else None,
            "data_wait_per_iter": float(np.median(wait_times)) if wait_times else None,
            "forward_passes": passes,
            "forward_passes_total": float(sum(passes.values())) if passes else None,
            "unlabeled_per_batch": n_u,
            "peak_memory_mb": _peak_memory_mb(self.device),
            "memory_kind": "cuda_max_allocated" if self.device.type == "cuda" else "cpu_peak_rss",
            "eval_s_per_volume": metrics.get("eval_s_per_volume"),
            "train_wall_s": train_wall,
            "total_wall_s": total_wall,
            "device": str(self.device),
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
                "rng": _rng_state(),
            },
        )

    def _load_checkpoint(self, path: Path, method, optimizer, extra_opts) -> int:
        try:
            ckpt = torch.load(path, map_location=self.device, weights_only=False)
        except Exception as exc:
            raise RunFailed(f"{path}: cannot read checkpoint ({exc})") from None
        if ckpt.get("method") != self.cfg.method or ckpt.get("run_id") != self.cfg.run_id():
            raise RunFailed(
                f"{path}: checkpoint is from another run (method {ckpt.get('method')}, id {ckpt.get('run_id')}); "
                f"this run is {self.cfg.method} {self.cfg.run_id()}"
            )
        method.load_state_dict(ckpt["method_state"])
        optimizer.load_state_dict(ckpt["optimizer"])
        for opt, state in zip(extra_opts, ckpt["extra_optimizers"], strict=True):
            opt.load_state_dict(state)
        _set_rng_state(ckpt["rng"])
        self._truncate_log(ckpt["next_step"])
        return int(ckpt["next_step"])

    def _truncate_log(self, next_step: int) -> None:
        """Drop log lines written after the checkpoint, so a resumed log has each step once."""
        path = self.out_dir / "log.jsonl"
        if not path.is_file():
            return
        keep = [
            ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] < next_step
        ]
        write_text(path, "".join(k + "\n" for k in keep))


def prepare_assets(cfg: RunConfig, progress: bool = False) -> dict:
    """Build (or load from the cache) what a run's method needs before training, e.g. lrep's DAE.

    Sweeps call this once per distinct `Method.asset_key` before the runs that need it.
    """
    trainer = Trainer(cfg, Path("."), progress)
    resources = RunResources(
        cfg,
        trainer.dataset,
        trainer.labeled_ids,
        trainer.unlabeled_ids,
        trainer.device,
        cache_dir(),
        progress,
    )
    trainer.info.cls.prepare_assets(cfg.method_cfg, resources)
    return resources.info


def train_run(cfg: RunConfig, out_dir: Path, progress: bool = True, resume: bool = False) -> dict:
    """Train and evaluate one run into `out_dir`; returns the metrics dict."""
    return Trainer(cfg, out_dir, progress).run(resume=resume)


def evaluate_run(run_dir: Path, data_root: str | None = None, progress: bool = True) -> dict:
    """Re-evaluate a finished run's final weights (optionally on another data folder)."""
    from sslbench.benchmark.config import config_from_dict

    run_dir = Path(run_dir)
    record = read_json(run_dir / "config.json")
    cfg = config_from_dict(record)
    if data_root is not None:
        from dataclasses import replace

        cfg = replace(cfg, data=replace(cfg.data, root=str(data_root)))
    weights = run_dir / "model.pt"
    if not weights.is_file():
        raise RunFailed(f"{weights}: no final weights (did the run finish?)")
    trainer = Trainer(cfg, run_dir, progress)
    method = trainer.build_method()
    state = torch.load(weights, map_location=trainer.device, weights_only=False)
    if state.get("method") != cfg.method:
        raise RunFailed(
            f"{weights}: weights are from method '{state.get('method')}', config says '{cfg.method}'"
        )
    method.load_state_dict(state["state"])
    return trainer.evaluate(method)
