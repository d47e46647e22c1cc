"""What lrep's DAE makes of a finished run's prediction on one case, as a PNG.

The network (the EMA teacher by default, in eval mode: its BN buffers follow the student's, dropout off) runs with
the evaluation sliding window. The DAE only accepts inputs of the training crop size (its dense bottleneck is
sized from it), so it also runs as a sliding window of crop-size windows over the DAE input map (the argmax, or
the soft map with lrep.dae_input=prob), zero-padded where the volume is smaller than the crop, with its sigmoid
outputs averaged where windows overlap. The uncertainty U is lrep's own formula (`lrep.uncertainty_map`), summed
over classes when it is per class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sslbench.benchmark.runs.folder import CONFIG_FILE


@dataclass
class UncertaintyView:
    case_id: str
    role: str  # test, labeled, unlabeled or train (unused by this run)
    image: np.ndarray  # (W, H, D)
    label: np.ndarray  # (W, H, D) 0/1
    prob: np.ndarray  # (C, W, H, D) the network's softmax
    recon: np.ndarray  # (C, W, H, D) the DAE's sigmoid outputs
    uncertainty: np.ndarray  # (W, H, D)
    dae_cache: str


def dice(pred: np.ndarray, target: np.ndarray) -> float:
    p, t = pred > 0, target > 0
    denom = int(p.sum() + t.sum())
    return 1.0 if denom == 0 else 2.0 * float((p & t).sum()) / denom


def compute_view(
    run_dir: Path, case_id: str, net: str = "teacher", data_root: str | None = None
) -> UncertaintyView:
    """Rebuild a finished lrep run (config.json + model.pt) and compute its maps on one case."""
    from sslbench.benchmark.config import ConfigError
    from sslbench.benchmark.evaluation.sliding_window import sliding_window_probs
    from sslbench.benchmark.runs.folder import load_run, read_json_object
    from sslbench.benchmark.training.errors import RunFailed
    from sslbench.methods.algorithms.lrep import dae_input_map, uncertainty_map

    run_dir = Path(run_dir)
    record = read_json_object(run_dir / CONFIG_FILE)
    if record is None:
        raise RunFailed(f"{run_dir}: not a run folder (no readable {CONFIG_FILE})")
    if record.get("method") != "lrep":
        raise ConfigError(f"{run_dir}: a '{record.get('method')}' run; show-uncertainty needs an lrep run")
    run = load_run(run_dir, data_root)
    cfg, trainer, method = run.cfg, run.trainer, run.method
    ds = trainer.dataset
    roles = {
        **{i: "train (unused by this run)" for i in ds.train_ids},
        **{i: "test" for i in ds.test_ids},
        **{i: "unlabeled" for i in trainer.unlabeled_ids},
        **{i: "labeled" for i in trainer.labeled_ids},
    }
    if case_id not in roles:
        raise ConfigError(
            f"--case {case_id}: not in {ds.root} (test cases: {', '.join(ds.test_ids[:5])}, ...)"
        )
    network = method.teacher if net == "teacher" else method.student
    vol = ds.volume(case_id)
    patch, ev, device = tuple(cfg.data.patch), cfg.eval, trainer.device

    def windows(fn, volume: np.ndarray) -> np.ndarray:
        n_classes = method.ctx.n_classes
        return sliding_window_probs(
            fn, volume, patch, ev.stride_xy, ev.stride_z, n_classes, ev.sw_batch, device
        )

    with torch.no_grad():
        prob = windows(lambda x: torch.softmax(network(x), dim=1), vol.image)
        dae_in = dae_input_map(torch.from_numpy(prob)[None], cfg.method_cfg.dae_input)[0, 0].numpy()
        recon = windows(lambda x: torch.sigmoid(method.dae(x)), dae_in)
        u = uncertainty_map(torch.from_numpy(prob)[None], torch.from_numpy(recon)[None], cfg.method_cfg)
    return UncertaintyView(
        case_id,
        roles[case_id],
        vol.image,
        vol.label,
        prob,
        recon,
        u[0].sum(0).numpy(),
        str(trainer.asset_info.get("dae", {}).get("cache", "")),
    )


def default_slice(view: UncertaintyView) -> int:
    """The axial slice (along D) with the most ground-truth foreground (the prediction's if the label is empty)."""
    mask = view.label if view.label.any() else view.prob.argmax(0)
    return int(mask.sum(axis=(0, 1)).argmax())


def render(view: UncertaintyView, k: int, out: Path, net: str = "teacher") -> Path:
    """Write a 5-panel PNG of slice k: image, prediction, DAE reconstruction, uncertainty (colorbar), label."""
    from matplotlib.figure import Figure

    pred = view.prob.argmax(0)
    recon = view.recon.argmax(0)
    panels = [
        ("image", view.image[:, :, k], "gray", None),
        (f"{net} prediction", pred[:, :, k], "gray", (0, 1)),
        ("DAE reconstruction p_hat (fg)", view.recon[1, :, :, k], "gray", (0, 1)),
        ("uncertainty U", view.uncertainty[:, :, k], "magma", (0, max(float(view.uncertainty.max()), 1e-6))),
        ("ground truth", view.label[:, :, k], "gray", (0, 1)),
    ]
    fig = Figure(figsize=(17, 4.2), dpi=100)
    axes = fig.subplots(1, len(panels))
    for ax, (title, data, cmap, vrange) in zip(axes, panels, strict=True):
        im = ax.imshow(
            data.T,
            cmap=cmap,
            origin="lower",
            vmin=vrange[0] if vrange else None,
            vmax=vrange[1] if vrange else None,
            interpolation="nearest",
        )
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        if title.startswith("uncertainty"):
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(
        f"case {view.case_id} ({view.role}), slice {k}/{view.image.shape[2] - 1}:  "
        f"Dice {net} {100 * dice(pred, view.label):.1f}%,  DAE {100 * dice(recon, view.label):.1f}%  "
        f"(whole volume),  mean U {float(view.uncertainty.mean()):.4f}",
        fontsize=11,
    )
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def write_uncertainty_png(
    run_dir: Path,
    case_id: str,
    slice_k: int | None = None,
    out: Path | None = None,
    net: str = "teacher",
    data_root: str | None = None,
) -> tuple[Path, UncertaintyView, int]:
    """Library entry point of the command: compute the maps and write the PNG; returns (path, view, slice)."""
    from sslbench.benchmark.config import ConfigError

    view = compute_view(run_dir, case_id, net, data_root)
    depth = view.image.shape[2]
    k = default_slice(view) if slice_k is None else slice_k
    if not 0 <= k < depth:
        raise ConfigError(f"--slice {slice_k}: expected 0..{depth - 1} for case {case_id}")
    out = out or Path(run_dir) / f"uncertainty_{case_id}_z{k}.png"
    return render(view, k, out, net), view, k
