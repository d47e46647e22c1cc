"""`bench status OUT`: finished, running (lock owner), partial (last checkpoint), failed and damaged runs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click

from sslbench.benchmark.cli.common import friendly_errors
from sslbench.benchmark.config import ConfigError


@click.command("status")
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--only", type=click.Choice(["finished", "running", "partial", "failed", "damaged"]), default=None
)
@friendly_errors
def status(out: Path, only: str | None) -> None:
    """List the runs below OUT: finished (Dice), running (host, pid, since), partial (checkpoint step), failed
    (the reason) and damaged (which file). Reads only; changes nothing."""
    from sslbench.benchmark.runs.status import STATES, survey

    if not out.is_dir():
        raise ConfigError(f"OUT {out}: not a folder")
    states = survey(out)
    for s in states:
        if only in (None, s.state):
            click.echo(f"{s.state:<9} {s.run_dir.relative_to(out)}  {s.detail}")
    counts = Counter(s.state for s in states)
    click.echo(", ".join(f"{counts[k]} {k}" for k in STATES) + f"  ({len(states)} run folders in {out})")
