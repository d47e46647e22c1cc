"""The trainer's own error (kept light: the CLI's error handler imports it)."""

from __future__ import annotations


class RunFailed(RuntimeError):
    """A run stopped on purpose (non-finite loss, incompatible checkpoint...); the message says why."""


class AlreadyFinished(RunFailed):
    """The run folder holds a finished run: finished is final (redo it with --force, which keeps the old one)."""


class ExecutionMismatch(RunFailed):
    """A run would continue (resume) or be reused with another thread count, device kind or precision."""
