"""The Dask executor of a sweep: the same tasks on an existing dask.distributed cluster (or a local one)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace

from sslbench.benchmark.config import ConfigError, RunConfig
from sslbench.benchmark.runs.folder import RunOutcome
from sslbench.benchmark.sweep.local import PendingRun, cpu_cores, infra_failure, pin_slot
from sslbench.benchmark.sweep.tasks import one_line, prepare_task, run_task


def run_dask(
    pending: list[PendingRun],
    prepares: dict[str, RunConfig],
    scheduler: str | None,
    jobs: int | None,
    on_done: Callable[[RunOutcome], None],
) -> None:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ConfigError(
            "--backend dask needs Dask's distributed scheduler: pip install 'sslbench[cluster]' "
            "(or pip install 'dask[distributed]')"
        ) from None

    cluster = None
    try:
        if scheduler:
            client = Client(scheduler, timeout="20s")
        else:  # no address: a throw-away cluster of this machine's processes
            n = jobs or 1
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
            threads = max(1, cpu_cores() // n) if n > 1 else 0
            pending = [replace(p, cfg=pin_slot(p.cfg, None, threads)) for p in pending]
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--scheduler {scheduler}: cannot connect to the Dask scheduler ({exc})") from None
    token = uuid.uuid4().hex[:8]  # keys unique per sweep, so a cluster never hands back an older result
    try:
        prep_futures = {
            key: client.submit(prepare_task, cfg, key=f"prepare-{i}-{token}", pure=False)
            for i, (key, cfg) in enumerate(prepares.items())
        }
        futures = {
            client.submit(
                run_task,
                p.cfg,
                str(p.run_dir),
                False,
                prep_futures.get(p.asset_key),
                key=f"run-{p.cfg.run_name()}-{token}",
                pure=False,
            ): p
            for p in pending
        }
        for fut in as_completed(futures):
            p = futures[fut]
            try:
                outcome = fut.result()
            except Exception as exc:  # a task lost with its workers (KilledWorker), a pickling error...
                outcome = infra_failure(p, f"dask task failed: {one_line(exc)}", exc)
            on_done(outcome)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
