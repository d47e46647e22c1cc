"""`bench perf`: time a few training steps of each method and the sliding-window evaluation on this machine."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import click

from sslbench.benchmark.cli.common import data_option, friendly_errors, preset_option, set_option
from sslbench.benchmark.config import ConfigError, parse_sets


@click.command("perf")
@click.option("--methods", default="all", show_default=True, help="'all' or comma-separated method names.")
@preset_option
@data_option
@click.option("--iters", type=int, default=10, show_default=True, help="Timed training steps per method.")
@click.option("--warmup", type=int, default=5, show_default=True, help="Untimed steps before them.")
@click.option("--eval-volumes", type=int, default=2, show_default=True,
              help="Test volumes for the sliding-window timing (0: skip).")  # fmt: skip
@click.option("--split", default="8/72", show_default=True,
              help="N/M (supervised methods use N/0); shrunk to fit a smaller dataset.")  # fmt: skip
@click.option("--vs-reference", is_flag=True,
              help="Instead: our MT step against the straightforward reference loop, and batched against "
                   "one-at-a-time sliding windows, interleaved A/B on this machine.")  # fmt: skip
@click.option("--repeats", type=int, default=6, show_default=True, help="A/B rounds for --vs-reference.")
@click.option("--reference-rounds", type=int, default=2, show_default=True,
              help="A/B rounds of each method's vs_reference column (0: skip it).")  # fmt: skip
@set_option
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of the table.")
@click.option("--save", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the JSON report here, rewritten after each method (kept if cut short).")  # fmt: skip
@friendly_errors
def perf(**opts) -> None:
    """Cost per method: ms/iteration, ratio to MT, forward passes, peak memory, ms per test volume.

    A benchmark, not a test: run it on an otherwise idle machine. Exits 1 if a method failed (its row says why).
    """
    from sslbench.benchmark.perf import timing as lib
    from sslbench.benchmark.runs.io import write_json

    o = SimpleNamespace(**opts)
    if o.iters < 1 or o.warmup < 0 or o.eval_volumes < 0 or o.repeats < 1 or o.reference_rounds < 0:
        raise ConfigError(
            "--iters and --repeats must be >= 1, --warmup, --eval-volumes and --reference-rounds >= 0"
        )
    sets = parse_sets(o.sets)
    if o.vs_reference:
        from sslbench.benchmark.perf.reference_loop import compare_reference, format_comparison

        result = compare_reference(o.preset, o.data_root, sets, o.iters, o.repeats, o.warmup, o.split)
        if o.save is not None:
            write_json(o.save, result)
        click.echo(json.dumps(result, indent=2) if o.as_json else format_comparison(result))
        return

    def progress(row: dict) -> None:
        if not o.as_json:
            state = f"failed ({row['error']})" if "error" in row else f"{row['ms_per_iter']:.1f} ms/iter"
            click.echo(f"  {row['method']}: {state}", err=True)

    report = lib.run_perf(
        o.methods,
        o.preset,
        o.data_root,
        o.iters,
        sets,
        o.split,
        o.warmup,
        o.eval_volumes,
        progress,
        o.save,
        o.reference_rounds,
    )
    click.echo(json.dumps(report, indent=2) if o.as_json else lib.format_table(report))
    if any("error" in r for r in report["rows"]):
        sys.exit(1)


# `python -m sslbench.benchmark.cli.perf` works on its own (gpu_check.sh uses it).
if __name__ == "__main__":
    perf()
