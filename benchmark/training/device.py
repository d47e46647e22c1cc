"""Where and how a run computes: the device, the backends' switches, threads, loader workers, peak memory, RNG state."""

from __future__ import annotations

import contextlib
import os
import random
import resource
from pathlib import Path

import numpy as np
import torch

from sslbench.benchmark.training.errors import RunFailed


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RunFailed(f"train.device={name}: CUDA is not available on this machine")
    return device


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    configure_backends(deterministic)


def configure_backends(deterministic: bool) -> None:
    """cuDNN autotuning (the fastest convolution algorithm per shape, found on first use) unless determinism is
    asked for: `train.deterministic=true` switches autotuning off and picks deterministic algorithms."""
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_workers(num_workers: int, device: torch.device, threads: int = 0) -> int:
    """`data.num_workers`, where -1 means auto: 0 on CPU, min(4, cores) on CUDA.

    On a CPU-only machine loader workers take cores from the training threads (measured on 2 cores: no faster,
    see the perf notes in benchmark/perf/timing.py); on a GPU machine they build the next batches while the GPU trains.
    `threads` (`train.threads`, set by sweeps that pack several runs on one machine) caps the cores counted.
    """
    if num_workers >= 0:
        return num_workers
    return min(4, threads or usable_cores()) if device.type == "cuda" else 0


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak-memory window, so a process that runs several methods reports each one's own peak."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    # Linux: writing 5 resets the peak resident set (VmHWM, and with it ru_maxrss) to the current one. Elsewhere
    # the CPU figure stays the peak of the whole process.
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: the most memory held by tensors since the last reset. CPU: the peak resident set of this process."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def machine_load() -> float | None:
    """The 1-minute load average (runnable processes), or None where the OS does not report it."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def contention(load_start: float | None, load_end: float | None, threads: int) -> dict:
    """The machine's load around a run, and whether its timings were measured under contention: a load above
    the usable cores (plus half a core of slack) at the start or the end means other work shared the CPUs."""
    cores = usable_cores()
    loads = [v for v in (load_start, load_end) if v is not None]
    return {
        "cores": cores,
        "threads": threads or None,
        "load_start": load_start,
        "load_end": load_end,
        "contended": bool(loads) and max(loads) > cores + 0.5,
    }


def parameter_counts(method) -> dict[str, int]:
    """Trainable parameters of the method's main optimiser, and every parameter it holds (teachers, DAE...):
    figures no machine load can distort."""
    trainable = sum(p.numel() for p in method.trainable_parameters() if p.requires_grad)
    return {"trainable": int(trainable), "total": int(sum(p.numel() for p in method.parameters()))}
