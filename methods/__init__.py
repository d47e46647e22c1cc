"""Methods: the public API of the method contract and the registry.

Importing this package defines names only: no method module is imported (the registry discovers them on first
lookup) and neither is torch, so `bench --help` stays fast. `from sslbench.methods import Method` loads the
contract (and torch) on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from sslbench.methods.registry import get_method, list_methods, register

if TYPE_CHECKING:
    from sslbench.methods.base import AssetCache, Batch, EMATeacherMixin, Method, MethodContext  # noqa: F401

_CONTRACT = ("AssetCache", "Batch", "EMATeacherMixin", "Method", "MethodContext")

__all__ = [*_CONTRACT, "get_method", "list_methods", "register"]


def __getattr__(name: str):
    if name in _CONTRACT:
        return getattr(importlib.import_module("sslbench.methods.base"), name)
    raise AttributeError(f"module 'sslbench.methods' has no attribute {name!r}")
