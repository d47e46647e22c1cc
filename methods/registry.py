"""The method registry: the one place that knows which methods exist.

Built-in methods register themselves with ``@register`` when ``sslbench.methods`` is imported; packages installed
beside sslbench add theirs through the entry-point group ``sslbench.methods`` (see README, "Adding a method").
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "sslbench.methods"
FAMILIES = ("supervised", "consistency", "uncertainty", "shape-prior", "mutual", "pseudo-label", "copy-paste")


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

    @property
    def k_label(self) -> str:
        return "-" if self.k_inferences is None else str(self.k_inferences)


_REGISTRY: dict[str, MethodInfo] = {}
_ALIASES: dict[str, str] = {}
_plugins_loaded = False


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
        _REGISTRY[name] = MethodInfo(name, cls, k_inferences, family, paper, aliases, variants, extra, source)
        for alias in aliases:
            _ALIASES[alias] = name
        cls.method_name = name
        return cls

    return decorator


def load_plugins() -> list[str]:
    """Import every entry point of the ``sslbench.methods`` group once; returns the problems met."""
    global _plugins_loaded
    problems: list[str] = []
    if _plugins_loaded:
        return problems
    _plugins_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:  # a broken plugin must not take the benchmark down
            problems.append(f"plugin '{ep.name}' ({ep.value}) failed to load: {exc}")
    return problems


def canonical_name(name: str) -> str:
    load_plugins()
    if name in _REGISTRY:
        return name
    if name in _ALIASES:
        return _ALIASES[name]
    known = ", ".join(sorted(_REGISTRY))
    raise UnknownMethodError(f"unknown method '{name}' (known: {known})")


def get_method(name: str) -> MethodInfo:
    return _REGISTRY[canonical_name(name)]


def list_methods() -> list[MethodInfo]:
    load_plugins()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def unregister(name: str) -> None:
    """Remove a method (tests and interactive sessions)."""
    info = _REGISTRY.pop(name, None)
    if info:
        for alias in info.aliases:
            _ALIASES.pop(alias, None)
