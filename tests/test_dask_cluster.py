"""The path a lab uses: a `dask scheduler` and two `dask worker` processes on localhost, a smoke sweep sent to
them with --scheduler, every run written once, the table equal to a local sweep's, and a worker killed mid-run
whose run Dask itself reschedules on the other worker."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sslbench.benchmark.sweep.grid import expand_grid
from sslbench.benchmark.sweep.runner import run_sweep

DASK = Path(sys.executable).with_name("dask")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_workers(address: str, n: int, timeout: float = 90.0) -> None:
    from dask.distributed import Client

    with Client(address, timeout="30s") as client:
        client.wait_for_workers(n, timeout=timeout)


@pytest.fixture
def cluster(tmp_path):
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    logs = tmp_path / "dask-logs"
    logs.mkdir()
    procs = [
        subprocess.Popen(
            [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            env=env,
            stdout=(logs / "scheduler.log").open("w"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    ]
    time.sleep(2)
    for i in range(2):
        procs.append(
            subprocess.Popen(
                [
                    str(DASK),
                    "worker",
                    address,
                    "--nthreads",
                    "1",
                    "--no-nanny",
                    "--no-dashboard",
                    "--name",
                    f"w{i}",
                ],
                env=env,
                stdout=(logs / f"worker{i}.log").open("w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        )
    try:
        _wait_for_workers(address, 2)
        yield address, procs[1:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def _dice(outcomes) -> dict[str, float]:
    return {o.run_dir.name: o.metrics["dice"] for o in outcomes}


@pytest.mark.slow
def test_sweep_on_scheduler_and_worker_processes_with_a_worker_killed(cluster, tiny_data, tmp_path):
    address, workers = cluster
    sets = {"train.threads": "1", "train.iterations": "40", "train.checkpoint_every": "10"}
    configs = expand_grid("sup,mt", ["4/4"], [1, 2], "smoke", sets, str(tiny_data))
    local = run_sweep(configs, tmp_path / "local", jobs=1, progress=False)
    assert [o.status for o in local] == ["done"] * len(configs)

    out = tmp_path / "dask"
    killer = None

    def kill_a_busy_worker():
        # Wait until a run is under way on the cluster (its log.jsonl appears), then kill worker 0 outright.
        deadline = time.time() + 120
        while time.time() < deadline and not list(out.glob("*/log.jsonl")):
            time.sleep(0.2)
        os.killpg(workers[0].pid, signal.SIGKILL)

    import threading

    killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
    killer.start()
    remote = run_sweep(configs, out, backend="dask", scheduler=address, progress=False)
    killer.join(timeout=5)
    assert workers[0].poll() is not None, "the worker was not killed during the sweep"
    assert [o.status for o in remote] == ["done"] * len(configs), [o.error for o in remote]
    run_dirs = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert run_dirs == sorted(c.run_name() for c in configs)  # every run written once, no stray folders
    assert _dice(remote) == _dice(local)  # the same numbers as the local sweep
    for o in remote:
        assert json.loads((o.run_dir / "metrics.json").read_text())["dice"] == o.metrics["dice"]


def test_a_killed_but_unreaped_lock_owner_counts_as_dead():
    """A process killed but not yet reaped by its parent (a zombie) still answers kill(pid, 0)."""
    from sslbench.benchmark.runs.lock import _pid_alive

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.time() + 30
    while time.time() < deadline and _pid_alive(child.pid):
        time.sleep(0.05)
    try:
        os.kill(child.pid, 0)  # still there (unreaped) ...
        assert not _pid_alive(child.pid)  # ... but not alive
    finally:
        child.wait()
    assert _pid_alive(os.getpid())
