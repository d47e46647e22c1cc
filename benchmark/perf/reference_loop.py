"""A straightforward eager re-implementation of the reference Mean Teacher training loop, for speed comparisons.

Written from methods.md sections 1.3-2.5 and 3.2 (not copied from any repository): the per-iteration structure
of the LA reference scripts (UA-MT's `train_LA_meanteacher_certainty_unlabel.py` without the uncertainty, SSL4MIS's
`train_mean_teacher_3D.py`). Each iteration: pick 2 labeled + 2 unlabeled cases, RandomRotFlip (which copies the
whole rotated/flipped volume), RandomCrop, ToTensor in numpy; stack; `.to(device)`; student forward on all 4,
teacher forward on the noisy unlabeled 2 under no_grad; CE + Dice on the labeled half, softmax MSE on the
unlabeled half with the sigmoid ramp-up; SGD step; EMA update in a Python loop over the parameters; the step
lr decay; the per-iteration `.item()` logging the references do. The V-Net is ours (methods/networks/vnet.py):
the point is the loop, not the network. The references build batches in 4 DataLoader workers; here they are built
in the loop, as our trainer does on CPU (`data.num_workers` auto = 0).

`compare_reference` times our MT step (the trainer's `StepRunner`, data loading included) against this loop,
interleaved A/B/B/A in one process, and batched against one-at-a-time sliding windows. Standalone:
`python -m sslbench.benchmark.perf.reference_loop --preset quick --iters 30` prints the reference's ms/iteration.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch
import torch.nn.functional as F

from sslbench.benchmark.evaluation.sliding_window import sliding_window_scores
from sslbench.benchmark.perf.timing import DEFAULT_SPLIT, machine, perf_config, sets_for
from sslbench.benchmark.training.device import seed_everything
from sslbench.benchmark.training.step import StepRunner
from sslbench.benchmark.training.trainer import Trainer, dataset_for
from sslbench.datasets.la import Volume
from sslbench.methods.losses import dice_loss_fg
from sslbench.methods.networks.vnet import VNet
from sslbench.methods.ramps import sigmoid_rampup


def reference_sample(vol: Volume, patch: tuple[int, int, int], rng: np.random.RandomState):
    """RandomRotFlip (copying the whole rotated, flipped volume), RandomCrop and ToTensor of the references, in
    numpy: (image (1, W, H, D) float32, label (W, H, D) int64)."""
    image, label = vol.image, vol.label
    k = rng.randint(0, 4)
    image, label = np.rot90(image, k), np.rot90(label, k)
    axis = rng.randint(0, 2)
    image, label = np.flip(image, axis=axis).copy(), np.flip(label, axis=axis).copy()
    if any(s <= p for s, p in zip(label.shape, patch, strict=True)):
        pad = [(max((p - s) // 2 + 3, 0),) * 2 for s, p in zip(label.shape, patch, strict=True)]
        image = np.pad(image, pad, mode="constant")
        label = np.pad(label, pad, mode="constant")
    (w, h, d), (pw, ph, pd) = label.shape, patch
    w1 = rng.randint(0, w - pw) if w > pw else 0
    h1 = rng.randint(0, h - ph) if h > ph else 0
    d1 = rng.randint(0, d - pd) if d > pd else 0
    image = image[w1 : w1 + pw, h1 : h1 + ph, d1 : d1 + pd]
    label = label[w1 : w1 + pw, h1 : h1 + ph, d1 : d1 + pd]
    return image.reshape(1, *image.shape).astype(np.float32), label.astype(np.int64)


class ReferenceLoop:
    """The reference MT loop, one `step(iteration)` at a time, with the reference's hyper-parameters."""

    def __init__(
        self,
        labeled: list[Volume],
        unlabeled: list[Volume],
        patch: tuple[int, int, int],
        n_filters: int,
        device: torch.device,
        seed: int = 1337,
        max_iterations: int = 6000,
        labeled_bs: int = 2,
        batch_size: int = 4,
    ):
        self.labeled, self.unlabeled = labeled, unlabeled
        self.patch, self.device = patch, device
        self.labeled_bs, self.batch_size = labeled_bs, batch_size
        self.max_iterations = max_iterations
        self.rng = np.random.RandomState(seed)
        self.model = VNet(1, 2, n_filters, "batchnorm", dropout=0.5).to(device)
        self.ema_model = copy.deepcopy(self.model)
        for p in self.ema_model.parameters():
            p.detach_()
        self.model.train()
        self.ema_model.train()
        self.base_lr = 0.01
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=self.base_lr, momentum=0.9, weight_decay=1e-4
        )
        self.log: list[tuple[float, ...]] = []

    # --- data: the reference transforms, per sample, in numpy -------------------------------------------
    def _sample(self, vol: Volume) -> tuple[np.ndarray, np.ndarray]:
        return reference_sample(vol, self.patch, self.rng)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        lab = self.rng.choice(len(self.labeled), self.labeled_bs, replace=len(self.labeled) < self.labeled_bs)
        unl = self.rng.choice(len(self.unlabeled), self.batch_size - self.labeled_bs)
        samples = [self._sample(self.labeled[i]) for i in lab] + [
            self._sample(self.unlabeled[i]) for i in unl
        ]
        images = torch.stack([torch.from_numpy(s[0]) for s in samples])  # default_collate
        labels = torch.stack([torch.from_numpy(s[1]) for s in samples])
        return images, labels

    # --- one iteration ---------------------------------------------------------------------------------
    def step(self, iteration: int) -> float:
        images, labels = self.batch()
        images, labels = images.to(self.device), labels.to(self.device)
        lbs = self.labeled_bs
        unlabeled = images[lbs:]
        noise = torch.clamp(torch.randn_like(unlabeled) * 0.1, -0.2, 0.2)
        outputs = self.model(images)
        with torch.no_grad():
            ema_output = self.ema_model(unlabeled + noise)
        outputs_soft = F.softmax(outputs, dim=1)
        loss_seg = F.cross_entropy(outputs[:lbs], labels[:lbs])
        loss_dice = dice_loss_fg(outputs_soft[:lbs, 1], labels[:lbs] == 1)
        supervised = 0.5 * (loss_seg + loss_dice)
        weight = 0.1 * sigmoid_rampup(iteration // 150, 40)
        consistency = torch.mean((outputs_soft[lbs:] - F.softmax(ema_output, dim=1)) ** 2)
        loss = supervised + weight * consistency
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        alpha = min(1 - 1 / (iteration + 1), 0.99)
        for ema_param, param in zip(self.ema_model.parameters(), self.model.parameters(), strict=True):
            ema_param.data.mul_(alpha).add_(param.data, alpha=1 - alpha)
        if iteration % 2500 == 0:
            for group in self.optimizer.param_groups:
                group["lr"] = self.base_lr * 0.1 ** (iteration // 2500)
        self.log.append((loss.item(), loss_seg.item(), loss_dice.item(), consistency.item(), weight))
        return float(loss.item())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device) -> tuple[float, float]:
    """(wall ms, process CPU ms) of one call; CPU time is the steadier figure on a machine shared with others."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    _sync(device)
    return 1000 * (time.perf_counter() - t0), 1000 * (time.process_time() - c0)


def compare_reference(
    preset: str = "quick",
    data_root: str | None = None,
    sets: dict[str, Any] | None = None,
    iters: int = 10,
    repeats: int = 6,
    warmup: int = 5,
    split: str = DEFAULT_SPLIT,
) -> dict[str, Any]:
    """Our MT iteration vs the reference loop, and batched vs one-window sliding windows, interleaved A/B.

    Rounds alternate the order (A B, B A, ...), so a slow phase of a shared machine hits both sides alike.
    Per-iteration times include the data loading on both sides. Returns medians, ratios (ours / reference,
    batched / one-at-a-time) and the per-round ratios.
    """
    probe = perf_config("mt", preset, data_root, sets_for("mt", sets), split)
    cfg = perf_config("mt", preset, data_root, sets_for("mt", sets), split, len(dataset_for(probe).train_ids))
    seed_everything(cfg.seed, cfg.train.deterministic)
    trainer = Trainer(cfg, Path("."), progress=False)
    device = trainer.device
    method = trainer.build_method()
    runner = StepRunner(trainer, method)
    method.train()
    total = warmup + iters * repeats
    batches = iter(trainer.loader(0, total))
    t = cfg.train
    ref = ReferenceLoop(
        trainer.dataset.volumes(trainer.labeled_ids),
        trainer.dataset.volumes(trainer.unlabeled_ids),
        tuple(cfg.data.patch),
        t.n_filters,
        device,
        cfg.seed,
        t.iterations,
        t.labeled_bs,
        t.batch_size,
    )
    counter = {"ours": 0, "ref": 0}

    def ours() -> None:
        runner(next(batches), counter["ours"])
        counter["ours"] += 1

    def reference() -> None:
        ref.step(counter["ref"])
        counter["ref"] += 1

    train_times = _interleave({"ours": ours, "reference": reference}, device, warmup, iters, repeats)

    # Sliding windows on the first test volume with the MT student: cfg.eval.sw_batch windows per pass vs 1.
    method.eval()
    predict = trainer.predictor(method)
    vol = trainer.dataset.volume(trainer.dataset.test_ids[0])
    e = cfg.eval
    outputs: dict[str, torch.Tensor] = {}

    def windows(n: int):
        def run() -> None:
            outputs[n] = sliding_window_scores(
                predict, vol.image, tuple(cfg.data.patch), e.stride_xy, e.stride_z, 2, n, device
            ).cpu()

        return run

    eval_times = _interleave(
        {"batched": windows(e.sw_batch), "one_window": windows(1)}, device, 1, 1, repeats
    )
    result = {
        "machine": machine(device),
        "settings": {
            "preset": preset,
            "data": str(data_root or "synthetic default"),
            "split": cfg.split,
            "iters_per_round": iters,
            "rounds": repeats,
            "warmup": warmup,
            "sw_batch": e.sw_batch,
            "eval_volume": vol.case_id,
            "eval_shape": list(vol.image.shape),
        },  # fmt: skip
        "train": _summary(train_times, "ours", "reference"),
        "eval": _summary(eval_times, "batched", "one_window"),
        "eval_max_abs_diff": float((outputs[e.sw_batch] - outputs[1]).abs().max()),
    }
    return result


def _interleave(sides: dict[str, Any], device, warmup: int, iters: int, repeats: int) -> dict[str, list]:
    """{side: [round][call] -> (wall ms, CPU ms)}, the rounds alternating which side goes first."""
    names = list(sides)
    for name in names:
        for _ in range(warmup):
            sides[name]()
    _sync(device)
    times: dict[str, list] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            times[name].append([_timed(sides[name], device) for _ in range(iters)])
    return times


def _summary(times: dict[str, list], a: str, b: str) -> dict[str, Any]:
    def median(side: str, which: int, blocks: list | None = None) -> float:
        return float(np.median([call[which] for blk in (blocks or times[side]) for call in blk]))

    rounds = [median(a, 0, [x]) / median(b, 0, [y]) for x, y in zip(times[a], times[b], strict=True)]
    return {
        f"{a}_ms": median(a, 0),
        f"{b}_ms": median(b, 0),
        "ratio": median(a, 0) / median(b, 0),
        "round_ratios": rounds,
        "ratio_min": min(rounds),
        "ratio_max": max(rounds),
        f"{a}_cpu_ms": median(a, 1),
        f"{b}_cpu_ms": median(b, 1),
        "cpu_ratio": median(a, 1) / median(b, 1),
    }


def format_comparison(result: dict[str, Any]) -> str:
    m, s, tr, ev = result["machine"], result["settings"], result["train"], result["eval"]
    return "\n".join([
        f"{m['device_name']} ({m['device']}, torch {m['torch']}, {m['torch_threads']} threads) | preset "
        f"{s['preset']}, {s['data']}, split {s['split']} | {s['rounds']} interleaved rounds",
        f"MT iteration (data included): ours {tr['ours_ms']:.1f} ms, reference loop {tr['reference_ms']:.1f} ms "
        f"-> ours/reference {tr['ratio']:.3f} (rounds {tr['ratio_min']:.3f}..{tr['ratio_max']:.3f}); process "
        f"CPU time {tr['ours_cpu_ms']:.1f} vs {tr['reference_cpu_ms']:.1f} ms -> {tr['cpu_ratio']:.3f}",
        f"sliding window on {s['eval_volume']} {tuple(s['eval_shape'])}: sw_batch {s['sw_batch']} "
        f"{ev['batched_ms']:.0f} ms, one window at a time {ev['one_window_ms']:.0f} ms -> batched/one "
        f"{ev['ratio']:.3f} (rounds {ev['ratio_min']:.3f}..{ev['ratio_max']:.3f}; CPU time {ev['cpu_ratio']:.3f}); "
        f"max |difference| of the averaged probabilities {result['eval_max_abs_diff']:.2e}",
    ])  # fmt: skip


@click.command()
@click.option("--preset", default="quick", show_default=True)
@click.option("--data", "data_root", default=None, help="LA-layout folder (default: the synthetic dataset).")
@click.option("--iters", type=int, default=30, show_default=True)
@click.option("--warmup", type=int, default=5, show_default=True)
def main(preset: str, data_root: str | None, iters: int, warmup: int) -> None:
    """Print the reference loop's median ms/iteration at a preset's shapes."""
    cfg = perf_config("mt", preset, data_root)
    dataset = dataset_for(cfg)
    cfg = perf_config("mt", preset, data_root, n_train=len(dataset.train_ids))
    n_l, n_u = (int(v) for v in cfg.split.split("/"))
    ids = dataset.train_ids
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    t = cfg.train
    loop = ReferenceLoop(dataset.volumes(ids[:n_l]), dataset.volumes(ids[n_l : n_l + n_u]), tuple(cfg.data.patch),
                         t.n_filters, device, cfg.seed, t.iterations, t.labeled_bs, t.batch_size)  # fmt: skip
    times = [_timed(lambda i=i: loop.step(i), device)[0] for i in range(warmup + iters)][warmup:]
    click.echo(
        f"reference MT loop, preset {preset}, {device}: {np.median(times):.1f} ms/iteration (median of {iters})"
    )


if __name__ == "__main__":
    main()
