"""The `bench` command line. Each command parses options and calls one library function.

Commands live in their own modules and are imported only when run (or when `--help` lists them): the group
imports neither torch nor the methods, so `bench --help` answers at once.
"""

from __future__ import annotations

import importlib

import click

# command name -> (module under sslbench.benchmark.cli, attribute), in the order `bench --help` lists them
COMMANDS = {
    "train": ("train", "train"),
    "eval": ("train", "eval_cmd"),
    "predict": ("predict", "predict"),
    "run": ("run", "run"),
    "table": ("results", "table"),
    "report": ("results", "report"),
    "status": ("status", "status"),
    "methods": ("train", "methods"),
    "data": ("data", "data"),
    "dae": ("dae", "dae"),
    "perf": ("perf", "perf"),
    "show-uncertainty": ("uncertainty", "show_uncertainty"),
}


class LazyGroup(click.Group):
    """A click group whose commands are imported on first use (click's documented lazy-loading pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name]
        return getattr(importlib.import_module(f"sslbench.benchmark.cli.{module}"), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sslbench")
def main():
    """sslbench: semi-supervised 3D segmentation methods on LA, one protocol, tables with mean±std."""
    import sys

    for stream in (sys.stdout, sys.stderr):  # progress and result lines appear at once when written to a file
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=True)
