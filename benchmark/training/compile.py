"""`train.compile`: torch.compile of each network, with a persistent cache, and eager where it cannot run.

Measured on the 2-core AMD EPYC development machine (quick preset, MT, one torch thread, interleaved in one
process, nothing else running): a compiled MT step takes 0.84x the eager channels-last step's time, but the first
step of a fresh process costs about 70 s of compilation with an empty cache and 5.5 s with a warm one. So the
cache lives under the run cache (`$SSLBENCH_CACHE/compile`, unless `TORCHINDUCTOR_CACHE_DIR` is set), where every
later run of the same networks and shapes (the other seeds of a sweep, a rerun) finds it, and compilation stays
opt-in: it pays back on runs of thousands of steps (la-half, paper), not on a 300-step quick run whose method
compiles for the first time.

Where it cannot run (no C++ compiler for the CPU backend, no Triton for CUDA) the networks stay eager, with one
line on stderr saying why, and the run records `compile: false` among its fast paths. Evaluation always runs the
eager forward (`eager_forward`): the sliding window's eval-mode, last-batch-smaller shapes would otherwise
recompile for minutes to save seconds. The compilation itself happens in the first training steps, which the
trainer leaves out of ms/iteration (`step.WARMUP_STEPS`), so it is never counted there.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import sys

import torch

from sslbench.datasets.default import cache_dir

CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


def compile_unavailable(device: torch.device) -> str | None:
    """Why torch.compile's default backend cannot run on `device` here, or None if it can."""
    if device.type == "cuda":
        try:
            from torch.utils._triton import has_triton
        except ImportError:  # pragma: no cover - every torch this project supports has it
            return "this torch build has no Triton check"
        return None if has_triton() else "Triton is not installed (torch.compile needs it for CUDA)"
    if device.type == "cpu":
        compilers = [os.environ.get("CXX"), "c++", "g++", "clang++"]
        if not any(c and shutil.which(c) for c in compilers):
            return "no C++ compiler on PATH (torch.compile's CPU backend needs one; set CXX or install g++)"
        return None
    return f"device {device.type} is not supported by this project's compile path"


def use_persistent_cache() -> str:
    """Point Inductor's on-disk caches at `$SSLBENCH_CACHE/compile` (a user's TORCHINDUCTOR_CACHE_DIR wins)."""
    if not os.environ.get(CACHE_ENV):
        folder = cache_dir() / "compile"
        folder.mkdir(parents=True, exist_ok=True)
        os.environ[CACHE_ENV] = str(folder)
    # On by default in current torch; set so that an older default cannot silently recompile every run.
    os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
    os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "1")
    return os.environ[CACHE_ENV]


@functools.cache
def _warn_once(reason: str) -> None:
    print(f"warning: train.compile=true: {reason}; the networks run eagerly", file=sys.stderr)


def compile_networks(method: torch.nn.Module, mode: str, device: torch.device) -> bool:
    """Compile each child network of `method` that has parameters, in place; False (and one warning) where
    torch.compile cannot run. In place (`nn.Module.compile`): parameter names, state dicts and checkpoints are
    those of the eager networks."""
    reason = compile_unavailable(device)
    if reason:
        _warn_once(reason)
        return False
    use_persistent_cache()
    for net in method.children():
        if any(True for _ in net.parameters()):
            net.compile(mode=mode)
    return True


def eager_forward() -> contextlib.AbstractContextManager:
    """Run compiled modules' original eager forward inside this block (evaluation, learning curves)."""
    return torch.compiler.set_stance("force_eager")
