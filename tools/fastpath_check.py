"""Does each fast path leave accuracy alone? Train MT at a preset with every switch flipped, one at a time.

    python tools/fastpath_check.py --preset quick [--data DIR] [--seeds 1337,1338] [--compile]

The baseline runs with the defaults on each seed; the spread between its seeds is the noise the other rows are
judged against. Each training switch that acts on this device is flipped from its default and trained on the
first seed; evaluation-only switches (the sliding-window batch) re-evaluate the baseline's weights. On CPU
`train.channels_last`, `data.num_workers` and `eval.sw_batch` act (and `train.compile` with --compile);
`train.amp` and cuDNN autotuning are CUDA-only and would give the baseline again. Loader workers and the
sliding-window batch are exact by construction (batches are a function of seed and step, windows are summed in
the same order), so their rows should equal the baseline; amp, channels-last and autotuning change the floating
point, so their rows should differ by less than the seed spread.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import click
import torch

from sslbench.benchmark.config import DEFAULT_SEEDS, build_config, parse_sets
from sslbench.benchmark.runs.folder import load_run
from sslbench.benchmark.training.device import resolve_device
from sslbench.benchmark.training.trainer import train_run


def training_switches(device: torch.device, with_compile: bool) -> dict[str, dict[str, str]]:
    """Name -> the --set overrides that flip one training fast path from its default, on this device."""
    switches = {
        "channels_last_off": {"train.channels_last": "false"},
        "num_workers": {"data.num_workers": "2" if device.type == "cpu" else "0"},
    }
    if device.type == "cuda":
        switches.update(
            amp_off={"train.amp": "false"},
            deterministic={"train.deterministic": "true"},  # cuDNN autotuning off
        )
    if with_compile:
        switches["compile"] = {"train.compile": "true"}
    return switches


def _row(name: str, seed: int, metrics: dict[str, Any]) -> dict[str, Any]:
    cost = metrics.get("cost", {})
    return {
        "variant": name,
        "seed": seed,
        "dice": metrics["dice"],
        "hd95_vox": metrics["hd95_vox"],
        "sec_per_iter": cost.get("sec_per_iter_median"),
        "eval_s_per_volume": metrics.get("eval_s_per_volume"),
    }


def reevaluate(run_dir: Path, cfg, sw_batch: int) -> dict[str, Any]:
    """The weights of a finished run evaluated with another sliding-window batch."""
    run = load_run(run_dir, device=cfg.train.device, eval_overrides={"sw_batch": sw_batch})
    return run.trainer.evaluate(run.method, write=False)


def check(
    preset: str = "quick",
    data_root: str | None = None,
    method: str = "mt",
    seeds: list[int] | None = None,
    sets: dict[str, Any] | None = None,
    with_compile: bool = False,
    out: Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    seeds = seeds or list(DEFAULT_SEEDS[:2])
    base_sets = dict(sets or {})
    split = "8/72"
    out = Path(out or tempfile.mkdtemp(prefix="fastpath-"))
    first = build_config(method, split, seeds[0], preset, base_sets, data_root)
    device = resolve_device(first.train.device)
    rows, runs = [], {}
    for seed in seeds:
        cfg = build_config(method, split, seed, preset, base_sets, data_root)
        run_dir = out / f"baseline_s{seed}"
        runs[seed] = (cfg, run_dir)
        rows.append(_row("baseline", seed, train_run(cfg, run_dir, progress=progress)))
    for name, flip in training_switches(device, with_compile).items():
        cfg = build_config(method, split, seeds[0], preset, {**base_sets, **flip}, data_root)
        rows.append(_row(name, seeds[0], train_run(cfg, out / name, progress=progress)))
    cfg, run_dir = runs[seeds[0]]
    one = 1 if cfg.eval.sw_batch != 1 else 4
    rows.append(_row(f"sw_batch={one} (eval only)", seeds[0], reevaluate(run_dir, cfg, one)))
    base = [r["dice"] for r in rows if r["variant"] == "baseline"]
    ref = rows[0]["dice"]
    for r in rows:
        r["delta_dice"] = r["dice"] - ref
    return {
        "device": str(device),
        "preset": preset,
        "method": method,
        "seed_spread_dice": max(base) - min(base),
        "rows": rows,
        "out": str(out),
    }


def format_check(result: dict[str, Any]) -> str:
    lines = [
        f"{result['method']} at preset {result['preset']} on {result['device']}; seed spread of the baseline's "
        f"Dice: {100 * result['seed_spread_dice']:.2f} points",
        f"{'variant':28s} {'seed':>5s} {'Dice %':>7s} {'dDice':>7s} {'HD95':>7s} {'s/iter':>7s} {'eval s/vol':>10s}",
    ]
    for r in result["rows"]:
        sec = f"{r['sec_per_iter']:.3f}" if r["sec_per_iter"] is not None else "-"
        lines.append(
            f"{r['variant']:28s} {r['seed']:>5d} {100 * r['dice']:7.2f} {100 * r['delta_dice']:+7.2f} "
            f"{r['hd95_vox']:7.2f} {sec:>7s} {r['eval_s_per_volume']:10.3f}"
        )
    return "\n".join(lines)


@click.command()
@click.option("--preset", default="quick", show_default=True)
@click.option("--data", "data_root", default=None, help="LA-layout folder (default: the synthetic dataset).")
@click.option("--method", default="mt", show_default=True)
@click.option("--seeds", default=",".join(str(s) for s in DEFAULT_SEEDS[:2]), show_default=True)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Applied to every run.")
@click.option("--compile", "with_compile", is_flag=True, help="Also flip train.compile (slow to compile).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Run folders (default: temp).")
@click.option("--json", "as_json", is_flag=True)
def main(preset, data_root, method, seeds, sets, with_compile, out, as_json) -> None:
    """Train with each fast path flipped and print Dice against the baseline's seed spread."""
    seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    result = check(preset, data_root, method, seed_list, parse_sets(sets), with_compile, out)
    click.echo(json.dumps(result, indent=2) if as_json else format_check(result))


if __name__ == "__main__":
    main()
