"""The method registry: the one place that knows which methods exist, and what tables and figures call them.

Discovery is lazy and happens here, on the first lookup: every module (or sub-package) of
`sslbench.methods.algorithms` is imported, so its `@register` decorator runs, then every entry point of the group
``sslbench.methods`` (packages installed beside sslbench; README, "Adding a method"). There is no hand-kept list:
a file dropped into `methods/algorithms/` is a method. Importing this module imports no method and no torch.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "sslbench.methods"
BUILTIN_PACKAGE = "sslbench.methods.algorithms"
FAMILIES = (
    "supervised",
    "consistency",
    "uncertainty",
    "shape-prior",
    "pseudo-label",
    "mutual-learning",
    "copy-paste",
)
DEFAULT_ORDER = 1000  # methods without a declared row order follow the declared ones, alphabetically


@dataclass(frozen=True)
class MethodInfo:
    name: str
    cls: type
    k_inferences: int | None  # the paper's #K: network passes per unlabeled volume used for uncertainty
    family: str
    paper: str
    aliases: tuple[str, ...] = ()
    variants: tuple[str, ...] = ()  # values of the method config's `variant` field, shown as table rows
    extra_passes: int = 0  # forward passes per step beyond the student (and the teacher's target), for checks
    source: str = "builtin"
    display: str = ""  # the name tables and figures print (default: the registered name)
    order: int = DEFAULT_ORDER  # row order in tables and figures (the seed paper's order for its methods)
    baseline: bool = False  # the supervised baseline: the lower bound at N/0, the upper bound at all/0

    @property
    def k_label(self) -> str:
        return "-" if self.k_inferences is None else str(self.k_inferences)

    @property
    def label(self) -> str:
        return self.display or self.name


_REGISTRY: dict[str, MethodInfo] = {}
_ALIASES: dict[str, str] = {}
_discovered = False
_problems: list[str] = []


class UnknownMethodError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def register(
    name: str,
    *,
    k_inferences: int | None,
    family: str,
    paper: str,
    aliases: tuple[str, ...] = (),
    variants: tuple[str, ...] = (),
    extra_passes: int | None = None,
    display: str = "",
    order: int = DEFAULT_ORDER,
    baseline: bool = False,
):
    """Class decorator adding a method to the registry. A duplicate name or alias is an error."""
    if family not in FAMILIES:
        raise ValueError(f"method '{name}': family '{family}' is not one of {FAMILIES}")

    def decorator(cls: type) -> type:
        for key in (name, *aliases):
            if key in _REGISTRY or key in _ALIASES:
                raise ValueError(f"method name '{key}' is already registered")
        extra = extra_passes if extra_passes is not None else (k_inferences or 0)
        source = "builtin" if cls.__module__.startswith("sslbench.") else cls.__module__
        _REGISTRY[name] = MethodInfo(
            name, cls, k_inferences, family, paper, aliases, variants, extra, source, display, order, baseline
        )
        for alias in aliases:
            _ALIASES[alias] = name
        cls.method_name = name
        return cls

    return decorator


def _import(module: str, what: str) -> None:
    try:
        importlib.import_module(module)
    except Exception as exc:  # one broken method file or plugin must not take the benchmark down
        _problems.append(f"{what} '{module}' failed to load: {type(exc).__name__}: {exc}")


def discover() -> list[str]:
    """Import the built-in algorithm modules and the plugins once; returns the problems met (also later)."""
    global _discovered
    if _discovered:
        return list(_problems)
    _discovered = True
    package = importlib.import_module(BUILTIN_PACKAGE)
    for mod in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not mod.name.startswith("_"):
            _import(f"{BUILTIN_PACKAGE}.{mod.name}", "method module")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.value.split(":")[0] in sys.modules and ep.value.startswith(BUILTIN_PACKAGE):
            continue  # an entry point naming a built-in module that the scan already imported
        try:
            ep.load()
        except Exception as exc:
            _problems.append(f"plugin '{ep.name}' ({ep.value}) failed to load: {type(exc).__name__}: {exc}")
    return list(_problems)


def canonical_name(name: str) -> str:
    discover()
    if name in _REGISTRY:
        return name
    if name in _ALIASES:
        return _ALIASES[name]
    known = ", ".join(sorted(_REGISTRY))
    raise UnknownMethodError(f"unknown method '{name}' (known: {known})")


def get_method(name: str) -> MethodInfo:
    return _REGISTRY[canonical_name(name)]


def find_method(name: str) -> MethodInfo | None:
    """The method registered as `name` (or an alias), or None: for results whose method is not installed."""
    try:
        return get_method(name)
    except UnknownMethodError:
        return None


def list_methods() -> list[MethodInfo]:
    """Every registered method, in row order (declared order, then by name)."""
    discover()
    return sorted(_REGISTRY.values(), key=lambda m: (m.order, m.name))


def baseline_method() -> MethodInfo:
    """The supervised baseline (the bounds of every table)."""
    found = [m for m in list_methods() if m.baseline]
    if len(found) != 1:
        raise RuntimeError(
            f"expected exactly one registered baseline method, found {[m.name for m in found]}"
        )
    return found[0]


def method_rank(name: str) -> tuple[int, str]:
    """Sort key of a method name in tables and figures; unknown names (results of a removed plugin) go last."""
    info = find_method(name)
    return (info.order, info.name) if info else (DEFAULT_ORDER + 1, name)


def display_name(name: str) -> str:
    info = find_method(name)
    return info.label if info else name


def unregister(name: str) -> None:
    """Remove a method (tests and interactive sessions)."""
    info = _REGISTRY.pop(name, None)
    if info:
        for alias in info.aliases:
            _ALIASES.pop(alias, None)
