"""The per-run lock: one process trains a run folder at a time, whichever sweep or command started it.

`RUN/.lock` is created with O_CREAT | O_EXCL (atomic on local filesystems and NFSv3+) and holds the host, PID
and start time of its owner. A second process that finds it skips the run ("running elsewhere"). A lock whose
owner is gone (its PID no longer exists on this host) is stale: it is taken over, with a message. A lock of
another host cannot be checked from here and counts as held; delete it by hand once that process is gone.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from sslbench.benchmark.runs.folder import LOCK_FILE
from sslbench.benchmark.training.errors import RunFailed

# A lock file is written right after it is created; one still empty this long after is left-over damage.
UNWRITTEN_GRACE_S = 30.0


class RunBusy(RunFailed):
    """Another live process holds the run's lock (`owner`: what the lock says)."""

    def __init__(self, message: str, owner: dict | None = None):
        super().__init__(message)
        self.owner = owner or {}


def read_lock(run_dir: Path) -> dict | None:
    """The lock's owner ({host, pid, started, token}), {} for an unreadable lock, None when there is none."""
    path = Path(run_dir) / LOCK_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A killed process its parent has not reaped yet still answers kill(pid, 0), but holds nothing (Linux).

    Seen with a SIGKILLed Dask worker: the scheduler reschedules its run at once, before the worker is reaped.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def is_stale(run_dir: Path, owner: dict) -> bool:
    """True when the lock's owner is certainly gone: a dead PID on this host, or a lock never written."""
    if not owner:
        try:
            age = time.time() - (Path(run_dir) / LOCK_FILE).stat().st_mtime
        except FileNotFoundError:
            return True
        return age > UNWRITTEN_GRACE_S
    if owner.get("host") != platform.node():
        return False
    try:
        return not _pid_alive(int(owner.get("pid")))
    except (TypeError, ValueError):
        return True


def describe_owner(owner: dict) -> str:
    if not owner:
        return "an unreadable lock"
    return f"host {owner.get('host')}, pid {owner.get('pid')}, since {owner.get('started')}"


def live_owner(run_dir: Path) -> dict | None:
    """The owner of a held lock, or None when the run is free (no lock, or a stale one)."""
    owner = read_lock(run_dir)
    if owner is None or is_stale(run_dir, owner):
        return None
    return owner


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def acquire(run_dir: Path, say: Callable[[str], None] = _say) -> dict:
    """Create `run_dir/.lock` for this process; take over a stale one. Raises RunBusy when it is held."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    mine = {
        "host": platform.node(),
        "pid": os.getpid(),
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "token": uuid.uuid4().hex,
    }
    for _ in range(5):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = read_lock(run_dir)
            if owner is not None and not is_stale(run_dir, owner):
                raise RunBusy(
                    f"{run_dir}: running elsewhere ({describe_owner(owner)}); if that process is gone, "
                    f"delete {path}",
                    owner,
                ) from None
            if owner is not None:
                say(f"{path}: stale lock ({describe_owner(owner)}, no such process); taking it over")
                # Rename, then remove: of two processes taking over at once, only one rename succeeds.
                aside = path.with_name(f"{LOCK_FILE}.stale-{mine['token']}")
                with contextlib.suppress(FileNotFoundError):
                    os.rename(path, aside)
                    aside.unlink()
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(mine, f)
            f.flush()
            os.fsync(f.fileno())
        return mine
    raise RunBusy(f"{run_dir}: could not take the lock {path} (another process keeps taking it)")


def release(run_dir: Path, mine: dict) -> None:
    """Remove the lock if it is still this process's (a taken-over stale lock is someone else's now)."""
    owner = read_lock(run_dir)
    if owner and owner.get("token") == mine.get("token"):
        with contextlib.suppress(FileNotFoundError):
            (Path(run_dir) / LOCK_FILE).unlink()


@contextlib.contextmanager
def run_lock(run_dir: Path, say: Callable[[str], None] = _say) -> Iterator[dict]:
    """Hold the run's lock for the `with` block (released on any exit, including KeyboardInterrupt)."""
    mine = acquire(run_dir, say)
    try:
        yield mine
    finally:
        release(run_dir, mine)
