"""Imports every method module of this package so that its `@register` decorator runs.

Adding a built-in method is adding one file here; no list to edit. Infrastructure modules are skipped.
"""

from __future__ import annotations

import importlib
import pkgutil

import sslbench.methods as _pkg

_INFRASTRUCTURE = {"base", "builtin", "registry", "losses", "ramps", "networks"}


def import_builtin_methods() -> None:
    for mod in pkgutil.iter_modules(_pkg.__path__):
        if mod.name not in _INFRASTRUCTURE and not mod.name.startswith("_"):
            importlib.import_module(f"{_pkg.__name__}.{mod.name}")


import_builtin_methods()
