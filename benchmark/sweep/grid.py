"""The grid of a sweep: methods x splits x seeds (x extra settings), resolved into run configs."""

from __future__ import annotations

import itertools

from sslbench.benchmark.config import (
    DEFAULT_SEEDS,
    ConfigError,
    RunConfig,
    build_config,
    method_section,
    sets_for,
)
from sslbench.datasets.splits import parse_split
from sslbench.methods.registry import MethodInfo, baseline_method, get_method, list_methods

MAX_SEEDS = 100  # more seeds than this per configuration is almost certainly a typo


def default_seeds(k: int) -> list[int]:
    """The first `k` fixed seeds: DEFAULT_SEEDS, then the integers after its last one."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_SEEDS:
        raise ConfigError(f"--seeds {k!r}: expected a number of seeds between 1 and {MAX_SEEDS}")
    extra = [DEFAULT_SEEDS[-1] + 1 + i for i in range(max(0, k - len(DEFAULT_SEEDS)))]
    return (list(DEFAULT_SEEDS) + extra)[:k]


def _requested_methods(methods: list[str] | str) -> list[tuple[MethodInfo, str | None, bool]]:
    """(method, variant or None for the config default, explicitly named) in the order asked for."""
    items = [methods] if isinstance(methods, str) else list(methods)
    names = [n.strip() for item in items for n in str(item).split(",") if n.strip()]
    if not names:
        raise ConfigError("--methods: expected 'all' or comma-separated method names, e.g. uamt,mt")
    out: list[tuple[MethodInfo, str | None, bool]] = []
    for name in names:
        if name == "all":
            for info in list_methods():
                if info.cls.uses_unlabeled:
                    out += [(info, v, False) for v in (info.variants or (None,))]
            out.append((baseline_method(), None, False))  # the lower bound at N/0 (upper: all/0)
            continue
        base, _, variant = name.partition(":")
        info = get_method(base)
        if variant and variant not in info.variants:
            known = ", ".join(info.variants) or "none"
            raise ConfigError(
                f"--methods {name}: method '{info.name}' has no variant '{variant}' (variants: {known})"
            )
        out.append((info, variant or None, True))
    return out


def _splits_for(info: MethodInfo, splits: list[str]) -> list[str]:
    """A supervised method runs at N/0 for each split N/M; a semi-supervised one only where M > 0."""
    out = []
    for text in splits:
        try:
            split = parse_split(text)
        except ValueError as exc:
            raise ConfigError(f"--split: {exc}") from None
        if not info.cls.uses_unlabeled:
            out.append(f"{split.n_labeled}/0")
        elif split.n_unlabeled:
            out.append(str(split))
    return list(dict.fromkeys(out))


def expand_grid(
    methods: list[str] | str,
    splits: list[str],
    seeds: list[int],
    preset: str,
    sets: dict[str, str],
    data_root: str | None,
    grid_sets: list[dict[str, str]] | None = None,
    recipe: str = "benchmark",
    subsets: int = 1,
) -> list[RunConfig]:
    """Resolve every run of a sweep; duplicates (same run id) removed, first occurrence kept.

    Args:
        methods: "all" (every registered semi-supervised method with all its registry variants, plus `sup` at
            N/0 for each split N/M), or names ("lrep,uamt", or a list); "NAME:VARIANT" picks one variant, a
            bare name runs its config's default variant. `sup` with split 8/72 runs at 8/0; the upper bound is
            `sup` at 80/0, run when that split is asked for.
        splits: "N/M" strings. Semi-supervised methods skip splits without unlabeled cases.
        seeds: training seeds.
        preset: a config preset name.
        sets: `section.key=value` overrides; a method's section applies to that method only.
        data_root: the data folder (None = the built-in synthetic dataset).
        grid_sets: extra override dicts, each multiplied into the grid (e.g. one per Table 4 beta value).
        recipe: "benchmark" (one protocol for all) or "published" (each method's `published_recipe`).
        subsets: labeled subsets per split: 0 (the first N of train.list) up to `subsets` - 1 (drawn, see
            datasets/splits.py); the same subsets for every method and seed.

    Raises:
        ConfigError: an empty grid, a bad split/seed/override, or a method no requested split suits.
    """
    if not splits:
        raise ConfigError("--split: at least one split is needed, e.g. 8/72")
    if not seeds:
        raise ConfigError("--seeds: at least one seed is needed")
    if isinstance(subsets, bool) or not isinstance(subsets, int) or not 1 <= subsets <= MAX_SEEDS:
        raise ConfigError(
            f"--subsets {subsets!r}: expected a number of labeled subsets between 1 and {MAX_SEEDS}"
        )
    if subsets > 1 and any(k == "data.subset" for k in sets):
        raise ConfigError("--subsets and --set data.subset=... cannot be combined")
    extra_subsets = [{"data.subset": str(k)} for k in range(subsets)] if subsets > 1 else [{}]
    requested = _requested_methods(methods)
    in_grid = {info.name for info, _, _ in requested}
    extra = list(grid_sets) if grid_sets else [{}]
    for key in itertools.chain(sets, *extra):
        target = method_section(key)
        if target is not None and target not in in_grid:
            raise ConfigError(
                f"--set {key}: method '{target}' is not in this sweep ({', '.join(sorted(in_grid))})"
            )
    configs: dict[str, RunConfig] = {}
    for info, variant, explicit in requested:
        method_splits = _splits_for(info, splits)
        if not method_splits and explicit:
            raise ConfigError(
                f"method '{info.name}' is semi-supervised: none of the splits ({', '.join(splits)}) has "
                "unlabeled cases"
            )
        for split, overrides, subset, seed in itertools.product(method_splits, extra, extra_subsets, seeds):
            run_sets = {f"{info.name}.variant": variant} if variant is not None else {}
            run_sets.update(sets_for(info.name, sets))
            run_sets.update(sets_for(info.name, overrides))
            run_sets.update(subset)
            cfg = build_config(info.name, split, seed, preset, run_sets, data_root, recipe)
            configs.setdefault(cfg.run_name(), cfg)
    return list(configs.values())
