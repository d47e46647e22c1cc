"""Hostile input, table-driven: every case answered with its exit code and one line naming the file or option.

Each row breaks one thing (an option, a data file, a run folder), runs the CLI, and checks the exit code, that the
output is one line naming what is wrong (no traceback), and that the finished run already in the results folder
is byte-for-byte unchanged. Rows with exit code 0 are legal-but-unusual input: they must succeed and say so in
exactly one warning line.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from sslbench.benchmark.cli import main
from sslbench.benchmark.config import build_config
from sslbench.benchmark.training.trainer import train_run
from sslbench.datasets.la import CASES_DIR, H5_NAME


@dataclass
class Ctx:
    data: Path  # a private copy of the tiny dataset
    results: Path  # holds one finished run, which no row may change
    victim: Path  # a second copy of that run, which rows may break
    tmp: Path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_data) -> Path:
    base = tmp_path_factory.mktemp("hostile")
    cfg = build_config("sup", "4/0", 1337, "smoke", {"train.threads": "1"}, str(tiny_data))
    run_dir = base / cfg.run_name()
    train_run(cfg, run_dir, progress=False)
    return run_dir


@pytest.fixture
def ctx(tmp_path, tiny_data, finished_run) -> Ctx:
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    results = tmp_path / "results"
    shutil.copytree(finished_run, results / finished_run.name)
    victim = tmp_path / "victims" / finished_run.name
    shutil.copytree(finished_run, victim)
    return Ctx(data, results, victim, tmp_path)


# --- how rows break things ---------------------------------------------------------------------------------------


def _train(c: Ctx, *args: str, method: str = "mt", split: str = "4/4", data: Path | None = None) -> list:
    base = ["train", "--method", method, "--split", split, "--data", data or c.data, "--out", c.results]
    return [*base, "--preset", "smoke", "--quiet", "--set", "train.threads=1", *args]


def _set(*pairs: str, method: str = "mt", split: str = "4/4") -> Callable[[Ctx], list]:
    return lambda c: _train(c, *[x for p in pairs for x in ("--set", p)], method=method, split=split)


def _first(c: Ctx, which: str = "train.list") -> str:
    return (c.data / which).read_text().split()[0]


def _h5(c: Ctx) -> Path:
    return c.data / CASES_DIR / _first(c) / H5_NAME


def _rewrite(c: Ctx, image=None, label=None, group: str | None = None) -> None:
    path = _h5(c)
    with h5py.File(path, "r") as f:
        arrays = {"image": f["image"][()], "label": f["label"][()]}
    arrays["image"] = image(arrays["image"]) if image else arrays["image"]
    arrays["label"] = label(arrays["label"]) if label else arrays["label"]
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            if key == group:
                f.create_group(key).create_dataset("data", data=value)
            else:
                f.create_dataset(key, data=value)


def _data(breaker: Callable[[Ctx], None]) -> Callable[[Ctx], list]:
    def build(c: Ctx) -> list:
        breaker(c)
        return _train(c)

    return build


def _prepend(which: str, line: str) -> Callable[[Ctx], None]:
    def breaker(c: Ctx) -> None:
        path = c.data / which
        path.write_text(line + "\n" + path.read_text())

    return breaker


def _write(name: str, content: str | bytes) -> Callable[[Ctx], None]:
    def breaker(c: Ctx) -> None:
        path = c.data / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())

    return breaker


def _replace_list_with_folder(c: Ctx) -> None:
    (c.data / "train.list").unlink()
    (c.data / "train.list").mkdir()


def _duplicate(c: Ctx) -> None:
    _prepend("train.list", _first(c))(c)


def _leak(c: Ctx) -> None:
    _prepend("train.list", _first(c, "test.list"))(c)


def _victim(file: str, content: str | bytes | None) -> Callable[[Ctx], None]:
    def breaker(c: Ctx) -> None:
        path = c.victim / file
        if content is None:
            path.unlink()
        else:
            path.write_bytes(content if isinstance(content, bytes) else content.encode())

    return breaker


def _eval(breaker: Callable[[Ctx], None], *args) -> Callable[[Ctx], list]:
    def build(c: Ctx) -> list:
        breaker(c)
        return ["eval", c.victim, "--quiet", *[a(c) if callable(a) else a for a in args]]

    return build


def _a_file(c: Ctx) -> Path:
    path = c.tmp / "a-file"
    path.write_text("not a folder")
    return path


def _run(*args) -> Callable[[Ctx], list]:
    def build(c: Ctx) -> list:
        base = ["run", "--methods", "sup", "--split", "4/0", "--seed-list", "1", "--data", c.data]
        rest = [a(c) if callable(a) else a for a in args]
        out = [] if "--out" in rest else ["--out", c.results]
        return [*base, *out, "--preset", "smoke", "--quiet", "--set", "train.threads=1", *rest]

    return build


def _report_with_bad_cases(c: Ctx) -> list:
    (c.victim / "cases.csv").write_text("case,dice\nx,not-a-number\n")
    return ["report", c.victim.parent, "--no-qualitative"]


def _zero_axis(a):
    return a[:, :, :0]


def _nan(a):
    a = a.astype(np.float32)
    a[1, 1, 1] = np.nan
    return a


def _label_half(a):
    return a.astype(np.float32) * 0.5


# (id, build the argv (breaking what the row is about), exit code, message fragment)
CASES = [
    # options, validated once in config._validate
    ("spacing-negative", _set("data.spacing=-1"), 2, "data.spacing -1.0: expected a positive number"),
    ("spacing-zero", _set("data.spacing=0"), 2, "data.spacing 0.0"),
    ("spacing-nan", _set("data.spacing=nan"), 2, "data.spacing nan"),
    ("spacing-inf", _set("data.spacing=inf"), 2, "data.spacing inf"),
    ("lr-step-negative", _set("train.lr_step=-1"), 2, "train.lr_step -1: expected at least 1"),
    ("lr-step-zero", _set("train.lr_step=0"), 2, "train.lr_step 0"),
    ("ema-decay-2", _set("mt.ema_decay=2"), 2, "mt.ema_decay 2.0: expected a value in [0, 1)"),
    ("ema-decay-1", _set("mt.ema_decay=1"), 2, "mt.ema_decay 1.0"),
    ("ema-decay-negative", _set("mt.ema_decay=-0.5"), 2, "mt.ema_decay -0.5"),
    ("labeled-bs-equals-batch", _set("train.labeled_bs=4"), 2, "train.labeled_bs (4) must be smaller"),
    ("labeled-bs-zero", _set("train.labeled_bs=0"), 2, "train.labeled_bs must be between 1"),
    ("unknown-lr-policy", _set("train.lr_policy=exp"), 2, "train.lr_policy must be step, cosine or poly"),
    ("rampup-length-zero", _set("train.rampup_length=0"), 2, "train.rampup_length 0: expected at least 1"),
    ("uamt-k-zero", _set("uamt.K=0", method="uamt"), 2, "uamt.K 0: expected at least 1"),
    ("uamt-repeats-zero", _set("uamt.repeats=0", method="uamt"), 2, "uamt.repeats 0"),
    ("lr-nan", _set("train.lr=nan"), 2, "train.lr nan"),
    ("lr-inf", _set("train.lr=inf"), 2, "train.lr inf"),
    ("lr-negative", _set("train.lr=-0.1"), 2, "train.lr -0.1"),
    ("lr-gamma-zero", _set("train.lr_gamma=0"), 2, "train.lr_gamma 0.0"),
    ("momentum-one", _set("train.momentum=1"), 2, "train.momentum 1.0: expected a value in [0, 1)"),
    ("momentum-negative", _set("train.momentum=-0.1"), 2, "train.momentum -0.1"),
    ("weight-decay-negative", _set("train.weight_decay=-1"), 2, "train.weight_decay -1.0"),
    ("cosine-extra-negative", _set("train.cosine_extra=-5"), 2, "train.cosine_extra -5"),
    ("threads-negative", _set("train.threads=-1"), 2, "train.threads -1"),
    ("unknown-normalization", _set("train.normalization=layer"), 2, "train.normalization 'layer'"),
    ("unknown-device", _set("train.device=gpu"), 2, "train.device 'gpu'"),
    ("method-weight-nan", _set("mt.w=nan"), 2, "mt.w nan: expected a finite number"),
    ("method-noise-inf", _set("mt.noise_std=inf"), 2, "mt.noise_std inf"),
    ("iterations-zero", _set("train.iterations=0"), 2, "train.iterations must be at least 1"),
    ("batch-size-one", _set("train.batch_size=1"), 2, "train.batch_size must be at least 2"),
    ("patch-zero", _set("data.patch=0,0,0"), 2, "multiple of 16"),
    ("patch-two-values", _set("data.patch=16,16"), 2, "expected 3 comma-separated values"),
    ("stride-zero", _set("eval.stride_xy=0"), 2, "eval strides must be positive"),
    ("unknown-empty-policy", _set("eval.empty_policy=skip"), 2, "eval.empty_policy must be worst"),
    ("sw-batch-zero", _set("eval.sw_batch=0"), 2, "eval.sw_batch must be positive"),
    ("num-workers-minus-two", _set("data.num_workers=-2"), 2, "data.num_workers must be >= 0"),
    ("unknown-rampup", _set("train.rampup=linear"), 2, "train.rampup must be staircase or gaussian"),
    ("unknown-optimizer", _set("train.optimizer=adam"), 2, "train.optimizer must be sgd or adamw"),
    ("amp-not-a-bool", _set("train.amp=maybe"), 2, "train.amp: expected true or false"),
    ("fingerprint-set", _set("data.fingerprint=abc"), 2, "data.fingerprint: computed from the data folder"),
    ("unknown-section", _set("nosuch.w=1"), 2, "unknown key 'nosuch.w'"),
    ("zero-labeled", lambda c: _train(c, split="0/4"), 2, "at least one labeled case"),
    ("supervised-with-unlabeled", lambda c: _train(c, method="sup"), 2, "supervised: use a split with 0"),
    ("semi-without-unlabeled", lambda c: _train(c, split="4/0"), 2, "semi-supervised: split 4/0"),
    (
        "stride-larger-than-patch",
        _set("eval.stride_xy=64", method="sup", split="4/0"),
        0,
        "larger than the patch",
    ),
    # data folders, validated by datasets/la.py and datasets/check.py before the first step
    ("duplicate-train-id", _data(_duplicate), 2, "appears 2 times (expected each id once)"),
    ("train-test-leak", _data(_leak), 2, "in both train.list and test.list (a train/test leak"),
    ("id-dot-dot", _data(_prepend("train.list", "../x")), 2, "id '../x' is not a case folder name"),
    ("id-absolute", _data(_prepend("train.list", "/etc/passwd")), 2, "id '/etc/passwd' is not a case folder"),
    ("id-in-test-dot-dot", _data(_prepend("test.list", "..")), 2, "test.list: id '..' is not a case folder"),
    ("zero-size-axis", _data(lambda c: _rewrite(c, _zero_axis, _zero_axis)), 2, "at least one voxel"),
    ("image-is-a-group", _data(lambda c: _rewrite(c, group="image")), 2, "'image' is a Group"),
    ("label-is-a-group", _data(lambda c: _rewrite(c, group="label")), 2, "'label' is a Group"),
    ("non-utf8-list", _data(_write("train.list", b"\xff\xfe\x00case\n")), 2, "train.list: not UTF-8"),
    ("dataset-json-list", _data(_write("dataset.json", "[1, 2]")), 2, "expected a JSON object, got list"),
    ("dataset-json-invalid", _data(_write("dataset.json", "{nope")), 2, "dataset.json: not valid JSON"),
    (
        "dataset-json-spacing-negative",
        _data(_write("dataset.json", '{"spacing_mm": -1}')),
        2,
        "spacing_mm -1",
    ),
    ("dataset-json-spacing-text", _data(_write("dataset.json", '{"spacing_mm": "x"}')), 2, "spacing_mm 'x'"),
    ("dataset-json-spacing-nan", _data(_write("dataset.json", '{"spacing_mm": NaN}')), 2, "spacing_mm nan"),
    ("list-is-a-folder", _data(_replace_list_with_folder), 2, "train.list: list file not found"),
    (
        "no-cases-folder",
        _data(lambda c: shutil.rmtree(c.data / CASES_DIR)),
        2,
        "no '2018LA_Seg_Training Set'",
    ),
    ("empty-h5", _data(lambda c: _h5(c).write_bytes(b"")), 2, "cannot read h5 file"),
    ("image-2d", _data(lambda c: _rewrite(c, lambda a: a[:, :, 0], lambda a: a[:, :, 0])), 2, "3 dimensions"),
    ("label-half", _data(lambda c: _rewrite(c, label=_label_half)), 2, "label has values [0.0, 0.5]"),
    ("image-nan", _data(lambda c: _rewrite(c, image=_nan)), 2, "image contains NaN or inf"),
    ("data-is-a-file", lambda c: _train(c, data=_a_file(c)), 2, "data folder does not exist"),
    # commands on broken run folders and outputs
    ("eval-corrupt-config", _eval(_victim("config.json", '{"method": "s')), 1, "no readable config.json"),
    ("eval-config-empty-object", _eval(_victim("config.json", "{}")), 1, "config.json: not a run's config"),
    ("eval-corrupt-weights", _eval(_victim("model.pt", b"garbage")), 1, "model.pt: cannot read the weights"),
    ("eval-no-weights", _eval(_victim("model.pt", None)), 1, "model.pt: no final weights"),
    (
        "eval-missing-data",
        _eval(lambda c: None, "--data", lambda c: c.tmp / "nowhere"),
        2,
        "data folder does not exist",
    ),
    ("eval-not-a-run", lambda c: ["eval", c.tmp, "--quiet"], 1, "not a run folder"),
    ("report-corrupt-cases", _report_with_bad_cases, 0, "cases.csv: unreadable"),
    ("report-missing-folder", lambda c: ["report", c.tmp / "nowhere"], 2, "not a folder"),
    ("status-of-a-file", lambda c: ["status", _a_file(c)], 2, "not a folder"),
    (
        "synth-out-is-a-file",
        lambda c: ["data", "synth", "--out", _a_file(c) / "x"],
        2,
        "cannot create the folder",
    ),
    ("run-out-is-a-file", _run("--out", lambda c: _a_file(c) / "runs"), 2, "cannot write there"),
    ("train-out-is-a-file", lambda c: [*_train(c), "--out", _a_file(c) / "runs"], 2, "cannot write there"),
    ("run-jobs-zero", _run("--jobs", "0"), 2, "--jobs 0: expected at least 1"),
    ("run-repeated-seed", _run("--seed-list", "1,1"), 2, "a seed is repeated"),
    ("run-bad-set", _run("--set", "train.lr_step=-1"), 2, "train.lr_step -1"),
    (
        "table-out-is-a-file",
        lambda c: ["table", "1", "--no-run", "--out", _a_file(c) / "runs", "--preset", "smoke"],
        2,
        "cannot write there",
    ),
]


def _digest(folder: Path) -> str:
    h = hashlib.sha1()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return h.hexdigest()


def test_there_are_at_least_fifty_cases():
    assert len(CASES) >= 50 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name,build,code,message", CASES, ids=[c[0] for c in CASES])
def test_hostile_input(name, build, code, message, ctx):
    existing = ctx.results / ctx.victim.name
    before = _digest(existing)
    argv = [str(a) for a in build(ctx)]
    result = CliRunner().invoke(main, argv)
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == code, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip() and not ln.startswith("run folder:")]
    if code == 0:  # legal but unusual: it runs, and says so in one warning line naming the setting
        warnings = [ln for ln in lines if ln.startswith("warning:")]
        assert len(warnings) == 1 and message in warnings[0], result.output
    else:
        assert len(lines) == 1, result.output  # one line, no traceback
        assert message in lines[0], lines[0]
    assert _digest(existing) == before
    if name.startswith("eval"):
        assert not list(ctx.victim.parent.glob("*.eval-*")) or code == 0


def test_a_metrics_json_of_an_empty_object_is_not_finished(ctx):
    """The issue's last silently accepted case: `{}` counted as finished. It is damaged, named, and redone."""
    run_dir = ctx.results / ctx.victim.name
    (run_dir / "metrics.json").write_text("{}")
    cfg = json.loads((run_dir / "config.json").read_text())
    result = CliRunner().invoke(
        main,
        [
            "train", "--method", "sup", "--split", "4/0", "--data", cfg["data"]["root"], "--out", str(ctx.results),
            "--preset", "smoke", "--quiet", "--set", "train.threads=1",
        ],
    )  # fmt: skip
    assert result.exit_code == 0 and "damaged" in result.output and "metrics.json" in result.output, (
        result.output
    )
    assert "already finished" not in result.output
    (kept,) = ctx.results.glob("*.replaced-*")
    assert (kept / "metrics.json").read_text() == "{}"


def test_a_stride_larger_than_the_patch_leaves_background_not_nan():
    import torch

    from sslbench.benchmark.evaluation.sliding_window import sliding_window_scores

    image = np.zeros((40, 16, 16), dtype=np.float32)
    ones = lambda x: torch.ones(x.shape[0], 2, *x.shape[2:])  # noqa: E731
    scores = sliding_window_scores(ones, image, (16, 16, 16), 20, 16, 2, 4, torch.device("cpu"))
    assert torch.isfinite(scores).all()
    assert scores[:, 16:20].eq(0).all() and scores[:, :16].eq(1).all()  # x 16..19: no window covers them
