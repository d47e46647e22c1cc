"""Pre-training of the labeling-representation DAE on the labeled masks only (methods.md 3.7.A).

Each step draws `batch_size` labeled masks, augments them as the segmentation branch does (random rot/flip and a
random crop of the patch), corrupts the crop slice by slice (`corruptions.corrupt`), adds clipped Gaussian noise
clip(N(0, 0.1^2), +-0.2) to the 1-channel float input, and regresses the one-hot clean crop with sigmoid outputs.

Loss: "mse" (the paper): the voxel mean of the squared L2 norm over classes, (1/WHD) sum_v ||sigmoid(f(y~))_v -
y_v||^2; "mse+dice" (the authors' code): 0.5 (element-mean MSE + foreground squared-denominator Dice).
Optimiser: SGD lr 0.1, momentum 0.9, lr halved every `halve_every` steps (the paper: every 5000). The paper does
not give the number of DAE iterations; `iterations` is resolved by the caller (lrep scales it with the run).

Reconstruction report: there is no validation split in the LA protocol and only labeled masks may be used, so the
DAE is measured on fresh random crops + corruptions of its own training masks, drawn from a separate random stream
(unseen corruptions of seen shapes, an optimistic estimate), and, when `holdout` > 0, by a separate probe DAE
trained on all but the last `holdout` labeled masks and measured on those (unseen shapes; costs a second
training; the returned DAE is always the one trained on all N masks). Unlabeled and test labels are never used.
It gives the foreground Dice against the clean crop of the corrupted input, of the DAE's output on it and of its
output on the clean crop, and `denoises` (output better than its input). A DAE that scores about the same on clean
and corrupted input and below its input does not denoise: it has not learnt to autoencode the crops.

Pose (`pose`): the dense bottleneck must encode each crop's pose (the random crop's offset, the rot/flip) as well
as its shape. With the default "as-is" and the CPU presets' step counts on 8 masks the DAE learns a blurred
average and does not denoise. "canonical" (`pose.py`) trains and applies it with every map in a canonical pose
computed from the map itself, so what it sees in lrep (the teacher's prediction of a training crop) gets the same
treatment. Not in the paper or the authors' code (their 50k steps at F = 16 on a GPU are what "as-is" relies on).
Measured (split 8/72, seed 1337, one thread; Dice of corrupted input -> output, output on clean input):
    synthetic, quick preset (32^3, F = 4, 600 steps):   as-is 94.3 -> 76.9 (77.3);  canonical 94.3 -> 85.1 (87.0)
    la-half, la-half preset (64x64x32, F = 8, 1200 steps): as-is 94.6 -> 84.5 (85.6);  canonical 94.5 -> 94.8 (96.5)
so only the canonical la-half DAE denoises (barely); the synthetic quick one needs more steps (`dae_iterations`,
with `dae_seed` to build it once per split).

C classes (the authors' FLARE code, `code_DAE/train_DAE.py` with `VNetDAE(n_channels=1, n_classes=5)`): the input
stays one channel, the corrupted map's class indices as floats (0, 1, ..., C-1) plus the same noise, and the DAE
outputs C sigmoid channels regressed against the one-hot clean crop; "mse+dice" uses the mean foreground Dice
(their `dice_loss_all`: 1 - the mean Dice of classes 1..C-1), and the report's Dice is the mean over the
foreground classes of each class's Dice. Two classes are exactly the binary DAE.

Speed switches (the run's, from its `MethodContext`), as the main training loop has them. `channels_last` trains
and measures the DAE with its weights in the channels-last 3D layout (NDHWC, the layout oneDNN's and cuDNN's fast
3D kernels prefer; the activations follow the weights, and the 1-channel input batches are in both layouts at
once). It changes only the floating-point rounding (on the CPU more than the thread count does: torch 2.13's
channels-last BatchNorm3d is accurate to 1e-5 to 1e-4 relative at these sizes, the standard one to 1e-7), but
that gives another DAE, so lrep makes it a setting of its own (`dae_channels_last`, off by default so that earlier
runs keep their numbers) and names it in the DAE's key. `autocast` runs the forward passes under bf16 autocast
(the trainer sets it with `train.amp` on a CUDA device only), the loss in float32; bf16 changes the numbers
materially, so lrep names it in the key too (`dae_key`).

Batches are a pure function of (seed, step), as in `datasets.batches`, so loader workers may build them in any
order. The global torch RNG is forked: training a DAE (or loading it from a cache instead) never changes the
random stream the caller's networks are initialised from.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from sslbench.datasets.transforms import random_crop, random_rot_flip
from sslbench.methods.algorithms.lrep.corruptions import CorruptionConfig, corrupt
from sslbench.methods.algorithms.lrep.pose import POSES, canonical_pose, dae_probabilities, to_canonical
from sslbench.methods.base import PreparationError
from sslbench.methods.losses import dice_loss_foreground
from sslbench.methods.networks.dae import LabelDAE

_TRAIN_STREAM, _EVAL_STREAM, _ORDER_STREAM = 0xDAE0, 0xDAE1, 0xDAE2
LOSSES = ("mse", "mse+dice")


class DAETrainingError(PreparationError):
    """DAE pre-training cannot run or diverged; the message names the cause and the option to change."""


@dataclass(frozen=True)
class DAEConfig:
    iterations: int = 20000  # not stated in the paper (the authors' FLARE code: 50k); resolved by the caller
    batch_size: int = 4  # paper section 3: batch 4 in both networks
    lr: float = 0.1  # paper section 3
    momentum: float = 0.9  # paper section 3
    weight_decay: float = 1e-4  # authors' train_DAE.py (the paper does not say)
    halve_every: int = 5000  # paper: "decaying the lr by 2 for every 5000 iterations"
    loss: str = "mse"  # paper: MSE; "mse+dice" = the authors' code 0.5 (MSE + Dice_fg)
    latent_dim: int = 512  # authors' scripts --emb_dim 512 (the paper: "d-dimensional")
    init: str = "pytorch"  # not in the paper; "authors" = their uniform init (slow start, see LabelDAE)
    input_noise_std: float = 0.1  # authors' train_DAE.py: clip(N(0, 0.1^2), +-0.2) on the corrupted input
    input_noise_clip: float = 0.2
    corruption: CorruptionConfig = field(default_factory=CorruptionConfig)
    pose: str = "as-is"  # "canonical": every map in its canonical pose (pose.py; not in the paper or code)
    holdout: int = 0  # labeled masks held out for an extra probe DAE measuring unseen shapes (0 = no probe)
    eval_samples: int = 16  # corrupted crops for the reconstruction report

    def to_key(self) -> dict[str, Any]:
        return asdict(self)


def one_hot(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(B, W, H, D) int -> (B, C, W, H, D) float."""
    return F.one_hot(labels.long(), n_classes).movedim(-1, 1).float()


def dae_loss(logits: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """The DAE objective on C logits and integer targets (see the module docstring)."""
    prob = torch.sigmoid(logits)
    onehot = one_hot(target, logits.shape[1])
    if kind == "mse":
        return ((prob - onehot) ** 2).sum(dim=1).mean()
    if kind == "mse+dice":
        return 0.5 * (F.mse_loss(prob, onehot) + dice_loss_foreground(prob, target))
    raise ValueError(f"DAE loss '{kind}': expected one of {LOSSES}")


def mask_order(seed: int, n: int, step: int, batch_size: int) -> list[int]:
    """Masks of step `step`: consecutive positions of an endless chain of per-epoch permutations of range(n)."""
    out = []
    for pos in range(step * batch_size, (step + 1) * batch_size):
        epoch, offset = divmod(pos, n)
        out.append(int(np.random.default_rng([seed, _ORDER_STREAM, epoch]).permutation(n)[offset]))
    return out


def corrupted_crop(
    mask: np.ndarray,
    patch: tuple[int, int, int],
    rng: np.random.Generator,
    cfg: CorruptionConfig,
    n_classes: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """(corrupted, clean) crops of one mask: rot/flip, random crop (the segmentation branch's), corruption."""
    _, label = random_rot_flip(mask, mask, rng)
    _, clean = random_crop(label, label, patch, rng)
    clean = np.ascontiguousarray(clean)
    return corrupt(clean, rng, cfg, n_classes), clean


@dataclass
class DAEBatches:
    """Map-style dataset: item `step` is the (corrupted, clean) numpy batch of that step."""

    masks: list[np.ndarray]
    patch: tuple[int, int, int]
    cfg: DAEConfig
    seed: int
    stream: int = _TRAIN_STREAM
    n_classes: int = 2  # of the masks, background included (the classes of added shapes)

    def __len__(self) -> int:
        return self.cfg.iterations

    def __getitem__(self, step: int) -> dict[str, np.ndarray]:
        pairs = []
        for slot, i in enumerate(mask_order(self.seed, len(self.masks), step, self.cfg.batch_size)):
            rng = np.random.default_rng([self.seed, self.stream, step, slot])
            corrupted, clean = corrupted_crop(
                self.masks[i], self.patch, rng, self.cfg.corruption, self.n_classes
            )
            if self.cfg.pose == "canonical":  # the pose of what the DAE will see: its (corrupted) input
                pose = canonical_pose(torch.from_numpy(corrupted))
                corrupted, clean = (
                    to_canonical(torch.from_numpy(a), pose).numpy() for a in (corrupted, clean)
                )
            pairs.append((corrupted, clean))
        corrupted = np.stack([p[0] for p in pairs])[:, None].astype(np.float32)  # (B, 1, W, H, D)
        clean = np.stack([p[1] for p in pairs]).astype(np.int64)  # (B, W, H, D)
        return {"corrupted": corrupted, "clean": clean}


def _collate(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in batch.items()}


def dice_score(pred: np.ndarray, target: np.ndarray, n_classes: int = 2) -> float:
    """Foreground Dice of two label arrays pooled over everything given (1.0 when both are empty); with more than
    two classes the mean over the foreground classes of each class's Dice."""
    if n_classes > 2:
        return float(np.mean([dice_score(pred == c, target == c) for c in range(1, n_classes)]))
    p, t = pred > 0, target > 0
    denom = p.sum() + t.sum()
    return 1.0 if denom == 0 else float(2.0 * (p & t).sum() / denom)


@torch.no_grad()
def reconstruction_dice(
    model: LabelDAE,
    masks: list[np.ndarray],
    patch: tuple[int, int, int],
    cfg: DAEConfig,
    seed: int,
    device: torch.device,
    channels_last: bool = False,
    autocast: bool = False,
) -> dict[str, Any]:
    """Foreground Dice vs the clean crop of the corrupted input, the DAE's output on it and on the clean crop.

    Fresh crops and corruptions (a stream training never draws). `denoises`: the output on the corrupted input
    is closer to the clean crop than that input is (a DAE that does not denoise only blurs its input).
    `channels_last` / `autocast`: the run's speed switches (module docstring), so the DAE is measured as lrep
    then applies it: the weights in the channels-last layout (in place; a no-op on a DAE trained so), under the
    run's autocast.
    """
    n_classes = model.out_conv.out_channels
    data = DAEBatches(
        masks,
        patch,
        replace(cfg, batch_size=1, iterations=cfg.eval_samples, pose="as-is"),
        seed,
        _EVAL_STREAM,
        n_classes,
    )  # crops in their own frame: `dae_probabilities` applies the DAE's pose as lrep does
    if channels_last:
        model.to(memory_format=torch.channels_last_3d)
    model.eval()
    corrupted, clean, recon, recon_clean = [], [], [], []
    for step in range(cfg.eval_samples):
        item = data[step]
        for source, out in ((item["corrupted"], recon), (item["clean"][:, None], recon_clean)):
            maps = torch.from_numpy(source.astype(np.float32)).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                prob = dae_probabilities(model, maps, cfg.pose)
            out.append(prob.argmax(1).cpu().numpy())
        corrupted.append(item["corrupted"][:, 0])
        clean.append(item["clean"])
    corrupted, clean = np.stack(corrupted), np.stack(clean)
    dice_in = dice_score(corrupted, clean, n_classes)
    dice_out = dice_score(np.stack(recon), clean, n_classes)
    return {
        "dice_corrupted_vs_clean": dice_in,
        "dice_dae_vs_clean": dice_out,
        "dice_dae_on_clean_vs_clean": dice_score(np.stack(recon_clean), clean, n_classes),
        "denoises": bool(dice_out > dice_in),
    }


def denoising_problem(report: dict[str, Any]) -> str | None:
    """A sentence naming the Dice values when the report's DAE does not denoise its input, else None."""
    if report.get("denoises", True):
        return None
    return (
        f"the lrep DAE does not denoise: on {report.get('eval_samples', '?')} corrupted crops of the labeled "
        f"masks its output scores Dice {100 * report['dice_dae_vs_clean']:.2f}% against the clean crop, its "
        f"corrupted input {100 * report['dice_corrupted_vs_clean']:.2f}% (on clean input "
        f"{100 * report['dice_dae_on_clean_vs_clean']:.2f}%); its uncertainty then mostly measures its own "
        "reconstruction error (train it longer: lrep.dae_iterations, or use lrep.dae_pose=canonical)"
    )


def _fit(
    masks: list[np.ndarray],
    cfg: DAEConfig,
    patch: tuple[int, int, int],
    n_filters: int,
    device: torch.device,
    seed: int,
    progress: bool,
    num_workers: int,
    desc: str,
    n_classes: int = 2,
    channels_last: bool = False,
    autocast: bool = False,
) -> tuple[LabelDAE, list]:
    """Train one DAE; returns it with its loss curve (the mean loss of each tenth of the iterations).

    `channels_last`: the weights in the channels-last 3D layout (activations follow them);
    `autocast`: forward passes under bf16 autocast, the loss in float32 (module docstring).
    """
    model = LabelDAE(patch, n_classes, n_filters, cfg.latent_dim, init=cfg.init).to(device)
    if channels_last:
        # The weights only: the input batches have one channel, where NCDHW and NDHWC are the same bytes (they
        # already are channels-last), and the activations follow the weights' layout.
        model = model.to(memory_format=torch.channels_last_3d)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    loader = DataLoader(
        DAEBatches(masks, patch, cfg, seed, n_classes=n_classes),
        batch_size=None,
        sampler=range(cfg.iterations),
        num_workers=num_workers,
        collate_fn=_collate,
        pin_memory=device.type == "cuda",
    )
    from tqdm.auto import tqdm

    chunk = max(1, cfg.iterations // 10)
    sums: list[float] = []
    # Off the CPU a loss read on the host waits for the device: the losses of a tenth of the run are kept on it
    # and read (and checked) at its end, in step order, so the curve is the same floats as the CPU's.
    deferred = device.type != "cpu"
    held: list[tuple[int, torch.Tensor]] = []

    def add(step: int, value: float) -> None:
        if not math.isfinite(value):
            raise DAETrainingError(f"DAE loss is {value} at step {step}; lower the DAE lr (lrep.dae_lr)")
        if step // chunk >= len(sums):
            sums.append(0.0)
        sums[-1] += value

    def flush() -> None:
        if held:
            values = torch.stack([v for _, v in held]).cpu().tolist()
            for (step, _), value in zip(held, values, strict=True):
                add(step, value)
            held.clear()

    for step, batch in enumerate(
        tqdm(loader, total=cfg.iterations, desc=desc, disable=not progress, leave=False)
    ):
        for group in opt.param_groups:
            group["lr"] = cfg.lr * 0.5 ** (step // cfg.halve_every)
        x = batch["corrupted"].to(device, non_blocking=True)
        noise = torch.clamp(
            torch.randn_like(x) * cfg.input_noise_std, -cfg.input_noise_clip, cfg.input_noise_clip
        )
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(x + noise)
        # the sigmoid, squares and means in float32: in bf16 the loss would round away the small errors
        loss = dae_loss(logits.float(), batch["clean"].to(device, non_blocking=True), cfg.loss)
        if deferred:
            held.append((step, loss.detach()))
        else:
            add(step, float(loss.detach()))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if deferred and (step + 1) % chunk == 0:
            flush()
    flush()
    counts = [min(chunk, cfg.iterations - i * chunk) for i in range(len(sums))]
    return model, [round(total / n, 5) for total, n in zip(sums, counts, strict=True)]


def train_dae(
    masks: list[np.ndarray],
    cfg: DAEConfig,
    patch: tuple[int, int, int],
    n_filters: int,
    device: torch.device | str,
    seed: int,
    progress: bool = False,
    num_workers: int = 0,
    n_classes: int = 2,
    channels_last: bool = False,
    autocast: bool = False,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Train the DAE on `masks` (the labeled masks, (W, H, D) label maps of `n_classes` classes, background
    included) and measure its reconstructions.

    `channels_last` and `autocast` are the run's speed switches (module docstring): channels-last changes only
    the rounding, bf16 autocast the numbers (the caller's cache key must name it).
    Returns the CPU state dict (standard layout) of the DAE trained on all masks and a JSON-friendly report.
    """
    if not masks:
        raise DAETrainingError("DAE pre-training needs at least one labeled mask")
    if cfg.loss not in LOSSES:
        raise DAETrainingError(f"DAE loss '{cfg.loss}': expected one of {', '.join(LOSSES)}")
    if cfg.pose not in POSES:
        raise DAETrainingError(f"DAE pose '{cfg.pose}': expected one of {', '.join(POSES)}")
    if cfg.iterations < 1 or cfg.halve_every < 1:
        raise DAETrainingError("DAE iterations and halve_every must be at least 1")
    if cfg.holdout and cfg.holdout >= len(masks):
        raise DAETrainingError(
            f"DAE holdout {cfg.holdout}: needs more labeled masks than that ({len(masks)} given)"
        )
    device = torch.device(device)
    patch = tuple(int(p) for p in patch)
    devices = [device] if device.type == "cuda" else []
    report: dict[str, Any] = {
        "n_masks": len(masks),
        "iterations": cfg.iterations,
        "halve_every": cfg.halve_every,
        "loss": cfg.loss,
        "eval_samples": cfg.eval_samples,
    }
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        switches = {"channels_last": channels_last, "autocast": autocast}
        model, curve = _fit(
            masks, cfg, patch, n_filters, device, seed, progress, num_workers, "DAE", n_classes, **switches
        )
        report["train_s"] = time.perf_counter() - t0
        report["final_loss"] = curve[-1]  # the mean over the last tenth of the iterations
        report["loss_curve"] = curve
        report["n_params"] = sum(p.numel() for p in model.parameters())
        report.update(reconstruction_dice(model, masks, patch, cfg, seed, device, **switches))
        if cfg.holdout:
            seen, unseen = masks[: -cfg.holdout], masks[-cfg.holdout :]
            probe, _ = _fit(
                seen,
                cfg,
                patch,
                n_filters,
                device,
                seed,
                progress,
                num_workers,
                "DAE probe",
                n_classes,
                **switches,
            )
            held = reconstruction_dice(probe, unseen, patch, cfg, seed, device, **switches)
            report.update({f"holdout_{k}": v for k, v in held.items()}, holdout_n=cfg.holdout)
    report["total_s"] = time.perf_counter() - t0
    # the standard layout whatever the training's, so a cached DAE does not depend on the switch
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if not all(math.isfinite(float(v.float().abs().max())) for v in state.values() if v.numel()):
        raise DAETrainingError("DAE weights are not finite; lower the DAE lr (lrep.dae_lr)")
    return state, report
