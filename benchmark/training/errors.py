"""The trainer's own error (kept light: the CLI's error handler imports it)."""

from __future__ import annotations


class RunFailed(RuntimeError):
    """A run stopped on purpose (non-finite loss, incompatible checkpoint...); the message says why."""
