"""Labeled-subset variance: how much a result, and a ranking, depends on which cases were labeled.

The literature labels the first N cases of train.list. With `bench run --subsets K`, subset k > 0 labels N
other cases (datasets/splits.py); here the runs of one experiment that differ only by their subset and seed are
compared: the std over seeds within each subset, the std of the subset means across subsets, and, for each pair
of subsets, Kendall's tau between the rankings of the methods by mean Dice (1: the same order).
"""

from __future__ import annotations

import itertools
import json

import pandas as pd

from sslbench.benchmark.config import NON_RESULT_KEYS

SUBSET_KEY = "data.subset"


def _experiment(row: pd.Series) -> str:
    """Everything that identifies an experiment except its seed and labeled subset."""
    settings = {
        k: v for k, v in row["settings"].items() if k not in NON_RESULT_KEYS and k not in ("seed", SUBSET_KEY)
    }
    return json.dumps([row["method"], row["variant"], row["split"], row["preset"], settings], default=str)


def subset_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The finished runs with their subset number and an experiment key; empty unless some subset is > 0."""
    done = runs[(runs["status"] == "done") & runs["has_config"].astype(bool)].copy()
    if done.empty:
        return done
    done["subset"] = [int(s.get(SUBSET_KEY, 0) or 0) for s in done["settings"]]
    if done["subset"].max() == 0:
        return done.iloc[0:0]
    done["experiment"] = done.apply(_experiment, axis=1)
    return done


def subset_variance(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per experiment run on several subsets: Dice (%) mean over all runs, the mean within-subset seed
    std, and the std of the subset means across subsets (ddof=1)."""
    done = subset_runs(runs)
    rows = []
    if done.empty:
        return pd.DataFrame(rows)
    for _, exp in done.groupby("experiment", sort=False):
        per_subset = exp.groupby("subset")["dice"]
        means = 100 * per_subset.mean()
        if len(means) < 2:
            continue
        first = exp.iloc[0]
        rows.append(
            {
                "method": first["method"],
                "variant": first["variant"],
                "split": first["split"],
                "subsets": len(means),
                "seeds_per_subset": int(per_subset.count().min()),
                "dice_mean": float(100 * exp["dice"].mean()),
                "seed_std": float((100 * per_subset.std(ddof=1)).mean()),
                "subset_std": float(means.std(ddof=1)),
                "subset_means": {int(k): float(v) for k, v in means.items()},
            }
        )
    return pd.DataFrame(rows)


def rank_stability(variance: pd.DataFrame) -> pd.DataFrame:
    """Kendall's tau between the method rankings (by mean Dice) of each pair of subsets, per labeled count N
    (the methods at N/M and the supervised lower bound at N/0 label the same N cases in each subset)."""
    from scipy.stats import kendalltau

    rows = []
    labeled = variance["split"].str.partition("/")[0].astype(int)
    for n, part in variance.groupby(labeled, sort=False):
        if len(part) < 2:
            continue
        subsets = sorted(set.intersection(*(set(m) for m in part["subset_means"])))
        for a, b in itertools.combinations(subsets, 2):
            x = [m[a] for m in part["subset_means"]]
            y = [m[b] for m in part["subset_means"]]
            tau = kendalltau(x, y).statistic
            rows.append(
                {"labeled": int(n), "subset_a": a, "subset_b": b, "n_methods": len(part), "tau": float(tau)}
            )
    return pd.DataFrame(rows)
