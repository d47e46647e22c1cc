"""The report's figures (matplotlib Agg + seaborn), each saved as PNG and PDF.

Every function returns a `Figure` record: the written paths, or the reason it was skipped (its data is absent),
so the report can say which plots are missing and why instead of failing.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sslbench.methods.registry import display_name, find_method

LOSS_KEYS = ("loss", "loss_sup", "loss_unsup", "w_unsup")


@dataclass
class Plot:
    name: str
    title: str
    description: str
    paths: list[Path] = field(default_factory=list)
    skipped: str = ""  # why the figure was not drawn (empty when it was)


def _figure(figsize: tuple[float, float]) -> Figure:
    """A figure on the Agg canvas, made without pyplot: no global backend switch, nothing left open."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def data_label(summary: pd.DataFrame) -> str:
    """The dataset name(s) of the experiments a figure shows (every figure says what data it is)."""
    names = sorted({str(d) for d in summary.get("dataset", pd.Series(dtype=object)).dropna()})
    return "data: " + (", ".join(names) if names else "not recorded")


def _save(fig: Figure, out_dir: Path, stem: str, data: str = "") -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    if data:
        fig.text(0.005, 0.005, data, fontsize=7, color="0.35", ha="left", va="bottom")
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    fig.savefig(paths[0], dpi=130, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    return paths


def _default_variant(method: str) -> str | None:
    from sslbench.methods.registry import UnknownMethodError, get_method

    try:
        return str(getattr(get_method(method).cls.Config(), "variant", "") or "")
    except UnknownMethodError:
        return None


def is_baseline(method: str) -> bool:
    """The registry's supervised baseline (the bounds of every table)."""
    info = find_method(str(method))
    return bool(info and info.baseline)


def is_upper_bound(row: pd.Series) -> bool:
    """A supervised run on every training case (the paper's 80/0 upper bound)."""
    return is_baseline(row["method"]) and pd.notna(row["n_train"]) and row["n_labeled"] == row["n_train"]


def group_labels(summary: pd.DataFrame) -> dict[str, str]:
    """group_key -> a short readable name: "UA-MT 8/72", "Ours-threshold 8/72", "Ours 8/72 [beta=2]"."""
    labels = {}
    for _, g in summary.iterrows():
        if is_baseline(g["method"]):
            name = "Upper bound" if is_upper_bound(g) else "Lower bound"
        else:
            name = display_name(str(g["method"]))
        if g["variant"] and g["variant"] != _default_variant(g["method"]):
            name += f"-{g['variant']}"
        label = f"{name} {g['split']}"
        if g.get("setting"):
            label += f" [{g['setting']}]"
        labels[g["group_key"]] = label
    return labels


def facets(summary: pd.DataFrame) -> dict[str, list[str]]:
    """Panel title -> group keys: one panel per labeled count N, each also showing the upper bound."""
    upper = [g["group_key"] for _, g in summary.iterrows() if is_upper_bound(g)]
    rest = summary[~summary["group_key"].isin(upper)]
    panels = {}
    for n in sorted(rest["n_labeled"].dropna().unique()):
        panels[f"{int(n)} labeled cases"] = upper + list(rest.loc[rest["n_labeled"] == n, "group_key"])
    if not panels and upper:
        panels["upper bound"] = upper
    return panels


# --- per-case distributions -------------------------------------------------------------------------------
def distributions(cases: pd.DataFrame, summary: pd.DataFrame, out_dir: Path) -> Plot:
    """Per-case Dice and HD95 of every experiment as strip + box plots, one panel per labeled count.

    Args:
        cases: per-case metrics (`aggregate.load_cases`), points coloured by seed.
        summary: one row per experiment (`aggregate.summarize_runs`), for labels and panels.
        out_dir: where distributions.png / .pdf are written.
    """
    fig_rec = Plot(
        "distributions",
        "Per-case Dice and HD95",
        "Each point is one test case of one seed (colour = seed); boxes show the quartiles over all "
        "cases and seeds of an experiment. Spread across cases is usually far larger than across "
        "seeds, which is why single-number tables hide a lot.",
    )
    if cases.empty:
        fig_rec.skipped = "no cases.csv in any finished run"
        return fig_rec
    labels = group_labels(summary)
    data = cases.assign(label=cases["group_key"].map(labels), dice_pct=100 * cases["dice"])
    panels = facets(summary)
    sizes = [len(keys) for keys in panels.values()]
    fig = _figure((13, 0.5 + sum(0.5 * n + 1.0 for n in sizes)))
    # Panel heights follow their number of experiments, so boxes have the same thickness everywhere.
    axes = fig.subplots(len(panels), 2, squeeze=False, height_ratios=[0.5 * n + 0.6 for n in sizes])
    for (title, keys), row_axes in zip(panels.items(), axes, strict=True):
        order = [labels[k] for k in keys if k in set(data["group_key"])]
        part = data[data["group_key"].isin(keys)]
        for ax, col, xlabel in zip(
            row_axes, ("dice_pct", "hd95_vox"), ("Dice (%)", "HD95 (voxels)"), strict=True
        ):
            if part.empty:
                ax.set_axis_off()
                continue
            with warnings.catch_warnings():  # seaborn 0.13 passes matplotlib 3.11's deprecated `vert`
                warnings.simplefilter("ignore", matplotlib.MatplotlibDeprecationWarning)
                sns.boxplot(
                    data=part, x=col, y="label", order=order, ax=ax, color="#cfe0f3", fliersize=0, width=0.6
                )
            sns.stripplot(
                data=part,
                x=col,
                y="label",
                order=order,
                ax=ax,
                hue="seed",
                palette="dark",
                size=3.5,
                alpha=0.75,
                jitter=0.2,
                legend=ax is axes[0][1],
            )
            ax.set_xlabel(xlabel)
            ax.set_ylabel("")
            ax.set_title(f"{xlabel.split(' ')[0]} — {title}", fontsize=10)
    legend = axes[0][1].get_legend()
    if legend is not None:
        sns.move_legend(axes[0][1], "upper left", bbox_to_anchor=(1.01, 1), title="seed", frameon=False)
    fig.tight_layout()
    fig_rec.paths = _save(fig, out_dir, "distributions", data_label(summary))
    return fig_rec


# --- Dice versus cost ---------------------------------------------------------------------------------------
def dice_vs_cost(summary: pd.DataFrame, out_dir: Path, perf: dict[str, float] | None = None) -> Plot:
    """Dice (mean ± std over seeds) against the seconds per iteration, marker size = #K.

    Args:
        summary: one row per experiment (`aggregate.summarize_runs`) with its cost columns.
        out_dir: where dice_vs_cost.png / .pdf are written.
        perf: method -> seconds per iteration measured by `bench perf` (every method in one process,
            interleaved: comparable whatever else the machine ran); used instead of the runs' own timings
            for the methods it has, and the description says so.
    """
    fig_rec = Plot(
        "dice_vs_cost",
        "Dice versus training cost",
        "Mean Dice (± sample std over seeds) against the median seconds per training iteration. "
        "Marker size grows with #K, the network passes per unlabeled volume spent on uncertainty "
        "(UA-MT: 8 Monte-Carlo passes; Ours: 1 DAE pass): the paper's claim is that one inference "
        "can match or beat eight, so Ours should sit up and to the left of UA-MT. Timings are from "
        "the machines that ran each experiment and are only comparable within one device.",
    )
    summary = summary.copy()
    if perf:
        measured = summary["method"].isin(list(perf))
        summary.loc[measured, "sec_per_iter"] = summary.loc[measured, "method"].map(perf)
        fig_rec.description += (
            f" Cost axis: `bench perf` measurements (perf.json) for {int(measured.sum())} of {len(summary)} "
            "experiments (one process, interleaved), the runs' own median otherwise."
        )
    else:
        fig_rec.description += " Cost axis: each experiment's runs' own median seconds per iteration."
    if summary.get("n_contended", pd.Series(dtype=int)).fillna(0).astype(int).sum():
        fig_rec.description += (
            " Hatched markers: experiments with runs timed under contention (the machine's load above its "
            "cores), whose cost is overstated."
        )
    data = summary.dropna(subset=["sec_per_iter", "dice_mean"])
    if data.empty:
        fig_rec.skipped = "no finished run recorded its cost (metrics.json cost.sec_per_iter_median)"
        return fig_rec
    labels = group_labels(summary)
    fig = _figure((9, 6))
    ax = fig.subplots()
    splits = sorted(data["split"].unique(), key=lambda s: [int(x) for x in s.split("/")])
    palette = dict(zip(splits, sns.color_palette("tab10", len(splits)), strict=True))
    for _, g in data.iterrows():
        k = int(g["K"]) if str(g["K"]).isdigit() else 0
        ax.errorbar(
            g["sec_per_iter"],
            g["dice_mean"],
            yerr=0 if np.isnan(g["dice_std"]) else g["dice_std"],
            fmt="none",
            ecolor=palette[g["split"]],
            alpha=0.6,
            capsize=3,
        )
        ax.scatter(
            g["sec_per_iter"],
            g["dice_mean"],
            s=50 + 35 * k,
            color=palette[g["split"]],
            edgecolor="black",
            linewidth=0.6,
            marker="o" if k else "s",
            hatch="////" if g.get("n_contended", 0) else None,
            zorder=3,
        )
    ax.set_xlim(left=0, right=data["sec_per_iter"].max() * 1.35)
    ax.margins(y=0.12)
    texts = [
        (
            g["sec_per_iter"],
            g["dice_mean"],
            labels[g["group_key"]] + (f", K={g['K']}" if str(g["K"]).isdigit() else ""),
            np.sqrt(50 + 35 * (int(g["K"]) if str(g["K"]).isdigit() else 0)) / 2,
        )  # marker radius, points
        for _, g in data.iterrows()
    ]
    _place_labels(fig, ax, texts)
    for split, color in palette.items():
        ax.scatter([], [], color=color, label=split, edgecolor="black", linewidth=0.6)
    ax.legend(title="split", frameon=False, loc="best")
    ax.set_xlabel("seconds per training iteration (median)")
    ax.set_ylabel("Dice (%)")
    ax.set_title("Dice vs cost per iteration (marker size ∝ #K, squares: no uncertainty passes)", fontsize=10)
    fig.tight_layout()
    fig_rec.paths = _save(fig, out_dir, "dice_vs_cost", data_label(summary))
    return fig_rec


def _place_labels(fig: Figure, ax: Axes, texts: list[tuple[float, float, str, float]]) -> None:
    """Annotate points (x, y, text, marker radius in points), trying a few offsets per label so that labels
    overlap neither each other nor their own marker."""
    renderer = fig.canvas.get_renderer()
    offsets = [
        (1, 0.3, "left"),
        (1, -1.3, "left"),
        (-1, 0.3, "right"),
        (-1, -1.3, "right"),
        (1, 1.3, "left"),
        (1, -2.3, "left"),
        (-1, 1.3, "right"),
        (-1, -2.3, "right"),
    ]
    placed = []
    for x, y, text, radius in sorted(texts, key=lambda t: (-t[1], t[0])):
        best = None
        for sx, sy, ha in offsets:
            dx, dy = sx * (radius + 3), sy * (radius + 4)
            ann = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=8, ha=ha)
            box = ann.get_window_extent(renderer).expanded(1.02, 1.1)
            if not any(box.overlaps(other) for other in placed):
                best = (ann, box)
                break
            ann.remove()
        if best is None:  # every spot taken: keep the first one, a rare overlap beats a missing label
            ann = ax.annotate(text, (x, y), xytext=(radius + 3, 0), textcoords="offset points", fontsize=8)
            best = (ann, ann.get_window_extent(renderer))
        placed.append(best[1])


# --- training curves ----------------------------------------------------------------------------------------
def training_curves(logs: pd.DataFrame, summary: pd.DataFrame, out_dir: Path) -> Plot:
    """The logged loss, supervised and unlabeled terms and the consistency weight against the step.

    Args:
        logs: the runs' log.jsonl records (`aggregate.load_logs`), averaged over seeds per experiment.
        summary: one row per experiment, for labels.
        out_dir: where training_curves.png / .pdf are written.
    """
    fig_rec = Plot(
        "training_curves",
        "Training losses",
        "Losses logged during training (log.jsonl), mean over seeds per experiment, smoothed with a "
        "centred rolling mean over a few logged steps. loss = total, loss_sup = supervised part, "
        "loss_unsup = unweighted consistency part, w_unsup = its ramped-up weight.",
    )
    keys = [k for k in LOSS_KEYS if k in logs.columns and logs[k].notna().any()]
    if logs.empty or not keys:
        fig_rec.skipped = "no log.jsonl with loss values in any run"
        return fig_rec
    labels = group_labels(summary)
    panels = {t: [k for k in ks if k in set(logs["group_key"])] for t, ks in facets(summary).items()}
    panels = {t: ks for t, ks in panels.items() if ks}
    all_keys = list(dict.fromkeys(k for ks in panels.values() for k in ks))
    colors = dict(
        zip(
            all_keys,
            sns.color_palette("tab20" if len(all_keys) > 10 else "tab10", len(all_keys)),
            strict=True,
        )
    )
    fig = _figure((4.2 * len(keys), 3.4 * len(panels)))
    axes = fig.subplots(len(panels), len(keys), squeeze=False)
    mean = logs.groupby(["group_key", "step"])[keys].mean().reset_index()
    for (title, gkeys), row_axes in zip(panels.items(), axes, strict=True):
        for ax, key in zip(row_axes, keys, strict=True):
            for gk in gkeys:
                curve = mean[mean["group_key"] == gk].dropna(subset=[key]).sort_values("step")
                if curve.empty:
                    continue
                window = max(1, len(curve) // 25)
                y = curve[key].rolling(window, center=True, min_periods=1).mean()
                ax.plot(curve["step"], y, color=colors[gk], label=labels[gk], linewidth=1.4)
            ax.set_title(f"{key} — {title}", fontsize=10)
            ax.set_xlabel("iteration")
    handles = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    fig.legend(
        handles.values(),
        handles.keys(),
        loc="upper left",
        bbox_to_anchor=(1.0, 0.98),
        frameon=False,
        fontsize=8,
    )
    fig.tight_layout()
    fig_rec.paths = _save(fig, out_dir, "training_curves", data_label(summary))
    return fig_rec


# --- learning curves ----------------------------------------------------------------------------------------
CURVE_KEY = "test_dice_curve"  # logged every `train.curve_every` steps (trainer)


def learning_curves(logs: pd.DataFrame, summary: pd.DataFrame, out_dir: Path) -> Plot:
    """Test Dice against the iteration (`train.curve_every`), mean over seeds with a ±std band per experiment.

    The curve is evaluated with non-overlapping windows (cheaper than the protocol's stride), so its last point
    is close to, not equal to, the reported Dice; it never picks weights (the tables report the final weights).
    """
    fig_rec = Plot(
        "learning_curves",
        "Learning curves: test Dice against iteration",
        "Test Dice (%) of the weights at each logged checkpoint, evaluated with non-overlapping sliding windows "
        "(cheaper than the protocol's stride, so the last point is close to, not equal to, the table's Dice), "
        "mean over seeds with a ±1 std band. For reading when the unlabeled data starts to help: the tables "
        "always report the final weights, never the best point of a curve.",
    )
    if logs.empty or CURVE_KEY not in logs.columns or not logs[CURVE_KEY].notna().any():
        fig_rec.skipped = "no run logged a learning curve (train.curve_every; the la-half preset logs one)"
        return fig_rec
    curves = logs.dropna(subset=[CURVE_KEY])
    labels = group_labels(summary)
    panels = {t: [k for k in ks if k in set(curves["group_key"])] for t, ks in facets(summary).items()}
    panels = {t: ks for t, ks in panels.items() if ks}
    if not panels:
        fig_rec.skipped = "no experiment of this report logged a learning curve"
        return fig_rec
    keys = list(dict.fromkeys(k for ks in panels.values() for k in ks))
    colors = dict(
        zip(keys, sns.color_palette("tab20" if len(keys) > 10 else "tab10", len(keys)), strict=True)
    )
    fig = _figure((6.0 * len(panels), 4.2))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    stats = curves.groupby(["group_key", "step"])[CURVE_KEY].agg(["mean", "std", "count"]).reset_index()
    for ax, (title, gkeys) in zip(axes, panels.items(), strict=True):
        for gk in gkeys:
            g = stats[stats["group_key"] == gk].sort_values("step")
            mean, std = 100 * g["mean"], 100 * g["std"].fillna(0.0)
            seeds = int(g["count"].max())
            ax.plot(g["step"], mean, color=colors[gk], marker=".", label=f"{labels[gk]} (n={seeds})")
            if seeds > 1:
                ax.fill_between(g["step"], mean - std, mean + std, color=colors[gk], alpha=0.15, linewidth=0)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("iteration")
        ax.set_ylabel("test Dice (%)")
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig_rec.paths = _save(fig, out_dir, "learning_curves", data_label(summary))
    return fig_rec


# --- Table 4 sensitivity ------------------------------------------------------------------------------------
def sensitivity(summary: pd.DataFrame, paper: pd.DataFrame, out_dir: Path) -> Plot:
    """Table 4 as lines: Dice and HD95 of lrep 8/72 against beta and lambda, ours (mean ± std band) vs the paper.

    Args:
        summary: one row per experiment; the lrep rows that differ only by `lrep.beta` or `lrep.lam` are used.
        paper: the paper's numbers (`specs.paper_tables`), drawn dashed.
        out_dir: where sensitivity.png / .pdf are written.
    """
    fig_rec = Plot(
        "sensitivity",
        "Sensitivity to β and λ (Table 4)",
        "Ours at 8/72: Dice and HD95 against β (with λ = 0.1) and against λ (with β = 1). Line = mean "
        "over seeds, band = ± sample std, dashed = the paper's Table 4 (its HD is most likely in voxels of the "
        "0.625 mm LA data, so it is on the same scale only for full-resolution LA).",
    )
    lrep = summary[(summary["method"] == "lrep") & (summary["split"] == "8/72") & (summary["n_done"] > 0)]
    default = _default_variant("lrep")
    if default is not None:
        lrep = lrep[lrep["variant"] == default]
    if not lrep.empty:  # one protocol only: the (preset, dataset) with the most experiments
        preset, dataset = lrep.groupby(["preset", "dataset"], dropna=False).size().idxmax()
        lrep = lrep[(lrep["preset"] == preset) & (lrep["dataset"] == dataset)]
    rows = []
    for _, g in lrep.iterrows():
        beta, lam = g["settings"].get("lrep.beta"), g["settings"].get("lrep.lam")
        if beta is not None and lam is not None:
            rows.append({**g.to_dict(), "beta": float(beta), "lam": float(lam)})
    points = pd.DataFrame(rows)
    sweeps = {}
    if not points.empty:
        sweeps = {
            "beta": points[np.isclose(points["lam"], 0.1)],
            "lam": points[np.isclose(points["beta"], 1.0)],
        }
    sweeps = {k: v.sort_values(k) for k, v in sweeps.items() if v[k].nunique() >= 2}
    if not sweeps:
        fig_rec.skipped = (
            "no Table 4 runs: needs lrep at 8/72 with at least two values of lrep.beta (lam 0.1) "
            "or of lrep.lam (beta 1); run `bench table 4`"
        )
        return fig_rec
    ref = paper[paper["table"] == 4]
    fig = _figure((10, 7))
    axes = fig.subplots(2, 2, squeeze=False)
    for col, (param, symbol, fixed) in enumerate(
        (("beta", "β", ("lambda", 0.1)), ("lam", "λ", ("beta", 1.0)))
    ):
        for row, (metric, ylabel) in enumerate((("dice", "Dice (%)"), ("hd95_vox", "HD95 (voxels)"))):
            ax = axes[row][col]
            ax.set_xscale("log")
            ticks = sorted(set(ref["beta" if param == "beta" else "lambda"].dropna()))
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.minorticks_off()
            ax.margins(x=0.08)
            ax.set_xlabel(symbol)
            ax.set_ylabel(ylabel)
            data = sweeps.get(param)
            paper_pts = ref[np.isclose(ref[fixed[0]], fixed[1])].drop_duplicates(["beta", "lambda"])
            paper_pts = paper_pts.sort_values("beta" if param == "beta" else "lambda")
            ax.plot(
                paper_pts["beta" if param == "beta" else "lambda"],
                paper_pts["dice_mean" if metric == "dice" else "hd95_mean"],
                "k--",
                marker="x",
                label="paper",
            )
            if data is None:
                ax.set_title(f"{ylabel.split(' ')[0]} vs {symbol}: no runs", fontsize=10)
                continue
            mean, std = data[f"{metric}_mean"].to_numpy(), data[f"{metric}_std"].fillna(0).to_numpy()
            ax.plot(data[param], mean, marker="o", color="tab:blue", label="ours (mean ± std)")
            ax.fill_between(data[param], mean - std, mean + std, color="tab:blue", alpha=0.2)
            for x, y, n in zip(data[param], mean, data["n_done"], strict=True):
                ax.annotate(f"n={n}", (x, y), xytext=(3, -11), textcoords="offset points", fontsize=7)
            ax.set_title(
                f"{ylabel.split(' ')[0]} vs {symbol} ({'λ = 0.1' if param == 'beta' else 'β = 1'})",
                fontsize=10,
            )
            ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    fig_rec.paths = _save(fig, out_dir, "sensitivity", data_label(summary))
    return fig_rec


# --- qualitative (the paper's Fig. 2) -----------------------------------------------------------------------
def _predict_slice(run_dir: Path, case_id: str):
    """Re-run inference of a finished run on one test case: (image, label, prediction, spacing, metrics)."""
    import torch

    from sslbench.benchmark.evaluation.metrics import case_metrics
    from sslbench.benchmark.evaluation.sliding_window import predict_mask
    from sslbench.benchmark.runs.folder import load_run

    run = load_run(run_dir, device="cuda" if torch.cuda.is_available() else "cpu")
    cfg, trainer, method = run.cfg, run.trainer, run.method
    vol = trainer.dataset.volume(case_id)
    n_cls = len(trainer.dataset.class_names)
    pred = predict_mask(
        trainer.predictor(method), vol.image, tuple(cfg.data.patch), cfg.eval, trainer.device, n_cls
    )
    metrics = case_metrics(pred, vol.label, trainer.dataset.spacing, cfg.eval.empty_policy, n_cls)
    return vol.image, vol.label, pred, metrics


def subset_ranks(variance: pd.DataFrame, out_dir: Path) -> Plot:
    """Mean Dice of each method on each labeled subset, one panel per split: crossing lines are rank changes.

    Args:
        variance: `subsets.subset_variance` (one row per experiment with its per-subset means).
        out_dir: where subset_ranks.png / .pdf are written.
    """
    fig_rec = Plot(
        "subset_ranks",
        "Ranking across labeled subsets",
        "Mean Dice over seeds of each method on each labeled subset (0 = the first N of train.list). Lines "
        "that cross are methods whose order depends on which cases were labeled.",
    )
    splits = list(dict.fromkeys(variance["split"]))
    fig = _figure((5.5 * len(splits), 4.0))
    for i, split in enumerate(splits):
        ax = fig.add_subplot(1, len(splits), i + 1)
        for _, r in variance[variance["split"] == split].iterrows():
            ks = sorted(r["subset_means"])
            label = display_name(str(r["method"])) + (f"-{r['variant']}" if r["variant"] else "")
            ax.plot(ks, [r["subset_means"][k] for k in ks], marker="o", label=label)
        ax.set_xlabel("labeled subset")
        ax.set_ylabel("Dice % (mean over seeds)")
        ax.set_title(f"{split}", fontsize=10)
        ax.legend(fontsize=7)
    fig_rec.paths = _save(fig, out_dir, "subset_ranks")
    return fig_rec


def qualitative(picks: list[tuple[str, Path]], case_id: str, out_dir: Path) -> Plot:
    """One axial slice per method: image, ground truth (green) and prediction (red) contours, Dice/HD95 titles.

    Args:
        picks: (panel label, run folder with model.pt) per method, in display order.
        case_id: the test case to show (the same for every method).
    """
    fig_rec = Plot(
        "qualitative",
        "Qualitative comparison (as the paper's Fig. 2)",
        f"Test case {case_id}, the axial slice with the largest ground-truth area. Green: ground "
        "truth; red: prediction of the first finished seed, re-inferred from its model.pt with the "
        "run's own sliding-window settings. Dice and HD95 in each title are of the whole volume.",
    )
    if not picks:
        fig_rec.skipped = "no finished run with model.pt"
        return fig_rec
    panels, problems, base = [], [], None
    for label, run_dir in picks:
        try:
            image, gt, pred, m = _predict_slice(run_dir, case_id)
        except Exception as exc:  # one broken run must not take the report down; it is listed instead
            problems.append(f"{label}: {type(exc).__name__}: {exc}")
            continue
        base = base or (image, gt)
        panels.append((label, pred, m))
    if not panels:
        fig_rec.skipped = "inference failed for every run: " + "; ".join(problems)
        return fig_rec
    image, gt = base
    z = int(np.argmax(gt.sum(axis=(0, 1))))
    n = len(panels) + 1
    ncols = min(4, n)
    nrows = int(np.ceil(n / ncols))
    fig = _figure((3.4 * ncols, 3.9 * nrows + 0.4))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    items = [("Ground truth", None, None), *panels]
    for ax, (label, pred, m) in zip(axes.flat, items, strict=False):
        ax.imshow(image[:, :, z].T, cmap="gray", origin="lower")
        ax.contour(gt[:, :, z].T, levels=[0.5], colors="lime", linewidths=1.2)
        if pred is None:
            ax.set_title(f"{label}\n(image and ground-truth contour)", fontsize=9)
            continue
        if pred[:, :, z].any():
            ax.contour(pred[:, :, z].T, levels=[0.5], colors="red", linewidths=1.2)
        ax.set_title(f"{label}\nDice {100 * m['dice']:.1f}%  HD95 {m['hd95_vox']:.1f} vox", fontsize=9)
    fig.suptitle(
        f"Test case {case_id}, axial slice z={z}: ground truth (green), prediction (red)", fontsize=10
    )
    fig.tight_layout()
    fig_rec.paths = _save(fig, out_dir, "qualitative")
    if problems:
        fig_rec.description += " Left out (inference failed): " + "; ".join(problems)
    return fig_rec
