"""The method contract: a batch dataclass, the context a method is built with, and the Method base class.

The trainer owns optimisers, schedules, AMP, evaluation, checkpoints and logging. A method owns its networks,
its losses and its teacher. ``train_step`` returns a dict of tensors holding ``'loss'``; it never calls
``backward()`` or ``step()``. The one escape hatch is ``extra_optimizers``/``extra_step`` for methods that train a
second network with its own optimiser (SASSnet's discriminator).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn

from sslbench.methods.networks.vnet import VNet
from sslbench.methods.ramps import rampup_weight


@dataclass
class Batch:
    """Labeled images and labels first, then unlabeled images. `extras` hold per-batch targets from the loader."""

    x_l: torch.Tensor  # (B_l, 1, W, H, D) float
    y_l: torch.Tensor  # (B_l, W, H, D) int64
    x_u: torch.Tensor  # (B_u, 1, W, H, D) float; B_u may be 0 (supervised runs)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def x(self) -> torch.Tensor:
        """The whole batch, labeled first: (B_l + B_u, 1, W, H, D)."""
        return torch.cat([self.x_l, self.x_u]) if self.x_u.shape[0] else self.x_l

    @property
    def n_l(self) -> int:
        return self.x_l.shape[0]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device, non_blocking=non_blocking)

        return Batch(
            move(self.x_l), move(self.y_l), move(self.x_u), {k: move(v) for k, v in self.extras.items()}
        )


class PreparationError(RuntimeError):
    """A method's `prepare_assets` could not build what the run needs (e.g. a DAE that failed to train)."""


class AssetCache(Protocol):
    """Where prepared assets are kept (the benchmark provides it): the methods package does no file IO."""

    def cached(self, kind: str, key: dict[str, Any], build: Callable[[], Any]) -> Any:
        """`build()`'s result, stored once per `key` (everything the asset depends on) and reused afterwards."""

    def record(self, kind: str, info: dict[str, Any]) -> None:
        """Add `info` to what the run's config.json records about the asset `kind` (e.g. a quality report)."""


@dataclass(frozen=True)
class MethodContext:
    """What a method may know about its run: at build time, and at prepare time (the data fields).

    Methods read this, never the benchmark's run configuration or preset names: a preset-dependent default is a
    preset value of the method's own config section.
    """

    n_classes: int = 2  # including the background
    in_channels: int = 1
    n_filters: int = 16
    normalization: str = "batchnorm"
    patch: tuple[int, int, int] = (112, 112, 80)  # training crop (W, H, D) in voxels
    spacing: tuple[float, float, float] = (0.625, 0.625, 0.625)  # mm per axis
    iterations: int = 6000  # the student's optimisation steps
    lr: float = 0.01  # the student's optimiser settings, for a method's own pre-training stage (BCP)
    momentum: float = 0.9
    weight_decay: float = 1e-4
    seed: int = 1337
    n_labeled: int = 8
    n_unlabeled: int = 72
    rampup: str = "staircase"  # or "gaussian" (the paper's continuous form)
    rampup_length: int = 40
    # bf16 autocast in effect for the run (`train.amp` on a CUDA device), for a method's own training stage (lrep's
    # DAE): it changes the numbers, so an asset built under it must say so in its key.
    autocast: bool = False
    # --- prepare time (`prepare_assets`, `asset_key`): this run's training data only, never test labels ---
    dataset_id: str = ""  # names the dataset in asset keys (its folder)
    labeled_ids: tuple[str, ...] = ()
    labeled_masks: Callable[[], list[np.ndarray]] | None = None  # loads this split's labeled label volumes
    labeled_images: Callable[[], list[np.ndarray]] | None = None  # ... and their images, in the same order
    device: str = "cpu"
    num_workers: int = 0  # loader processes a preparation may use
    progress: bool = False
    cache: AssetCache | None = None
    # --- build time ---
    assets: dict[str, Any] = field(
        default_factory=dict
    )  # what `prepare_assets` returned (e.g. a trained DAE)


@dataclass(frozen=True)
class NoConfig:
    """A method without its own hyper-parameters."""


class Method(nn.Module):
    """Base class of every method. Subclasses set `Config` and implement `train_step`."""

    Config: ClassVar[type] = NoConfig
    method_name: ClassVar[str] = ""
    uses_unlabeled: ClassVar[bool] = True
    #: the method's own authors' settings as `section.key` values, applied by `--recipe published` (the benchmark
    #: protocol stays the default); empty where the authors' protocol is the benchmark's (the seed paper's methods).
    published_recipe: ClassVar[dict[str, Any]] = {}
    #: trainer settings this method defaults to (applied before the user's --set), e.g. the paper's lr policy.
    train_defaults: ClassVar[dict[str, Any]] = {}
    #: config overrides under which the contract test checks the method (e.g. UniMatch's confidence threshold 0,
    #: so that an untrained tiny network has unlabeled voxels to learn from); never used in training.
    contract_config: ClassVar[dict[str, Any]] = {}
    #: networks whose forward passes are not inference passes (e.g. a discriminator); excluded from pass counts.
    auxiliary_networks: ClassVar[tuple[str, ...]] = ()
    #: why the method handles two classes only (None: any number of classes); a dataset with more is refused
    #: with this reason before anything is trained.
    binary_only: ClassVar[str | None] = None
    #: why a step must read device values on the host (a GPU stall every step); None: it never does, which
    #: tests/test_host_sync.py checks by running the step on the meta device (shapes only, no values).
    host_sync: ClassVar[str | None] = None

    def __init__(self, cfg: Any, ctx: MethodContext):
        super().__init__()
        self.cfg = cfg
        self.ctx = ctx

    # --- building blocks -------------------------------------------------------------------------------
    def build_vnet(self, n_classes: int | None = None, dropout: float = 0.5) -> VNet:
        return VNet(1, n_classes or self.ctx.n_classes, self.ctx.n_filters, self.ctx.normalization, dropout)

    def consistency_weight(self, weight: float, step: int, max_steps: int) -> float:
        return rampup_weight(weight, step, max_steps, self.ctx.rampup, self.ctx.rampup_length)

    @staticmethod
    def consistency_result(
        loss_sup: torch.Tensor, loss_unsup: torch.Tensor, w: float, **logged: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The `train_step` result of a "supervised + w * unsupervised" method, with both parts and w logged.

        The names are the ones the report's training curves plot; extra keyword tensors are logged as well.
        """
        return {
            "loss": loss_sup + w * loss_unsup,
            "loss_sup": loss_sup,
            "loss_unsup": loss_unsup,
            "w_unsup": torch.tensor(w),
            **logged,
        }

    # --- the contract ----------------------------------------------------------------------------------
    student: nn.Module

    def train_step(self, batch: Batch, step: int, max_steps: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters optimised by the trainer's main optimiser."""
        return self.student.parameters()

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities (B, C, W, H, D) of the evaluated network, used by the sliding window."""
        return torch.softmax(self.student(x), dim=1)

    def on_after_optimizer_step(self, step: int) -> None:
        """Called after each main optimiser step (EMA teachers update here)."""

    # --- escape hatch for a second optimiser (SASSnet) -------------------------------------------------
    def extra_optimizers(self) -> list[torch.optim.Optimizer]:
        return []

    def extra_step(
        self, batch: Batch, step: int, max_steps: int, optimizers: list[torch.optim.Optimizer]
    ) -> dict[str, torch.Tensor]:
        """Runs after the main step for methods with `extra_optimizers`; owns its backward and step."""
        return {}

    # --- per-batch targets computed in the data loader workers ----------------------------------------
    @staticmethod
    def batch_targets(y_l: np.ndarray) -> dict[str, np.ndarray]:
        """Extra targets from the labeled crops (B_l, W, H, D), computed off the training thread."""
        return {}

    #: True when `train_step` builds the same targets itself on an accelerator (from `batch.y_l`, when
    #: `batch.extras` lacks them): the trainer then skips `batch_targets` in the loader on CUDA.
    device_targets: ClassVar[bool] = False

    # --- assets prepared once per run (e.g. a pretrained DAE) -----------------------------------------
    @classmethod
    def prepare_assets(cls, cfg: Any, ctx: MethodContext) -> dict[str, Any]:
        """Build what the method needs before training; the result becomes `ctx.assets` of the built method.

        `ctx` carries this split's labeled ids and masks, the device, and `ctx.cache.cached(kind, key, build)`
        for assets stored once and reused by every run with the same key.
        """
        return {}

    @classmethod
    def resolve_config(cls, cfg: Any, split: Any) -> Any:
        """Fill config values that depend on the split (e.g. SASSnet's weight), so config.json records them."""
        return cfg

    @classmethod
    def asset_key(cls, cfg: Any, ctx: MethodContext) -> str | None:
        """A key shared by runs that need the same prepared assets (None: nothing to prepare).

        Sweeps prepare each distinct key once, before the runs that need it.
        """
        return None


class EMATeacherMixin:
    """An exponential-moving-average teacher owned by the method (Tarvainen & Valpola).

    Warm-up decay `min(1 - 1/(step + 1), decay)` as in UA-MT, so at step 0 the teacher becomes a copy of the
    student. The teacher starts as a copy of the student (the references build and initialise it on its own);
    this makes no difference after step 0, where alpha = 0 overwrites it with the student. BN running buffers
    are copied from the student (not averaged): the references skip them because their teacher always runs in
    train mode (batch statistics); copying keeps the teacher usable in eval mode too.
    """

    student: nn.Module
    teacher: nn.Module

    def init_teacher(self) -> None:
        self.teacher = copy.deepcopy(self.student)
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update_teacher(self, step: int, decay: float) -> None:
        alpha = min(1.0 - 1.0 / (step + 1), decay)
        t_params = list(self.teacher.parameters())
        s_params = list(self.student.parameters())
        torch._foreach_mul_(t_params, alpha)
        torch._foreach_add_(t_params, s_params, alpha=1.0 - alpha)
        for b_t, b_s in zip(self.teacher.buffers(), self.student.buffers(), strict=True):
            b_t.copy_(b_s)


def teacher_noise(x: torch.Tensor, std: float = 0.1, clip: float = 0.2) -> torch.Tensor:
    """x + clip(N(0, std^2), -clip, clip): the mean-teacher input perturbation."""
    return x + torch.clamp(torch.randn_like(x) * std, -clip, clip)
