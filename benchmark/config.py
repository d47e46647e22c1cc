"""Run configuration: frozen dataclasses, presets, and the strict `--set key=value` override parser.

Resolution order: preset < the method's own trainer defaults (e.g. the paper's lr policy for lrep) < --set.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from sslbench.datasets.splits import parse_split
from sslbench.methods.registry import UnknownMethodError, canonical_name, find_method, get_method

DEFAULT_SEEDS = (1337, 1338, 1339)  # UA-MT's default seed 1337, then the next two
CONFIG_SECTIONS = ("data", "train", "eval")  # the shared sections; each method has its own, named after it


class ConfigError(ValueError):
    """A configuration key or value is not valid."""


@dataclass(frozen=True)
class DataConfig:
    root: str | None = None  # None = the built-in synthetic LA-like dataset (generated once, cached)
    # mm, one number (isotropic) or x,y,z; None = what the data says (dataset.json, the NIfTI headers, or the LA
    # convention for an LA folder without metadata). Only distances in mm depend on it.
    spacing: float | tuple[float, float, float] | None = None
    patch: tuple[int, int, int] = (112, 112, 80)  # training crop = sliding-window patch (UA-MT)
    num_workers: int = -1  # loader processes: -1 = auto (0 on CPU, min(4, cores) on CUDA), 0 = in-process
    subset: int = (
        0  # labeled subset: 0 = the first N of train.list (the literature), k > 0 = draw k (splits.py)
    )
    # The content of a `--data` folder (datasets/fingerprint.py), computed by build_config; None for the built-in
    # dataset, whose folder name already carries its generator version. Part of the run id.
    fingerprint: str | None = None


@dataclass(frozen=True)
class TrainConfig:
    iterations: int = 6000  # UA-MT max_iterations
    batch_size: int = 4  # UA-MT: 4 = 2 labeled + 2 unlabeled
    labeled_bs: int = 2
    n_filters: int = 16
    normalization: str = "batchnorm"
    lr: float = 0.01  # UA-MT/DTC/SASSnet base lr
    lr_policy: str = "step"  # step (x0.1 every lr_step) | cosine (the paper's policy for lrep) | poly
    lr_step: int | None = None  # None = 2500 per 6000 iterations, scaled to `iterations`
    lr_gamma: float = 0.1
    cosine_extra: int = 0  # cosine T_max = iterations + cosine_extra (the authors' FLARE code uses 2000)
    optimizer: str = "sgd"  # sgd (every reference of the seed paper) | adamw (CrossMatch's recipe)
    momentum: float = 0.9  # SGD momentum; AdamW's beta1
    weight_decay: float = 1e-4
    rampup: str = "staircase"  # staircase (iter // (iterations/40), the references) | gaussian (the paper)
    rampup_length: int = 40
    log_every: int = 20
    checkpoint_every: int = 500
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # bf16 autocast on CUDA, training and evaluation (no effect on CPU); paper preset: off
    deterministic: bool = False
    threads: int = 0  # torch intra-op threads (0 = torch's default)
    channels_last: bool = True  # channels-last 3D memory format for the networks (speed only: CPU and CUDA)
    compile: bool = False  # torch.compile each network in place (opt-in; cached: training/compile.py)
    # torch.compile mode: "default", or "reduce-overhead" (CUDA graphs: each network's forward and backward
    # replayed as one graph instead of hundreds of kernel launches), or "max-autotune"
    compile_mode: str = "default"
    tensorboard: bool = False  # also write TensorBoard scalars to RUN/tensorboard (the tensorboard extra)
    val_every: int = 0  # validation Dice every N steps on held-out TRAINING cases (never test); 0 = off
    val_cases: int = 2  # how many: the last ones of train.list that the split leaves out
    # Test-set Dice every N steps (a multiple of log_every), with non-overlapping windows, for the learning-curve
    # figure only: it never picks weights (the reported numbers are the final weights'). 0 = off.
    curve_every: int = 0


@dataclass(frozen=True)
class EvalConfig:
    stride_xy: int = 18  # UA-MT test_LA.py
    stride_z: int = 4
    sw_batch: int = 4  # windows per forward pass
    empty_policy: str = "worst"  # worst (HD95/ASD = volume diagonal) | legacy-zero (the references' 0)
    largest_cc: bool = False  # the seed paper uses no post-processing
    # processes computing HD95/ASD (CPU work) while the next volume is predicted: -1 = auto (on CUDA, up to 8 of
    # the machine's cores; on CPU 0, since the sweep's other runs use the cores), 0 = in the run's process
    metric_workers: int = -1


# "benchmark": every method under the seed paper's protocol (equal budget); "published": each method with its
# own authors' settings (`Method.published_recipe`), to show how much of a reported gain its budget buys.
RECIPES = ("benchmark", "published")

PRESETS: dict[str, dict[str, Any]] = {
    # The LA protocol of the references and the seed paper (a GPU job).
    "paper": {
        # fp32, as every reference trains and evaluates (bf16 autocast is a speed option: --set train.amp=true).
        "train.amp": False,
        # lrep's DAE: the paper halves its lr every 5000 steps; 20000 steps (within methods.md's 20k-50k).
        "lrep.dae_iterations": 20000,
        "lrep.dae_channels_last": True,  # speed only (cuDNN's fast 3D kernels), as train.channels_last
    },
    # A CPU proxy: one run in well under a minute on 2 cores, on the synthetic default.
    "quick": {
        "data.patch": (32, 32, 32),
        "train.n_filters": 4,
        "train.iterations": 300,
        # 300 steps of the reference schedule (0.01, x0.1 after 125) leave the net barely trained; a short run
        # needs SSL4MIS's policy (lr 0.1, poly). Methods with their own policy (lrep: the paper's cosine) keep it.
        "train.lr": 0.1,
        "train.lr_policy": "poly",
        "train.log_every": 10,
        "train.checkpoint_every": 100,
        "eval.stride_xy": 16,
        "eval.stride_z": 8,
        "eval.sw_batch": 8,
    },
    # Seconds: for tests.
    "smoke": {
        "data.patch": (16, 16, 16),
        "train.n_filters": 2,
        "train.iterations": 6,
        "train.log_every": 2,
        "train.checkpoint_every": 3,
        "eval.stride_xy": 16,
        "eval.stride_z": 16,
        "eval.sw_batch": 8,
    },
    # Real anatomy on CPU: ../shared/data/la-half (about 96x70x44 volumes, 1.25 mm).
    "la-half": {
        # lrep's DAE in a canonical pose (moments and centre of mass): measured on la-half at 1200 DAE steps,
        # its output on corrupted masks reaches 94.75 % Dice to the clean mask (input 94.55 %), against 84.54 %
        # as-is; not in the paper, so the paper preset keeps the paper's DAE.
        "lrep.dae_pose": "canonical",
        "data.patch": (64, 64, 32),
        "train.n_filters": 8,
        # 2000 steps: measured on la-half (seed 1 and 1337), MT 8/72 is 2-7.5 Dice above sup 8/0 here, while at 600
        # steps every semi-supervised method was below it (results/la-half/README.md).
        "train.iterations": 2000,
        "train.log_every": 20,
        "train.checkpoint_every": 200,
        "train.curve_every": 200,
        "eval.stride_xy": 16,
        "eval.stride_z": 8,
        "eval.sw_batch": 4,
    },
    # Pancreas-CT (bench data prepare-pancreas): the paper preset, 96^3 crops, test stride 16/16 (MC-Net's test_3d.py).
    "pancreas": {
        "train.amp": False,
        "lrep.dae_iterations": 20000,
        "lrep.dae_channels_last": True,
        "data.patch": (96, 96, 96),
        "eval.stride_xy": 16,
        "eval.stride_z": 16,
    },
}


# Fields that change how fast or where a run goes, never its numbers: left out of the run id, and not shown as
# experiment settings in tables.
NON_RESULT_KEYS = frozenset(
    {
        "train.device",
        "train.threads",
        "train.log_every",
        "train.checkpoint_every",
        "train.channels_last",
        "train.compile",
        "train.compile_mode",
        "train.tensorboard",
        "train.val_every",
        "train.val_cases",
        "train.curve_every",
        "data.num_workers",
        "eval.metric_workers",
    }
)


# Fields added after results existed, with the value every earlier run had: left out of the run id while they
# hold it, so that adding a setting does not orphan the finished runs (a run that changes it gets a new id).
ADDED_FIELDS: dict[str, Any] = {
    "train.optimizer": "sgd",
    "data.subset": 0,
    "data.fingerprint": None,
    "lrep.dae_channels_last": False,
}

# Fields the user cannot set: build_config computes them.
COMPUTED_KEYS = frozenset({"data.fingerprint"})


@dataclass(frozen=True)
class RunConfig:
    """Everything one run is: method, split, seed, preset and the resolved data/train/eval/method sections.

    Built by `build_config` (preset < the method's trainer defaults < --set), frozen, and written whole to the
    run's config.json. `run_id()` hashes everything that changes the numbers (not device, threads or logging
    cadence) and names the run folder with `run_name()`; `config_from_dict` rebuilds it from config.json.
    """

    method: str
    split: str
    seed: int
    preset: str
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    method_cfg: Any = None  # the method's own frozen config dataclass
    recipe: str = "benchmark"  # "published": the method's own authors' settings (`Method.published_recipe`)

    @property
    def variant(self) -> str:
        return str(getattr(self.method_cfg, "variant", "") or "")

    def to_dict(self) -> dict[str, Any]:
        d = {
            "method": self.method,
            "variant": self.variant,
            "split": self.split,
            "seed": self.seed,
            "preset": self.preset,
            "data": dataclasses.asdict(self.data),
            "train": dataclasses.asdict(self.train),
            "eval": dataclasses.asdict(self.eval),
            self.method: dataclasses.asdict(self.method_cfg) if self.method_cfg is not None else {},
        }
        if self.recipe != "benchmark":
            # Only when not the default, so the run ids of every run made before recipes existed stay the same.
            d["recipe"] = self.recipe
        return d

    def run_id(self) -> str:
        """A short hash of everything that changes results (not the device, threads or logging cadence)."""
        return self._identity(keep_root=True)

    def portable_id(self) -> str:
        """The run id without the data folder's path when its content fingerprint is known: the same experiment
        on the same bytes wherever the data lives (another clone, machine or mount point). Finished runs are
        found by it when their folder names carry another path's run id (runs/folder.find_run_dir)."""
        return self._identity(keep_root=self.data.fingerprint is None)

    def _identity(self, keep_root: bool) -> str:
        d = self.to_dict()
        if not keep_root:
            d["data"].pop("root", None)
        for dotted in NON_RESULT_KEYS:
            section, key = dotted.split(".")
            d[section].pop(key, None)
        for dotted, legacy in ADDED_FIELDS.items():
            section, key = dotted.split(".")
            if section in d and d[section].get(key, legacy) == legacy:  # a method's section: its runs only
                d[section].pop(key, None)
        blob = json.dumps(d, sort_keys=True, default=str).encode()
        return hashlib.sha1(blob).hexdigest()[:10]

    def changed_settings(self) -> dict[str, Any]:
        """`section.key` -> value for each result-changing field that differs from the plain preset.

        This is what tells apart runs of the same method, variant, split and seed (e.g. Table 4's `lrep.beta`
        grid) in a progress line.
        """
        sets = {f"{self.method}.variant": self.variant} if self.variant else {}
        plain = build_config(
            self.method, self.split, self.seed, self.preset, sets, self.data.root, recipe=self.recipe
        ).to_dict()
        mine = self.to_dict()
        changed = {}
        for section in ("data", "train", "eval", self.method):
            for key, value in mine[section].items():
                if f"{section}.{key}" not in NON_RESULT_KEYS and plain[section].get(key) != value:
                    changed[f"{section}.{key}"] = value
        return changed

    def run_name(self) -> str:
        variant = f"-{self.variant}" if self.variant else ""
        return f"{self.method}{variant}_{self.split.replace('/', '-')}_s{self.seed}_{self.run_id()}"


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert a --set string (or a preset value) to the annotated type; raise ConfigError on mismatch."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_none and type(None) in args:
            return None
        last: Exception | None = None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                last = exc
        raise last or ConfigError(f"{key}: cannot parse {value!r}")
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else list(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key) for v in items)
        if len(items) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} comma-separated values, got {value!r}")
        return tuple(_coerce(v, a, key) for v, a in zip(items, args, strict=True))
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if annotation in (int, float, str):
        try:
            if annotation is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            if annotation is int and isinstance(value, str):
                return int(value.strip())
            return annotation(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected {annotation.__name__}, got {value!r}") from None
    return value


def _apply(obj: Any, section: str, name: str, value: Any) -> Any:
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in fields(obj)}
    if name not in names:
        raise ConfigError(f"unknown key '{section}.{name}' (valid: {', '.join(sorted(names))})")
    try:
        return replace(obj, **{name: _coerce(value, hints[name], f"{section}.{name}")})
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:  # a method config's own validation (__post_init__)
        message = str(exc) if name in str(exc) else f"{section}.{name}={value!r}: {exc}"
        raise ConfigError(message) from None


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The `section.key` -> value overrides of a YAML or JSON config file (the keys of `--set`).

    Sections may be nested (`train: {iterations: 300}`) or dotted (`train.iterations: 300`); a top-level
    `method`, `split`, `seed`, `preset` or `recipe` (as `--print-config` writes them) is read too, and checked
    against the command's own options by `check_config_identity`. Raises ConfigError naming the file.
    """
    import yaml  # PyYAML: YAML is a superset of JSON, so one reader serves both

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read it ({exc.strerror or exc})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config {path}: not valid YAML or JSON ({str(exc).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"--config {path}: expected a mapping of section.key: value, got {type(data).__name__}"
        )
    out: dict[str, Any] = {}
    for key, value in data.items():
        key = str(key)
        if key in IDENTITY_KEYS:
            out[key] = value
        elif isinstance(value, dict) and "." not in key:
            for name, v in value.items():
                out[f"{key}.{name}"] = v
        elif "." in key:
            out[key] = value
        else:
            raise ConfigError(
                f"--config {path}: key '{key}' is neither a section (data, train, ...) nor section.key"
            )
    for key in out.keys() & COMPUTED_KEYS:
        out.pop(key)  # recorded by --print-config and config.json, computed again from the data folder
    return out


IDENTITY_KEYS = ("method", "split", "seed", "preset", "recipe", "variant")


def split_identity(overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the identity keys of a config file, its section.key overrides)."""
    ident = {k: v for k, v in overrides.items() if k in IDENTITY_KEYS}
    return ident, {k: v for k, v in overrides.items() if k not in IDENTITY_KEYS}


def printable_config(cfg: RunConfig) -> str:
    """The fully resolved config as YAML, in the form `--config` reads back (same run id)."""
    import yaml

    d = cfg.to_dict()
    head = {k: d[k] for k in ("method", "split", "seed", "preset") if k in d}
    head["recipe"] = cfg.recipe
    body = {}
    for section in (*CONFIG_SECTIONS, cfg.method):
        values = {k: (list(v) if isinstance(v, tuple) else v) for k, v in d[section].items()}
        body[section] = {k: v for k, v in values.items() if f"{section}.{k}" not in COMPUTED_KEYS}
    return yaml.safe_dump({**head, **body}, sort_keys=False)


def parse_sets(items: typing.Iterable[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or "." not in key:
            raise ConfigError(f"--set '{item}': expected section.key=value, e.g. train.iterations=300")
        if key.strip() in COMPUTED_KEYS:
            raise ConfigError(
                f"--set {key.strip()}: computed from the data folder's content, it cannot be set"
            )
        out[key.strip()] = value.strip()
    return out


def _finite(x: float) -> bool:
    return math.isfinite(x)


def _validate(cfg: RunConfig) -> None:
    t, d, e = cfg.train, cfg.data, cfg.eval
    semi = parse_split(cfg.split).n_unlabeled > 0
    checks = [
        (t.iterations >= 1, "train.iterations must be at least 1"),
        (t.batch_size >= 2, "train.batch_size must be at least 2 (BatchNorm needs 2 samples)"),
        (1 <= t.labeled_bs <= t.batch_size, "train.labeled_bs must be between 1 and train.batch_size"),
        (
            not semi or t.labeled_bs < t.batch_size,
            f"train.labeled_bs ({t.labeled_bs}) must be smaller than train.batch_size ({t.batch_size}) on a "
            "semi-supervised split: the rest of each batch is the unlabeled cases",
        ),
        (t.n_filters >= 1, "train.n_filters must be positive"),
        (_finite(t.lr) and t.lr > 0, f"train.lr {t.lr}: expected a positive finite number"),
        (t.lr_step is None or t.lr_step >= 1, f"train.lr_step {t.lr_step}: expected at least 1 (or none)"),
        (_finite(t.lr_gamma) and t.lr_gamma > 0, f"train.lr_gamma {t.lr_gamma}: expected a positive number"),
        (t.cosine_extra >= 0, f"train.cosine_extra {t.cosine_extra}: expected 0 or more"),
        (
            _finite(t.momentum) and 0 <= t.momentum < 1,
            f"train.momentum {t.momentum}: expected a value in [0, 1)",
        ),
        (
            _finite(t.weight_decay) and t.weight_decay >= 0,
            f"train.weight_decay {t.weight_decay}: expected 0 or more",
        ),
        (t.rampup_length >= 1, f"train.rampup_length {t.rampup_length}: expected at least 1"),
        (t.threads >= 0, f"train.threads {t.threads}: expected 0 (torch's default) or more"),
        (
            t.normalization in ("batchnorm", "instancenorm", "groupnorm", "none"),
            f"train.normalization {t.normalization!r}: expected batchnorm, instancenorm, groupnorm or none",
        ),
        (
            t.device in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", t.device) is not None,
            f"train.device {t.device!r}: expected auto, cpu, cuda or cuda:N",
        ),
        (
            d.spacing is None
            or all(
                _finite(v) and v > 0 for v in (d.spacing if isinstance(d.spacing, tuple) else (d.spacing,))
            ),
            f"data.spacing {d.spacing}: expected a positive number of mm, or three (x,y,z), or none (the data's)",
        ),
        (
            cfg.eval.metric_workers >= -1,
            f"eval.metric_workers {cfg.eval.metric_workers}: expected -1 (auto), 0 (in process) or more",
        ),
        (t.lr_policy in ("step", "cosine", "poly"), "train.lr_policy must be step, cosine or poly"),
        (t.optimizer in ("sgd", "adamw"), "train.optimizer must be sgd or adamw"),
        (
            t.compile_mode in ("default", "reduce-overhead", "max-autotune"),
            f"train.compile_mode {t.compile_mode!r}: expected default, reduce-overhead or max-autotune",
        ),
        (t.val_every >= 0 and t.val_cases >= 1, "train.val_every must be >= 0 and train.val_cases >= 1"),
        (
            t.curve_every >= 0 and t.curve_every % t.log_every == 0,
            f"train.curve_every {t.curve_every}: expected 0 or a multiple of train.log_every ({t.log_every})",
        ),
        (t.rampup in ("staircase", "gaussian"), "train.rampup must be staircase or gaussian"),
        (
            all(p > 0 and p % 16 == 0 for p in d.patch),
            f"data.patch {d.patch}: each side must be a multiple of 16",
        ),
        (e.stride_xy >= 1 and e.stride_z >= 1, "eval strides must be positive"),
        (e.sw_batch >= 1, "eval.sw_batch must be positive"),
        (e.empty_policy in ("worst", "legacy-zero"), "eval.empty_policy must be worst or legacy-zero"),
        (d.num_workers >= -1, "data.num_workers must be >= 0, or -1 for auto"),
        (d.subset >= 0, "data.subset must be 0 (the first N of train.list) or a positive subset number"),
        (t.log_every >= 1 and t.checkpoint_every >= 1, "train.log_every and checkpoint_every must be >= 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    _validate_method_section(cfg)


# Method settings whose meaning fixes their range, whichever method has them (methods/ keeps its own checks too).
METHOD_RANGES: dict[str, tuple[float, float, bool, str]] = {
    # name: (low, high, high included, what is expected)
    "ema_decay": (0.0, 1.0, False, "a value in [0, 1)"),
    "K": (1, math.inf, True, "at least 1"),
    "repeats": (1, math.inf, True, "at least 1"),
    "n_decoders": (1, math.inf, True, "at least 1"),
}


def _validate_method_section(cfg: RunConfig) -> None:
    """Every float of the method's section finite; the named settings (and `*_iterations`, `*_p`) in range."""
    if cfg.method_cfg is None or not dataclasses.is_dataclass(cfg.method_cfg):
        return
    for f in fields(cfg.method_cfg):
        value = getattr(cfg.method_cfg, f.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        key = f"{cfg.method}.{f.name}"
        if not math.isfinite(value):
            raise ConfigError(f"{key} {value}: expected a finite number")
        low, high, inclusive, expected = METHOD_RANGES.get(f.name, (-math.inf, math.inf, True, ""))
        if f.name.endswith("_iterations"):
            low, expected = 1, "at least 1 (or none)"
        elif f.name.endswith("_p"):
            low, high, expected = 0.0, 1.0, "a probability in [0, 1]"
        if value < low or value > high or (value == high and not inclusive):
            raise ConfigError(f"{key} {value}: expected {expected}")


def config_warnings(cfg: RunConfig) -> list[str]:
    """Legal but unusual settings, one line each (the CLI prints them once per command)."""
    notes = []
    patch = cfg.data.patch
    if cfg.eval.stride_xy > min(patch[:2]) or cfg.eval.stride_z > patch[2]:
        notes.append(
            f"sliding-window stride {cfg.eval.stride_xy} (x, y) / {cfg.eval.stride_z} (z) is larger than the "
            f"patch {'x'.join(map(str, patch))}: windows do not overlap, and voxels between them (on volumes larger "
            "than the patch) get no prediction and count as background"
        )
    return notes


def _other_method_section(key: str, method_keys: set[str]) -> bool:
    section = key.partition(".")[0]
    return section not in ("data", "train", "eval", *method_keys) and find_method(section) is not None


def build_config(
    method: str,
    split: str,
    seed: int = DEFAULT_SEEDS[0],
    preset: str = "quick",
    sets: dict[str, Any] | None = None,
    data_root: str | None = None,
    recipe: str = "benchmark",
    fingerprint: bool = True,
) -> RunConfig:
    """Resolve a full run configuration. Raises ConfigError (or UnknownMethodError) with a one-line message.

    `fingerprint`: compute `data.fingerprint` of a `--data` folder from its content (config_from_dict keeps the
    recorded one instead). Raises DatasetError when that folder does not exist.

    Resolution order: the preset < the method's trainer defaults < its published recipe (`recipe="published"`:
    the authors' own iterations, lr policy and batch, where they differ from the benchmark protocol) < `sets`.
    """
    info = get_method(method)
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset '{preset}' (known: {', '.join(PRESETS)})")
    if recipe not in RECIPES:
        raise ConfigError(f"--recipe {recipe}: expected one of {', '.join(RECIPES)}")
    try:
        parsed_split = parse_split(split)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed {seed!r}: expected a non-negative integer")
    if parsed_split.n_unlabeled and not info.cls.uses_unlabeled:
        raise ConfigError(f"method '{info.name}' is supervised: use a split with 0 unlabeled cases, e.g. 8/0")
    if not parsed_split.n_unlabeled and info.cls.uses_unlabeled:
        raise ConfigError(f"method '{info.name}' is semi-supervised: split {split} has no unlabeled cases")
    cfg = RunConfig(info.name, str(parsed_split), seed, preset, method_cfg=info.cls.Config())
    sections = {"data": cfg.data, "train": cfg.train, "eval": cfg.eval, "method": cfg.method_cfg}
    method_keys = {info.name, *info.aliases}
    # A preset may hold defaults for several methods' sections; those of other methods are skipped.
    overrides: list[tuple[str, Any]] = [
        (k, v) for k, v in PRESETS[preset].items() if not _other_method_section(k, method_keys)
    ]
    overrides += [(f"train.{k}", v) for k, v in info.cls.train_defaults.items()]
    if recipe == "published":
        overrides += list(info.cls.published_recipe.items())
    if data_root is not None:
        overrides.append(("data.root", data_root))
    overrides += list((sets or {}).items())
    for key, value in overrides:
        section, _, name = key.partition(".")
        if section in method_keys:
            section = "method"
        if section not in sections:
            raise ConfigError(
                f"unknown key '{key}': the section must be data, train, eval or the method name '{info.name}'"
            )
        sections[section] = _apply(sections[section], section, name, value)
    data = sections["data"]
    if data.root is not None:
        # The folder, not the way it was typed: `./LA`, `LA/` and an absolute path give one run id.
        data = replace(data, root=str(Path(data.root).expanduser().resolve()))
        if fingerprint:
            data = replace(data, fingerprint=_fingerprint(Path(data.root)))
    cfg = RunConfig(
        info.name,
        cfg.split,
        seed,
        preset,
        data,
        sections["train"],
        sections["eval"],
        info.cls.resolve_config(sections["method"], parsed_split),
        recipe,
    )
    _validate(cfg)
    return cfg


def _fingerprint(root: Path) -> str:
    from sslbench.datasets.errors import DatasetError
    from sslbench.datasets.fingerprint import data_fingerprint

    if not root.is_dir():
        raise DatasetError(f"{root}: data folder does not exist")
    return data_fingerprint(root)


def config_from_dict(d: dict[str, Any]) -> RunConfig:
    """Rebuild a RunConfig from a run's config.json (the inverse of `to_dict`)."""
    info = get_method(d["method"])
    sets = {}
    for section in ("data", "train", "eval"):
        sets.update({f"{section}.{k}": v for k, v in d.get(section, {}).items()})
    sets.update({f"{info.name}.{k}": v for k, v in d.get(info.name, {}).items()})
    recipe = d.get("recipe", "benchmark")
    return build_config(
        info.name,
        d["split"],
        int(d["seed"]),
        d.get("preset", "paper"),
        sets,
        recipe=recipe,
        fingerprint=False,
    )


def method_section(key: str) -> str | None:
    """The canonical method a `section.key` override targets, or None for data/train/eval."""
    section = key.partition(".")[0]
    if section in CONFIG_SECTIONS:
        return None
    try:
        return canonical_name(section)
    except UnknownMethodError:
        raise ConfigError(
            f"--set {key}: unknown section '{section}' (expected data, train, eval or a method name)"
        ) from None


def sets_for(method: str, sets: dict[str, Any] | None) -> dict[str, Any]:
    """The overrides that apply to `method`: the shared sections and its own section; other methods' dropped.

    Raises ConfigError for a section that is neither data/train/eval nor a registered method (or alias).
    """
    method = canonical_name(method)
    return {k: v for k, v in (sets or {}).items() if method_section(k) in (None, method)}
