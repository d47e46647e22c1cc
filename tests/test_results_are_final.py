"""Results are never silently rewritten or mixed (issue 16).

Finished is final (no command writes into a finished run folder; --force keeps the old one), a finished run is
reused only with the thread count, device kind and precision it was made with, a changed data file gives a new
run id, damaged files are named and redone, and two sweeps on one folder never train a run twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pandas as pd
import pytest
from click.testing import CliRunner

from sslbench.benchmark.cli import main
from sslbench.benchmark.config import ConfigError, build_config
from sslbench.benchmark.reporting.aggregate import collect
from sslbench.benchmark.reporting.tables.build import describe_protocol
from sslbench.benchmark.runs.folder import find_run_dir, finished_state, set_aside
from sslbench.benchmark.runs.lock import RunBusy, acquire, live_owner, release, run_lock
from sslbench.benchmark.runs.status import survey
from sslbench.benchmark.sweep.runner import run_sweep
from sslbench.benchmark.training.errors import ExecutionMismatch
from sslbench.benchmark.training.trainer import train_run
from sslbench.datasets.la import CASES_DIR, H5_NAME

ONE_THREAD = {"train.threads": "1"}


def _cfg(data: Path, **sets):
    return build_config("sup", "4/0", 1337, "smoke", {**ONE_THREAD, **sets}, str(data))


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_data):
    """A finished sup smoke run on a private copy of the tiny dataset: (data folder, run folder)."""
    base = tmp_path_factory.mktemp("final")
    data = base / "data"
    shutil.copytree(tiny_data, data)
    cfg = _cfg(data)
    run_dir = base / "runs" / cfg.run_name()
    train_run(cfg, run_dir, progress=False)
    return data, run_dir


@pytest.fixture
def results(tmp_path, finished):
    """A results folder holding a copy of the finished run: (data, results folder, run folder)."""
    data, run_dir = finished
    out = tmp_path / "runs"
    shutil.copytree(run_dir, out / run_dir.name)
    return data, out, out / run_dir.name


def _digest(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file's content hash and modification time."""
    return {
        str(p.relative_to(folder)): (hashlib.sha1(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


# --- 1. finished is final ---------------------------------------------------------------------------------------


def test_no_command_writes_into_a_finished_run_folder(results, tmp_path, tiny_data):
    data, out, run_dir = results
    before = _digest(run_dir)
    common = ["--data", data, "--out", out, "--preset", "smoke", "--set", "train.threads=1", "--quiet"]

    r = _invoke("train", "--method", "sup", "--split", "4/0", *common)
    assert r.exit_code == 0 and "already finished" in r.output and str(run_dir) in r.output, r.output
    r = _invoke("run", "--methods", "sup", "--split", "4/0", "--seed-list", "1337", "--jobs", "1", *common)
    assert r.exit_code == 0 and "0 done, 1 skipped" in r.output, r.output
    other = tmp_path / "other-data"
    shutil.copytree(tiny_data, other)
    r = _invoke("eval", run_dir, "--data", other, "--quiet")
    assert r.exit_code == 0 and ".eval-" in r.output, r.output
    r = _invoke("table", "1", "--no-run", "--data", data, "--out", out, "--preset", "smoke")
    assert r.exit_code == 0, r.output
    r = _invoke("report", out)
    assert r.exit_code == 0, r.output
    r = _invoke("status", out)
    assert r.exit_code == 0 and "1 finished" in r.output, r.output
    assert _digest(run_dir) == before

    # The re-evaluation is a sibling that records what it evaluated, and no table counts it as a run.
    (eval_dir,) = out.glob(f"{run_dir.name}.eval-*")
    record = json.loads((eval_dir / "eval.json").read_text())
    assert record["data_root"] == str(other.resolve()) and record["run_id"] == run_dir.name[-10:]
    assert (eval_dir / "cases.csv").is_file() and (eval_dir / "metrics.json").is_file()
    assert list(collect(out)["run_dir"]) == [str(run_dir)]

    # --force redoes the run and keeps the old folder, byte for byte, beside the new one.
    r = _invoke("train", "--method", "sup", "--split", "4/0", *common, "--force")
    assert r.exit_code == 0 and "Dice" in r.output, r.output
    (kept,) = out.glob(f"{run_dir.name}.replaced-*")
    assert _digest(kept) == before
    assert finished_state(_cfg(data), run_dir)[0] == "finished"


def test_sweep_force_keeps_the_old_folder(results):
    data, out, run_dir = results
    before = _digest(run_dir)
    (outcome,) = run_sweep([_cfg(data)], out, jobs=1, force=True, progress=False)
    assert outcome.status == "done"
    (kept,) = out.glob(f"{run_dir.name}.replaced-*")
    assert _digest(kept) == before


def test_the_trainer_refuses_a_finished_folder(results):
    data, _, run_dir = results
    from sslbench.benchmark.training.errors import AlreadyFinished

    before = _digest(run_dir)
    with pytest.raises(AlreadyFinished, match="already finished"):
        train_run(_cfg(data), run_dir, progress=False)
    assert _digest(run_dir) == before


# --- 2. identity that matches the numbers -------------------------------------------------------------------------


def test_a_finished_run_is_not_reused_with_another_thread_count(results):
    data, out, run_dir = results
    before = _digest(run_dir)
    with pytest.raises(
        ConfigError, match=r"made with cpu, 1 thread, fp32, now cpu, 2 threads, fp32.*--force"
    ):
        run_sweep([_cfg(data, **{"train.threads": "2"})], out, jobs=1, progress=False)
    r = _invoke(
        "train", "--method", "sup", "--split", "4/0", "--data", data, "--out", out, "--preset", "smoke",
        "--set", "train.threads=2", "--quiet",
    )  # fmt: skip
    assert r.exit_code == 2 and "1 thread" in r.output and "2 threads" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1
    assert _digest(run_dir) == before


def test_a_finished_run_is_not_reused_on_another_device_kind(results):
    data, out, run_dir = results
    config = json.loads((run_dir / "config.json").read_text())
    config["execution"] = {"device_kind": "cuda", "threads": 8, "precision": "bf16-autocast"}
    (run_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="made with cuda, bf16-autocast, now cpu, 1 thread, fp32"):
        run_sweep([_cfg(data)], out, jobs=1, progress=False)


def test_a_partial_run_does_not_resume_with_another_thread_count(tmp_path, finished):
    data, _ = finished
    cfg = _cfg(data, **{"train.iterations": "6", "train.checkpoint_every": "3"})
    run_dir = tmp_path / cfg.run_name()
    train_run(cfg, run_dir, progress=False)
    # Make it partial again, as if killed after its step-3 checkpoint, with a record of 2 threads.
    import torch

    from sslbench.benchmark.training.trainer import Trainer

    trainer = Trainer(cfg, run_dir, progress=False)
    method = trainer.build_method()
    from sslbench.benchmark.training.step import StepRunner

    runner = StepRunner(trainer, method)
    trainer._save_checkpoint(run_dir / "checkpoint.pt", 3, method, runner.optimizer, runner.extra_opts)
    for name in ("metrics.json", "model.pt", "cases.csv"):
        (run_dir / name).unlink()
    config = json.loads((run_dir / "config.json").read_text())
    config["execution"]["threads"] = 2
    (run_dir / "config.json").write_text(json.dumps(config))
    before = _digest(run_dir)
    with pytest.raises(ExecutionMismatch, match="cannot resume, the run was made with cpu, 2 threads"):
        train_run(cfg, run_dir, progress=False, resume=True)
    assert _digest(run_dir) == before
    assert torch.get_num_threads() >= 1


def _rewrite_first_case(data: Path) -> None:
    case = (data / "train.list").read_text().split()[0]
    path = data / CASES_DIR / case / H5_NAME
    with h5py.File(path, "r") as f:
        image, label = f["image"][()], f["label"][()]
    with h5py.File(path, "w") as f:
        f.create_dataset("image", data=image * 0.5)
        f.create_dataset("label", data=label)


def test_a_changed_data_file_gives_a_new_run_id(tmp_path, tiny_data):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    first = _cfg(data)
    assert first.data.fingerprint and len(first.data.fingerprint) == 12
    case = (data / "train.list").read_text().split()[0]
    os.utime(data / CASES_DIR / case / H5_NAME)  # touched, same bytes: same data, same run
    assert _cfg(data).run_id() == first.run_id()
    _rewrite_first_case(data)
    assert _cfg(data).run_id() != first.run_id()
    # config.json rebuilds the recorded id, whatever the folder holds now.
    from sslbench.benchmark.config import config_from_dict

    assert config_from_dict(first.to_dict()).run_id() == first.run_id()
    # Only build_config computes the fingerprint.
    r = _invoke("train", "--method", "sup", "--split", "4/0", "--set", "data.fingerprint=abc", "--quiet")
    assert r.exit_code == 2 and "data.fingerprint" in r.output


def test_the_builtin_dataset_has_no_fingerprint():
    cfg = build_config("mt", "8/72", 1337, "quick")
    assert cfg.data.fingerprint is None and "fingerprint" in cfg.to_dict()["data"]
    assert cfg.run_id() == "a3004aca66"  # the committed results' id (test_config_and_splits pins all three)


def test_captions_name_commits_threads_and_what_was_left_out(results):
    data, out, run_dir = results
    damaged = out / (run_dir.name[:-10] + "0123456789")
    shutil.copytree(run_dir, damaged)
    (damaged / "metrics.json").write_text("{}")
    runs = collect(out)
    config = json.loads((run_dir / "config.json").read_text())
    text = describe_protocol(runs)
    if config["code"]["commit"]:
        assert f"code commit {config['code']['commit'][:7]}" in text
    assert "CPU threads per run 1" in text
    assert "Left out: 1 run(s) with no result: 1 damaged" in text and "metrics.json" in text


# --- 3. concurrency ---------------------------------------------------------------------------------------------


def test_a_held_lock_is_respected_and_a_stale_one_taken_over(tmp_path, capsys):
    run_dir = tmp_path / "run"
    mine = acquire(run_dir)
    with pytest.raises(RunBusy, match="running elsewhere"):
        acquire(run_dir)
    assert live_owner(run_dir)["pid"] == os.getpid()
    release(run_dir, mine)
    assert live_owner(run_dir) is None and not (run_dir / ".lock").exists()

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run_dir / ".lock").write_text(json.dumps({"host": platform.node(), "pid": dead.pid, "started": "x"}))
    assert live_owner(run_dir) is None
    messages = []
    with run_lock(run_dir, say=messages.append):
        assert live_owner(run_dir)["pid"] == os.getpid()
    assert messages and "stale lock" in messages[0] and f"pid {dead.pid}" in messages[0]
    (run_dir / ".lock").write_text(json.dumps({"host": "another-host", "pid": 1, "started": "x"}))
    with pytest.raises(RunBusy, match="host another-host"):
        acquire(run_dir)


def test_a_sweep_skips_a_run_another_process_holds(tmp_path, finished):
    data, _ = finished
    cfg = _cfg(data, **{"train.iterations": "4"})
    run_dir = tmp_path / cfg.run_name()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run_dir.mkdir()
        owner = {"host": platform.node(), "pid": sleeper.pid, "started": "now", "token": "t"}
        (run_dir / ".lock").write_text(json.dumps(owner))
        (outcome,) = run_sweep([cfg], tmp_path, jobs=1, progress=False)
        assert outcome.status == "elsewhere" and f"pid {sleeper.pid}" in outcome.error
        assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # nothing written
        (state,) = survey(tmp_path)
        assert state.state == "running" and f"pid {sleeper.pid}" in state.detail
    finally:
        sleeper.kill()
        sleeper.wait()


def test_two_concurrent_sweeps_train_each_run_once(tmp_path, finished):
    data, _ = finished
    out = tmp_path / "runs"
    args = [
        sys.executable, "-c", "from sslbench.benchmark.cli import main; main()", "run", "--methods", "sup",
        "--split", "4/0", "--seed-list", "1,2,3", "--data", str(data), "--out", str(out),
        "--preset", "smoke", "--jobs", "1", "--set", "train.threads=1", "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env) for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    trained = sum(line.split("] ", 1)[-1].startswith("done") for o in outputs for line in o.splitlines())
    assert trained == 3, outputs  # every run trained exactly once, by one of the two
    assert all("Traceback" not in o for o in outputs)
    states = survey(out)
    assert [s.state for s in states] == ["finished"] * 3
    assert not list(out.rglob(".lock"))


# --- 4. bench status ------------------------------------------------------------------------------------------


def test_status_lists_every_kind_of_run(results):
    data, out, run_dir = results

    def clone(tag: str) -> Path:
        target = out / (run_dir.name[:-10] + tag * 10)
        shutil.copytree(run_dir, target)
        return target

    failed = clone("a")
    (failed / "metrics.json").unlink()
    (failed / "failed.json").write_text(json.dumps({"error": "RuntimeError: boom at step 2"}))
    partial = clone("b")
    (partial / "metrics.json").unlink()
    damaged = clone("c")
    (damaged / "metrics.json").write_text("[]")
    r = _invoke("status", out)
    assert r.exit_code == 0, r.output
    lines = {line.split()[1]: line for line in r.output.splitlines()[:-1]}
    assert lines[run_dir.name].startswith("finished") and "Dice" in lines[run_dir.name]
    assert lines[failed.name].startswith("failed") and "boom at step 2" in lines[failed.name]
    assert lines[partial.name].startswith("partial") and "no checkpoint" in lines[partial.name]
    assert (
        lines[damaged.name].startswith("damaged")
        and "metrics.json: expected a JSON object" in lines[damaged.name]
    )
    assert r.output.splitlines()[-1].startswith("1 finished, 0 running, 1 partial, 1 failed, 1 damaged")
    r = _invoke("status", out / "nope")
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1


# --- 5. faults --------------------------------------------------------------------------------------------------

DAMAGE = {
    "metrics-empty-object": ("metrics.json", "{}", "no numeric 'dice'"),
    "metrics-list": ("metrics.json", "[]", "expected a JSON object, got list"),
    "metrics-truncated": ("metrics.json", '{"dice": 0.8, "jacc', "unreadable"),
    "metrics-binary": ("metrics.json", "\x00\x01garbage", "unreadable"),
    "metrics-nan-dice": (
        "metrics.json",
        '{"dice": NaN, "jaccard": 1, "hd95_vox": 1, "asd_vox": 1}',
        "'dice'",
    ),
    "config-truncated": ("config.json", '{"method": "s', "config.json: missing or not a JSON object"),
    "config-list": ("config.json", "[1, 2]", "config.json: missing or not a JSON object"),
    "weights-empty": ("model.pt", "", "model.pt: missing or empty"),
}


@pytest.mark.parametrize("name", list(DAMAGE))
def test_a_damaged_file_is_named_and_never_counted(name, results):
    data, out, run_dir = results
    file, content, message = DAMAGE[name]
    (run_dir / file).write_text(content)
    state, why = finished_state(_cfg(data), run_dir)
    assert state == "damaged" and message in why and file in why
    runs = collect(out)  # aggregation never crashes, and never turns the damage into a number
    assert len(runs) == 1 and runs.iloc[0]["status"] in ("damaged", "done")
    if file in ("metrics.json", "config.json"):
        assert runs.iloc[0]["status"] == "damaged" and file in runs.iloc[0]["error"]
        assert pd.isna(runs.iloc[0]["dice"])


def test_a_damaged_run_is_set_aside_and_redone(results, capsys):
    data, out, run_dir = results
    (run_dir / "metrics.json").write_text("{}")
    (outcome,) = run_sweep([_cfg(data)], out, jobs=1, progress=False)
    assert outcome.status == "done" and finished_state(_cfg(data), run_dir)[0] == "finished"
    (kept,) = out.glob(f"{run_dir.name}.replaced-*")
    assert (kept / "metrics.json").read_text() == "{}"
    err = capsys.readouterr().err
    assert "damaged" in err and "metrics.json" in err and kept.name in err


def test_a_damaged_checkpoint_or_log_restarts_or_resumes(tmp_path, finished, capsys):
    data, _ = finished
    cfg = _cfg(data)
    run_dir = tmp_path / cfg.run_name()
    run_dir.mkdir()
    (run_dir / "checkpoint.pt").write_bytes(b"PK\x03\x04 not a checkpoint")
    (run_dir / "log.jsonl").write_text('{"step": 0, "loss": 1.0}\n{"step": 2, "lo\n\xff\xfe\n')
    metrics = train_run(cfg, run_dir, progress=False, resume=True)
    assert metrics["resumed_from_step"] == 0
    assert "unreadable checkpoint" in capsys.readouterr().err
    assert list(run_dir.glob("checkpoint.pt.unreadable-*"))
    steps = [json.loads(line)["step"] for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[0] == 0


def test_set_aside_never_overwrites(tmp_path):
    run = tmp_path / "run"
    names = []
    for i in range(3):
        run.mkdir()
        (run / "x").write_text(str(i))
        names.append(set_aside(run).name)
    assert len(set(names)) == 3 and not run.exists()


# --- 7. stopping a sweep ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_stopped_sweep_says_how_to_resume_and_resumes(sig, tmp_path, finished):
    import signal
    import time

    data, _ = finished
    out = tmp_path / "runs"
    args = [
        sys.executable, "-c", "from sslbench.benchmark.cli import main; main()", "run", "--methods", "sup",
        "--split", "4/0", "--seed-list", "1", "--data", str(data), "--out", str(out), "--preset", "smoke",
        "--jobs", "1", "--quiet", "--set", "train.threads=1", "--set", "train.iterations=400",
        "--set", "train.checkpoint_every=5",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 120
    while not list(out.rglob("checkpoint.pt")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(getattr(signal, sig))
    output = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == 130, output
    assert "Traceback" not in output
    assert output.strip().splitlines()[-1].endswith("re-run the same command to resume")
    assert not list(out.rglob(".lock"))  # released on the way out
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    assert (run_dir / "checkpoint.pt").is_file() and not (run_dir / "metrics.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("delay", [1.5, 4.0])
def test_a_sweep_killed_outright_then_rerun_gives_the_uninterrupted_table(delay, tmp_path, finished):
    """kill -9 of the whole sweep (parent and workers) at some moment, then the same command again: every run
    finishes, with the numbers of a sweep that was never interrupted (resumed runs continue from checkpoints)."""
    import signal
    import time

    data, _ = finished
    common = [
        "run", "--methods", "sup,mt", "--split", "4/4", "--seed-list", "1,2", "--data", str(data), "--preset",
        "smoke", "--jobs", "2", "--quiet", "--set", "train.threads=1", "--set", "train.iterations=60",
        "--set", "train.checkpoint_every=7",
    ]  # fmt: skip
    cmd = [sys.executable, "-c", "from sslbench.benchmark.cli import main; main()"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

    def dice(out: Path) -> dict[str, float]:
        return {p.parent.name: json.loads(p.read_text())["dice"] for p in out.glob("*/metrics.json")}

    clean = tmp_path / "clean"
    subprocess.run(
        [*cmd, *common, "--out", str(clean)], env=env, check=True, capture_output=True, timeout=600
    )
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, *common, "--out", str(killed)], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    while not list(killed.glob("*/log.jsonl")) and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert len(dice(killed)) < len(dice(clean)), "the sweep finished before it was killed: kill it earlier"
    again = subprocess.run([*cmd, *common, "--out", str(killed)], env=env, capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert dice(killed) == dice(clean) and len(dice(clean)) == 4


# --- 8. committed results: no weights, another data path ----------------------------------------------------------
def test_a_run_kept_without_weights_elsewhere_is_reused_not_retrained(results, tmp_path):
    """results/ commits a run's small files only, and a reader's data lives at another path: the sweep must
    find that run (same experiment, same data bytes) and count it as finished, never retrain or rewrite it."""
    data, out, run_dir = results
    (run_dir / "model.pt").unlink()  # what a committed result looks like
    moved = tmp_path / "elsewhere" / "data"
    shutil.copytree(data, moved)  # the same bytes at another path: another run id, the same portable id
    cfg = _cfg(moved)
    assert cfg.run_id() != _cfg(data).run_id() and cfg.portable_id() == _cfg(data).portable_id()
    before = _digest(out)
    (outcome,) = run_sweep([cfg], out, jobs=1, progress=False)
    assert outcome.status == "skipped" and outcome.run_dir == run_dir and _digest(out) == before
    assert outcome.metrics["dice"] == json.loads((run_dir / "metrics.json").read_text())["dice"]
    # another data CONTENT is another experiment: trained into its own folder
    (moved / "test.list").write_text((moved / "test.list").read_text().splitlines()[0] + "\n")
    other = _cfg(moved)
    assert other.portable_id() != cfg.portable_id()
    assert find_run_dir(out, other) == out / other.run_name()
