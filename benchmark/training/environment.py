"""What a run records about the code and machine that produced it."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import torch


def code_version() -> dict:
    """The git commit of the checkout (and whether it had local changes), or the package version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        pkg = version("sslbench")
    except PackageNotFoundError:
        pkg = "unknown"
    info = {"package": pkg, "commit": None, "dirty": None}
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
        info.update(commit=commit, dirty=bool(status.strip()))
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def environment(device: torch.device) -> dict:
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "host": platform.node(),
    }
    return env
