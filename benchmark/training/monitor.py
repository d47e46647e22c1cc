"""Watching a run train: an optional TensorBoard writer, and progress.png at the end (as nnU-Net writes).

log.jsonl stays the source of truth; both are drawn from the same records. TensorBoard is an extra
(`pip install -e ".[tensorboard]"`); asking for it without the package is a one-line error before training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sslbench.benchmark.config import ConfigError

TENSORBOARD_DIR = "tensorboard"
PROGRESS_FILE = "progress.png"
CURVES = ("loss", "loss_sup", "loss_unsup", "w_unsup", "lr")


class Monitor:
    """Receives every log record of a run; writes TensorBoard scalars when asked."""

    def __init__(self, run_dir: Path, tensorboard: bool):
        self.run_dir = Path(run_dir)
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError(
                    "train.tensorboard=true needs the tensorboard package: pip install 'sslbench[tensorboard]'"
                ) from None
            self.writer = SummaryWriter(log_dir=str(self.run_dir / TENSORBOARD_DIR))

    def log(self, record: dict[str, Any]) -> None:
        if self.writer is not None:
            for key, value in record.items():
                if key != "step":
                    self.writer.add_scalar(f"train/{key}", value, record["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def write_progress_png(run_dir: Path, records: list[dict[str, Any]], title: str) -> Path | None:
    """Losses, consistency weight and lr against the step, from the run's log records; None without records."""
    if not records:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 3.2))
    FigureCanvasAgg(fig)
    ax, ax_w = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    steps = [r["step"] for r in records]
    for key in ("loss", "loss_sup", "loss_unsup"):
        if key in records[0]:
            ax.plot(steps, [r.get(key) for r in records], label=key)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7)
    for key in ("w_unsup", "lr"):
        if key in records[0]:
            ax_w.plot(steps, [r.get(key) for r in records], label=key)
    val = [(r["step"], r["val_dice"]) for r in records if "val_dice" in r]
    if val:
        ax_w.plot(*zip(*val, strict=True), marker="o", label="validation Dice (held-out training cases)")
    curve = [(r["step"], r["test_dice_curve"]) for r in records if "test_dice_curve" in r]
    if curve:
        ax_w.plot(*zip(*curve, strict=True), marker=".", label="test Dice (learning curve, cheap stride)")
    ax_w.set_xlabel("step")
    ax_w.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(run_dir) / PROGRESS_FILE
    fig.savefig(path, dpi=80)
    return path
